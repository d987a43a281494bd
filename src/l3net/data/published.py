"""Published dataset lists (Kinetics, VGGSound) + a folder of downloaded videos -> ``prepare``'s labels.

Kinetics (400/600/700) publishes one CSV per split with a header
``label,youtube_id,time_start,time_end,split`` (columns found by name, any order); VGGSound
publishes one header-less CSV of ``youtube_id,start_seconds,label,split`` (split train or test).
Either names each clip by its YouTube id and start second; downloaders name the files after them:

- ``{youtube_id}_{start:06d}_{end:06d}.mp4`` (Kinetics' downloader, also used for VGGSound),
- ``{youtube_id}_{start:06d}.mp4`` or ``{youtube_id}_{start}.mp4`` (VGGSound downloaders),
- ``{youtube_id}.mp4`` (one clip per id; matched when the lists name that id once).

A YouTube id is 11 characters of ``[A-Za-z0-9_-]`` (it may itself contain ``_``), so a file name is
read as those 11 characters, then ``_START`` and an optional ``_END`` in whole seconds, anywhere
below the video folder (class sub-folders are fine) and with any extension ``prepare`` reads.

:func:`match_published` returns the rows of ``prepare``'s labels CSV (``video,class,split``), the
clips listed but not found, and the files found but not listed; it writes nothing.
"""

from __future__ import annotations

import csv
import hashlib
import os
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from ..errors import DatasetError
from .prepare import MEDIA_EXTENSIONS, SPLIT_ALIASES

#: The published layouts this module reads, by the name the CLI takes.
LAYOUTS = ("kinetics", "vggsound")

#: Kinetics' header (columns found by name; ``split`` may be absent, e.g. in some test lists).
KINETICS_COLUMNS = ("label", "youtube_id", "time_start", "time_end", "split")
#: VGGSound's columns, in order (the file has no header).
VGGSOUND_COLUMNS = ("youtube_id", "start_seconds", "label", "split")

_SPLITS = ("train", "val", "test")
_FILE_NAME = re.compile(r"^(?P<id>[A-Za-z0-9_-]{11})(?:_(?P<start>\d+)(?:_(?P<end>\d+))?)?$")


@dataclass(frozen=True)
class PublishedClip:
    """One row of a published list: a clip of a YouTube video, its class and split."""

    youtube_id: str
    start: int  # the clip's start in whole seconds on the YouTube video's timeline
    label: str
    split: str | None  # train, val or test; None when the list has no split
    source: str  # "FILE, line N", for messages


@dataclass
class PublishedLabels:
    """What :func:`match_published` found. ``rows``: ``(video path relative to the labels CSV's
    folder, class, split)`` in the lists' order; ``missing``: clips with no file; ``unlisted``: media
    files that no row names; ``duplicates``: (clip, the files beyond the first that match it)."""

    rows: list[tuple[str, str, str]] = field(default_factory=list)
    missing: list[PublishedClip] = field(default_factory=list)
    unlisted: list[Path] = field(default_factory=list)
    duplicates: list[tuple[PublishedClip, list[Path]]] = field(default_factory=list)
    listed: int = 0  # rows read from the lists

    def split_counts(self) -> dict[str, int]:
        """Found videos per split."""
        counts = dict.fromkeys(_SPLITS, 0)
        for _, _, split in self.rows:
            counts[split] = counts.get(split, 0) + 1
        return counts


def _split(value: str, source: str, allowed: Sequence[str]) -> str:
    split = value.strip().lower()
    split = SPLIT_ALIASES.get(split, split)
    if split not in allowed:
        raise DatasetError(f"{source}: split {value.strip()!r} is not one of {', '.join(allowed)}")
    return split


def _seconds(value: str, source: str, column: str) -> int:
    try:
        seconds = float(value)
    except ValueError:
        raise DatasetError(f"{source}: {column} {value!r} is not a number of seconds") from None
    if not seconds >= 0:
        raise DatasetError(f"{source}: {column} {value!r} is negative")
    return int(round(seconds))


def _read_rows(path: Path) -> list[list[str]]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            return list(csv.reader(handle))
    except FileNotFoundError:
        raise DatasetError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(f"{path}: cannot read it as CSV ({exc})") from exc


def read_kinetics_csv(path: str | os.PathLike[str]) -> list[PublishedClip]:
    """The clips of one Kinetics CSV (header ``label,youtube_id,time_start,time_end,split``).

    Raises :class:`DatasetError` naming the file and line when the header or a row is not Kinetics'.
    """
    path = Path(path)
    rows = _read_rows(path)
    expected = ",".join(KINETICS_COLUMNS)
    if not rows:
        raise DatasetError(f"{path}: empty (expected Kinetics' header {expected})")
    header = [h.strip().lower() for h in rows[0]]
    needed = ("label", "youtube_id", "time_start")
    if any(name not in header for name in needed):
        raise DatasetError(
            f"{path}, line 1: expected Kinetics' header {expected} (label, youtube_id and time_start needed), "
            f"got {','.join(rows[0])!r}"
            + (" (a VGGSound list? use 'l3net labels vggsound')" if len(rows[0]) == 4 else "")
        )
    col = {name: header.index(name) for name in KINETICS_COLUMNS if name in header}
    clips = []
    for line, row in enumerate(rows[1:], start=2):
        if not row or all(not c.strip() for c in row):
            continue
        source = f"{path}, line {line}"
        if len(row) != len(header):
            raise DatasetError(f"{source}: expected {len(header)} fields ({','.join(rows[0])}), got {len(row)}: {row}")
        label = row[col["label"]].strip()
        youtube_id = row[col["youtube_id"]].strip()
        if not label or not youtube_id:
            raise DatasetError(f"{source}: a label and a youtube_id are needed, got {row}")
        split = _split(row[col["split"]], source, _SPLITS) if "split" in col else None
        clips.append(PublishedClip(youtube_id, _seconds(row[col["time_start"]], source, "time_start"), label, split, source))
    return clips


def read_vggsound_csv(path: str | os.PathLike[str]) -> list[PublishedClip]:
    """The clips of VGGSound's CSV (no header; ``youtube_id,start_seconds,label,split``, split train
    or test). Raises :class:`DatasetError` naming the file and line when a row is not in that layout."""
    path = Path(path)
    rows = _read_rows(path)
    if not rows:
        raise DatasetError(f"{path}: empty (expected rows of {','.join(VGGSOUND_COLUMNS)}, no header)")
    clips = []
    for line, row in enumerate(rows, start=1):
        if not row or all(not c.strip() for c in row):
            continue
        source = f"{path}, line {line}"
        if len(row) != len(VGGSOUND_COLUMNS):
            hint = " (a Kinetics list? use 'l3net labels kinetics')" if len(row) == 5 else ""
            raise DatasetError(
                f"{source}: expected VGGSound's 4 fields {','.join(VGGSOUND_COLUMNS)} (no header), got {len(row)}: {row}{hint}"
            )
        youtube_id, start, label, split = (c.strip() for c in row)
        if line == 1 and start.lower() in ("start_seconds", "start", "time_start"):
            raise DatasetError(f"{source}: VGGSound's CSV has no header; got the header {row} (remove it)")
        if not label or not youtube_id:
            raise DatasetError(f"{source}: a youtube_id and a label are needed, got {row}")
        clips.append(PublishedClip(youtube_id, _seconds(start, source, "start_seconds"), label, _split(split, source, ("train", "test")), source))
    return clips


def read_published(layout: str, paths: Iterable[str | os.PathLike[str]]) -> list[PublishedClip]:
    """The clips of one or more published CSVs of ``layout`` (``kinetics`` or ``vggsound``)."""
    readers = {"kinetics": read_kinetics_csv, "vggsound": read_vggsound_csv}
    if layout not in readers:
        raise DatasetError(f"unknown published layout {layout!r} (expected one of {', '.join(LAYOUTS)})")
    clips: list[PublishedClip] = []
    for path in paths:
        clips.extend(readers[layout](path))
    return clips


def find_video_files(directory: str | os.PathLike[str]) -> dict[tuple[str, int | None], list[Path]]:
    """Media files below ``directory`` named after a clip -> {(youtube id, start s or None): files},
    files sorted by path. Files whose names do not parse are returned under the key ``("", None)``."""
    directory = Path(directory)
    if not directory.is_dir():
        raise DatasetError(f"{directory}: not a directory of videos")
    found: dict[tuple[str, int | None], list[Path]] = defaultdict(list)
    for root, dirs, files in os.walk(directory):
        dirs.sort()
        for name in sorted(files):
            path = Path(root) / name
            if path.suffix.lower() not in MEDIA_EXTENSIONS or name.startswith("."):
                continue
            match = _FILE_NAME.match(path.stem)
            if match is None:
                found[("", None)].append(path)
            else:
                start = match.group("start")
                found[(match.group("id"), int(start) if start is not None else None)].append(path)
    return found


def held_out_for_val(youtube_id: str, fraction: float) -> bool:
    """Whether a training clip goes to val when ``fraction`` of them is held out: a stable hash of
    its YouTube id (the same every run, and the same for every clip of one YouTube video)."""
    digest = hashlib.sha1(f"val:{youtube_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


def match_published(
    clips: Sequence[PublishedClip],
    videos: str | os.PathLike[str],
    labels_dir: str | os.PathLike[str],
    val_fraction: float = 0.0,
) -> PublishedLabels:
    """Match published ``clips`` with the files below ``videos``; paths in the rows are relative
    to ``labels_dir`` (the folder the labels CSV will be written to, as ``prepare`` reads them).

    A clip is found by its file ``ID_START[_END].ext``, or ``ID.ext`` when the lists name ID once.
    Clips without a split (a Kinetics list without that column) get an empty split (prepare's hash).
    ``val_fraction`` (0-1) of the training clips, chosen by :func:`held_out_for_val`, become val:
    VGGSound publishes no val split, and ``l3net train`` needs one.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise DatasetError(f"the fraction of training clips held out for val must be in [0, 1), got {val_fraction}")
    files = find_video_files(videos)
    labels_dir = Path(labels_dir).resolve()
    ids = defaultdict(int)
    for clip in clips:
        ids[clip.youtube_id] += 1
    result = PublishedLabels(listed=len(clips))
    used: set[tuple[str, int | None]] = set()
    for clip in clips:
        key: tuple[str, int | None] = (clip.youtube_id, clip.start)
        if key not in files and ids[clip.youtube_id] == 1 and (clip.youtube_id, None) in files:
            key = (clip.youtube_id, None)
        paths = files.get(key)
        if not paths or key in used:
            if not paths:
                result.missing.append(clip)
            continue  # a clip listed twice (same id and start) gets one row
        used.add(key)
        if len(paths) > 1:
            result.duplicates.append((clip, paths[1:]))
        relative = os.path.relpath(paths[0].resolve(), labels_dir)
        split = clip.split or ""
        if split == "train" and held_out_for_val(clip.youtube_id, val_fraction):
            split = "val"
        result.rows.append((Path(relative).as_posix(), clip.label, split))
    for key, paths in sorted(files.items(), key=lambda item: (item[0][0], item[0][1] or -1)):
        if key not in used:
            result.unlisted.extend(paths)
    result.unlisted.sort()
    return result
