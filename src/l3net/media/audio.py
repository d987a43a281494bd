"""A file's audio on its :class:`~l3net.media.timeline.Timeline`: mono float32 at 48 kHz, silence
where the stream has none. Decoding streams in chunks (:func:`iter_audio`), so an hour of audio need
never be in memory; :class:`AudioReport` says what was put where.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import av
import numpy as np

from ..config import SAMPLE_RATE
from ..errors import InputError, MediaError
from .clock import AudioClock, AudioPlacement
from .resampling import _AudioGraph, _FollowingGraph
from .timeline import (
    DamagedPackets,
    PathLike,
    Timeline,
    _check_file,
    _choose_audio_stream,
    _frames_from,
    _is_picture_stream,
    _open_container,
    _set_threads,
    _timeline,
)

@dataclass
class AudioReport:
    """What reading put where, in seconds on the file's :class:`Timeline` (filled while decoding).

    The samples delivered start at timeline time ``start``; the stream's first decoded sample sits
    at ``offset``. Silence stands in where the stream has no sound: before its first sample
    (``padded_start``), in gaps of its timestamps (``gaps``) and after its end up to the end of
    the picture (``padded_end``); samples before ``start`` (``trimmed_start``) or where timestamps
    go back (``overlaps``) are dropped. Where the decoded frames' sample format, channel layout or
    rate changes (joined recordings, or a decoder unlike the stream's declaration, after the first
    frame), the filter graph is rebuilt without moving a sample: ``format_changes`` says where.
    ``channels``, ``layout`` are the stream's declaration; ``downmix`` is of the first frame.
    """

    stream: int = 0  # index among the file's audio streams
    streams: int = 0  # audio streams in the file
    channels: int = 0
    layout: str = ""
    downmix: str = "none"  # none | mean | ffmpeg matrix
    origin: float = 0.0  # container time of timeline t = 0
    start: float = 0.0
    offset: float | None = None
    padded_start: float = 0.0
    trimmed_start: float = 0.0
    gaps: float = 0.0
    overlaps: float = 0.0
    padded_end: float = 0.0
    #: where the stream's sample format, layout or rate changed: {"t": seconds, "from": ..., "to": ...}
    format_changes: list[dict[str, Any]] = field(default_factory=list)
    seek: str | None = None  # 'seek' or 'decode from start' when reading began after t = 0
    damaged_packets: int = 0  # packets FFmpeg could not decode, skipped (silence in their place)

    def to_dict(self) -> dict[str, Any]:
        """The manifest's fields (``audio_*``), values rounded to the microsecond."""
        fields = {
            "audio_stream": self.stream,
            "audio_streams": self.streams,
            "audio_channels": self.channels,
            "audio_layout": self.layout,
            "audio_downmix": self.downmix,
            "audio_offset": None if self.offset is None else round(self.offset, 6),
            "audio_padded_s": round(self.padded_start, 6),
            "audio_trimmed_s": round(self.trimmed_start, 6),
            "audio_gaps_s": round(self.gaps, 6),
            "audio_overlaps_s": round(self.overlaps, 6),
            "audio_padded_end_s": round(self.padded_end, 6),
            "audio_format_changes": [dict(change) for change in self.format_changes],
            "audio_damaged_packets": self.damaged_packets,
            "timeline_origin": round(self.origin, 6),
        }
        if self.seek is not None:
            fields["audio_seek"] = self.seek
        return fields


def _silence_like(frame: av.AudioFrame, samples: int) -> av.AudioFrame:
    silence = av.AudioFrame(format=frame.format.name, layout=frame.layout, samples=samples)
    for plane in silence.planes:
        plane.update(bytes(plane.buffer_size))
    silence.sample_rate = frame.sample_rate
    return silence


def _drop_front(frame: av.AudioFrame, samples: int) -> av.AudioFrame:
    """The frame without its first ``samples`` samples."""
    data = frame.to_ndarray()
    if not frame.format.is_planar:  # packed: one row of interleaved channels
        data = data[:, samples * len(frame.layout.channels) :]
    else:
        data = data[:, samples:]
    rest = av.AudioFrame.from_ndarray(np.ascontiguousarray(data), format=frame.format.name, layout=frame.layout)
    rest.sample_rate = frame.sample_rate
    return rest


def _report_clock(report: AudioReport, placer: AudioClock[Any]) -> None:
    """Copy what the clock did into the report (seconds on the timeline)."""
    report.offset = placer.offset
    report.padded_start, report.trimmed_start = placer.padded_start, placer.trimmed_start
    report.gaps, report.overlaps, report.padded_end = placer.gaps, placer.overlaps, placer.padded_end


class AudioReader:
    """A file's audio on its :class:`Timeline`, as mono float32 chunks at ``sample_rate`` (Hz).

    Iterating decodes ``duration`` seconds (None: to the end) from timeline time ``start``, in
    chunks of about ``chunk_seconds``; ``report`` then says what was done (an
    :class:`AudioReport`). Sample ``i`` of the output is at timeline time ``start + i /
    sample_rate``: a stream that starts late is preceded by silence, one that starts early is
    trimmed, gaps in its timestamps become silence, and a video's sound is padded with silence to
    the end of its picture. Edit lists and encoder priming (AAC delay, Opus pre-skip) count as
    FFmpeg presents them. ``stream``: index among the audio streams (None: the default one, else
    the first). A ``start`` after 0 seeks (no index needed; a seek that fails falls back to
    decoding from the start). ``threads``: decoder threads (None: FFmpeg's choice).
    Raises :class:`MediaError` when the file is unreadable or has no audio.
    """

    def __init__(
        self,
        path: PathLike,
        sample_rate: int = SAMPLE_RATE,
        *,
        start: float = 0.0,
        duration: float | None = None,
        stream: int | None = None,
        chunk_seconds: float = 10.0,
        threads: int | None = None,
    ) -> None:
        if sample_rate <= 0:
            raise InputError(f"sample_rate must be positive, got {sample_rate}")
        if not (math.isfinite(start) and start >= 0):
            raise InputError(f"start must be a non-negative number of seconds, got {start}")
        if duration is not None and not duration >= 0:
            raise InputError(f"duration must be non-negative, got {duration}")
        if stream is not None and stream < 0:
            raise InputError(f"audio stream must be a non-negative index, got {stream}")
        self.path = Path(path)
        self.sample_rate = int(sample_rate)
        self.start, self.duration, self.stream = float(start), duration, stream
        self.chunk_seconds, self.threads = chunk_seconds, threads
        self.report = AudioReport(start=self.start)

    def __iter__(self) -> Iterator[np.ndarray]:
        self.report = AudioReport(start=self.start)
        return self._chunks()

    def _chunks(self) -> Iterator[np.ndarray]:
        path, report, sample_rate = self.path, self.report, self.sample_rate
        _check_file(path)
        limit = None if self.duration is None else max(0, round(self.duration * sample_rate))
        seeks: list[str] = []
        with _open_container(path) as container:
            stream = _choose_audio_stream(container, path, self.stream)
            clock = _timeline(container)
            bad = DamagedPackets(container, stream, clock.origin)
            graph = self._resampler(container, stream, clock, bad)
            out = _Output(graph, chunk=max(1, round(self.chunk_seconds * sample_rate)), limit=limit)
            end = _sound_end(container, clock, self.start, limit, sample_rate)
            target = clock.origin + self.start if self.start > 0 else None
            placer: AudioClock[av.AudioFrame] = AudioClock(stream.rate, start=self.start)
            last: av.AudioFrame | None = None  # the last frame placed (the format of the end's silence)
            time: float | None = None  # timeline seconds of the last frame decoded
            frames = _frames_from(path, container, stream, target, bad, seeks)
            try:
                while not out.full:
                    try:
                        frame = next(frames)
                    except StopIteration:
                        break
                    except av.error.FFmpegError as exc:
                        raise bad.error(path, "reading stopped (truncated or corrupt)", exc, at=time) from exc
                    time = None if frame.time is None else frame.time - clock.origin
                    for placed, where in placer.add(frame, frame.samples, time, frame.sample_rate):
                        yield from out.place(placed, where)
                        last = placed if not where.skipped else last
                rest = placer.flush()
                while not out.full:
                    placed, where = next(rest, (None, None))
                    if placed is None or where is None:
                        break
                    yield from out.place(placed, where)
                    last = placed if not where.skipped else last
                if last is not None and not out.full:
                    yield from out.silence(last, placer.end_padding(end))
                    yield from out.finish()
            except av.error.FFmpegError as exc:  # from the filter graph: this stream's sound, not the file's
                raise bad.error(path, "its sound could not be converted", exc, at=time) from exc
            finally:
                _report_clock(report, placer)
                report.downmix, report.format_changes = graph.downmix, graph.changes
            report.seek = seeks[0] if seeks else None
            report.damaged_packets = bad.count
        if out.emitted == 0:
            if bad.count:
                raise bad.error(path, "no sound could be decoded")
            raise MediaError(path, "no audio could be decoded")
        if bad.count:
            warnings.warn(bad.warning(path), stacklevel=2)

    def _resampler(self, container: av.container.InputContainer, stream: av.AudioStream, clock: Timeline,
                   bad: DamagedPackets) -> _FollowingGraph:
        """The graph that turns ``stream`` into mono at the reader's rate; fills the report's stream fields."""
        report = self.report
        audios = list(container.streams.audio)
        report.stream, report.streams = audios.index(stream), len(audios)
        report.channels, report.layout, report.origin = len(stream.layout.channels), stream.layout.name, clock.origin
        _set_threads(stream, self.threads)
        try:
            return _FollowingGraph(stream, out_rate=self.sample_rate, start=self.start, path=self.path)
        except (av.error.FFmpegError, ValueError) as exc:
            raise bad.error(self.path, "unsupported audio stream", exc) from exc


def _sound_end(container: av.container.InputContainer, clock: Timeline, start: float, limit: int | None,
               sample_rate: int) -> float | None:
    """Where the silence after the sound stops (timeline seconds; None: no padding): a video's audio
    covers its picture, an audio file's timeline ends with its audio; ``limit`` samples from
    ``start`` end it earlier."""
    has_picture = any(not _is_picture_stream(s) for s in container.streams.video)
    end = clock.end if has_picture else None
    if limit is not None:
        stop = start + limit / sample_rate
        end = None if end is None else min(end, stop)
    return end


class _Output:
    """Where placed sound goes: through the resampling ``graph``, then cut into chunks of ``chunk``
    samples, ``limit`` samples at most in all (None: no limit)."""

    def __init__(self, graph: _FollowingGraph, *, chunk: int, limit: int | None) -> None:
        self.graph, self.chunk, self.limit = graph, chunk, limit
        self.pending: list[np.ndarray] = []
        self.pending_len = 0
        self.emitted = 0  # samples handed out

    @property
    def full(self) -> bool:
        """True once ``limit`` samples are out: nothing more is read."""
        return self.limit is not None and self.emitted >= self.limit

    def place(self, frame: av.AudioFrame, where: AudioPlacement) -> Iterator[np.ndarray]:
        """The chunks completed by ``frame`` placed where the clock says (silence before it, or its
        front dropped, or nothing of it)."""
        yield from self.silence(frame, where.pad)
        if where.skipped:
            return
        if where.drop:
            frame = _drop_front(frame, where.drop)
        frame.pts = None  # the resampler must not try to fix timestamps: the clock does
        yield from self._drain(self.graph.push(frame), final=False)

    def silence(self, like: av.AudioFrame, samples: int) -> Iterator[np.ndarray]:
        """The chunks completed by ``samples`` of silence in the format of ``like``."""
        # in pieces of PULL_SECONDS: a long gap must not become one huge frame
        step = max(1, round(_AudioGraph.PULL_SECONDS * like.sample_rate))
        while samples > 0 and not self.full:
            n = min(step, samples)
            yield from self._drain(self.graph.push(_silence_like(like, n)), final=False)
            samples -= n

    def finish(self) -> Iterator[np.ndarray]:
        """The graph's last samples, the last chunk shorter."""
        yield from self._drain(self.graph.push(None), final=True)

    def _drain(self, pieces: list[np.ndarray], final: bool) -> Iterator[np.ndarray]:
        for piece in pieces:
            self.pending.append(piece)
            self.pending_len += piece.size
        chunk, limit = self.chunk, self.limit
        while self.pending_len >= chunk or (final and self.pending_len):
            data = np.concatenate(self.pending)
            take = data[:chunk]
            if limit is not None:
                take = take[: max(0, limit - self.emitted)]
            if take.size:
                yield take
            self.emitted += take.size
            self.pending = [data[chunk:]] if data.size > chunk else []
            self.pending_len = data.size - min(chunk, data.size)
            if limit is not None and self.emitted >= limit:
                self.pending, self.pending_len = [], 0
                return


def iter_audio(
    path: PathLike,
    sample_rate: int = SAMPLE_RATE,
    *,
    duration: float | None = None,
    chunk_seconds: float = 10.0,
    threads: int | None = None,
    start: float = 0.0,
    stream: int | None = None,
) -> Iterator[np.ndarray]:
    """Decode a file's audio as mono float32 chunks at ``sample_rate`` (Hz), on its timeline.

    ``duration`` seconds from ``start`` (None: to the end), in chunks of about ``chunk_seconds``
    (the last may be shorter). See :class:`AudioReader` (which also reports what it did) for the
    timeline, ``stream`` and ``threads``. Raises :class:`MediaError` when the file is unreadable
    or has no audio.
    """
    yield from AudioReader(
        path, sample_rate, start=start, duration=duration, stream=stream, chunk_seconds=chunk_seconds, threads=threads
    )


def load_audio(
    path: PathLike,
    sample_rate: int = SAMPLE_RATE,
    *,
    duration: float | None = None,
    threads: int | None = None,
    start: float = 0.0,
    stream: int | None = None,
) -> np.ndarray:
    """The audio of a file (``duration`` seconds from ``start``, None: all) on its timeline:
    mono float32 at ``sample_rate``. See :class:`AudioReader`."""
    chunks = list(iter_audio(path, sample_rate, duration=duration, threads=threads, start=start, stream=stream))
    return np.concatenate(chunks) if len(chunks) > 1 else chunks[0]
