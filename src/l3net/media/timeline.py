"""Opening media files, what they hold (:func:`probe`), and the one clock (:class:`Timeline`).

Every stream of a file is read on one timeline, t = 0 at the earliest start of its audio and video
streams. This module also seeks and decodes a stream from a time on that clock (``_frames_from``),
for the audio and video readers.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import av
from PIL import Image, UnidentifiedImageError

from ..errors import MediaError, StreamDecodeError

PathLike = str | os.PathLike[str]

#: Seconds by which a requested time may precede a frame's timestamp and still get that frame.
TIME_TOLERANCE = 1e-6

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



# ------------------------------------------------------------------------------------------------
# the timeline: one clock for every stream of a file
# ------------------------------------------------------------------------------------------------
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


class DamagedPackets:
    """Packets of one stream that FFmpeg could not decode: skipped (as ffmpeg skips them) and
    counted here, with where they were on the timeline (``origin``: its container time) and
    FFmpeg's reason for the first, so that a report or an error names this stream and no other."""

    def __init__(self, container: av.container.InputContainer, stream: av.stream.Stream, origin: float) -> None:
        self.kind = stream.type
        self.index = [s.index for s in container.streams if s.type == stream.type].index(stream.index)
        # (a stream FFmpeg has no decoder for has no codec context)
        self.container_index = stream.index
        self.codec = getattr(stream.codec_context, "name", None) or "no decoder"
        self.origin = origin
        self.count = 0
        self.first: float | None = None  # timeline seconds of the first and the last damaged packet
        self.last: float | None = None
        self.reason: str | None = None

    @property
    def stream(self) -> str:
        """How ffprobe would point at the stream: 'audio stream 0 (#1, aac)'."""
        return f"{self.kind} stream {self.index} (#{self.container_index}, {self.codec})"

    def add(self, packet: av.Packet, exc: Exception) -> None:
        self.count += 1
        if self.reason is None:
            self.reason = _ffmpeg_reason(exc)
        if packet.pts is not None and packet.time_base:
            t = float(packet.pts * packet.time_base) - self.origin
            self.first = t if self.first is None else min(self.first, t)
            self.last = t if self.last is None else max(self.last, t)

    def describe(self) -> str:
        """'24 damaged packets from 1.00 s to 1.48 s' (timeline seconds)."""
        span = "" if self.first is None or self.last is None else f" from {self.first:.2f} s to {self.last:.2f} s"
        return f"{self.count} damaged packet{'s' if self.count != 1 else ''}{span}"

    def warning(self, path: Path) -> str:
        """The warning for a stream read despite damaged packets."""
        return f"{path}: {self.stream}: {self.describe()} skipped (FFmpeg: {self.reason}); the rest decoded"

    def error(self, path: Path, what: str, exc: Exception | None = None, at: float | None = None) -> StreamDecodeError:
        """The error for this stream: ``what`` it cost, FFmpeg's reason (``exc``'s, else the damaged
        packets'), at ``at`` (else the first damaged packet)."""
        reason = _ffmpeg_reason(exc) if exc is not None else (self.reason or "no frame decoded")
        if exc is None and self.count:
            what = f"{what}: {self.describe()}"
        return StreamDecodeError(
            path, kind=self.kind, index=self.index, container_index=self.container_index, codec=self.codec,
            at=at if at is not None or exc is not None else self.first, ffmpeg=reason, what=what,
        )


def _decode(container: av.container.InputContainer, stream: av.stream.Stream, bad: DamagedPackets | None) -> Iterator[av.frame.Frame]:
    """Decoded frames of one stream. ``bad`` given: a damaged packet is recorded there and skipped
    (as ffmpeg does); None: decoding errors propagate."""
    if bad is None:
        yield from container.decode(stream)
        return
    for packet in container.demux(stream):
        try:
            frames = packet.decode()
        except av.error.FFmpegError as exc:
            bad.add(packet, exc)
            continue
        yield from frames


def _frames_from(
    path: Path,
    container: av.container.InputContainer,
    stream: av.stream.Stream,
    target: float | None,
    bad: DamagedPackets | None,
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



def _set_threads(stream: av.stream.Stream, threads: int | None) -> None:
    if threads is None:
        stream.thread_type = "AUTO"
    else:
        stream.codec_context.thread_count = max(1, threads)
