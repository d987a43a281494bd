"""Videos -> WebDataset shards (``l3net prepare``).

Each input video gives one sample: ``seconds`` (paper: 10) from ``start`` (default 0) on the video's
timeline (:class:`l3net.media.Timeline`: sound and picture on one clock), frames at ``fps`` with the
smaller side scaled to ``frame_size`` px and stored as JPEG, the audio as 48 kHz mono 16-bit WAV,
and metadata (source, duration, frame times, label, ground-truth boxes when a ``NAME.boxes.json``
sidecar from ``l3net synth`` sits beside the video). See :mod:`l3net.data.shards` for the format.

Identity, keys and splits:

- A video's *identity* is its path relative to the parent of the input directory it was found
  under (``videos/cat/001.mp4`` for ``l3net prepare /data/videos``), or its file name when it
  was named directly. It does not depend on where the data is mounted, so every machine of a
  cluster (and every re-run) gives a video the same identity; two copies of a dataset at
  different places give the same keys. (A content hash would also survive renames, but deciding
  which slice a video belongs to would then mean reading every video on every machine.)
- key = the first 16 hex digits of SHA-1(identity); split and slice come from independent
  hashes of the key, so a video never crosses splits and a re-run gives the same split.
- A published split (Kinetics, VGGSound) can be given instead: a ``split`` column in the labels
  CSV (train/val/test) overrides the hash for each row that has a value; rows with an empty value
  fall back to the hash, so a CSV can fix the test set only.
- ``classes`` (a :class:`~l3net.data.classes.ClassList`, a classes file or the built-in
  ``kinetics-sounds``) keeps only videos of the listed classes; the others are recorded in the
  manifest as skipped (``class not kept``) without being decoded.

Work plan: the inputs of one slice (``num_shards``/``shard_index``) are grouped by split,
sorted by key and cut into shards of ``shard_size`` videos. A shard is finished when its tar and
its sidecar exist (tar written to a temporary name then renamed; the sidecar last), so a killed
run loses only the shards it was writing, and a re-run skips finished shards. The manifest of the
slice is rebuilt from the sidecars at the end of every run.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import sys
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
from PIL import Image
from tqdm import tqdm

from .. import media
from ..config import CLIP_SECONDS, SAMPLE_RATE
from ..errors import DatasetError, InputError, MediaError, StreamDecodeError
from ..fileio import atomic_open, atomic_path, ensure_dir, read_json, remove_stale_temporaries, write_json
from ..runtime import worker_pool
from . import shards as fmt
from .classes import ClassList, resolve_classes
from .synth import read_boxes

#: File extensions looked at inside input directories (named files are always tried).
MEDIA_EXTENSIONS = frozenset(
    ".mp4 .m4v .mov .mkv .webm .avi .flv .wmv .asf .mpg .mpeg .m2v .ts .mts .m2ts .3gp .3g2 .ogv .ogg .ogm "
    ".vob .mxf .dv .gif .m4a .mp3 .wav .flac .opus .aac .oga .wma".split()
)

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

#: Where a video's split came from (dataset.json ``split_source``).
SPLIT_FROM_HASH = "hash"
SPLIT_FROM_LABELS = "labels"
#: Other spellings of a split accepted in a labels CSV's ``split`` column (after lower-casing).
SPLIT_ALIASES = {"validation": "val", "validate": "val", "valid": "val"}

# Signatures of container formats: a file that starts with one but cannot be opened is
# "undecodable" (truncated, corrupt); anything else FFmpeg refuses is "not media".
_MAGIC = (b"RIFF", b"RIFX", b"OggS", b"\x1aE\xdf\xa3", b"fLaC", b"ID3", b"FLV", b"GIF8", b"\x00\x00\x01\xba", b"\x00\x00\x01\xb3", b"G")


@dataclass(frozen=True)
class PrepareConfig:
    """What one prepared sample holds. Times in seconds, sizes in pixels."""

    seconds: float = 10.0  # seconds kept from each video (paper: 10)
    start: float = 0.0  # where they start on the video's timeline (seconds)
    audio_stream: int | None = None  # which audio stream (index among them); None: the default, else the first
    fps: float = 4.0  # frames per second kept
    frame_size: int = 256  # smaller side of stored frames (paper: 256; the small preset: 112)
    split_ratios: tuple[float, float, float] = (0.8, 0.1, 0.1)  # train, val, test
    shard_size: int = 256  # videos per shard (~1.6 MB each at 256 px and 10 s: ~400 MB shards)
    jpeg_quality: int = 90

    def validate(self) -> None:
        if not CLIP_SECONDS <= self.seconds <= 24 * 3600:
            raise InputError(f"--seconds must be at least {CLIP_SECONDS:g} (one audio clip), got {self.seconds}")
        if not (math.isfinite(self.start) and self.start >= 0):
            raise InputError(f"--start must be a non-negative number of seconds, got {self.start}")
        if self.audio_stream is not None and self.audio_stream < 0:
            raise InputError(f"--audio-stream must be a non-negative index, got {self.audio_stream}")
        if not 0 < self.fps <= 60:
            raise InputError(f"--fps must be in (0, 60], got {self.fps}")
        if not 16 <= self.frame_size <= 4096:
            raise InputError(f"--frame-size must be in [16, 4096] px, got {self.frame_size}")
        ratios = self.split_ratios
        if len(ratios) != 3 or any(r < 0 or not math.isfinite(r) for r in ratios) or sum(ratios) <= 0:
            raise InputError(f"--split-ratios must be three non-negative numbers (train val test), got {ratios}")
        if self.shard_size < 1:
            raise InputError(f"--shard-size must be at least 1, got {self.shard_size}")
        if not 1 <= self.jpeg_quality <= 100:
            raise InputError(f"jpeg quality must be in [1, 100], got {self.jpeg_quality}")

    @property
    def normalised_ratios(self) -> dict[str, float]:
        total = sum(self.split_ratios)
        return {split: r / total for split, r in zip(fmt.SPLITS, self.split_ratios)}


@dataclass(frozen=True)
class InputVideo:
    path: Path
    identity: str
    key: str
    split: str
    slice: int
    label: str | None = None


def _hash_unit(text: str) -> float:
    """A stable number in [0, 1) from a string (SHA-1; independent of Python's hash seed)."""
    return int.from_bytes(hashlib.sha1(text.encode("utf-8")).digest()[:8], "big") / 2.0**64


def video_key(identity: str) -> str:
    """The sample key of a video identity: 16 hex digits of its SHA-1."""
    return hashlib.sha1(identity.encode("utf-8")).hexdigest()[:16]


def assign_split(key: str, ratios: dict[str, float]) -> str:
    """train / val / test from a stable hash of the key, with the given ratios."""
    u = _hash_unit("split:" + key)
    edge = 0.0
    for split in fmt.SPLITS:
        edge += ratios[split]
        if u < edge:
            return split
    return next(s for s in reversed(fmt.SPLITS) if ratios[s] > 0)


def assign_slice(key: str, num_slices: int) -> int:
    return int(_hash_unit("slice:" + key) * num_slices) % num_slices


def collect_inputs(inputs: Sequence[str | os.PathLike[str]]) -> list[tuple[Path, str]]:
    """(path, identity) of every input file, sorted by identity. Directories are searched
    recursively for files with a media extension; named files are always included."""
    found: list[tuple[Path, str]] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            root = path.resolve()
            for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                for name in sorted(filenames):
                    if name.startswith(".") or Path(name).suffix.lower() not in MEDIA_EXTENSIONS:
                        continue
                    file = Path(dirpath) / name
                    found.append((file, f"{root.name}/{file.relative_to(root).as_posix()}"))
        elif path.exists():
            found.append((path.resolve(), path.name))
        else:
            raise DatasetError(f"{path}: no such file or directory")
    found.sort(key=lambda item: item[1])
    return found


@dataclass(frozen=True)
class LabelRow:
    """One row of a labels CSV."""

    label: str
    split: str | None  # train | val | test from a ``split`` column; None: no column, or no value
    line: int  # 1-based line in the CSV


def read_labels(path: str | os.PathLike[str]) -> dict[Path, LabelRow]:
    """A CSV of ``video,class[,split]`` rows (header required; columns named video|path|file and
    class|label, and optionally split), video paths relative to the CSV's folder -> {resolved path:
    row}. A split value must be train, val or test (any case; validation, validate and valid mean val);
    an empty one means "use the hash"."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.reader(handle))
    except FileNotFoundError:
        raise DatasetError(f"{path}: labels file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: cannot read labels ({exc})") from exc
    if not rows:
        raise DatasetError(f"{path}: empty labels file (expected a header 'video,class' and one row per video)")
    header = [h.strip().lower() for h in rows[0]]
    try:
        vcol = next(i for i, h in enumerate(header) if h in ("video", "path", "file", "filename"))
        ccol = next(i for i, h in enumerate(header) if h in ("class", "label", "category"))
    except StopIteration:
        raise DatasetError(
            f"{path}: the header must name a video column (video/path/file) and a class column "
            f"(class/label/category); got {rows[0]}"
        ) from None
    scol = next((i for i, h in enumerate(header) if h == "split"), None)
    labels: dict[Path, LabelRow] = {}
    for line, row in enumerate(rows[1:], start=2):
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) <= max(vcol, ccol) or not row[vcol].strip() or not row[ccol].strip():
            raise DatasetError(f"{path}, line {line}: expected a video and a class, got {row}")
        split = row[scol].strip().lower() if scol is not None and scol < len(row) else ""
        split = SPLIT_ALIASES.get(split, split)
        if split and split not in fmt.SPLITS:
            raise DatasetError(
                f"{path}, line {line}: split {row[scol].strip()!r} is not one of {', '.join(fmt.SPLITS)} "
                "(or empty, to use the hash)"
            )
        video = (path.parent / row[vcol].strip()).resolve()
        labels[video] = LabelRow(row[ccol].strip(), split or None, line)
    if not labels:
        raise DatasetError(f"{path}: no labelled videos")
    return labels


# ------------------------------------------------------------------------------------------------
# one video
# ------------------------------------------------------------------------------------------------
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


def process_video(video: InputVideo, config: PrepareConfig, threads: int | None = None) -> tuple[Outcome, Sample | None]:
    """Decode one video into a sample (metadata, WAV bytes, JPEG frames), or say why not.

    ``threads``: decoder threads per video (None: FFmpeg's choice; 1 in the worker pool, which
    already keeps every core busy with one video each, and where decoder threads only add overhead).
    """
    outcome = Outcome(source=video.identity, path=str(video.path), status="skipped", key=video.key, split=video.split, label=video.label)

    def skip(reason: str, detail: str | None = None) -> tuple[Outcome, None]:
        outcome.reason, outcome.detail = reason, detail
        return outcome, None

    def undecodable(exc: MediaError) -> tuple[Outcome, None]:
        outcome.failure = exc.to_dict() if isinstance(exc, StreamDecodeError) else None
        return skip(REASON_UNDECODABLE, exc.reason)

    notes: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            if video.path.stat().st_size == 0:
                return skip(REASON_EMPTY, "0 bytes")
            try:
                info = media.probe(video.path)
            except MediaError as exc:
                return skip(_classify_open_failure(video.path), exc.reason)
            if info.kind == "image":
                return skip(REASON_NO_VIDEO, "a still image, not a video")
            if not info.has_video:
                return skip(REASON_NO_VIDEO, "audio only")
            if not info.has_audio:
                return skip(REASON_NO_AUDIO, "video without sound")
            if config.audio_stream is not None and config.audio_stream >= info.audio_streams:
                return skip(REASON_NO_AUDIO, f"no audio stream {config.audio_stream} (it has {info.audio_streams})")
            # Sound and picture are read on the file's one timeline (media.Timeline), from
            # config.start: only what is kept is decoded, however long the file.
            reader = media.AudioReader(
                video.path, SAMPLE_RATE, start=config.start, duration=config.seconds, stream=config.audio_stream, threads=threads
            )
            try:
                chunks = list(reader)
            except MediaError as exc:
                return undecodable(exc)
            audio = np.concatenate(chunks) if len(chunks) > 1 else chunks[0]
            clip = round(CLIP_SECONDS * SAMPLE_RATE)
            if audio.size < clip:
                return skip(REASON_TOO_SHORT, f"{audio.size / SAMPLE_RATE:.2f} s of audio from {config.start:g} s")
            duration = audio.size / SAMPLE_RATE
            pictures = media.VideoReader(
                video.path, fps=config.fps, start=config.start, duration=duration, smaller_side=config.frame_size, threads=threads
            )
            try:
                decoded = list(pictures)
            except MediaError as exc:
                return undecodable(exc)
            if not decoded:
                return skip(REASON_UNDECODABLE, f"no video frame from {config.start:g} s")
            timing = {**reader.report.to_dict(), **pictures.report.to_dict()}
            outcome.timing = timing
            notes.extend(_timing_warnings(reader.report))
            # stored times count from the sample's first audio sample (config.start on the timeline)
            times = [round(t - config.start, 6) for t, _ in decoded]
            height, width = decoded[0][1].shape[:2]
            jpegs = [_encode_jpeg(frame, config.jpeg_quality) for _, frame in decoded]
            meta: dict[str, Any] = {
                "key": video.key,
                "source": video.identity,
                "path": str(video.path),
                "duration": duration,
                "start": config.start,
                "fps": config.fps,
                "frame_times": times,
                "sample_rate": SAMPLE_RATE,
                "num_samples": int(audio.size),
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
            wav = fmt.wav_bytes(audio)
        except MediaError as exc:
            return undecodable(exc)
        except Exception as exc:  # one odd file must not stop a run over thousands
            return skip(REASON_UNDECODABLE, f"{type(exc).__name__}: {exc}")
        finally:
            outcome.warnings = sorted({str(w.message) for w in caught} | set(notes))
    outcome.status, outcome.duration = "kept", round(duration, 3)
    return outcome, (meta, wav, jpegs)


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


def _process_task(args: tuple[InputVideo, PrepareConfig, int | None]) -> tuple[Outcome, fmt.SampleBlock | None]:
    # The tar members are laid out here, in the worker: the process writing shards only appends.
    outcome, sample = process_video(*args)
    if sample is None:
        return outcome, None
    meta, wav, jpegs = sample
    return outcome, fmt.sample_block(meta["key"], meta, wav, jpegs)


# ------------------------------------------------------------------------------------------------
# the run
# ------------------------------------------------------------------------------------------------
@dataclass
class ShardPlan:
    name: str
    split: str
    videos: list[InputVideo]


@dataclass
class PrepareSummary:
    """What a prepare run produced (for this slice)."""

    out: Path
    manifest: Path
    kept: Counter  # split -> videos
    hours: Counter  # split -> hours of audio
    shards: Counter  # split -> shards
    skipped: Counter  # reason -> inputs
    reused_shards: int
    written_shards: int
    classes: list[str] | None
    class_counts: Counter  # class -> kept videos
    unlabelled: int  # kept videos without a label when labels were given
    outcomes: list[Outcome]
    absent_classes: list[str] = field(default_factory=list)  # listed by --classes, in no row of the labels

    def table(self) -> str:
        """The summary as a plain-text table."""
        lines = [f"{'split':<8}{'videos':>8}{'hours':>9}{'shards':>8}"]
        for split in fmt.SPLITS:
            lines.append(f"{split:<8}{self.kept[split]:>8}{self.hours[split]:>9.2f}{self.shards[split]:>8}")
        total_kept = sum(self.kept.values())
        lines.append(f"{'total':<8}{total_kept:>8}{sum(self.hours.values()):>9.2f}{sum(self.shards.values()):>8}")
        if self.skipped:
            lines.append("")
            lines.append(f"skipped {sum(self.skipped.values())} input(s):")
            for reason, count in sorted(self.skipped.items(), key=lambda kv: (-kv[1], kv[0])):
                lines.append(f"  {count:>6}  {reason}")
        if self.classes is not None:
            empty = [c for c in self.classes if self.class_counts[c] == 0]
            lines.append("")
            lines.append(f"{len(self.classes)} classes; kept videos per class: min {min((self.class_counts[c] for c in self.classes), default=0)}, max {max((self.class_counts[c] for c in self.classes), default=0)}")
            if empty:
                lines.append(f"warning: {len(empty)} class(es) have no kept video: {', '.join(empty[:10])}{' ...' if len(empty) > 10 else ''}")
            if self.unlabelled:
                lines.append(f"warning: {self.unlabelled} kept video(s) have no row in the labels file")
        if self.absent_classes:
            lines.append(_absent_warning(self.absent_classes))
        return "\n".join(lines)


def _absent_warning(absent: Sequence[str]) -> str:
    shown = ", ".join(absent[:10]) + (" ..." if len(absent) > 10 else "")
    return f"warning: {len(absent)} class(es) listed by --classes are in no row of the labels file: {shown}"


def _dataset_description(
    config: PrepareConfig, classes: list[str] | None, split_counts: Counter | None = None,
    hashed: int = 0, class_list: ClassList | None = None,
) -> dict[str, Any]:
    """dataset.json (docs/DESIGN.md, Shards). ``split_counts``: inputs per split when the labels
    file has a split column (``hashed`` of them had no value there and were split by the hash)."""
    description = {
        "format": fmt.FORMAT,
        "version": fmt.VERSION,
        "seconds": config.seconds,
        "start": config.start,
        "audio_stream": config.audio_stream,
        "fps": config.fps,
        "sample_rate": SAMPLE_RATE,
        "frame_smaller_side": config.frame_size,
        "jpeg_quality": config.jpeg_quality,
        "splits": config.normalised_ratios,
        "classes": classes,
    }
    # Keys below appear only when used, so shard directories made without them still resume.
    if split_counts is not None:
        total = sum(split_counts.values())
        description["splits"] = {s: (split_counts[s] / total if total else 0.0) for s in fmt.SPLITS}
        description["split_source"] = SPLIT_FROM_LABELS
        description["split_counts"] = {s: split_counts[s] for s in fmt.SPLITS}
        description["split_from_hash"] = hashed
        description["hash_splits"] = config.normalised_ratios
    if class_list is not None:
        description["class_filter"] = class_list.describe()
    return description


def _check_or_write_dataset(out: Path, description: dict[str, Any]) -> None:
    path = out / fmt.DATASET_FILE
    if path.exists():
        try:
            existing = read_json(path)
        except (OSError, ValueError) as exc:
            raise DatasetError(f"{path}: unreadable ({exc}); delete it or choose another --out") from exc
        keys = list(description) + [k for k in existing if k not in description]
        differing = [k for k in keys if existing.get(k) != description.get(k) and k != "jpeg_quality"]
        if differing:
            detail = ", ".join(f"{k}: {existing.get(k)!r} there, {description.get(k)!r} now" for k in differing if k != "classes")
            if "classes" in differing:
                detail = (detail + "; " if detail else "") + "the class list differs (another labels file?)"
            raise DatasetError(
                f"{out} was prepared with other settings ({detail}); use the same settings to resume, or another --out"
            )
        return
    write_json(path, description)


def plan_shards(videos: Sequence[InputVideo], shard_size: int, slice_index: int) -> list[ShardPlan]:
    """Cut one slice's videos into shards: per split, sorted by key, ``shard_size`` at a time."""
    plans = []
    for split in fmt.SPLITS:
        chosen = sorted((v for v in videos if v.split == split), key=lambda v: v.key)
        for number, start in enumerate(range(0, len(chosen), shard_size)):
            plans.append(ShardPlan(fmt.shard_name(split, slice_index, number), split, chosen[start : start + shard_size]))
    return plans


def _finished(out: Path, plan: ShardPlan) -> dict[str, Any] | None:
    """The sidecar of a finished shard of this plan; raises when it was made from other inputs."""
    tar, side = out / plan.name, fmt.sidecar_path(out / plan.name)
    if not (tar.exists() and side.exists()):
        return None
    try:
        data = read_json(side)
    except (OSError, ValueError):
        return None  # a damaged sidecar: redo the shard
    if data.get("inputs") != [v.identity for v in plan.videos] or data.get("input_labels") != [v.label for v in plan.videos]:
        raise DatasetError(
            f"{out} holds shards made from a different list of inputs or labels ({plan.name}); prepare into an empty "
            "--out (or delete this one), or pass exactly the same inputs to resume"
        )
    try:
        if tar.stat().st_size != data.get("tar_bytes"):
            return None
    except OSError:
        return None
    return data


def _remove_stale_temporaries(out: Path, slice_index: int) -> None:
    """Temporary files a killed run of this slice left behind (other slices' are theirs): its shards'
    (``.tar`` and ``.tar.json``) and its manifest's."""
    remove_stale_temporaries(out, [f"*-{slice_index:05d}-*.tar", fmt.manifest_name(slice_index)])


def _write_shard(
    out: Path, plan: ShardPlan, results: Iterator[tuple[Outcome, fmt.SampleBlock | None]], on_result: Any
) -> dict[str, Any]:
    path = out / plan.name
    outcomes: list[Outcome] = []
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            writer = fmt.ShardWriter(handle)
            for _ in plan.videos:
                outcome, block = next(results)
                if block is not None:
                    writer.add_block(block)
                    outcome.shard = plan.name
                outcomes.append(outcome)
                on_result(outcome)
            writer.close()
        tar_bytes = tmp.stat().st_size
    sidecar = {
        "format": fmt.FORMAT,
        "version": fmt.VERSION,
        "split": plan.split,
        "samples": len(writer.index),
        "keys": [entry["key"] for entry in writer.index],
        "tar_bytes": tar_bytes,
        "inputs": [v.identity for v in plan.videos],
        "input_labels": [v.label for v in plan.videos],
        "outcomes": [o.to_dict() for o in outcomes],
        "index": writer.index,
    }
    write_json(fmt.sidecar_path(path), sidecar)
    return sidecar


def prepare(
    inputs: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    *,
    labels: str | os.PathLike[str] | None = None,
    classes: ClassList | str | os.PathLike[str] | None = None,
    config: PrepareConfig = PrepareConfig(),
    workers: int = 1,
    num_shards: int = 1,
    shard_index: int = 0,
    progress: bool = True,
) -> PrepareSummary:
    """Prepare videos into shards in ``out``; return what was done (see the module docstring).

    ``num_shards``/``shard_index`` select one slice of the inputs (by a hash of each video's
    identity), so ``num_shards`` machines can each run one ``shard_index`` into the same ``out``.
    Bad inputs are skipped and recorded in the manifest with the reason.

    ``classes`` (needs ``labels``): keep only videos whose label is listed (a ClassList, a file of
    names, or ``"kinetics-sounds"``); a listed class in no row of the labels gives a warning.

    Four stages: discover the inputs (and their labels), plan (splits, this slice's videos, shards),
    write the shards not already finished, finalize (the summary and the slice's manifest).
    """
    config.validate()
    if num_shards < 1 or not 0 <= shard_index < num_shards:
        raise InputError(f"--shard-index must be in [0, --num-shards), got {shard_index} of {num_shards}")
    if workers < 1:
        raise InputError(f"--workers must be at least 1, got {workers}")
    if not inputs:
        raise InputError("no inputs given")
    if classes is not None and labels is None:
        raise InputError("--classes needs --labels (the classes of the videos come from the labels file)")
    class_list = classes if isinstance(classes, ClassList) or classes is None else resolve_classes(classes)
    out = Path(out)

    found = _discover(inputs, labels, class_list)

    planned, split_counts, hashed = _assign_splits(found, config.normalised_ratios, class_list)
    ensure_dir(out)
    _check_or_write_dataset(out, _dataset_description(config, found.class_names, split_counts, hashed, class_list))
    _remove_stale_temporaries(out, shard_index)
    videos, unplanned = _slice_videos(planned, class_list, num_shards, shard_index)
    plans = plan_shards(videos, config.shard_size, shard_index)
    done = {plan.name: sidecar for plan in plans if (sidecar := _finished(out, plan)) is not None}

    written = _write_shards(out, [p for p in plans if p.name not in done], config, workers, progress)

    summary = _summarise(out, shard_index, plans, done, written, unplanned, found)
    with atomic_open(summary.manifest, "w", encoding="utf-8") as handle:
        for outcome in summary.outcomes:
            handle.write(json.dumps(outcome.to_dict(), sort_keys=True) + "\n")
    return summary


@dataclass
class _Found:
    """The media files given (path, identity) and what the labels file says of them."""

    files: list[tuple[Path, str]]
    labels: dict[Path, LabelRow] | None  # None: no labels file
    class_names: list[str] | None  # the classes kept, sorted (None: no labels)
    absent: list[str]  # listed by --classes, in no row of the labels
    rows_by_name: dict[str, LabelRow]  # rows whose file name is unique, for CSVs written elsewhere

    def row_of(self, path: Path) -> LabelRow | None:
        if self.labels is None:
            return None
        # a CSV written elsewhere: match by file name when that is unambiguous
        return self.labels.get(path.resolve()) or self.rows_by_name.get(path.name)


def _discover(inputs: Sequence[str | os.PathLike[str]], labels: str | os.PathLike[str] | None,
              class_list: ClassList | None) -> _Found:
    """Stage 1: the media files under ``inputs`` and the labels file's rows and classes."""
    files = collect_inputs(inputs)
    if not files:
        raise DatasetError(f"no media files found in {', '.join(str(i) for i in inputs)}")
    if labels is None:
        return _Found(files, None, None, [], {})
    label_map = read_labels(labels)
    absent: list[str] = []
    if class_list is not None:
        absent = class_list.absent_from(row.label for row in label_map.values())
        if absent:
            warnings.warn(_absent_warning(absent).removeprefix("warning: "), stacklevel=3)
    class_names = sorted({r.label for r in label_map.values() if class_list is None or class_list.listed_as(r.label)})
    names = Counter(p.name for p in label_map)
    rows_by_name = {p.name: r for p, r in label_map.items() if names[p.name] == 1}
    return _Found(files, label_map, class_names, absent, rows_by_name)


#: A planned input: path, identity, key, split, its labels row.
_Planned = tuple[Path, str, str, str, "LabelRow | None"]


def _assign_splits(found: _Found, ratios: dict[str, float], class_list: ClassList | None,
                   ) -> tuple[list[_Planned], Counter | None, int]:
    """Stage 2a: every input's key and split (the labels file's, else by the hash of its key).

    Also, when the labels file has a split column, the kept inputs per split over all slices (the
    same in each) and how many of them had no split there (split by the hash).
    """
    published = found.labels is not None and any(r.split is not None for r in found.labels.values())
    split_counts: Counter | None = Counter() if published else None
    hashed = 0
    planned: list[_Planned] = []
    seen_keys: set[str] = set()
    for path, identity in found.files:
        key, row = video_key(identity), found.row_of(path)
        split = row.split if row is not None and row.split is not None else assign_split(key, ratios)
        planned.append((path, identity, key, split, row))
        kept_class = class_list is None or (row is not None and class_list.listed_as(row.label) is not None)
        if split_counts is not None and kept_class and key not in seen_keys:  # over all slices: same in each
            seen_keys.add(key)
            split_counts[split] += 1
            hashed += row is None or row.split is None
    return planned, split_counts, hashed


def _slice_videos(planned: list[_Planned], class_list: ClassList | None, num_shards: int, shard_index: int,
                  ) -> tuple[list[InputVideo], list[Outcome]]:
    """Stage 2b: this slice's videos to decode, and its inputs skipped before decoding (duplicates,
    classes not kept)."""
    seen: dict[str, str] = {}
    videos: list[InputVideo] = []
    unplanned: list[Outcome] = []
    for path, identity, key, split, row in planned:
        if assign_slice(key, num_shards) != shard_index:
            continue
        if key in seen:
            unplanned.append(Outcome(identity, str(path), "skipped", REASON_DUPLICATE, f"same identity as {seen[key]}"))
            continue
        seen[key] = str(path)
        label = row.label if row is not None else None
        if class_list is not None and (label is None or class_list.listed_as(label) is None):
            detail = f"{label!r} is not in {class_list.source}" if label is not None else "no row in the labels file"
            unplanned.append(Outcome(identity, str(path), "skipped", REASON_CLASS_NOT_KEPT, detail, key=key, label=label))
            continue
        videos.append(InputVideo(path, identity, key, split, shard_index, label))
    return videos, unplanned


def _write_shards(out: Path, todo: list[ShardPlan], config: PrepareConfig, workers: int, progress: bool,
                  ) -> dict[str, dict[str, Any]]:
    """Stage 3: decode the videos of the shards in ``todo`` (in ``workers`` processes) and write each
    shard and its sidecar; the sidecars by shard name."""
    parallel = workers > 1 and sum(len(p.videos) for p in todo) > 1
    tasks = [(v, config, 1 if parallel else None) for p in todo for v in p.videos]

    bar = tqdm(total=len(tasks), unit="video", desc="prepare", disable=not progress, file=sys.stderr, dynamic_ncols=True)
    skipped_live: Counter = Counter()

    def on_result(outcome: Outcome) -> None:
        if outcome.status == "skipped":
            skipped_live[outcome.reason] += 1
            bar.set_postfix(skipped=sum(skipped_live.values()), refresh=False)
        bar.update()

    written: dict[str, dict[str, Any]] = {}
    pool = None
    try:
        if parallel:
            # The JPEG encoder's plugin, loaded once here rather than in every forked worker. (Not
            # Image.init(): that imports every format plugin, ~0.3 s, which JPEG does not need.)
            Image.preinit()
            pool = worker_pool(min(workers, len(tasks)))
            results: Iterator = pool.imap(_process_task, tasks, chunksize=1)
        else:
            results = map(_process_task, tasks)
        for plan in todo:
            written[plan.name] = _write_shard(out, plan, results, on_result)
    finally:
        bar.close()
        if pool is not None:
            pool.terminate()
            pool.join()
    return written


def _summarise(out: Path, shard_index: int, plans: list[ShardPlan], done: dict[str, dict[str, Any]],
               written: dict[str, dict[str, Any]], unplanned: list[Outcome], found: _Found) -> PrepareSummary:
    """Stage 4: the slice's summary, from the sidecars (this run's and earlier runs') and the inputs
    skipped before decoding."""
    summary = PrepareSummary(
        out=out, manifest=out / fmt.manifest_name(shard_index), kept=Counter(), hours=Counter(), shards=Counter(),
        skipped=Counter(), reused_shards=len(done), written_shards=len(written), classes=found.class_names,
        class_counts=Counter(), unlabelled=0, outcomes=[], absent_classes=found.absent,
    )
    for plan in plans:
        sidecar = done.get(plan.name) or written[plan.name]
        summary.shards[plan.split] += 1
        for entry in sidecar["outcomes"]:
            summary.outcomes.append(Outcome(**entry))
    summary.outcomes.extend(unplanned)
    summary.outcomes.sort(key=lambda o: o.source)
    for outcome in summary.outcomes:
        if outcome.status == "kept":
            summary.kept[outcome.split] += 1
            summary.hours[outcome.split] += (outcome.duration or 0.0) / 3600
            if outcome.label is not None:
                summary.class_counts[outcome.label] += 1
            elif found.labels is not None:
                summary.unlabelled += 1
        else:
            summary.skipped[outcome.reason] += 1
    return summary


def read_manifest(out: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Every manifest line of a shard directory (all slices)."""
    lines = []
    for path in sorted(Path(out).glob("manifest-*.jsonl")):
        with open(path, encoding="utf-8") as handle:
            lines.extend(json.loads(line) for line in handle if line.strip())
    return lines
