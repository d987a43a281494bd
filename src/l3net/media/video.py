"""Frames of a video at given times of its :class:`~l3net.media.timeline.Timeline`, decoded in one
forward pass and yielded one at a time; each time gets the frame on screen at that time, upright, at
its display aspect, deinterlaced. :class:`VideoReport` says what was done.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterator, Sequence

import av
import numpy as np

from ..errors import InputError, MediaError
from .images import _target_size
from .timeline import (
    TIME_TOLERANCE,
    DamagedPackets,
    PathLike,
    Timeline,
    _check_file,
    _ffmpeg_reason,
    _frames_from,
    _is_picture_stream,
    _open_container,
    _set_threads,
    _timeline,
)

#: PyAV 17 added a ``threads`` argument to frame reformatting (multithreaded swscale).
_REFORMAT_TAKES_THREADS = int(av.__version__.split(".")[0]) >= 17


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
    #: where the coded picture size changed mid-stream: {"t": s, "from": "WxH", "to": "WxH"}
    #: (frames keep coming at the first frame's size)
    size_changes: list[dict[str, Any]] = field(default_factory=list)
    damaged_packets: int = 0  # packets FFmpeg could not decode, skipped (the frame before stays on screen)

    def to_dict(self) -> dict[str, Any]:
        """The manifest's fields."""
        fields: dict[str, Any] = {
            "video_offset": None if self.offset is None else round(self.offset, 6),
            "rotation": self.rotation,
            "sample_aspect_ratio": self.sample_aspect_ratio,
            "deinterlaced": self.deinterlaced,
            "timeline_origin": round(self.origin, 6),
            "video_size_changes": list(self.size_changes),
            "video_damaged_packets": self.damaged_packets,
        }
        if self.seek is not None:
            fields["video_seek"] = self.seek
        return fields


class _OutputSize:
    """Every frame at one size: the first frame's display size (scaled to ``smaller_side``), as a
    player's window keeps its size when a stream's coded size changes mid-stream (joined
    recordings, adaptive streams); each change is put in ``report.size_changes``."""

    def __init__(self, aspect: Fraction, smaller_side: int | None, report: VideoReport) -> None:
        self.aspect, self.smaller_side, self.report = aspect, smaller_side, report
        self.size: tuple[int, int] | None = None  # (width, height) of every frame delivered
        self.coded: tuple[int, int] | None = None  # coded size of the last frame decoded

    def follow(self, frame: av.VideoFrame, t: float) -> None:
        coded = (frame.width, frame.height)
        if self.coded is None:
            self.size = _target_size(*_display_size(*coded, self.aspect), self.smaller_side)
        elif coded != self.coded:
            change = {"t": round(t, 6), "from": "{}x{}".format(*self.coded), "to": "{}x{}".format(*coded)}
            self.report.size_changes.append(change)
        self.coded = coded


class _Deinterlacer:
    """FFmpeg's yadif, one output frame per input frame; frames not flagged interlaced pass as they are.

    The graph follows the frames: one whose size or pixel format differs from the graph's input
    (joined recordings) flushes the graph and builds a new one from it. A graph built once from
    the stream would hand out later frames at the first size (or the last the decoder saw).
    """

    def __init__(self, stream: av.video.stream.VideoStream) -> None:
        self.time_base = stream.time_base
        self.graph: av.filter.Graph | None = None
        self.input: tuple[int, int, str] | None = None  # width, height, pixel format

    def _build(self, frame: av.VideoFrame) -> None:
        self.graph = av.filter.Graph()
        nodes = [
            self.graph.add_buffer(width=frame.width, height=frame.height, format=frame.format, time_base=self.time_base),
            self.graph.add("yadif", "mode=send_frame:parity=auto:deint=interlaced"),
            self.graph.add("buffersink"),
        ]
        for a, b in zip(nodes, nodes[1:]):
            a.link_to(b)
        self.graph.configure()
        self.input = (frame.width, frame.height, frame.format.name)

    def push(self, frame: av.VideoFrame | None) -> Iterator[av.VideoFrame]:
        if frame is not None and (frame.width, frame.height, frame.format.name) != self.input:
            if self.graph is not None:
                yield from self._through(None)  # the old graph's last frame
            self._build(frame)
        if self.graph is not None:
            yield from self._through(frame)

    def _through(self, frame: av.VideoFrame | None) -> Iterator[av.VideoFrame]:
        assert self.graph is not None
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
        path, report = self.path, self.report
        _check_file(path)
        with _open_container(path) as container:
            streams = [s for s in container.streams.video if not _is_picture_stream(s)]
            if not streams:
                raise MediaError(path, "has no video stream (audio only?)")
            stream = streams[0]
            _set_threads(stream, self.threads)
            clock = _timeline(container)
            report.origin = clock.origin
            wanted = self._wanted(clock, stream)
            if not wanted:
                return
            frame_period = 1.0 / float(stream.average_rate or stream.guessed_rate or 25)
            aspect = _sample_aspect(stream)
            report.sample_aspect_ratio = f"{aspect.numerator}:{aspect.denominator}"
            index, current, current_time = 0, None, 0.0
            rgb = _ToRGB(_OutputSize(aspect, self.smaller_side, report), self.threads)
            seeks: list[str] = []
            target = clock.origin + wanted[0] if wanted[0] > 0 else None
            bad = DamagedPackets(container, stream, clock.origin)
            decoded = _frames_from(path, container, stream, target, bad, seeks)
            try:
                for frame in _shown(decoded, stream, report):
                    if current is None:
                        rgb.turns = report.rotation // 90
                        shown = _display_size(frame.width, frame.height, aspect)
                        report.display_size = shown[::-1] if rgb.turns % 2 else shown
                    t = frame.time - clock.origin if frame.time is not None else current_time + frame_period
                    if current is None and target is None:
                        report.offset = t
                    rgb.sizes.follow(frame, t)
                    # A time equal to a frame's up to float rounding (k * hop often is) gets that frame.
                    while index < len(wanted) and wanted[index] < t - TIME_TOLERANCE:
                        # Before the first frame, the first frame is what a player shows.
                        yield wanted[index], rgb(current if current is not None else frame)
                        index += 1
                    if index >= len(wanted):
                        return
                    current, current_time = frame, t
            except av.error.FFmpegError as exc:
                if current is None:
                    raise bad.error(path, "no frame could be decoded", exc, at=bad.first) from exc
                warnings.warn(f"{path}: {bad.stream}: decoding stopped early at {current_time:.2f} s (FFmpeg: {_ffmpeg_reason(exc)})")
            finally:
                report.seek = seeks[0] if seeks else None
                report.damaged_packets = bad.count
                if bad.count and current is not None:
                    warnings.warn(bad.warning(path))
            if current is None:
                if bad.count:
                    raise bad.error(path, "no frame could be decoded")
                raise MediaError(path, "no video frame could be decoded")
            # The last frame stays on screen for a frame period, or to the end of the timeline.
            end = max(clock.end or 0.0, current_time + frame_period)
            while index < len(wanted) and wanted[index] < end:
                yield wanted[index], rgb(current)
                index += 1

    def _wanted(self, clock: Timeline, stream: av.video.stream.VideoStream) -> list[float]:
        """The times asked for (timeline seconds, ascending): ``times``, or ``start + k / fps`` over
        ``duration`` (default: to the end of the timeline, else of the stream)."""
        if self.times is not None:
            return self.times
        assert self.fps is not None
        span = self.duration
        if span is None and clock.end is not None:
            span = clock.end - self.start
        if span is None and stream.duration is not None:
            span = float(stream.duration * stream.time_base) - self.start
        if span is None:
            raise MediaError(self.path, "unknown duration: pass times= instead of fps=")
        # start + k / fps from an integer k: no accumulated drift over long videos.
        return [self.start + k / self.fps for k in range(max(1, math.ceil(span * self.fps - 1e-9)))]


class _ToRGB:
    """Decoded frames -> H x W x 3 uint8 RGB arrays at the output size (``sizes``), turned upright by
    ``turns`` quarter turns counter-clockwise (set from the first frame's rotation)."""

    def __init__(self, sizes: _OutputSize, threads: int | None) -> None:
        self.sizes = sizes
        self.turns = 0
        # PyAV >= 17 scales with threads of its own; one caller thread per core wants none.
        self.sws_threads = {"threads": threads} if threads is not None and _REFORMAT_TAKES_THREADS else {}
        # The same frame often serves several times: convert it once. The cache holds the frame
        # itself (compared with `is`): an id() could be reused by a later frame.
        self._frame: av.VideoFrame | None = None
        self._rgb: np.ndarray | None = None

    def __call__(self, frame: av.VideoFrame) -> np.ndarray:
        if self._frame is not frame:
            assert self.sizes.size is not None  # set by the first frame decoded
            width, height = self.sizes.size
            scaled = frame
            if (width, height) != (frame.width, frame.height):
                # Scale in the decoder's pixel format first (as ffmpeg's scale filter does),
                # then convert to RGB: about half the work of scaling while converting.
                scaled = frame.reformat(width=width, height=height, interpolation="AREA", **self.sws_threads)
            rgb = scaled.to_ndarray(format="rgb24", **self.sws_threads)
            if self.turns:
                rgb = np.ascontiguousarray(np.rot90(rgb, self.turns))
            self._frame, self._rgb = frame, rgb
        assert self._rgb is not None
        return self._rgb


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
