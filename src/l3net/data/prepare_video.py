"""One video of ``l3net prepare`` -> one sample (metadata, WAV bytes, JPEG frames), or the reason it
is skipped: :func:`process_video`, a recipe of steps (check the streams, read the sound, read the
frames, lay out the sample); :class:`Outcome`, what happened to one input (one manifest line)."""

from __future__ import annotations

import io
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image

from .. import media
from ..config import CLIP_SECONDS, SAMPLE_RATE
from ..errors import MediaError, StreamDecodeError
from . import shards as fmt
from .prepare_inputs import InputVideo, PrepareConfig
from .synth import read_boxes

#: Skip reasons written in the manifest (the ``reason`` field).
REASON_EMPTY = "empty"
REASON_NOT_MEDIA = "not media"
REASON_UNDECODABLE = "undecodable"
REASON_NO_AUDIO = "no audio stream"
REASON_NO_VIDEO = "no video stream"
REASON_TOO_SHORT = "shorter than 1 s"
REASON_DUPLICATE = "duplicate"
REASON_CLASS_NOT_KEPT = "class not kept"  # --classes: its label is not listed (or it has none)
REASONS = (
    REASON_EMPTY, REASON_NOT_MEDIA, REASON_UNDECODABLE, REASON_NO_AUDIO, REASON_NO_VIDEO, REASON_TOO_SHORT, REASON_DUPLICATE,
    REASON_CLASS_NOT_KEPT,
)

# Signatures of container formats: a file that starts with one but cannot be opened is
# "undecodable" (truncated, corrupt); anything else FFmpeg refuses is "not media".
_MAGIC = (b"RIFF", b"RIFX", b"OggS", b"\x1aE\xdf\xa3", b"fLaC", b"ID3", b"FLV", b"GIF8", b"\x00\x00\x01\xba", b"\x00\x00\x01\xb3", b"G")


def _classify_open_failure(path: Path) -> str:
    try:
        with open(path, "rb") as handle:
            head = handle.read(4096)
    except OSError:
        return REASON_UNDECODABLE
    if head[4:8] in (b"ftyp", b"moov", b"mdat", b"free", b"wide") or any(head.startswith(m) for m in _MAGIC if len(m) > 1):
        return REASON_UNDECODABLE
    if head[:1] == b"G" and len(head) > 188 and head[188:189] == b"G":  # MPEG-TS sync bytes
        return REASON_UNDECODABLE
    return REASON_NOT_MEDIA


def _encode_jpeg(frame: np.ndarray, quality: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def _boxes_at(sidecar: dict[str, Any], times: Sequence[float], width: int, height: int) -> list | None:
    """Ground-truth boxes at the stored frame times, scaled to the stored frame's pixels."""
    try:
        boxes, fps = sidecar["boxes"], float(sidecar["fps"])
        sx, sy = width / float(sidecar["width"]), height / float(sidecar["height"])
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return None
    if not boxes or fps <= 0:
        return None
    out = []
    for t in times:
        # the frame on screen at t: the last one shown at or before t (as media.iter_video_frames)
        box = boxes[min(len(boxes) - 1, max(0, int(math.floor(t * fps + 1e-6))))]
        out.append(None if box is None else [round(box[0] * sx, 2), round(box[1] * sy, 2), round(box[2] * sx, 2), round(box[3] * sy, 2)])
    return out


@dataclass
class Outcome:
    """What happened to one input (one manifest line)."""

    source: str  # the identity
    path: str
    status: str  # kept | skipped
    reason: str | None = None
    detail: str | None = None
    key: str | None = None
    split: str | None = None
    shard: str | None = None
    label: str | None = None
    duration: float | None = None
    timing: dict[str, Any] | None = None  # what was done to put sound and picture on one clock
    warnings: list[str] = field(default_factory=list)
    #: undecodable: which stream failed, at what time, FFmpeg's reason (errors.StreamDecodeError.to_dict)
    failure: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items() if v is not None and v != []}
        return data


Sample = tuple[dict[str, Any], bytes, list[bytes]]


class _Skip(Exception):
    """A step of :func:`process_video` found that the input gives no sample: why (a ``REASON_*``)."""

    def __init__(self, reason: str, detail: str | None = None) -> None:
        super().__init__(reason)
        self.reason, self.detail = reason, detail


def process_video(video: InputVideo, config: PrepareConfig, threads: int | None = None) -> tuple[Outcome, Sample | None]:
    """Decode one video into a sample (metadata, WAV bytes, JPEG frames), or say why not.

    ``threads``: decoder threads per video (None: FFmpeg's choice; 1 in the worker pool, which
    already keeps every core busy with one video each, and where decoder threads only add overhead).
    """
    outcome = Outcome(source=video.identity, path=str(video.path), status="skipped", key=video.key, split=video.split, label=video.label)
    notes: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            _check_streams(video.path, config)
            audio, audio_report = _read_sound(video.path, config, threads)
            duration = audio.size / SAMPLE_RATE
            decoded, picture_report = _read_frames(video.path, config, duration, threads)
            timing = {**audio_report.to_dict(), **picture_report.to_dict()}
            outcome.timing = timing
            notes.extend(_timing_warnings(audio_report))
            meta, jpegs = _lay_out(video, config, decoded, int(audio.size), timing)
            wav = fmt.wav_bytes(audio)
        except _Skip as skip:
            outcome.reason, outcome.detail = skip.reason, skip.detail
            return outcome, None
        except MediaError as exc:
            outcome.failure = exc.to_dict() if isinstance(exc, StreamDecodeError) else None
            outcome.reason, outcome.detail = REASON_UNDECODABLE, exc.reason
            return outcome, None
        except Exception as exc:  # one odd file must not stop a run over thousands
            outcome.reason, outcome.detail = REASON_UNDECODABLE, f"{type(exc).__name__}: {exc}"
            return outcome, None
        finally:
            outcome.warnings = sorted({str(w.message) for w in caught} | set(notes))
    outcome.status, outcome.duration = "kept", round(duration, 3)
    return outcome, (meta, wav, jpegs)


def _check_streams(path: Path, config: PrepareConfig) -> None:
    """Skip, before decoding, a file that cannot give a sample: empty, not media, a still image, no
    picture, no sound, or not the audio stream asked for."""
    if path.stat().st_size == 0:
        raise _Skip(REASON_EMPTY, "0 bytes")
    try:
        info = media.probe(path)
    except MediaError as exc:
        raise _Skip(_classify_open_failure(path), exc.reason) from None
    if info.kind == "image":
        raise _Skip(REASON_NO_VIDEO, "a still image, not a video")
    if not info.has_video:
        raise _Skip(REASON_NO_VIDEO, "audio only")
    if not info.has_audio:
        raise _Skip(REASON_NO_AUDIO, "video without sound")
    if config.audio_stream is not None and config.audio_stream >= info.audio_streams:
        raise _Skip(REASON_NO_AUDIO, f"no audio stream {config.audio_stream} (it has {info.audio_streams})")


def _read_sound(path: Path, config: PrepareConfig, threads: int | None) -> tuple[np.ndarray, media.AudioReport]:
    """The sound kept (48 kHz mono float32, ``config.seconds`` at most) and what was done to put it on
    the picture's clock; skips a video with less than one clip of sound."""
    # Sound and picture are read on the file's one timeline (media.Timeline), from
    # config.start: only what is kept is decoded, however long the file.
    reader = media.AudioReader(
        path, SAMPLE_RATE, start=config.start, duration=config.seconds, stream=config.audio_stream, threads=threads
    )
    chunks = list(reader)
    audio = np.concatenate(chunks) if len(chunks) > 1 else chunks[0]
    clip = round(CLIP_SECONDS * SAMPLE_RATE)
    if audio.size < clip:
        raise _Skip(REASON_TOO_SHORT, f"{audio.size / SAMPLE_RATE:.2f} s of audio from {config.start:g} s")
    return audio, reader.report


def _read_frames(path: Path, config: PrepareConfig, duration: float, threads: int | None,
                 ) -> tuple[list[tuple[float, np.ndarray]], media.VideoReport]:
    """The frames at ``config.fps`` over the sound's ``duration`` (s): (time on the timeline, RGB
    frame) each, and what the reader did."""
    pictures = media.VideoReader(
        path, fps=config.fps, start=config.start, duration=duration, smaller_side=config.frame_size, threads=threads
    )
    decoded = list(pictures)
    if not decoded:
        raise _Skip(REASON_UNDECODABLE, f"no video frame from {config.start:g} s")
    return decoded, pictures.report


def _lay_out(video: InputVideo, config: PrepareConfig, decoded: list[tuple[float, np.ndarray]], num_samples: int,
             timing: dict[str, Any]) -> tuple[dict[str, Any], list[bytes]]:
    """The sample's metadata and JPEG frames (boxes from a ``NAME.boxes.json`` sidecar when there is one)."""
    # stored times count from the sample's first audio sample (config.start on the timeline)
    times = [round(t - config.start, 6) for t, _ in decoded]
    height, width = decoded[0][1].shape[:2]
    jpegs = [_encode_jpeg(frame, config.jpeg_quality) for _, frame in decoded]
    meta: dict[str, Any] = {
        "key": video.key,
        "source": video.identity,
        "path": str(video.path),
        "duration": num_samples / SAMPLE_RATE,
        "start": config.start,
        "fps": config.fps,
        "frame_times": times,
        "sample_rate": SAMPLE_RATE,
        "num_samples": num_samples,
        "label": video.label,
        "split": video.split,
        "width": int(width),
        "height": int(height),
        "timing": timing,
    }
    sidecar = read_boxes(video.path)
    if sidecar is not None:
        boxes = _boxes_at(sidecar, [t for t, _ in decoded], width, height)
        if boxes is not None:
            meta["boxes"] = boxes
    return meta, jpegs


def _timing_warnings(report: media.AudioReport) -> list[str]:
    """Plain words for what the audio reader had to do (also in the manifest's ``timing``)."""
    said = []
    if report.padded_start:
        said.append(f"the sound starts {report.padded_start:.3f} s after the picture: silence put before it")
    if report.gaps:
        # skipped damaged packets leave gaps too: say so rather than blame the timestamps
        where = "where damaged packets were skipped or in the sound's timestamps" if report.damaged_packets else "in the sound's timestamps"
        said.append(f"{report.gaps:.3f} s of gaps {where} filled with silence")
    if report.overlaps:
        said.append(f"{report.overlaps:.3f} s of sound dropped where its timestamps went back")
    if report.padded_end:
        said.append(f"the sound ends {report.padded_end:.3f} s before the picture: silence put after it")
    return said


def process_task(args: tuple[InputVideo, PrepareConfig, int | None]) -> tuple[Outcome, fmt.SampleBlock | None]:
    """:func:`process_video` and the sample's tar members (a task of the worker pool)."""
    # The tar members are laid out here, in the worker: the process writing shards only appends.
    outcome, sample = process_video(*args)
    if sample is None:
        return outcome, None
    meta, wav, jpegs = sample
    return outcome, fmt.sample_block(meta["key"], meta, wav, jpegs)
