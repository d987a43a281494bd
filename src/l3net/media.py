"""Decoding audio, video and images, through PyAV (FFmpeg) and Pillow.

- One clock (:class:`Timeline`): every stream of a file is read on one timeline, t = 0 at the
  earliest start of its audio and video streams; audio sample i and a frame at time t are
  meant to be heard and seen together. Readers report what they did to keep it
  (:class:`AudioReport`, :class:`VideoReport`).
- Audio: any file FFmpeg reads -> mono float32 at 48 kHz, on the timeline (silence where the
  stream has none). Stereo is averaged, 5.1/7.1 take FFmpeg's downmix, then FFmpeg's
  band-limited sinc resampler (64-tap filters) converts the rate. Arrays of any rate and layout go
  through the same resampler, so a file and its decoded array give the same samples.
  Decoding streams in chunks (:func:`iter_audio`), so an hour of audio need never be in memory.
- Video: frames at given times, or at a given rate, decoded in one forward pass and yielded one
  at a time; each time gets the frame on screen at that time, upright, at its display aspect,
  deinterlaced.
- Images: JPEG/PNG/... -> H x W x 3 uint8 RGB, whatever the file's mode.

Every failure is a :class:`~l3net.errors.MediaError` naming the file and the reason.
"""

from __future__ import annotations

import math
import os
import warnings
from collections import deque
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import av
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .config import SAMPLE_RATE
from .errors import InputError, MediaError

PathLike = str | os.PathLike[str]

#: Options of FFmpeg's resampler: longer filters than its default (32) for a flatter passband.
RESAMPLER_OPTIONS = "filter_size=64:phase_shift=10:cutoff=0.97"
#: Seconds by which a requested time may precede a frame's timestamp and still get that frame.
TIME_TOLERANCE = 1e-6
#: Images smaller than this (either side) are accepted but warned about.
MIN_IMAGE_SIDE = 32
# Pillow's own decompression-bomb guard (Image.MAX_IMAGE_PIXELS, process-wide) is left as the user has
# it: an image beyond it is a MediaError saying so (load_image), never a global raised for everyone.

#: File name extensions (lower case, with the dot) of media l3net expects to read. Files are always
#: recognised by content (:func:`probe`); these only tell, when scanning a folder, a media file that
#: fails to decode (an error) from an unrelated file (skipped).
AUDIO_EXTENSIONS = frozenset(
    ".wav .wave .flac .ogg .oga .opus .mp3 .m4a .aac .wma .aif .aiff .aifc .au .snd .caf .ac3 .amr .ape .wv .mka".split()
)
VIDEO_EXTENSIONS = frozenset(".mp4 .m4v .mov .avi .mkv .webm .mpg .mpeg .ts .mts .m2ts .wmv .flv .3gp .ogv .gif".split())
IMAGE_EXTENSIONS = frozenset(".jpg .jpeg .png .bmp .tif .tiff .webp .ppm .pgm .pbm .jfif".split())
MEDIA_EXTENSIONS = AUDIO_EXTENSIONS | VIDEO_EXTENSIONS | IMAGE_EXTENSIONS


@dataclass(frozen=True)
class MediaInfo:
    """What a file holds. ``kind`` is 'image', 'video' (a picture stream) or 'audio' (sound only)."""

    path: Path
    kind: str
    duration: float | None  # seconds, None for images or when unknown
    has_audio: bool
    has_video: bool
    width: int | None = None
    height: int | None = None
    frame_rate: float | None = None
    sample_rate: int | None = None  # of the default audio stream (else the first)
    channels: int | None = None
    audio_streams: int = 0


# ------------------------------------------------------------------------------------------------
# probing
# ------------------------------------------------------------------------------------------------
def _check_file(path: Path) -> None:
    if not path.exists():
        raise MediaError(path, "no such file")
    if path.is_dir():
        raise MediaError(path, "is a directory, not a media file")
    if path.stat().st_size == 0:
        raise MediaError(path, "empty file (0 bytes)")


def _open_container(path: Path) -> av.container.InputContainer:
    try:
        return av.open(str(path), mode="r")
    except av.error.FFmpegError as exc:
        raise MediaError(path, f"not a media file FFmpeg can read, or truncated/corrupt ({_ffmpeg_reason(exc)})") from exc
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise MediaError(path, f"cannot open: {exc}") from exc


def _ffmpeg_reason(exc: Exception) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return text.split(": '")[0].strip()


def _is_picture_stream(stream: av.video.stream.VideoStream) -> bool:
    """Cover art in an audio file is a 'video' stream of one attached picture: not a video."""
    return bool(stream.disposition & av.stream.Disposition.attached_pic)


def _try_image(path: Path) -> MediaInfo | None:
    try:
        with Image.open(path) as image:
            if getattr(image, "n_frames", 1) > 1 and image.format in ("GIF", "WEBP", "PNG"):
                return None  # animated: let FFmpeg treat it as a video
            width, height = image.size
            return MediaInfo(path, "image", None, False, True, width, height)
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        return None


def probe(path: PathLike) -> MediaInfo:
    """Identify a file by its content (not its name) and describe its streams."""
    path = Path(path)
    _check_file(path)
    info = _try_image(path)
    if info is not None:
        return info
    with _open_container(path) as container:
        videos = [s for s in container.streams.video if not _is_picture_stream(s)]
        audios = list(container.streams.audio)
        if not videos and not audios:
            raise MediaError(path, "holds no audio or video stream")
        duration = None
        if container.duration is not None and container.duration > 0:
            duration = container.duration / av.time_base
        width = height = frame_rate = sample_rate = channels = None
        if videos:
            v = videos[0]
            width, height = v.codec_context.width, v.codec_context.height
            rate = v.average_rate or v.guessed_rate
            frame_rate = float(rate) if rate else None
            if duration is None and v.duration is not None and v.time_base:
                duration = float(v.duration * v.time_base)
        if audios:
            a = _choose_audio_stream(container, path, None)
            sample_rate = a.rate
            channels = len(a.layout.channels)
            if duration is None and a.duration is not None and a.time_base:
                duration = float(a.duration * a.time_base)
        return MediaInfo(
            path, "video" if videos else "audio", duration, bool(audios), bool(videos),
            width, height, frame_rate, sample_rate, channels, len(audios),
        )


# ------------------------------------------------------------------------------------------------
# the timeline: one clock for every stream of a file
# ------------------------------------------------------------------------------------------------
#: Seconds by which an audio stream's timestamps may disagree with the count of its decoded samples
#: before silence is inserted (a gap) or samples are dropped (an overlap). Containers round
#: timestamps (Matroska to 1 ms), which is no gap; a drift never grows past this (half a frame
#: interval at 50 fps).
AUDIO_SYNC_TOLERANCE = 0.01
#: Decoded audio frames looked at after one whose timestamp disagrees with the samples so far:
#: only a disagreement they all share (a real gap or overlap, not timestamp jitter) is corrected.
AUDIO_SYNC_LOOKAHEAD = 8
#: Seconds before a seek target to seek to, tried in turn while a seek lands after the target.
#: The first is pre-roll (AAC and Opus decoders need a frame or two); the others are for files
#: whose seeks land on no keyframe (MPEG-TS carries no keyframe index: the video decoder then
#: waits for the next keyframe, up to a GOP later).
SEEK_MARGINS = (0.5, 5.0, 30.0)


@dataclass(frozen=True)
class Timeline:
    """One clock for all the audio and video streams of a file, in seconds.

    t = 0 is the earliest start (FFmpeg's ``start_time``, after edit lists and encoder priming)
    of the file's audio and video streams (cover art excluded); ``origin`` is that moment on the
    container's own clock, so a stream time ``s`` is at ``s - origin`` on the timeline.
    ``end``: where the last stream ends on the timeline (None when the file does not say).
    """

    origin: float
    end: float | None


def _stream_start(stream: av.stream.Stream) -> float | None:
    if stream.start_time is None or not stream.time_base:
        return None
    return float(stream.start_time * stream.time_base)


def _timeline(container: av.container.InputContainer) -> Timeline:
    streams = [s for s in container.streams.video if not _is_picture_stream(s)] + list(container.streams.audio)
    starts = [t for t in map(_stream_start, streams) if t is not None]
    container_start = container.start_time / av.time_base if container.start_time is not None else None
    if starts:
        origin = min(starts)
    else:
        origin = container_start if container_start is not None else 0.0
    end = None
    if container.duration is not None and container.duration > 0:
        end = (container_start if container_start is not None else origin) + container.duration / av.time_base - origin
    return Timeline(origin, end)


def read_timeline(path: PathLike) -> Timeline:
    """The :class:`Timeline` of a media file (raises :class:`MediaError` when unreadable)."""
    path = Path(path)
    _check_file(path)
    with _open_container(path) as container:
        return _timeline(container)


def _seek_units(seconds: float, stream: av.stream.Stream) -> int:
    """Container seconds -> the stream's own timestamp units (what a seek on that stream takes)."""
    return math.floor(seconds / float(stream.time_base))


def _decode(container: av.container.InputContainer, stream: av.stream.Stream, bad: list[int] | None) -> Iterator[av.frame.Frame]:
    """Decoded frames of one stream. ``bad`` given: a damaged packet is counted there and skipped
    (as ffmpeg does); None: decoding errors propagate."""
    if bad is None:
        yield from container.decode(stream)
        return
    for packet in container.demux(stream):
        try:
            frames = packet.decode()
        except av.error.FFmpegError:
            bad[0] += 1
            continue
        yield from frames


def _frames_from(
    path: Path,
    container: av.container.InputContainer,
    stream: av.stream.Stream,
    target: float | None,
    bad: list[int] | None,
    seeks: list[str],
) -> Iterator[av.frame.Frame]:
    """Decoded frames of ``stream``, the first at or before container time ``target`` (seconds).

    ``target`` None: from the stream's first frame. Otherwise seek (in the stream's time base,
    ``SEEK_MARGINS`` early, the next margin while it lands after the target) and check where it
    landed; a seek that fails or still lands after the target (files without an index, streams
    whose clock starts far from 0) falls back to decoding the file from its start, in a fresh
    container. ``seeks`` gets 'seek' or 'decode from start'.
    """
    if target is None:
        yield from _decode(container, stream, bad)
        return
    start = _stream_start(stream)
    for margin in SEEK_MARGINS:
        aim = target - margin
        try:
            container.seek(_seek_units(aim, stream), stream=stream, backward=True, any_frame=False)
            landed = _decode(container, stream, bad)
            first = next(landed, None)
        except (av.error.FFmpegError, OverflowError, ValueError):
            break
        if first is None:
            break
        if first.time is None or first.time <= target + TIME_TOLERANCE or (start is not None and first.time <= start + TIME_TOLERANCE):
            seeks.append("seek")
            yield first
            yield from landed
            return
        if start is not None and aim <= start:
            break  # aimed before the stream's first frame already: an earlier aim would land there too
    seeks.append("decode from start")
    with _open_container(path) as fresh:
        again = fresh.streams[stream.index]
        again.thread_type = stream.thread_type
        again.codec_context.thread_count = stream.codec_context.thread_count
        yield from _decode(fresh, again, bad)


# ------------------------------------------------------------------------------------------------
# audio
# ------------------------------------------------------------------------------------------------
def _is_named_layout(layout: av.AudioLayout) -> bool:
    """A layout whose channels FFmpeg knows by position (5.1, 7.1...), not 'N channels' in unknown order."""
    return not layout.name.endswith("channels")


class _AudioGraph:
    """FFmpeg filter graph: downmix -> resample -> mono float32.

    Stereo (and layouts of unknown order) are averaged; layouts FFmpeg knows by position (5.1,
    7.1, quad...) are downmixed with FFmpeg's own matrix (swresample: centre and surrounds at
    -3 dB, LFE dropped), normalised so that the mix cannot clip. Decoders hand over small frames
    (1024 samples for AAC); a pull and an array per frame would cost more Python than the
    resampling itself, so input is pulled about every ``PULL_SECONDS`` and the output comes in
    frames of that length (``asetnsamples``).
    """

    PULL_SECONDS = 1.0

    def __init__(
        self, template: av.AudioStream | None, *, in_rate: int, channels: int, out_rate: int, layout: av.AudioLayout | None = None
    ) -> None:
        self.graph = av.filter.Graph()
        if template is not None:
            source = self.graph.add_abuffer(template=template)
        else:
            source = self.graph.add_abuffer(format="flt", sample_rate=in_rate, layout="mono", time_base=f"1/{in_rate}")
        nodes = [source]
        matrix = channels > 2 and layout is not None and _is_named_layout(layout)
        #: how the channels became one: 'none' (mono), 'mean' or 'ffmpeg matrix'
        self.downmix = "none" if channels == 1 else ("ffmpeg matrix" if matrix else "mean")
        if channels > 1 and not matrix:
            mix = "+".join(f"{1.0 / channels!r}*c{i}" for i in range(channels))
            nodes.append(self.graph.add("pan", f"mono|c0={mix}"))
        options = []
        if in_rate != out_rate:
            options.append(f"{out_rate}:{RESAMPLER_OPTIONS}")
        if matrix:
            options.append("ochl=mono:rematrix_maxval=1.0")
        if options:
            nodes.append(self.graph.add("aresample", ":".join(options)))
        nodes.append(self.graph.add("aformat", f"sample_fmts=flt:channel_layouts=mono:sample_rates={out_rate}"))
        nodes.append(self.graph.add("asetnsamples", f"n={max(1, round(self.PULL_SECONDS * out_rate))}:p=0"))
        nodes.append(self.graph.add("abuffersink"))
        for a, b in zip(nodes, nodes[1:]):
            a.link_to(b)
        self.graph.configure()
        self._pull_every = max(1, round(self.PULL_SECONDS * in_rate))
        self._pushed = 0  # input samples since the last pull

    def push(self, frame: av.AudioFrame | None) -> list[np.ndarray]:
        """Feed one frame (None: end of input, flush everything); return the output ready so far."""
        self.graph.push(frame)
        if frame is not None:
            self._pushed += frame.samples
            if self._pushed < self._pull_every:
                return []
        self._pushed = 0
        out = []
        while True:
            try:
                result = self.graph.pull()
            except (av.error.BlockingIOError, av.error.EOFError):
                return out
            out.append(result.to_ndarray().reshape(-1))


#: PyAV 17 added a ``threads`` argument to frame reformatting (multithreaded swscale).
_REFORMAT_TAKES_THREADS = int(av.__version__.split(".")[0]) >= 17


def _set_threads(stream: av.stream.Stream, threads: int | None) -> None:
    if threads is None:
        stream.thread_type = "AUTO"
    else:
        stream.codec_context.thread_count = max(1, threads)


def _choose_audio_stream(container: av.container.InputContainer, path: Path, index: int | None) -> av.AudioStream:
    """The audio stream ``index`` (counting audio streams only), or the default one (else the first)."""
    audios = list(container.streams.audio)
    if not audios:
        kind = "a video without an audio stream" if container.streams.video else "no audio stream"
        raise MediaError(path, f"has no audio: {kind}")
    if index is None:
        return next((s for s in audios if s.disposition & av.stream.Disposition.default), audios[0])
    if not 0 <= index < len(audios):
        raise MediaError(path, f"has no audio stream {index}: it has {len(audios)} (0 to {len(audios) - 1})")
    return audios[index]


@dataclass
class AudioReport:
    """What reading put where, in seconds on the file's :class:`Timeline` (filled while decoding).

    The samples delivered start at timeline time ``start``; the stream's first decoded sample sits
    at ``offset``. Silence stands in where the stream has no sound: before its first sample
    (``padded_start``), in gaps of its timestamps (``gaps``) and after its end up to the end of
    the picture (``padded_end``); samples before ``start`` (``trimmed_start``) or where timestamps
    go back (``overlaps``) are dropped.
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
    seek: str | None = None  # 'seek' or 'decode from start' when reading began after t = 0

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
        chunk = max(1, round(self.chunk_seconds * sample_rate))
        emitted = 0
        pending: list[np.ndarray] = []
        pending_len = 0
        bad = [0]
        seeks: list[str] = []
        with _open_container(path) as container:
            stream = _choose_audio_stream(container, path, self.stream)
            clock = _timeline(container)
            audios = list(container.streams.audio)
            in_rate = stream.rate
            report.stream, report.streams = audios.index(stream), len(audios)
            report.channels, report.layout, report.origin = len(stream.layout.channels), stream.layout.name, clock.origin
            _set_threads(stream, self.threads)
            try:
                graph = _AudioGraph(stream, in_rate=in_rate, channels=len(stream.layout.channels), out_rate=sample_rate, layout=stream.layout)
            except (av.error.FFmpegError, ValueError) as exc:
                raise MediaError(path, f"unsupported audio stream ({exc})") from exc
            report.downmix = graph.downmix
            # The picture's end bounds the padding after the sound: a video's audio covers its
            # picture; an audio file's timeline ends with its audio.
            has_picture = any(not _is_picture_stream(s) for s in container.streams.video)
            end = clock.end if has_picture else None
            if limit is not None:
                stop = self.start + limit / sample_rate
                end = None if end is None else min(end, stop)

            def drain(pieces: list[np.ndarray], final: bool) -> Iterator[np.ndarray]:
                nonlocal pending, pending_len, emitted
                for piece in pieces:
                    pending.append(piece)
                    pending_len += piece.size
                while pending_len >= chunk or (final and pending_len):
                    data = np.concatenate(pending)
                    take = data[:chunk]
                    if limit is not None:
                        take = take[: max(0, limit - emitted)]
                    if take.size:
                        yield take
                    emitted += take.size
                    pending = [data[chunk:]] if data.size > chunk else []
                    pending_len = data.size - min(chunk, data.size)
                    if limit is not None and emitted >= limit:
                        pending, pending_len = [], 0
                        return

            def silence(like: av.AudioFrame, samples: int) -> Iterator[np.ndarray]:
                # in pieces of PULL_SECONDS: a long gap must not become one huge frame
                step = max(1, round(_AudioGraph.PULL_SECONDS * in_rate))
                while samples > 0 and (limit is None or emitted < limit):
                    n = min(step, samples)
                    yield from drain(graph.push(_silence_like(like, n)), final=False)
                    samples -= n

            tolerance = round(AUDIO_SYNC_TOLERANCE * in_rate)
            position = round(self.start * in_rate)  # timeline sample (input rate) of the next sample out
            target = clock.origin + self.start if self.start > 0 else None
            last: av.AudioFrame | None = None
            ahead: deque[tuple[av.AudioFrame, int | None]] = deque()  # decoded, not yet placed

            def persistent(lead: int, after: int) -> int:
                """The part of ``lead`` (samples) that the frames waiting after this one share.

                Some muxers write timestamps that jitter around the sample count (+-20 ms) without
                drifting: one frame off is no gap. A real gap (or overlap) moves every frame after
                it: only the offset all of the next ``AUDIO_SYNC_LOOKAHEAD`` frames share is corrected.
                """
                shared = abs(lead)
                for waiting, waiting_at in ahead:
                    if waiting_at is None:
                        continue
                    offset = waiting_at - after
                    if offset * lead <= 0 or abs(offset) <= tolerance:
                        return 0
                    shared = min(shared, abs(offset))
                    after += waiting.samples
                return shared if lead > 0 else -shared

            def place(frame: av.AudioFrame, at: int | None) -> Iterator[np.ndarray]:
                nonlocal position, last
                if at is not None:
                    lead = at - position  # > 0: the frame starts after the samples so far end
                    if last is not None and abs(lead) > tolerance:
                        lead = persistent(lead, position + frame.samples) if len(ahead) else 0
                    if lead > 0 and (last is None or abs(lead) > tolerance):
                        if last is None:
                            report.padded_start += lead / in_rate
                        else:
                            report.gaps += lead / in_rate
                        yield from silence(frame, lead)
                        position += lead
                    elif lead < 0 and (last is None or abs(lead) > tolerance):
                        drop = min(-lead, frame.samples)
                        if last is None:
                            if self.start == 0:  # (from a seek, the samples before `start` are no news)
                                report.trimmed_start += drop / in_rate
                        else:
                            report.overlaps += drop / in_rate
                        if drop == frame.samples:
                            return
                        frame = _drop_front(frame, drop)
                frame.pts = None  # the resampler must not try to fix timestamps: this loop does
                last = frame
                position += frame.samples
                yield from drain(graph.push(frame), final=False)

            frames = _frames_from(path, container, stream, target, bad, seeks)
            while limit is None or emitted < limit:
                try:
                    frame = next(frames)
                except StopIteration:
                    break
                except av.error.FFmpegError as exc:
                    raise MediaError(path, f"truncated or corrupt while reading ({_ffmpeg_reason(exc)})") from exc
                at = None if frame.time is None else round((frame.time - clock.origin) * in_rate)
                if report.offset is None and at is not None and self.start == 0:
                    report.offset = at / in_rate
                ahead.append((frame, at))
                if len(ahead) > AUDIO_SYNC_LOOKAHEAD:
                    yield from place(*ahead.popleft())
            while ahead and (limit is None or emitted < limit):
                yield from place(*ahead.popleft())
            if last is not None and end is not None and (limit is None or emitted < limit):
                missing = round(end * in_rate) - position
                if missing > tolerance:
                    report.padded_end += missing / in_rate
                    yield from silence(last, missing)
            if last is not None and (limit is None or emitted < limit):
                yield from drain(graph.push(None), final=True)
            report.seek = seeks[0] if seeks else None
        if emitted == 0:
            detail = f" ({bad[0]} undecodable packets)" if bad[0] else ""
            raise MediaError(path, f"no audio could be decoded{detail}")


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


def to_mono(audio: np.ndarray | Sequence[float], name: str = "audio") -> np.ndarray:
    """Validate an array of audio and return it mono float32, values as given (ints scaled to [-1, 1]).

    Accepts ``(samples,)``, ``(samples, channels)`` and ``(channels, samples)`` (the shorter axis,
    at most 16 long, is taken as channels), any float or integer dtype.
    """
    try:
        x = np.asarray(audio)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{name}: not an array of samples ({exc})") from exc
    if x.dtype == object or x.dtype.kind not in "fiub":
        raise InputError(f"{name}: samples must be numbers, got dtype {x.dtype}")
    if x.dtype.kind == "b":
        raise InputError(f"{name}: boolean arrays are not audio")
    if x.ndim == 2:
        if min(x.shape) == 0:
            raise InputError(f"{name}: zero-length audio (shape {x.shape})")
        if min(x.shape) > 16:
            raise InputError(
                f"{name}: ambiguous 2-D shape {x.shape}; pass (samples,) or (samples, channels) with <= 16 channels"
            )
        channel_axis = 0 if x.shape[0] < x.shape[1] else 1
    elif x.ndim != 1:
        raise InputError(f"{name}: expected 1-D (samples,) or 2-D (samples, channels) audio, got shape {x.shape}")
    if x.size == 0:
        raise InputError(f"{name}: zero-length audio")
    if x.dtype.kind in "iu":
        info = np.iinfo(x.dtype)
        scale = float(max(abs(info.min), info.max + 1))
        offset = (info.max + 1) / 2 if x.dtype.kind == "u" else 0.0  # unsigned PCM is centred at mid-range
        x = (x.astype(np.float64) - offset) / (scale / 2 if x.dtype.kind == "u" else scale)
    if x.ndim == 2:
        x = x.mean(axis=channel_axis)
    x = np.ascontiguousarray(x, dtype=np.float32)
    if not np.isfinite(x).all():
        bad = int((~np.isfinite(x)).sum())
        raise InputError(f"{name}: {bad} samples are NaN or infinite")
    return x


def iter_resample(chunks: Iterable[np.ndarray], in_rate: int, out_rate: int = SAMPLE_RATE) -> Iterator[np.ndarray]:
    """Resample a stream of mono float32 chunks with the same resampler files go through."""
    if in_rate <= 0 or out_rate <= 0:
        raise InputError(f"sample rates must be positive, got {in_rate} -> {out_rate}")
    if in_rate == out_rate:
        yield from (np.asarray(c, dtype=np.float32) for c in chunks)
        return
    graph = _AudioGraph(None, in_rate=int(in_rate), channels=1, out_rate=int(out_rate))
    for chunk in chunks:
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk, dtype=np.float32).reshape(1, -1), format="flt", layout="mono")
        frame.sample_rate = int(in_rate)
        for piece in graph.push(frame):
            yield piece
    for piece in graph.push(None):
        yield piece


def resample(audio: np.ndarray, in_rate: int, out_rate: int = SAMPLE_RATE, *, chunk_samples: int = 1 << 20) -> np.ndarray:
    """Resample mono float32 audio from ``in_rate`` to ``out_rate`` (Hz)."""
    if in_rate == out_rate:
        return np.asarray(audio, dtype=np.float32)
    chunks = (audio[i : i + chunk_samples] for i in range(0, len(audio), chunk_samples))
    pieces = list(iter_resample(chunks, in_rate, out_rate))
    return np.concatenate(pieces) if pieces else np.zeros(0, np.float32)


def prepare_audio_array(audio: np.ndarray, sr: float, sample_rate: int = SAMPLE_RATE, name: str = "audio") -> np.ndarray:
    """An array of audio at ``sr`` Hz -> validated mono float32 at ``sample_rate``."""
    if not isinstance(sr, (int, float, np.integer, np.floating)) or not math.isfinite(sr) or sr <= 0:
        raise InputError(f"{name}: sample rate must be a positive number, got {sr!r}")
    if int(sr) != sr:
        raise InputError(f"{name}: sample rate must be a whole number of Hz, got {sr}")
    return resample(to_mono(audio, name), int(sr), sample_rate)


# ------------------------------------------------------------------------------------------------
# video
# ------------------------------------------------------------------------------------------------
def _target_size(width: int, height: int, smaller_side: int | None) -> tuple[int, int]:
    if smaller_side is None:
        return width, height
    scale = smaller_side / min(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def _display_size(width: int, height: int, aspect: Fraction) -> tuple[int, int]:
    """Coded size -> the size at the display aspect: non-square pixels are stretched (never
    squeezed) to square ones, as players show them."""
    if aspect > 1:
        return max(1, round(width * aspect)), height
    if aspect < 1:
        return width, max(1, round(height / aspect))
    return width, height


def _sample_aspect(stream: av.video.stream.VideoStream) -> Fraction:
    """The pixels' aspect ratio: the container's, else the codec's, else square (as FFmpeg guesses it)."""
    for value in (stream.sample_aspect_ratio, stream.codec_context.sample_aspect_ratio):
        if value is not None and value > 0:
            return Fraction(value)
    return Fraction(1)


@dataclass
class VideoReport:
    """What reading did to a file's pictures (filled while decoding). Times in seconds on the
    file's :class:`Timeline`."""

    origin: float = 0.0  # container time of timeline t = 0
    offset: float | None = None  # where the first decoded frame sits (when reading began at 0)
    rotation: int = 0  # degrees counter-clockwise the frames were turned to stand upright
    sample_aspect_ratio: str = "1:1"  # of the coded pixels; frames are stretched to square pixels
    display_size: tuple[int, int] | None = None  # (width, height) before any scaling to `smaller_side`
    deinterlaced: bool = False
    seek: str | None = None  # 'seek' or 'decode from start' when reading began after t = 0

    def to_dict(self) -> dict[str, Any]:
        """The manifest's fields."""
        fields: dict[str, Any] = {
            "video_offset": None if self.offset is None else round(self.offset, 6),
            "rotation": self.rotation,
            "sample_aspect_ratio": self.sample_aspect_ratio,
            "deinterlaced": self.deinterlaced,
            "timeline_origin": round(self.origin, 6),
        }
        if self.seek is not None:
            fields["video_seek"] = self.seek
        return fields


class _Deinterlacer:
    """FFmpeg's yadif, one output frame per input frame; frames not flagged interlaced pass as they are."""

    def __init__(self, stream: av.video.stream.VideoStream) -> None:
        self.graph = av.filter.Graph()
        nodes = [
            self.graph.add_buffer(template=stream),
            self.graph.add("yadif", "mode=send_frame:parity=auto:deint=interlaced"),
            self.graph.add("buffersink"),
        ]
        for a, b in zip(nodes, nodes[1:]):
            a.link_to(b)
        self.graph.configure()

    def push(self, frame: av.VideoFrame | None) -> Iterator[av.VideoFrame]:
        self.graph.push(frame)
        while True:
            try:
                yield self.graph.pull()
            except (av.error.BlockingIOError, av.error.EOFError):
                return


class VideoReader:
    """Frames of a file's first video stream at given times of its :class:`Timeline`.

    Iterating yields ``(time_s, frame)`` pairs, frame an H x W x 3 uint8 RGB array, one at a
    time, in ascending time. Give ``times`` (seconds, any order), or ``fps`` for times
    ``start + k / fps`` up to ``start + duration`` (default: the end). Each time gets the frame
    on screen then (the last one whose timestamp is <= t, so a variable frame rate is honoured;
    the first one for earlier t); times past the end get no frame. Frames are shown as a player
    shows them: turned upright by the stream's rotation (display matrix), stretched to square
    pixels when the sample aspect ratio is not 1, and deinterlaced (yadif) when flagged
    interlaced. ``smaller_side`` then scales each frame (aspect kept) during colour conversion.
    A first time after 0 seeks (no index needed; a seek that fails falls back to decoding from the
    start). ``threads``: decoder threads (None: FFmpeg's automatic frame and slice threading; 1 for
    callers that already run one decoding process per core). ``report`` says what was done
    (a :class:`VideoReport`).
    """

    def __init__(
        self,
        path: PathLike,
        *,
        times: Sequence[float] | None = None,
        fps: float | None = None,
        duration: float | None = None,
        start: float = 0.0,
        smaller_side: int | None = None,
        threads: int | None = None,
    ) -> None:
        if (times is None) == (fps is None):
            raise ValueError("give exactly one of times= or fps=")
        if fps is not None and not (math.isfinite(fps) and fps > 0):
            raise InputError(f"fps must be positive, got {fps}")
        if not (math.isfinite(start) and start >= 0):
            raise InputError(f"start must be a non-negative number of seconds, got {start}")
        self.path = Path(path)
        self.times = None if times is None else sorted(float(t) for t in times)
        self.fps, self.duration, self.start = fps, duration, float(start)
        self.smaller_side, self.threads = smaller_side, threads
        self.report = VideoReport()

    def __iter__(self) -> Iterator[tuple[float, np.ndarray]]:
        self.report = VideoReport()
        return self._frames()

    def _frames(self) -> Iterator[tuple[float, np.ndarray]]:
        path, report, smaller_side, threads = self.path, self.report, self.smaller_side, self.threads
        _check_file(path)
        with _open_container(path) as container:
            streams = [s for s in container.streams.video if not _is_picture_stream(s)]
            if not streams:
                raise MediaError(path, "has no video stream (audio only?)")
            stream = streams[0]
            _set_threads(stream, threads)
            clock = _timeline(container)
            report.origin = clock.origin
            if self.times is not None:
                wanted = self.times
            else:
                assert self.fps is not None
                span = self.duration
                if span is None and clock.end is not None:
                    span = clock.end - self.start
                if span is None and stream.duration is not None:
                    span = float(stream.duration * stream.time_base) - self.start
                if span is None:
                    raise MediaError(path, "unknown duration: pass times= instead of fps=")
                # start + k / fps from an integer k: no accumulated drift over long videos.
                wanted = [self.start + k / self.fps for k in range(max(1, math.ceil(span * self.fps - 1e-9)))]
            if not wanted:
                return
            frame_period = 1.0 / float(stream.average_rate or stream.guessed_rate or 25)
            aspect = _sample_aspect(stream)
            report.sample_aspect_ratio = f"{aspect.numerator}:{aspect.denominator}"
            index, current, current_time = 0, None, 0.0
            cache: list = [None, None]  # [frame, its RGB array]
            # PyAV >= 17 scales with threads of its own; one caller thread per core wants none.
            sws_threads = {"threads": threads} if threads is not None and _REFORMAT_TAKES_THREADS else {}
            turns = 0  # quarter turns counter-clockwise

            def convert(frame: av.VideoFrame) -> np.ndarray:
                # The same frame often serves several times: convert it once. The cache holds the
                # frame itself (compared with `is`): an id() could be reused by a later frame.
                if cache[0] is not frame:
                    shown = _display_size(frame.width, frame.height, aspect)
                    width, height = _target_size(*shown, smaller_side)
                    scaled = frame
                    if (width, height) != (frame.width, frame.height):
                        # Scale in the decoder's pixel format first (as ffmpeg's scale filter does),
                        # then convert to RGB: about half the work of scaling while converting.
                        scaled = frame.reformat(width=width, height=height, interpolation="AREA", **sws_threads)
                    rgb = scaled.to_ndarray(format="rgb24", **sws_threads)
                    if turns:
                        rgb = np.ascontiguousarray(np.rot90(rgb, turns))
                    cache[:] = [frame, rgb]
                return cache[1]

            seeks: list[str] = []
            target = clock.origin + wanted[0] if wanted[0] > 0 else None
            decoded = _frames_from(path, container, stream, target, None, seeks)
            try:
                for frame in _shown(decoded, stream, report):
                    if current is None:
                        turns = report.rotation // 90
                        shown = _display_size(frame.width, frame.height, aspect)
                        report.display_size = shown[::-1] if turns % 2 else shown
                    t = frame.time - clock.origin if frame.time is not None else current_time + frame_period
                    if current is None and target is None:
                        report.offset = t
                    # A time equal to a frame's up to float rounding (k * hop often is) gets that frame.
                    while index < len(wanted) and wanted[index] < t - TIME_TOLERANCE:
                        # Before the first frame, the first frame is what a player shows.
                        yield wanted[index], convert(current if current is not None else frame)
                        index += 1
                    if index >= len(wanted):
                        return
                    current, current_time = frame, t
            except av.error.FFmpegError as exc:
                if current is None:
                    raise MediaError(path, f"video could not be decoded ({_ffmpeg_reason(exc)})") from exc
                warnings.warn(f"{path}: video decoding stopped early at {current_time:.2f} s ({_ffmpeg_reason(exc)})")
            finally:
                report.seek = seeks[0] if seeks else None
            if current is None:
                raise MediaError(path, "no video frame could be decoded")
            end = max(clock.end or 0.0, current_time + frame_period)
            while index < len(wanted) and wanted[index] < end:
                yield wanted[index], convert(current)
                index += 1


def _shown(frames: Iterator[av.VideoFrame], stream: av.video.stream.VideoStream, report: VideoReport) -> Iterator[av.VideoFrame]:
    """The decoded frames, through yadif when the first one is flagged interlaced (timestamps
    kept). The first frame's display matrix gives ``report.rotation`` (filters drop it)."""
    first = next(frames, None)
    if first is None:
        return
    rotation = first.rotation or 0
    report.rotation = (round(rotation / 90) % 4) * 90
    if not first.interlaced_frame:
        yield first
        yield from frames
        return
    report.deinterlaced = True
    deinterlacer = _Deinterlacer(stream)
    yield from deinterlacer.push(first)
    for frame in frames:
        yield from deinterlacer.push(frame)
    yield from deinterlacer.push(None)


def iter_video_frames(
    path: PathLike,
    *,
    times: Sequence[float] | None = None,
    fps: float | None = None,
    duration: float | None = None,
    smaller_side: int | None = None,
    threads: int | None = None,
    start: float = 0.0,
) -> Iterator[tuple[float, np.ndarray]]:
    """Yield ``(time_s, frame)`` pairs on the file's timeline, frame an H x W x 3 uint8 RGB array.

    Give ``times`` (seconds), or ``fps`` for times ``start + k / fps`` up to ``start + duration``
    or the end. Each time gets the frame on screen then, upright and at its display aspect; see
    :class:`VideoReader` (which also reports what it did).
    """
    yield from VideoReader(
        path, times=times, fps=fps, duration=duration, start=start, smaller_side=smaller_side, threads=threads
    )


def read_frames(path: PathLike, times: Sequence[float], *, smaller_side: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Frames at ``times`` (seconds) as ``(times_found, frames[N, H, W, 3] uint8)``, in ascending time."""
    pairs = list(iter_video_frames(path, times=times, smaller_side=smaller_side))
    if not pairs:
        raise MediaError(Path(path), "no frame at the requested times")
    return np.array([t for t, _ in pairs]), np.stack([f for _, f in pairs])


# ------------------------------------------------------------------------------------------------
# images
# ------------------------------------------------------------------------------------------------
def load_image(path: PathLike, *, max_side: int | None = 4096) -> np.ndarray:
    """An image file -> H x W x 3 uint8 RGB (EXIF orientation applied, alpha composited on white).

    Huge images are decoded at a reduced scale (JPEG draft mode) and shrunk so their longer side is
    at most ``max_side``: nothing l3net does needs more than 256 px.
    """
    path = Path(path)
    _check_file(path)
    try:
        with Image.open(path) as image:
            if max_side is not None and max(image.size) > max_side and image.format == "JPEG":
                image.draft("RGB", (max_side, max_side))
            image = ImageOps.exif_transpose(image)
            if max_side is not None and max(image.size) > max_side:
                image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
            rgb = _pil_to_rgb(image)
    except Image.DecompressionBombError as exc:
        raise MediaError(path, f"image too large to decode safely ({exc})") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise MediaError(path, f"not an image Pillow can read, or truncated ({exc})") from exc
    _warn_if_tiny(rgb, str(path))
    return rgb


def _pil_to_rgb(image: Image.Image) -> np.ndarray:
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return np.asarray(image.convert("RGB"), dtype=np.uint8)


def _warn_if_tiny(image: np.ndarray, name: str) -> None:
    if min(image.shape[:2]) < MIN_IMAGE_SIDE:
        warnings.warn(
            f"{name}: image is only {image.shape[1]}x{image.shape[0]} px; it is upscaled, "
            "and its embedding carries little information"
        )


def to_rgb_uint8(image: np.ndarray, name: str = "image") -> np.ndarray:
    """Validate one image array and return it H x W x 3 uint8.

    Accepts greyscale (H x W or H x W x 1), RGB and RGBA (alpha composited on white); uint8,
    uint16, or float (in [0, 1], or [0, 255] when the maximum exceeds 1).
    """
    x = np.asarray(image)
    if x.ndim == 2:
        x = x[:, :, None]
    if x.ndim != 3 or x.shape[2] not in (1, 3, 4):
        raise InputError(f"{name}: expected H x W, H x W x 3 or H x W x 4, got shape {x.shape}")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise InputError(f"{name}: empty image (shape {x.shape})")
    if x.dtype.kind == "f":
        if not np.isfinite(x).all():
            raise InputError(f"{name}: image has NaN or infinite values")
        scale = 255.0 if x.max() <= 1.0 else 1.0
        x = np.clip(np.rint(x * scale), 0, 255).astype(np.uint8)
    elif x.dtype == np.uint16:
        x = (x // 257).astype(np.uint8)
    elif x.dtype.kind in "iu":
        if x.min() < 0 or x.max() > 255:
            raise InputError(f"{name}: integer pixel values must lie in [0, 255]")
        x = x.astype(np.uint8)
    else:
        raise InputError(f"{name}: unsupported pixel dtype {x.dtype}")
    if x.shape[2] == 1:
        x = np.repeat(x, 3, axis=2)
    elif x.shape[2] == 4:
        alpha = x[:, :, 3:4].astype(np.float32) / 255.0
        x = np.rint(x[:, :, :3] * alpha + 255.0 * (1.0 - alpha)).astype(np.uint8)
    _warn_if_tiny(x, name)
    return np.ascontiguousarray(x)


def resize_smaller_side(image: np.ndarray, size: int) -> np.ndarray:
    """Scale an H x W x 3 uint8 image so its smaller side is ``size`` (aspect kept; bilinear, antialiased)."""
    height, width = image.shape[:2]
    new_w, new_h = _target_size(width, height, size)
    if (new_w, new_h) == (width, height):
        return image
    return np.asarray(Image.fromarray(image).resize((new_w, new_h), Image.Resampling.BILINEAR, reducing_gap=None))


def center_crop(image: np.ndarray, size: int) -> np.ndarray:
    """The central ``size`` x ``size`` square of an image at least that large."""
    height, width = image.shape[:2]
    if height < size or width < size:
        raise InputError(f"cannot crop {size}x{size} from a {width}x{height} image")
    top, left = (height - size) // 2, (width - size) // 2
    return image[top : top + size, left : left + size]


class VideoWriter:
    """An MP4 of RGB frames (H.264, or MPEG-4 Part 2 where FFmpeg lacks libx264) with an optional mono
    sound track (AAC), written under a temporary name and renamed into place by :meth:`close`.

    ``fps``: frames per second. ``audio``: float32 mono samples at ``audio_rate`` Hz, interleaved with
    the pictures as they are written (padded with silence when shorter). The frame size is that of the
    first frame (cropped to even sizes, as 4:2:0 chroma needs). ``options``: encoder options (e.g.
    ``{"preset": "ultrafast", "crf": "20"}``); ``threads``: encoder threads (None: FFmpeg's choice).
    Use it as a context manager: an exception inside discards the file.
    """

    def __init__(
        self,
        path: PathLike,
        fps: float,
        audio: np.ndarray | None = None,
        *,
        audio_rate: int = SAMPLE_RATE,
        options: dict[str, str] | None = None,
        threads: int | None = None,
    ) -> None:
        from .fileio import atomic_path

        self.path = Path(path)
        self._context = atomic_path(self.path, suffix=".mp4")
        self._tmp = self._context.__enter__()
        self.container = av.open(str(self._tmp), mode="w", format="mp4")
        self.rate = Fraction(fps).limit_denominator(1000)
        self._options, self._threads = options, threads
        self.video: Any = None
        self.audio: Any = None
        self._audio_data = audio
        self._audio_rate = int(audio_rate)
        self._audio_done = 0
        self.frames = 0
        if audio is not None:
            try:
                self.audio = self.container.add_stream("aac", rate=self._audio_rate, layout="mono")
            except (av.error.FFmpegError, ValueError) as exc:  # an FFmpeg without an AAC encoder
                warnings.warn(f"{self.path}: no AAC encoder ({exc}); the video is written without sound")

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, kind: Any, exc: BaseException | None, tb: Any) -> None:
        if exc is None:
            self.close()
        else:
            self.abort(exc)

    def _open_video(self, height: int, width: int) -> None:
        from .errors import OutputError

        for codec in ("libx264", "mpeg4"):
            try:
                av.codec.Codec(codec, "w")
            except (av.error.FFmpegError, ValueError):
                continue
            self.video = self.container.add_stream(codec, rate=self.rate)
            break
        else:
            raise OutputError(f"{self.path}: FFmpeg has neither a libx264 nor an mpeg4 encoder: cannot write a video")
        self.video.width, self.video.height = width - width % 2, height - height % 2
        self.video.pix_fmt = "yuv420p"
        if self._options and self.video.codec_context.name == "libx264":
            self.video.options = dict(self._options)
        if self._threads is not None:
            self.video.codec_context.thread_count = self._threads

    def write(self, image: np.ndarray) -> None:
        """Append one H x W x 3 uint8 RGB frame (then the sound up to its end)."""
        if self.video is None:
            self._open_video(*image.shape[:2])
        image = np.ascontiguousarray(image[: self.video.height, : self.video.width])
        frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        frame.pts = self.frames
        self.frames += 1
        for packet in self.video.encode(frame):
            self.container.mux(packet)
        self._write_audio_until(self.frames / float(self.rate))

    def _write_audio_until(self, seconds: float) -> None:
        if self.audio is None or self._audio_data is None:
            return
        end = round(seconds * self._audio_rate)
        if end <= self._audio_done:
            return
        chunk = self._audio_data[self._audio_done : end]
        if chunk.size < end - self._audio_done:  # sound shorter than the pictures: silence
            chunk = np.pad(chunk, (0, end - self._audio_done - chunk.size))
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk, dtype=np.float32).reshape(1, -1),
                                           format="fltp", layout="mono")
        frame.sample_rate = self._audio_rate
        frame.pts = self._audio_done
        self._audio_done = end
        for packet in self.audio.encode(frame):
            self.container.mux(packet)

    def close(self) -> None:
        """Flush the encoders and rename the file into place."""
        try:
            if self.video is not None:
                for packet in self.video.encode():
                    self.container.mux(packet)
            if self.audio is not None:
                for packet in self.audio.encode():
                    self.container.mux(packet)
            self.container.close()
        except BaseException as exc:
            self.abort(exc)
            raise
        self._context.__exit__(None, None, None)

    def abort(self, exc: BaseException | None = None) -> None:
        """Discard the file (nothing is left under its name or a temporary one)."""
        try:
            self.container.close()
        except Exception:  # noqa: BLE001 - the file is being thrown away
            pass
        error = exc or RuntimeError("aborted")
        try:
            self._context.__exit__(type(error), error, error.__traceback__)
        except BaseException:  # noqa: BLE001 - atomic_path re-raises what it is handed
            pass
