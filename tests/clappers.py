"""Clapper files of any codec, rate, layout and container, written with PyAV (for the codec x
container matrix and the mid-stream tests).

The scene is test_timing's (one source of truth): a dark picture that flashes white at ``FLASH``
s while a 1 kHz beep plays. :class:`Combo` says how one file is written; :func:`write_clapper`
writes it or raises FFmpeg's error, and :func:`try_write` turns that error into the reason a
matrix lists (FFmpeg's own words, with the step that refused: opening the encoder, writing the
header, encoding, muxing).
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import av.logging
import numpy as np
from test_timing import HEIGHT, SOURCE_FPS, WIDTH, expected_scene_time, scene_picture, scene_sound

from l3net.media import read_timeline

SECONDS = 3.0
# SVT-AV1 prints its banner to stderr for every file unless told to log errors only.
os.environ.setdefault("SVT_LOG", "1")
#: Channel layouts by the names the matrix uses.
LAYOUTS = {"mono": "mono", "stereo": "stereo", "5.1": "5.1"}
#: Encoder names by the codec names the matrix uses (FFmpeg's own encoder where it has one).
AUDIO_ENCODERS = {
    "aac": "aac", "mp2": "mp2", "mp3": "libmp3lame", "ac3": "ac3", "eac3": "eac3", "opus": "libopus",
    "vorbis": "vorbis", "flac": "flac", "alac": "alac", "pcm_s16": "pcm_s16le", "pcm_s24": "pcm_s24le", "pcm_f32": "pcm_f32le",
}
#: Encoder name and pixel format by video codec. AV1: whichever encoder this FFmpeg has.
VIDEO_ENCODERS = {
    "h264": ("libx264", "yuv420p"), "mpeg2video": ("mpeg2video", "yuv420p"), "mpeg4": ("mpeg4", "yuv420p"),
    "mjpeg": ("mjpeg", "yuvj420p"), "vp8": ("libvpx", "yuv420p"), "vp9": ("libvpx-vp9", "yuv420p"),
    "hevc": ("libx265", "yuv420p"), "av1": ("libsvtav1", "yuv420p"), "prores": ("prores_ks", "yuv422p10le"),
    "ffv1": ("ffv1", "yuv420p"),
}
#: Encoder options that keep tiny files fast to write (and quiet).
VIDEO_OPTIONS = {
    "libx264": {"preset": "ultrafast"}, "libx265": {"preset": "ultrafast", "x265-params": "log-level=error"},
    "libsvtav1": {"preset": "12"}, "libvpx": {"deadline": "realtime", "cpu-used": "8"},
    "libvpx-vp9": {"deadline": "realtime", "cpu-used": "8"},
}
#: Container format -> file suffix.
SUFFIXES = {
    "mp4": ".mp4", "mov": ".mov", "matroska": ".mkv", "webm": ".webm", "mpegts": ".ts", "avi": ".avi", "flv": ".flv",
    "ogg": ".ogv", "3gp": ".3gp", "mxf": ".mxf",
}


@dataclass(frozen=True)
class Combo:
    """One clapper file: container format, video codec, audio codec at ``rate`` Hz in ``layout``.
    ``video`` None: a sound-only file (the matrix never writes one; probes of a codec alone do)."""

    container: str
    video: str | None
    audio: str | None
    rate: int = 48_000
    layout: str = "stereo"
    size: tuple[int, int] = (WIDTH, HEIGHT)  # the picture's coded width and height
    pix_fmt: str | None = None  # the picture's pixel format (None: VIDEO_ENCODERS's for the codec)
    span: tuple[float, float] = (0.0, SECONDS)  # the scene's seconds written (a segment of it)
    clock_offset: float = 0.0  # container seconds of scene time 0
    muxer_options: dict[str, str] = field(default_factory=dict, compare=False, hash=False)

    @property
    def name(self) -> str:
        parts = [self.container, self.video or "novideo"]
        if self.audio is not None:
            parts += [self.audio, f"{self.rate / 1000:g}k", self.layout]
        return "-".join(parts)

    @property
    def suffix(self) -> str:
        return SUFFIXES[self.container]


def _frames_of(stream: av.AudioStream, samples: np.ndarray, rate: int, layout: str, first: int) -> list[av.AudioFrame]:
    """``samples`` (channels x n float32) as frames the encoder takes: its sample format and its
    frame size (AAC, MP3... take exactly frame_size samples a frame), pts in samples from ``first``."""
    context = stream.codec_context
    resampler = av.AudioResampler(format=context.format, layout=layout, rate=rate, frame_size=context.frame_size or None)
    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples, np.float32), format="fltp", layout=layout)
    frame.sample_rate, frame.pts, frame.time_base = rate, 0, Fraction(1, rate)
    frames, position = [], first
    for out in itertools.chain(resampler.resample(frame), resampler.resample(None)):
        out.pts, out.time_base = position, Fraction(1, rate)
        position += out.samples
        frames.append(out)
    return frames


def write_clapper(path: Path, combo: Combo) -> None:
    """Write ``combo`` to ``path``: the scene's ``combo.span`` at ``SOURCE_FPS`` and ``combo.rate``,
    scene time t at container time t + ``combo.clock_offset``. Raises FFmpeg's error (or PyAV's
    ValueError) where the encoder or the muxer refuses."""
    # SVT-AV1 (libsvtav1), run as root, turns the calling thread into SCHED_FIFO priority 99; every
    # process this test process starts later would inherit it (a spinning real-time trainer starves
    # its own data-loader worker: a hang). The thread's policy is put back after each file.
    policy, param = os.sched_getscheduler(0), os.sched_getparam(0)
    try:
        _write_clapper(path, combo)
    finally:
        if os.sched_getscheduler(0) != policy:
            os.sched_setscheduler(0, policy, param)


def _write_clapper(path: Path, combo: Combo) -> None:
    with av.open(str(path), "w", format=combo.container, options=combo.muxer_options) as out:
        video = audio = None
        if combo.video is not None:
            encoder, pix_fmt = VIDEO_ENCODERS[combo.video]
            # strict=experimental: FFmpeg's experimental encoders (native Vorbis) count as encoders
            video = out.add_stream(encoder, rate=SOURCE_FPS, options={"strict": "experimental", **VIDEO_OPTIONS.get(encoder, {})})
            (video.width, video.height), video.pix_fmt = combo.size, combo.pix_fmt or pix_fmt
            video.codec_context.time_base = Fraction(1, SOURCE_FPS)
        if combo.audio is not None:
            audio = out.add_stream(
                AUDIO_ENCODERS[combo.audio], rate=combo.rate, layout=LAYOUTS[combo.layout], options={"strict": "experimental"}
            )
        out.start_encoding()  # opens the encoders (their frame size) and writes the header
        begin, end = combo.span
        if video is not None:
            offset = round(combo.clock_offset * SOURCE_FPS)
            for k in range(round(begin * SOURCE_FPS), round(end * SOURCE_FPS)):
                image = _resized(scene_picture(k / SOURCE_FPS), *combo.size)
                frame = av.VideoFrame.from_ndarray(image, format="rgb24")
                frame.pts, frame.time_base = k + offset, Fraction(1, SOURCE_FPS)
                out.mux(video.encode(frame))
            out.mux(video.encode(None))
        if audio is not None:
            channels = len(av.AudioLayout(LAYOUTS[combo.layout]).channels)
            first = round(begin * combo.rate)
            mono = scene_sound(first, round(end * combo.rate) - first, combo.rate)
            start = first + round(combo.clock_offset * combo.rate)
            for frame in _frames_of(audio, np.tile(mono, (channels, 1)), combo.rate, LAYOUTS[combo.layout], start):
                out.mux(audio.encode(frame))
            out.mux(audio.encode(None))


def _resized(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """The scene drawn at another size (nearest neighbour: the flash stays a flash)."""
    if image.shape[:2] == (height, width):
        return image
    rows = np.arange(height) * image.shape[0] // height
    cols = np.arange(width) * image.shape[1] // width
    return image[rows][:, cols]


def try_write(path: Path, combo: Combo) -> str | None:
    """Write ``combo``; None when written, else FFmpeg's reason (its error log, which says more
    than the error code; nothing is left at ``path``)."""
    previous = av.logging.get_level()
    av.logging.set_level(av.logging.ERROR)  # PyAV forwards no FFmpeg log without a level
    av.logging.set_skip_repeated(False)  # the same refusal, said again for the next file, is its reason too
    try:
        with av.logging.Capture() as logs:
            write_clapper(path, combo)
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        path.unlink(missing_ok=True)
        said = " ".join(text.strip() for level, _, text in logs if level <= av.logging.ERROR)
        return said or str(exc).split(": '")[0]
    finally:
        av.logging.set_level(previous)
    return None


# ------------------------------------------------------------------------------------------------
# the matrix: which files, and what FFmpeg refused
# ------------------------------------------------------------------------------------------------
RATES = (8_000, 16_000, 22_050, 44_100, 48_000, 96_000)
#: The container and the partner codecs of the audio pass (every audio codec at every rate and in
#: every layout) and the video pass (every video codec): Matroska takes them all.
MATRIX_CONTAINER, MATRIX_VIDEO, MATRIX_AUDIO = "matroska", "h264", "aac"
#: The audio pass's containers: Matroska, and MP4, whose edit lists carry the encoders' priming
#: (Matroska: its codec delay and negative timestamps).
AUDIO_CONTAINERS = (MATRIX_CONTAINER, "mp4")


def audio_combos() -> list[Combo]:
    """Each audio codec at each rate (stereo) and in each layout (48 kHz), in each of
    ``AUDIO_CONTAINERS``: a covering design of codec x rate and codec x layout, so that a refusal
    names the rate or the layout alone."""
    combos = []
    for container in AUDIO_CONTAINERS:
        for codec in AUDIO_ENCODERS:
            combos += [Combo(container, MATRIX_VIDEO, codec, rate, "stereo") for rate in RATES]
            combos += [Combo(container, MATRIX_VIDEO, codec, 48_000, layout) for layout in LAYOUTS if layout != "stereo"]
    return combos


def video_combos() -> list[Combo]:
    """Each video codec, with the partner audio codec."""
    return [Combo(MATRIX_CONTAINER, codec, MATRIX_AUDIO) for codec in VIDEO_ENCODERS]


#: Partner video codecs tried first in a container: x264's B-frames in AVI come out of FFmpeg's AVI
#: demuxer two frames late (AVI stores no presentation times; avi-h264 shows it), which would
#: hide every audio codec's own timing behind the picture's.
PARTNER_VIDEO = {"avi": ("mpeg4",)}
#: (container, codec): every container with every codec, audio and video.
CONTAINER_PAIRS = [(container, codec) for container in SUFFIXES for codec in (*VIDEO_ENCODERS, *AUDIO_ENCODERS)]


def read_back(path: Path) -> str | None:
    """None when FFmpeg (PyAV, not l3net) finds and decodes a video and an audio stream in what it
    wrote; else what it could not do (a muxer may write a codec its demuxer does not recognise)."""
    try:
        with av.open(str(path)) as container:
            for kind in ("video", "audio"):
                streams = getattr(container.streams, kind)
                if not streams:
                    return f"written, but FFmpeg reads back no {kind} stream"
                if not any(True for _ in container.decode(streams[0])):
                    return f"written, but FFmpeg decodes no {kind} frame"
                container.seek(0)
    except (av.error.FFmpegError, ValueError) as exc:
        return f"written, but FFmpeg cannot read it back ({exc})"
    return None


class Matrix:
    """The matrix's files in ``folder``, each written on first request (once per test session).

    ``attempt`` says why a combination cannot be had (None: it was written and FFmpeg reads it
    back); the container pass pairs a codec with a partner of the other kind that the container
    takes (the first, in the order of the tables above, that it writes alone with a video first)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.refused: dict[Combo, str | None] = {}

    def path(self, combo: Combo) -> Path:
        return self.folder / f"{combo.name}{combo.suffix}"

    def attempt(self, combo: Combo) -> str | None:
        if combo not in self.refused:
            path = self.path(combo)
            reason = try_write(path, combo)
            if reason is None and combo.video is not None and combo.audio is not None:
                reason = read_back(path)
            self.refused[combo] = reason
        return self.refused[combo]

    def partner_video(self, container: str) -> str | None:
        preferred = [*PARTNER_VIDEO.get(container, ()), *VIDEO_ENCODERS]
        return next((v for v in preferred if self.attempt(Combo(container, v, None)) is None), None)

    def partner_audio(self, container: str) -> str | None:
        video = self.partner_video(container)
        if video is None:
            return None
        return next((a for a in AUDIO_ENCODERS if self.attempt(Combo(container, video, a)) is None), None)

    def pair(self, container: str, codec: str) -> tuple[Combo | None, str | None]:
        """The file that shows ``codec`` in ``container`` and why it cannot be had (None: it can)."""
        if codec in VIDEO_ENCODERS:
            audio = self.partner_audio(container)
            if audio is None:
                return None, f"FFmpeg writes no audio codec of the matrix in {container}"
            combo = Combo(container, codec, audio)
        else:
            video = self.partner_video(container)
            if video is None:
                return None, f"FFmpeg writes no video codec of the matrix in {container}"
            combo = Combo(container, video, codec)
        return combo, self.attempt(combo)


def join_segments(path: Path, segments: list[Combo]) -> None:
    """MPEG-TS segments written one after another into one file, as recorders and broadcasters
    join them (byte for byte: each segment brings its own tables, the streams keep their PIDs);
    each segment's ``span`` says which seconds of the scene it holds."""
    with open(path, "wb") as joined:
        for index, segment in enumerate(segments):
            part = path.with_name(f"{path.stem}.part{index}.ts")
            write_clapper(part, segment)
            joined.write(part.read_bytes())
            part.unlink()


def corrupt_packets(source: Path, path: Path, kind: str, span: tuple[float, float], seed: int = 0) -> int:
    """Copy ``source`` to ``path`` (same container) with the payload of every ``kind`` ('audio' or
    'video') packet whose timestamp lies in ``span`` (container seconds) replaced by random bytes
    of the same length, timestamps kept: a stream damaged in transmission or on disk. Returns how
    many packets were damaged."""
    rng = np.random.default_rng(seed)
    damaged = 0
    with av.open(str(source)) as inp, av.open(str(path), "w", format=inp.format.name.split(",")[0]) as out:
        streams = {s.index: out.add_stream_from_template(s) for s in inp.streams}
        for packet in inp.demux():
            if packet.dts is None:  # the demuxer's end-of-stream marker
                continue
            index = packet.stream.index
            t = None if packet.pts is None else float(packet.pts * packet.time_base)
            if packet.stream.type == kind and t is not None and span[0] <= t < span[1]:
                garbage = av.Packet(rng.integers(0, 256, packet.size, dtype=np.uint8).tobytes())
                garbage.pts, garbage.dts, garbage.time_base = packet.pts, packet.dts, packet.time_base
                garbage.duration, garbage.is_keyframe = packet.duration, packet.is_keyframe
                packet, damaged = garbage, damaged + 1
            packet.stream = streams[index]
            out.mux(packet)
    return damaged


# ------------------------------------------------------------------------------------------------
# where FFmpeg itself puts the flash and the beep, and what the matrix covers (for the docs)
# ------------------------------------------------------------------------------------------------
def file_beep(path: Path) -> float:
    """The beep's onset on the file's timeline as FFmpeg decodes the audio stream, without l3net:
    the first sample above half the beep's amplitude, at its frame's timestamp + its index."""
    origin = read_timeline(path).origin
    with av.open(str(path)) as container:
        for frame in container.decode(audio=0):
            data = np.abs(frame.to_ndarray().astype(np.float64))
            if frame.format.name.startswith(("s16", "s32")):
                data /= 2 ** (8 * frame.format.bytes - 1)
            channels = len(frame.layout.channels)
            loud = data.reshape(channels, -1).max(axis=0) if frame.format.is_planar else data.reshape(-1, channels).max(axis=1)
            hits = np.flatnonzero(loud > 0.25)
            if hits.size:
                return float(frame.time) + hits[0] / frame.sample_rate - origin
    raise AssertionError(f"{path.name}: FFmpeg decodes no beep")


def ffmpeg_offset(path: Path) -> float:
    """Seconds from FFmpeg's own flash to its own beep in a written file (0 when in sync)."""
    return file_beep(path) - expected_scene_time(path)


def _codecs(codecs: list[str]) -> str:
    return ", ".join(codecs) if codecs else "-"


def coverage(matrix: Matrix) -> dict[str, str]:
    """The docs' blocks, from the matrix itself: 'containers' (README and DESIGN: what each
    container is tested with) and 'audio' (DESIGN: each audio codec's rates and layouts). A
    combination is covered when FFmpeg writes it, reads it back and its own decoding has the flash
    and the beep within half a source frame; written out of sync, it is listed apart."""
    header = f"Generated by tools/codec_matrix.py from the test matrix (PyAV {av.__version__}, FFmpeg {av.ffmpeg_version_info})."
    rows = ["| container | video codecs | audio codecs | written out of sync by FFmpeg (read on its clock) |", "|---|---|---|---|"]
    for container in SUFFIXES:
        covered: dict[str, list[str]] = {"video": [], "audio": []}
        skewed = []
        for codec in (*VIDEO_ENCODERS, *AUDIO_ENCODERS):
            combo, reason = matrix.pair(container, codec)
            if combo is None or reason is not None:
                continue
            offset = ffmpeg_offset(matrix.path(combo))
            if abs(offset) > 0.5 / SOURCE_FPS:
                skewed.append(f"{codec} ({offset * 1000:+.0f} ms)")
            else:
                covered["video" if codec in VIDEO_ENCODERS else "audio"].append(codec)
        rows.append(f"| {container} | {_codecs(covered['video'])} | {_codecs(covered['audio'])} | {_codecs(skewed)} |")
    audio = ["| audio codec | container | rates, kHz (stereo) | layouts (48 kHz) |", "|---|---|---|---|"]
    for codec in AUDIO_ENCODERS:
        for container in AUDIO_CONTAINERS:
            combos = [
                c for c in audio_combos()
                if (c.audio, c.container) == (codec, container) and matrix.attempt(c) is None
                and abs(ffmpeg_offset(matrix.path(c))) <= 0.5 / SOURCE_FPS
            ]
            rates = sorted({c.rate for c in combos if c.layout == "stereo"})
            layouts = [name for name in LAYOUTS if any(c.layout == name for c in combos)]
            audio.append(f"| {codec} | {container} | {_codecs([f'{r / 1000:g}' for r in rates])} | {_codecs(layouts)} |")
    return {"containers": "\n".join([header, "", *rows]), "audio": "\n".join([header, "", *audio])}


def _markers(text: str, name: str) -> tuple[int, int] | None:
    """Where the block ``name`` begins and ends in ``text`` (between its marker lines)."""
    begin, end = f"<!-- codec-matrix:{name} -->\n", f"<!-- /codec-matrix:{name} -->"
    first = text.find(begin)
    last = text.find(end, first + len(begin)) if first >= 0 else -1
    return None if last < 0 else (first + len(begin), last)


def marked(text: str, name: str) -> str | None:
    """The block between ``<!-- codec-matrix:NAME -->`` and ``<!-- /codec-matrix:NAME -->`` (None: no markers)."""
    where = _markers(text, name)
    return None if where is None else text[where[0] : where[1]].rstrip("\n")


def replace_marked(text: str, name: str, block: str) -> str:
    """``text`` with the block ``name`` replaced by ``block``."""
    where = _markers(text, name)
    if where is None:
        raise ValueError(f"no <!-- codec-matrix:{name} --> block")
    return text[: where[0]] + block + "\n" + text[where[1] :]
