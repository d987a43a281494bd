"""Where ``l3net prepare`` writes: the slice's shards planned per split, each written atomically with its
sidecar (tar first, sidecar last, so a killed run loses only the shards it was writing and a re-run
skips finished ones), ``dataset.json`` (the settings every slice shares) and the manifests."""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

from PIL import Image
from tqdm import tqdm

from ..config import SAMPLE_RATE
from ..errors import DatasetError
from ..fileio import atomic_path, read_json, remove_stale_temporaries, write_json
from ..runtime import worker_pool
from . import shards as fmt
from .classes import ClassList
from .prepare_inputs import SPLIT_FROM_LABELS, InputVideo, PrepareConfig
from .prepare_video import Outcome, process_task

@dataclass
class ShardPlan:
    name: str
    split: str
    videos: list[InputVideo]


def dataset_description(
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


def check_or_write_dataset(out: Path, description: dict[str, Any]) -> None:
    """Write ``dataset.json`` in ``out``, or check that the one there says the same (another slice, a
    re-run): settings that differ are refused, naming each."""
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


def finished_shard(out: Path, plan: ShardPlan) -> dict[str, Any] | None:
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


def remove_slice_temporaries(out: Path, slice_index: int) -> None:
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


def write_shards(out: Path, todo: list[ShardPlan], config: PrepareConfig, workers: int, progress: bool,
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
            results: Iterator = pool.imap(process_task, tasks, chunksize=1)
        else:
            results = map(process_task, tasks)
        for plan in todo:
            written[plan.name] = _write_shard(out, plan, results, on_result)
    finally:
        bar.close()
        if pool is not None:
            pool.terminate()
            pool.join()
    return written


def read_manifest(out: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Every manifest line of a shard directory (all slices)."""
    lines = []
    for path in sorted(Path(out).glob("manifest-*.jsonl")):
        with open(path, encoding="utf-8") as handle:
            lines.extend(json.loads(line) for line in handle if line.strip())
    return lines
