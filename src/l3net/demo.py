"""``l3net demo``: the whole method in one command, offline, in minutes on a laptop CPU.

A synthetic audio-visual world (:mod:`l3net.data.synth`) is prepared into shards
(:mod:`l3net.data.prepare`), the small preset learns audio-visual correspondence on it
(:mod:`l3net.train`), and the trained network is evaluated: AVC accuracy on the test split against
chance (Table 1), k-means clustering of its embeddings against the classes it was never told
(Table 4), and a picture of where it hears the sound in a test video. Everything lands in one
folder::

    DEMO/world/       the synthetic videos, labels.csv, ground-truth boxes
    DEMO/shards/      the prepared shards
    DEMO/run/         the training run (best model, last/, checkpoint/, log.jsonl, tb/),
                      its eval/ results (avc, cluster) and report.html
    DEMO/localize/    heatmaps of the sound source over a test video (PNGs and an MP4)
    DEMO/localization.png, DEMO/summary.json

Every stage picks up what an interrupted demo left (videos, finished shards, the training
checkpoint), so running the same command again continues it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from .config import get_preset
from .errors import InputError
from .fileio import atomic_path, ensure_dir, write_json

PRESET = "small"


@dataclass(frozen=True)
class DemoConfig:
    """Settings of the demo; the defaults finish in about 12 minutes on a 2-core CPU.

    World: ``videos`` videos of ``seconds`` s, ``size`` px, ``classes`` classes. Training: the
    small preset, ``steps`` Adam steps of ``batch_size`` pairs at learning rate ``lr`` (higher than
    the paper's 1e-4: the run is 2000 times shorter) decaying along a cosine to 0 (``lr_schedule``),
    validated every ``val_every`` steps. Measured with these defaults (seed 0, 2-core AMD EPYC):
    12 min 6 s, test AVC accuracy 77.3 % on 600 pairs (README.md).
    """

    videos: int = 360
    classes: int = 10
    seconds: float = 6.0
    size: int = 128
    steps: int = 900
    batch_size: int = 32
    lr: float = 1e-3
    lr_schedule: str = "cosine"
    val_every: int = 100
    seed: int = 0
    workers: int = 2  # processes for synthesis and preparation
    device: str = "auto"


@dataclass
class DemoResult:
    """The demo's folder and its headline numbers (accuracies in [0, 1])."""

    out_dir: Path
    test_accuracy: float
    best_val_accuracy: float | None
    nmi: dict[str, dict[str, float]]
    localization_picture: Path | None
    seconds: float
    summary: dict[str, Any]


def run_demo(
    out_dir: str | os.PathLike[str],
    config: DemoConfig = DemoConfig(),
    *,
    progress: bool = True,
    on_stage: Callable[[str], None] | None = None,
) -> DemoResult:
    """Run the demo into ``out_dir`` (see the module doc) and return its numbers.

    ``on_stage(message)`` is told when each of the five stages starts (and of warnings). The recipe:
    the five stages, one function each, timed; then the summary."""
    from .localize import localize_video
    from .report import write_report

    stage = on_stage or (lambda message: None)
    started = time.perf_counter()
    check_demo_dir(out_dir)
    out = ensure_dir(out_dir)
    timings: dict[str, float] = {}
    clock = _Clock(timings)

    with clock("synth"):
        stage(f"1/5 synthesising {config.videos} videos of {config.classes} classes ({config.seconds:g} s, "
              f"{config.size} px) into {out / 'world'}")
        world = _synthesise(out, config, progress)
    with clock("prepare"):
        stage(f"2/5 preparing the videos into shards in {out / 'shards'}")
        shards, counts = _prepare_shards(world, out, config, progress)
    with clock("train"):
        run_dir = out / "run"
        stage(f"3/5 training the {PRESET} preset for {config.steps} steps of {config.batch_size} pairs in {run_dir}")
        trained, pairs_per_s = _train(out, run_dir, config, progress)
    with clock("evaluate"):
        stage("4/5 evaluating: AVC accuracy on the test split, k-means clustering of the embeddings")
        model, avc, cluster = _evaluate(run_dir, shards, config, progress)
    with clock("localize_and_report"):
        stage(f"5/5 localizing the sound in a test video into {out / 'localize'}")
        picture = _localization_picture(model, shards, out, localize_video, progress, stage)
        report = write_report(run_dir, title="l3net demo: L3-Net on a synthetic audio-visual world")

    elapsed = time.perf_counter() - started
    summary = _summary(out, config, counts, shards.classes, trained, pairs_per_s, avc.metrics, cluster.metrics,
                       picture, report.path, timings, elapsed)
    write_json(out / "summary.json", summary)
    return DemoResult(out, avc.metrics["accuracy"], trained.best_accuracy, cluster.metrics["nmi"], picture, elapsed,
                      summary)


class _Clock:
    """``with clock(name):`` adds the block's wall time (s) to ``timings[name]``."""

    def __init__(self, timings: dict[str, float]) -> None:
        self.timings = timings

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        yield
        self.timings[name] = time.perf_counter() - start


def _synthesise(out: Path, config: DemoConfig, progress: bool) -> Path:
    """Stage 1: a synthetic world whose classes pair an object with a sound (labels used only to evaluate)."""
    from .data.synth import WorldConfig, make_world

    world_config = WorldConfig(videos=config.videos, classes=config.classes, seconds=config.seconds,
                               size=config.size, seed=config.seed)
    return make_world(out / "world", world_config, workers=config.workers, progress=progress)


def _prepare_shards(world: Path, out: Path, config: DemoConfig, progress: bool) -> tuple[Any, dict[str, int]]:
    """Stage 2: videos -> shards, frames at the small preset's size; the shards and videos per split."""
    from .data.prepare import PrepareConfig, prepare
    from .data.shards import ShardSet

    prepare_config = PrepareConfig(seconds=config.seconds, frame_size=get_preset(PRESET).image_resize,
                                   split_ratios=(0.7, 0.15, 0.15), shard_size=32)
    prepare([world / "videos"], out / "shards", labels=world / "labels.csv", config=prepare_config,
            workers=config.workers, progress=progress)
    shards = ShardSet(out / "shards")
    counts = {split: len(shards.videos(split)) for split in ("train", "val", "test")}
    if min(counts.values()) < 2:
        raise InputError(
            f"the world is too small: its videos fell {counts['train']} / {counts['val']} / {counts['test']} into "
            "train / val / test, and each split needs at least 2; use more --videos"
        )
    return shards, counts


def _train(out: Path, run_dir: Path, config: DemoConfig, progress: bool) -> tuple[Any, float | None]:
    """Stage 3: train the small preset on the correspondence task (resumes an interrupted demo); the
    run's state and its mean training speed (pairs/s, None when the log has none)."""
    from .train import TrainConfig, read_log, train

    train_config = TrainConfig(
        data=str(out / "shards"), out=str(run_dir), preset=PRESET, batch_size=config.batch_size, lr=config.lr,
        lr_schedule=config.lr_schedule, steps=config.steps, val_every=config.val_every, save_every=config.val_every,
        log_every=10, seed=config.seed, device=config.device,
    )
    trained = train(train_config, resume=True, progress=progress)
    records = [r for r in read_log(run_dir) if r["event"] == "train" and r.get("pairs_per_s")]
    pairs_per_s = (sum(r["pairs_per_s"] for r in records) / len(records)) if records else None
    return trained, pairs_per_s


def _evaluate(run_dir: Path, shards: Any, config: DemoConfig, progress: bool) -> tuple[Any, Any, Any]:
    """Stage 4: the best model's AVC accuracy on the test pairs, then the clustering of its embeddings,
    each written to RUN/eval/; returns the model and the two results."""
    from .evaluate.avc import AVCConfig, evaluate_avc
    from .evaluate.cluster import ClusterConfig, evaluate_clustering
    from .evaluate.result import write_result
    from .models import load_model
    from .runtime import resolve_device

    model = load_model(run_dir, device=resolve_device(config.device))
    eval_dir = ensure_dir(run_dir / "eval")
    avc = evaluate_avc(model, shards, AVCConfig(split="test", progress=progress))
    write_result(eval_dir, avc)
    cluster = evaluate_clustering(model, shards, ClusterConfig(split="test", k=config.classes, seed=config.seed,
                                                               progress=progress))
    write_result(eval_dir, cluster)
    return model, avc, cluster


def _summary(
    out: Path, config: DemoConfig, counts: dict[str, int], classes: Any, trained: Any, pairs_per_s: float | None,
    avc: dict[str, Any], cluster: dict[str, Any], picture: Path | None, report: Path, timings: dict[str, float],
    elapsed: float,
) -> dict[str, Any]:
    """The contents of DEMO/summary.json (``avc`` and ``cluster``: the two results' metrics)."""
    from .evaluate import paper

    return {
        "out_dir": str(out),
        "config": dataclasses.asdict(config),
        "videos": counts,
        "classes": classes,
        "train": {
            "steps": trained.step,
            "pairs": trained.pairs_seen,
            "best_val_accuracy": trained.best_accuracy,
            "best_step": trained.best_step,
            "pairs_per_s": pairs_per_s,
        },
        "test_avc_accuracy": avc["accuracy"],
        "test_pairs": avc["pairs"],
        "chance": paper.AVC_CHANCE,
        "paper_avc_accuracy": {name: values["L3-Net"] for name, values in paper.AVC.items()},
        "nmi": cluster["nmi"],
        "cluster_k": cluster["k"],
        "localization_picture": str(picture) if picture else None,
        "report": str(report),
        "seconds": {**{k: round(v, 1) for k, v in timings.items()}, "total": round(elapsed, 1)},
    }


def _localization_picture(
    model: Any, shards: Any, out: Path, localize_video: Any, progress: bool, _stage: Callable[[str], None]
) -> Path | None:
    """Heatmaps over the first test video; its middle frame's overlay becomes DEMO/localization.png."""
    videos = [v for v in shards.videos("test") if Path(v.meta.get("path", "")).is_file()]
    if not videos:
        _stage("warning: no test video is readable any more; skipping the localization picture")
        return None
    video = videos[0]
    result = localize_video(model, video.meta["path"], out / "localize", max_seconds=4.0, progress=progress,
                            model_name="demo (small preset)")
    if not result.overlay_paths:
        return None
    chosen = result.overlay_paths[len(result.overlay_paths) // 2]
    picture = out / "localization.png"
    with atomic_path(picture, suffix=".png") as tmp:
        shutil.copyfile(chosen, tmp)
    return picture


def check_demo_dir(out_dir: str | os.PathLike[str]) -> None:
    """Refuse a folder that holds something other than an earlier demo (the demo writes into it)."""
    out = Path(out_dir)
    if not out.exists():
        return
    if not out.is_dir():
        raise InputError(f"--out {out} is a file, not a folder")
    ours = {"world", "shards", "run", "localize", "localization.png", "summary.json"}
    foreign = sorted(p.name for p in out.iterdir() if p.name not in ours and not p.name.startswith("."))
    if foreign:
        raise InputError(
            f"--out {out} already holds other files ({', '.join(foreign[:5])}); "
            "give the demo a new or empty folder (or the folder of an earlier demo, to continue it)"
        )
