"""Decoding audio, video and images, through PyAV (FFmpeg) and Pillow.

- Audio: any file FFmpeg reads -> mono float32 at 48 kHz. Channels are averaged, then FFmpeg's
  band-limited sinc resampler (64-tap filters) converts the rate. Arrays of any rate and layout go
  through the same resampler, so a file and its decoded array give the same samples.
  Decoding streams in chunks (:func:`iter_audio`), so an hour of audio need never be in memory.
- Video: frames at given times, or at a given rate, decoded in one forward pass and yielded one
  at a time; each time gets the frame on screen at that time.
- Images: JPEG/PNG/... -> H x W x 3 uint8 RGB, whatever the file's mode.

Every failure is a :class:`~l3net.errors.MediaError` naming the file and the reason.
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import av
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .config import SAMPLE_RATE
from .errors import InputError, MediaError

PathLike = str | os.PathLike[str]

#: Options of FFmpeg's resampler: longer filters than its default (32) for a flatter passband.
RESAMPLER_OPTIONS = "filter_size=64:phase_shift=10:cutoff=0.97"
#: Pillow refuses images above this many pixels (a decompression bomb guard); JPEGs are decoded
#: at a reduced scale long before that.
MAX_IMAGE_PIXELS = 400_000_000
#: Seconds by which a requested time may precede a frame's timestamp and still get that frame.
TIME_TOLERANCE = 1e-6
#: Images smaller than this (either side) are accepted but warned about.
MIN_IMAGE_SIDE = 32

Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS

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
    sample_rate: int | None = None
    channels: int | None = None


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
            a = audios[0]
            sample_rate = a.rate
            channels = len(a.layout.channels)
            if duration is None and a.duration is not None and a.time_base:
                duration = float(a.duration * a.time_base)
        return MediaInfo(
            path, "video" if videos else "audio", duration, bool(audios), bool(videos),
            width, height, frame_rate, sample_rate, channels,
        )


# ------------------------------------------------------------------------------------------------
# audio
# ------------------------------------------------------------------------------------------------
class _AudioGraph:
    """FFmpeg filter graph: average channels -> resample -> mono float32.

    Decoders hand over small frames (1024 samples for AAC); a pull and an array per frame would
    cost more Python than the resampling itself, so input is pulled about every
    ``PULL_SECONDS`` and the output comes in frames of that length (``asetnsamples``).
    """

    PULL_SECONDS = 1.0

    def __init__(self, template: av.AudioStream | None, *, in_rate: int, channels: int, out_rate: int) -> None:
        self.graph = av.filter.Graph()
        if template is not None:
            source = self.graph.add_abuffer(template=template)
        else:
            source = self.graph.add_abuffer(format="flt", sample_rate=in_rate, layout="mono", time_base=f"1/{in_rate}")
        nodes = [source]
        if channels > 1:
            mix = "+".join(f"{1.0 / channels!r}*c{i}" for i in range(channels))
            nodes.append(self.graph.add("pan", f"mono|c0={mix}"))
        if in_rate != out_rate:
            nodes.append(self.graph.add("aresample", f"{out_rate}:{RESAMPLER_OPTIONS}"))
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


def iter_audio(
    path: PathLike,
    sample_rate: int = SAMPLE_RATE,
    *,
    duration: float | None = None,
    chunk_seconds: float = 10.0,
    threads: int | None = None,
) -> Iterator[np.ndarray]:
    """Decode a file's first audio stream as mono float32 chunks at ``sample_rate`` (Hz).

    Stops after ``duration`` seconds when given. Chunks are about ``chunk_seconds`` long (the last
    may be shorter). ``threads``: decoder threads (None: FFmpeg's choice). Raises
    :class:`MediaError` when the file is unreadable or has no audio.
    """
    path = Path(path)
    _check_file(path)
    if sample_rate <= 0:
        raise InputError(f"sample_rate must be positive, got {sample_rate}")
    limit = None if duration is None else max(0, round(duration * sample_rate))
    chunk = max(1, round(chunk_seconds * sample_rate))
    emitted = 0
    pending: list[np.ndarray] = []
    pending_len = 0
    bad_packets = 0
    with _open_container(path) as container:
        if not container.streams.audio:
            kind = "a video without an audio stream" if container.streams.video else "no audio stream"
            raise MediaError(path, f"has no audio: {kind}")
        stream = container.streams.audio[0]
        _set_threads(stream, threads)
        try:
            graph = _AudioGraph(stream, in_rate=stream.rate, channels=len(stream.layout.channels), out_rate=sample_rate)
        except (av.error.FFmpegError, ValueError) as exc:
            raise MediaError(path, f"unsupported audio stream ({exc})") from exc

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

        packets = container.demux(stream)
        while limit is None or emitted < limit:
            try:
                packet = next(packets)
            except StopIteration:
                break
            except av.error.FFmpegError as exc:
                raise MediaError(path, f"truncated or corrupt while reading ({_ffmpeg_reason(exc)})") from exc
            try:
                frames = packet.decode()
            except av.error.FFmpegError:
                bad_packets += 1  # a damaged packet: skip it, as ffmpeg does
                continue
            for frame in frames:
                frame.pts = None  # the resampler must not try to fix timestamp gaps
                yield from drain(graph.push(frame), final=False)
        if limit is None or emitted < limit:
            yield from drain(graph.push(None), final=True)
    if emitted == 0:
        detail = f" ({bad_packets} undecodable packets)" if bad_packets else ""
        raise MediaError(path, f"no audio could be decoded{detail}")


def load_audio(
    path: PathLike, sample_rate: int = SAMPLE_RATE, *, duration: float | None = None, threads: int | None = None
) -> np.ndarray:
    """The whole (or first ``duration`` seconds of the) audio of a file: mono float32 at ``sample_rate``."""
    chunks = list(iter_audio(path, sample_rate, duration=duration, threads=threads))
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


def iter_video_frames(
    path: PathLike,
    *,
    times: Sequence[float] | None = None,
    fps: float | None = None,
    duration: float | None = None,
    smaller_side: int | None = None,
    threads: int | None = None,
) -> Iterator[tuple[float, np.ndarray]]:
    """Yield ``(time_s, frame)`` pairs, frame an H x W x 3 uint8 RGB array, one at a time.

    Give ``times`` (seconds, any order; yielded in ascending order), or ``fps`` for times
    0, 1/fps, 2/fps ... up to ``duration`` or the end. Each time gets the frame on screen then
    (the last one whose timestamp is <= t; the first one for earlier t). ``smaller_side`` scales
    each frame (aspect kept) during colour conversion. Times past the end get no frame.
    ``threads``: decoder threads (None: FFmpeg's automatic frame and slice threading; 1 for callers
    that already run one decoding process per core).
    """
    path = Path(path)
    _check_file(path)
    if (times is None) == (fps is None):
        raise ValueError("give exactly one of times= or fps=")
    if fps is not None and fps <= 0:
        raise InputError(f"fps must be positive, got {fps}")
    with _open_container(path) as container:
        streams = [s for s in container.streams.video if not _is_picture_stream(s)]
        if not streams:
            raise MediaError(path, "has no video stream (audio only?)")
        stream = streams[0]
        _set_threads(stream, threads)
        if times is not None:
            wanted = sorted(float(t) for t in times)
        else:
            end = duration
            if end is None:
                end = (container.duration / av.time_base) if container.duration else None
            if end is None and stream.duration is not None:
                end = float(stream.duration * stream.time_base)
            if end is None:
                raise MediaError(path, "unknown duration: pass times= instead of fps=")
            # k / fps from an integer k: no accumulated drift over long videos.
            wanted = [k / fps for k in range(max(1, math.ceil(end * fps - 1e-9)))]
        if not wanted:
            return
        container_end = container.duration / av.time_base if container.duration else None
        frame_period = 1.0 / float(stream.average_rate or stream.guessed_rate or 25)
        index, current, current_time = 0, None, 0.0
        cache: list = [None, None]  # [frame, its RGB array]
        # PyAV >= 17 scales with threads of its own; one caller thread per core wants none.
        sws_threads = {"threads": threads} if threads is not None and _REFORMAT_TAKES_THREADS else {}

        def convert(frame: av.VideoFrame) -> np.ndarray:
            # The same frame often serves several times: convert it once. The cache holds the frame
            # itself (compared with `is`): an id() could be reused by a later frame.
            if cache[0] is not frame:
                width, height = _target_size(frame.width, frame.height, smaller_side)
                scaled = frame
                if (width, height) != (frame.width, frame.height):
                    # Scale in the decoder's pixel format first (as ffmpeg's scale filter does), then
                    # convert to RGB: about half the work of scaling while converting.
                    scaled = frame.reformat(width=width, height=height, interpolation="AREA", **sws_threads)
                cache[:] = [frame, scaled.to_ndarray(format="rgb24", **sws_threads)]
            return cache[1]

        try:
            for frame in container.decode(stream):
                t = frame.time if frame.time is not None else current_time + frame_period
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
        if current is None:
            raise MediaError(path, "no video frame could be decoded")
        end = max(container_end or 0.0, current_time + frame_period)
        while index < len(wanted) and wanted[index] < end:
            yield wanted[index], convert(current)
            index += 1


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
