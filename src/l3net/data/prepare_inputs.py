"""The inputs of ``l3net prepare``: its settings (:class:`PrepareConfig`), the media files given, a
video's identity, key, split and slice (see :mod:`l3net.data.prepare` for the rules), and the labels
CSV."""

from __future__ import annotations

import csv
import hashlib
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ..config import CLIP_SECONDS
from ..errors import DatasetError, InputError
from . import shards as fmt

#: File extensions looked at inside input directories (named files are always tried).
MEDIA_EXTENSIONS = frozenset(
    ".mp4 .m4v .mov .mkv .webm .avi .flv .wmv .asf .mpg .mpeg .m2v .ts .mts .m2ts .3gp .3g2 .ogv .ogg .ogm "
    ".vob .mxf .dv .gif .m4a .mp3 .wav .flac .opus .aac .oga .wma".split()
)

#: Where a video's split came from (dataset.json ``split_source``).
SPLIT_FROM_HASH = "hash"
SPLIT_FROM_LABELS = "labels"
#: Other spellings of a split accepted in a labels CSV's ``split`` column (after lower-casing).
SPLIT_ALIASES = {"validation": "val", "validate": "val", "valid": "val"}


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
