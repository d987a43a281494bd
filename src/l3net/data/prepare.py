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

This module is the recipe (:func:`prepare`: discover, plan, write, finalize); the stages' parts live
beside it: :mod:`.prepare_inputs` (settings, identities, keys, splits, labels), :mod:`.prepare_video`
(one video -> one sample, or the reason it is skipped), :mod:`.prepare_shards` (shards, sidecars,
``dataset.json``, manifests).
"""

from __future__ import annotations

import json
import os
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from ..errors import DatasetError, InputError
from ..fileio import atomic_open, ensure_dir
from . import shards as fmt
from .classes import ClassList, resolve_classes
from .prepare_inputs import (
    MEDIA_EXTENSIONS,
    SPLIT_ALIASES,
    SPLIT_FROM_HASH,
    SPLIT_FROM_LABELS,
    InputVideo,
    LabelRow,
    PrepareConfig,
    assign_slice,
    assign_split,
    collect_inputs,
    read_labels,
    video_key,
)
from .prepare_shards import (
    ShardPlan,
    check_or_write_dataset,
    dataset_description,
    finished_shard,
    plan_shards,
    read_manifest,
    remove_slice_temporaries,
    write_shards,
)
from .prepare_video import (
    REASON_CLASS_NOT_KEPT,
    REASON_DUPLICATE,
    REASON_EMPTY,
    REASON_NO_AUDIO,
    REASON_NO_VIDEO,
    REASON_NOT_MEDIA,
    REASON_TOO_SHORT,
    REASON_UNDECODABLE,
    REASONS,
    Outcome,
    Sample,
    process_video,
)

__all__ = [
    "MEDIA_EXTENSIONS", "REASONS", "REASON_CLASS_NOT_KEPT", "REASON_DUPLICATE", "REASON_EMPTY", "REASON_NOT_MEDIA",
    "REASON_NO_AUDIO", "REASON_NO_VIDEO", "REASON_TOO_SHORT", "REASON_UNDECODABLE", "SPLIT_ALIASES",
    "SPLIT_FROM_HASH", "SPLIT_FROM_LABELS", "InputVideo", "LabelRow", "Outcome", "PrepareConfig", "PrepareSummary",
    "Sample", "ShardPlan", "assign_slice", "assign_split", "collect_inputs", "plan_shards", "prepare",
    "process_video", "read_labels", "read_manifest", "video_key",
]

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
    check_or_write_dataset(out, dataset_description(config, found.class_names, split_counts, hashed, class_list))
    remove_slice_temporaries(out, shard_index)
    videos, unplanned = _slice_videos(planned, class_list, num_shards, shard_index)
    plans = plan_shards(videos, config.shard_size, shard_index)
    done = {plan.name: sidecar for plan in plans if (sidecar := finished_shard(out, plan)) is not None}

    written = write_shards(out, [p for p in plans if p.name not in done], config, workers, progress)

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
