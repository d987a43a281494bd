"""Training L3-Net on the audio-visual correspondence task (paper section 4): ``l3net train``.

The loop reads top to bottom like a torchtune recipe: :class:`Trainer` sets up (processes, run
directory, model, optimizer, data), then :meth:`Trainer.train` runs the step, validates, saves and
logs. Everything a resumed run needs is one :class:`TrainState`, written atomically to
``RUN_DIR/checkpoint/state.pt`` and restored as a whole, so ``--resume`` after ``kill -9`` loses at
most the steps since the last save, and on the CPU ends with exactly the parameters of an
uninterrupted run.

One entry point for the CPU, one GPU and ``torchrun`` (DDP; see :mod:`l3net.distributed`): the global
batch is split over the processes, each reads its own part of the data, only rank 0 writes.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import random
import sys
import time
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from . import distributed
from ._version import __version__
from .checkpoint import SavedCheckpoint, check_fingerprint, read_checkpoint, save_checkpoint
from .config import PAPER_BATCH_SIZE, PAPER_LR, PAPER_PAIRS, PAPER_WEIGHT_DECAY, PRESETS, ModelConfig, get_preset
from .distributed import World
from .errors import DatasetError, InputError, L3NetError, OutputError
from .fileio import atomic_open, ensure_dir, read_jsonl, remove_stale_temporaries
from .models import CONFIG_FILE, WEIGHTS_FILE, L3Net, build_model
from .rundir import CHECKPOINT_DIR, CHECKPOINT_FILE, LAST_DIR, LOG_FILE, TB_DIR
from .runtime import (
    PRECISIONS,
    autocast,
    check_shared_memory,
    default_workers,
    loader_prefetch,
    optimizer_step,
    synchronize,
    training_math,
)

#: The loop's name in its checkpoint (l3net.checkpoint): another loop's checkpoint is refused.
CHECKPOINT_KIND = "train"

#: Settings that define the run: a resumed run must keep them, or it would be another run.
#: Learning-rate schedules: the paper's constant rate, or a cosine decay to 0 over the run (short runs,
#: such as the demo's, end better with it). Resuming with a larger --steps stretches the cosine.
LR_SCHEDULES = ("constant", "cosine")
RESUME_FIXED = ("preset", "batch_size", "lr", "lr_schedule", "weight_decay", "precision", "seed", "sync_bn", "augment", "workers")


class NonFiniteLossError(L3NetError):
    """The loss became NaN or infinite; the run stopped without saving the broken weights."""


def init_towers(model: L3Net, source: str) -> None:
    """Copy both towers of the model ``source`` names (a model directory, ``openl3:NAME``) into
    ``model``, in place; its head stays as built. The two must share the architecture."""
    from .modelspec import load_model  # any spec: a directory or openl3:NAME

    trained = load_model(source)
    trained.require("vision", "audio")
    mine = dataclasses.replace(model.config, name="", head_hidden=0)
    theirs = dataclasses.replace(trained.config, name="", head_hidden=0)
    if mine != theirs:
        differ = [f.name for f in dataclasses.fields(mine) if getattr(mine, f.name) != getattr(theirs, f.name)]
        raise InputError(
            f"--init-from {source}: its towers are a '{trained.config.name}' network, not '{model.config.name}' "
            f"(they differ in {', '.join(differ)}); train with --preset {trained.config.name}"
        )
    for part in ("vision", "audio"):
        getattr(model, part).load_state_dict(getattr(trained, part).state_dict())


@dataclass
class TrainConfig:
    """Everything that defines a training run (saved in the run's ``config.json`` under ``"train"``).

    Defaults are the paper's (PAPER_SPEC 4): Adam, learning rate 1e-4, weight decay 1e-5, global
    batch 256 pairs, 60 M pairs. ``steps`` wins over ``pairs`` when both are given.
    """

    data: str
    out: str
    preset: str = "paper"
    batch_size: int = PAPER_BATCH_SIZE  # global: split over the processes
    lr: float = PAPER_LR
    lr_schedule: str = "constant"  # the paper's; "cosine": decay to 0 over the run's steps
    weight_decay: float = PAPER_WEIGHT_DECAY
    steps: int | None = None
    pairs: int | None = None  # None and no steps: PAPER_PAIRS
    val_every: int = 1000  # steps; 0: validate only at the end
    save_every: int = 1000  # steps between checkpoints
    log_every: int = 10  # steps between log lines (each one synchronises with the device)
    val_pairs: int | None = None  # use only the first N of the val split's fixed pairs (None: all)
    precision: str = "fp32"
    compile: bool = False
    channels_last: bool = False
    workers: int | None = None  # data loader processes per rank (part of the pair stream); None: by device
    seed: int = 0
    device: str = "auto"
    sync_bn: bool = False
    augment: dict[str, Any] | None = None  # AugmentConfig fields; None: the sampler's defaults
    init_from: str | None = None  # a model directory (or openl3:NAME) whose towers start the run; new head

    @property
    def total_steps(self) -> int:
        if self.steps is not None:
            return self.steps
        return math.ceil((self.pairs if self.pairs is not None else PAPER_PAIRS) / self.batch_size)

    def validate(self) -> None:
        """Raise :class:`InputError` naming the first setting that cannot work."""
        if self.preset not in PRESETS:
            raise InputError(f"unknown preset {self.preset!r}; available: {', '.join(sorted(PRESETS))}")
        positive = {"batch_size": self.batch_size, "log_every": self.log_every, "save_every": self.save_every}
        if self.steps is not None:
            positive["steps"] = self.steps
        if self.pairs is not None:
            positive["pairs"] = self.pairs
        if self.val_pairs is not None:
            positive["val_pairs"] = self.val_pairs
        for name, value in positive.items():
            if value <= 0:
                raise InputError(f"--{name.replace('_', '-')} must be positive, got {value}")
        if self.val_every < 0:
            raise InputError(f"--val-every must be >= 0, got {self.val_every}")
        if self.workers is not None and self.workers < 0:
            raise InputError(f"--workers must be >= 0, got {self.workers}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise InputError(f"--lr must be a positive number, got {self.lr}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise InputError(f"--lr-schedule must be one of {', '.join(LR_SCHEDULES)}, got {self.lr_schedule!r}")
        if not (self.weight_decay >= 0 and math.isfinite(self.weight_decay)):
            raise InputError(f"--weight-decay must be >= 0, got {self.weight_decay}")
        if self.precision not in PRECISIONS:
            raise InputError(f"--precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.sync_bn and self.compile:
            raise InputError(
                "--sync-bn cannot be combined with --compile: SyncBatchNorm breaks the compiled graph at each "
                "of its layers and waits for the host there (its statistics cross the processes outside the "
                "graph), so the step would be slower than not compiling; choose one of the two"
            )

    def lr_at(self, step: int) -> float:
        """The learning rate of the step that follows ``step`` completed steps.

        A pure function of the step, so a resumed run follows the same schedule exactly.
        """
        if self.lr_schedule == "cosine":
            return self.lr * 0.5 * (1.0 + math.cos(math.pi * min(step, self.total_steps) / self.total_steps))
        return self.lr

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class TrainResult:
    """What a finished (or already complete) run reports."""

    run_dir: Path
    step: int
    pairs_seen: int
    best_accuracy: float | None
    best_step: int | None
    last_accuracy: float | None
    pairs_per_s: float | None  # mean training throughput of this process's steps, all ranks together
    data_wait_fraction: float | None  # share of that time spent waiting for the data loader


# ---------------------------------------------------------------------------------------------
# The state that survives a crash
# ---------------------------------------------------------------------------------------------


def rng_state() -> dict[str, Any]:
    """This process's random generators (python, numpy, torch CPU and CUDA), as plain tensors."""
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {
            "key": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Inverse of :func:`rng_state`."""
    random.setstate(_as_tuples(state["python"]))
    n = state["numpy"]
    np.random.set_state(("MT19937", n["key"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def _as_tuples(value: Any) -> Any:
    # random.setstate wants tuples; a checkpoint may hand back lists.
    return tuple(_as_tuples(v) for v in value) if isinstance(value, (list, tuple)) else value


@dataclass
class TrainState:
    """Everything that must survive a crash, saved and restored as a whole.

    The data position is ``step``: the pair sampler is a pure function of (seed, rank, world size,
    step), so a resumed sampler starts at ``start_step=step`` and continues the same stream.
    """

    model: L3Net
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    step: int = 0
    pairs_seen: int = 0
    best_accuracy: float | None = None
    best_step: int | None = None
    elapsed_s: float = 0.0  # training wall time of earlier processes of this run

    def state_dict(self, rng_per_rank: list[dict[str, Any]], run: Mapping[str, Any]) -> dict[str, Any]:
        """Plain tensors, numbers and strings only, so loading unpickles nothing arbitrary."""
        return {
            "step": self.step,
            "pairs_seen": self.pairs_seen,
            "best_accuracy": self.best_accuracy,
            "best_step": self.best_step,
            "elapsed_s": self.elapsed_s,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": rng_per_rank,
            "run": json.dumps(run),  # the TrainConfig and identity of the run (--resume takes its options)
        }

    def load_state_dict(self, checkpoint: Mapping[str, Any], rank: int) -> None:
        self.model.load_state_dict(checkpoint["model"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.scaler.load_state_dict(checkpoint["scaler"])
        self.step = int(checkpoint["step"])
        self.pairs_seen = int(checkpoint["pairs_seen"])
        self.best_accuracy = checkpoint["best_accuracy"]
        self.best_step = checkpoint["best_step"]
        self.elapsed_s = float(checkpoint["elapsed_s"])
        set_rng_state(checkpoint["rng"][rank])


def checkpoint_path(run_dir: str | os.PathLike[str]) -> Path:
    return Path(run_dir) / CHECKPOINT_DIR / CHECKPOINT_FILE


def read_run_checkpoint(run_dir: str | os.PathLike[str]) -> SavedCheckpoint:
    """The checkpoint of a run directory (:mod:`l3net.checkpoint`; tensors on the CPU)."""
    path = checkpoint_path(run_dir)
    if not path.is_file():
        raise InputError(f"{run_dir}: no training checkpoint ({path.relative_to(run_dir)} is missing)")
    return read_checkpoint(path, CHECKPOINT_KIND)


def load_checkpoint(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The saved training state of a run directory (:meth:`TrainState.state_dict`, with ``"run"``, the
    run's description, as a dict; tensors on the CPU; nothing arbitrary unpickled)."""
    state = read_run_checkpoint(run_dir).state
    state["run"] = json.loads(state["run"])
    return state


def resume_config(out: str | os.PathLike[str], **given: Any) -> TrainConfig:
    """The config of the run in ``out``, with the settings in ``given`` changed (for ``--resume``).

    Whatever the command line leaves out is taken from the run, so ``l3net train --out RUN --resume``
    continues it as it was. Changing a setting that defines the run is refused later, with the reason.
    """
    saved = load_checkpoint(out)["run"]["train"]
    saved.update(given)
    saved["out"] = str(out)
    return TrainConfig.from_dict(saved)


# ---------------------------------------------------------------------------------------------
# Logging: log.jsonl, TensorBoard, the console
# ---------------------------------------------------------------------------------------------


def _summary_writer(log_dir: Path, purge_step: int | None) -> Any:
    # TensorBoard only needs its own stub of TensorFlow to write scalars; without this hint it
    # imports a full TensorFlow when one is installed (~10 s and ~1 GB) for nothing.
    sys.modules.setdefault("tensorboard.compat.notf", types.ModuleType("tensorboard.compat.notf"))
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(str(log_dir), purge_step=purge_step, flush_secs=30)


class RunLog:
    """``log.jsonl`` (one JSON object per line, flushed as written) plus TensorBoard scalars.

    Only rank 0 has one. On resume, lines and events after the checkpoint's step are dropped first,
    so the log reads as if the run had never stopped.
    """

    def __init__(self, run_dir: Path, resume_step: int | None) -> None:
        self.path = run_dir / LOG_FILE
        if resume_step is not None:
            _truncate_log(self.path, resume_step)
        try:
            self._file = open(self.path, "a", encoding="utf-8")
        except OSError as exc:
            raise OutputError(f"cannot write {self.path}: {exc.strerror or exc}") from exc
        self.tb = _summary_writer(run_dir / TB_DIR, None if resume_step is None else resume_step + 1)

    def write(self, record: Mapping[str, Any], scalars: Mapping[str, float] = {}) -> None:
        try:
            self._file.write(json.dumps(record) + "\n")
            self._file.flush()
        except OSError as exc:
            raise OutputError(f"cannot write {self.path}: {exc.strerror or exc}") from exc
        for tag, value in scalars.items():
            if value is not None:
                self.tb.add_scalar(tag, value, record["step"])

    def close(self) -> None:
        self._file.close()
        self.tb.close()


def _truncate_log(path: Path, step: int) -> None:
    if not path.is_file():
        return
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a line cut short by kill -9
        if isinstance(record, dict) and record.get("step", 0) <= step:
            kept.append(line)
    with atomic_open(path, "w", encoding="utf-8") as handle:
        handle.write("".join(line + "\n" for line in kept))


def read_log(run_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The records of a run's ``log.jsonl`` (``event`` is "train" or "val")."""
    return read_jsonl(Path(run_dir) / LOG_FILE).records


def _remove_stale_temporaries(run_dir: Path) -> None:
    """Delete the temporary files of atomic writes cut short by a killed run (never whole outputs)."""
    ours = (CONFIG_FILE, WEIGHTS_FILE, CHECKPOINT_FILE, LOG_FILE)
    for folder in (run_dir, run_dir / LAST_DIR, run_dir / CHECKPOINT_DIR):
        remove_stale_temporaries(folder, ours)


def _math_text(math_choice: Mapping[str, Any]) -> str:
    """How the run computes, for its announcement and summary: "fp32", "bf16 (TF32 off)", ..."""
    return math_choice["precision"] + (" (TF32 off)" if math_choice.get("tf32") is False else "")


def _say(world: World, message: str) -> None:
    if world.is_main:
        from tqdm import tqdm

        tqdm.write(message, file=sys.stderr)


# ---------------------------------------------------------------------------------------------
# The recipe
# ---------------------------------------------------------------------------------------------


class Trainer:
    """Set-up, the step, validation, checkpointing and logging of one training run."""

    def __init__(self, config: TrainConfig, *, resume: bool = False, progress: bool = True) -> None:
        # The caller's settings; setup() replaces them with a resolved copy and never changes them.
        self.config = config
        self.resume = resume
        self.progress = progress
        self.world = World()
        self.device = torch.device("cpu")
        self.log: RunLog | None = None
        self.saved_step: int | None = None  # step of the checkpoint on disk
        # The run's parts, made by setup() (empty until then).
        self.math: dict[str, Any] = {}  # how the run computes (precision, TF32), recorded in the run
        self.augment: Any = None  # the sampler's AugmentConfig
        self.run_dir = Path(config.out)
        self.model_config: ModelConfig | None = None
        self.batch_per_rank = 0  # pairs per process and step
        self.total_steps = 0
        self.data_fingerprint = ""  # ShardSet.fingerprint() of --data
        self.state: TrainState | None = None
        self.run_info: dict[str, Any] = {}  # saved with every model and checkpoint
        self.step_model: nn.Module | None = None  # the model as the step runs it (DDP, compiled)
        self.train_loader: torch.utils.data.DataLoader | None = None
        self.val_loader: torch.utils.data.DataLoader | None = None

    # -- set-up ----------------------------------------------------------------------------------
    def setup(self) -> None:
        cfg = self.config
        cfg.validate()
        self.world, self.device = distributed.setup(cfg.device)
        world = self.world
        self.math = training_math(cfg.precision, self.device)  # TF32 off on GPUs; recorded in the run
        if cfg.batch_size % world.world_size:
            raise InputError(
                f"--batch-size {cfg.batch_size} cannot be split evenly over {world.world_size} processes; "
                f"use a multiple of {world.world_size}"
            )
        if cfg.sync_bn and world.distributed and self.device.type == "cpu":
            raise InputError("--sync-bn needs GPUs: PyTorch's SyncBatchNorm has no CPU implementation")
        from .data.sampler import AugmentConfig
        from .data.shards import ShardSet

        # The run's settings with the machine's defaults filled in, as a copy: the caller's config is not
        # changed. Workers and augmentation are fixed for the run: the pair stream depends on them.
        self.augment = AugmentConfig(**cfg.augment) if cfg.augment else AugmentConfig()
        # Agreed over the ranks (unequal nodes would count differently): the pair stream depends on it.
        workers = (distributed.min_over_ranks(default_workers(self.device, world.world_size), world, self.device)
                   if cfg.workers is None else cfg.workers)
        cfg = self.config = dataclasses.replace(cfg, workers=workers, augment=dataclasses.asdict(self.augment))
        self.run_dir = Path(cfg.out)
        self.model_config = get_preset(cfg.preset)
        self.batch_per_rank = cfg.batch_size // world.world_size
        self.total_steps = cfg.total_steps
        self.data_fingerprint = distributed.run_on_main(lambda: ShardSet(cfg.data).fingerprint(), world)

        # The model, the optimizer (Adam with L2 weight decay, as the paper) and the fp16 loss scaler.
        seed_everything(cfg.seed, world.rank)
        model = build_model(self.model_config, seed=cfg.seed)
        if cfg.init_from:  # the towers of a trained or converted model, a new (random) head
            init_towers(model, cfg.init_from)
        model = model.to(self.device)
        if cfg.channels_last:
            model = model.to(memory_format=torch.channels_last)
        if cfg.sync_bn and world.distributed:
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        optimizer = torch.optim.Adam(
            model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, fused=self.device.type == "cuda" or None
        )
        scaler = torch.amp.GradScaler(self.device.type, enabled=cfg.precision == "fp16")
        self.state = TrainState(model=model, optimizer=optimizer, scaler=scaler)

        # The run directory: new, or resumed from its checkpoint (rank 0 checks; all ranks load).
        checkpoint = distributed.run_on_main(self._prepare_run_dir, world)
        resumed_from = None
        if checkpoint:
            saved = read_run_checkpoint(self.run_dir)
            self._check_compatible(saved)
            rng = saved.state["rng"]
            self.state.load_state_dict(saved.state, world.rank if len(rng) == world.world_size else 0)
            resumed_from = self.saved_step = self.state.step
        self.run_info = {
            "train": cfg.to_dict(),
            "world_size": world.world_size,
            "data_fingerprint": self.data_fingerprint,
            "l3net_version": __version__,
            "torch_version": torch.__version__,
            "math": self.math,
        }

        # What runs the step: DDP over the processes, then (optionally) compiled.
        self.step_model = model
        if world.distributed:
            self.step_model = nn.parallel.DistributedDataParallel(
                model, device_ids=[self.device.index] if self.device.type == "cuda" else None
            )
        if cfg.compile:
            self.step_model = torch.compile(self.step_model)

        train_pairs = self._pairs(train=True)
        self._check_streams(train_pairs)
        self.train_loader = self._loader(train_pairs)
        self.val_loader = self._val_loader()
        if world.is_main:
            self.log = RunLog(self.run_dir, resumed_from)
        self._announce(resumed_from)

    def _prepare_run_dir(self) -> bool:
        """Create or check RUN_DIR; True when there is a checkpoint to resume from."""
        run_dir = self.run_dir
        if run_dir.exists() and not run_dir.is_dir():
            raise OutputError(f"--out {run_dir} is a file, not a directory")
        existing = sorted(p.name for p in run_dir.iterdir()) if run_dir.is_dir() else []
        has_checkpoint = checkpoint_path(run_dir).is_file()
        if existing and not self.resume:
            raise InputError(
                f"{run_dir} already holds a run ({', '.join(existing[:5])}{', ...' if len(existing) > 5 else ''}); "
                "pass --resume to continue it, or choose another --out"
            )
        if self.resume and existing and not has_checkpoint:
            ours = {LOG_FILE, TB_DIR, LAST_DIR, CHECKPOINT_DIR, CONFIG_FILE, WEIGHTS_FILE}
            if not set(existing) <= ours:
                raise InputError(f"--resume: {run_dir} is not a training run directory (it has no {CHECKPOINT_DIR}/)")
        ensure_dir(run_dir)
        ensure_dir(run_dir / CHECKPOINT_DIR)
        if self.resume:
            _remove_stale_temporaries(run_dir)
        # Probe the directory with a real write: permissions are not the only way to fail.
        with atomic_open(run_dir / CHECKPOINT_DIR / ".write-test") as handle:
            handle.write("ok\n")
        (run_dir / CHECKPOINT_DIR / ".write-test").unlink()
        return has_checkpoint

    def _run_fingerprint(self) -> dict[str, Any]:
        """What the checkpoint belongs to: the settings of :data:`RESUME_FIXED`, the data, the world size."""
        settings = self.config.to_dict()
        return {**{key: settings[key] for key in RESUME_FIXED}, "data": self.data_fingerprint,
                "world_size": self.world.world_size}

    def _check_compatible(self, saved: SavedCheckpoint) -> None:
        """Refuse to resume a run with settings that would make it another run, naming each."""
        names: dict[str, Any] = {key: f"--{key.replace('_', '-')}" for key in RESUME_FIXED}
        names["data"] = lambda old, new: f"the data in {self.config.data} is not the data the run was trained on"
        names["world_size"] = lambda old, new: (f"the run used {old} process(es), now {new} "
                                                "(each process reads its own part of the data)")
        check_fingerprint(saved, self._run_fingerprint(), names=names,
                          advice="Resume with the run's own settings (options you leave out are taken from the "
                          "run), or start a new run with another --out")

    def _loader(self, dataset: Any) -> torch.utils.data.DataLoader:
        workers = self.config.workers or 0
        prefetch = loader_prefetch(workers, dataset.batch_nbytes)
        if workers:
            # While validation runs, the train loader's batches wait beside the val loader's (same size),
            # and the ranks of a node share its shared memory.
            ranks = int(os.environ.get("LOCAL_WORLD_SIZE", self.world.world_size))
            check_shared_memory(2 * ranks * workers * prefetch * dataset.batch_nbytes,
                                f"{ranks} rank(s) x 2 loaders (train, val) x {workers} workers x {prefetch} "
                                f"batches of {dataset.batch_nbytes / 2**20:.1f} MiB")
        # The loader's own generator: worker seeds must not depend on what else drew from torch's RNG.
        generator = torch.Generator().manual_seed(self.config.seed * 1000 + self.world.rank)
        return torch.utils.data.DataLoader(
            dataset,
            batch_size=None,  # the sampler yields whole batches
            num_workers=workers,
            pin_memory=self.device.type == "cuda",
            prefetch_factor=prefetch,
            generator=generator,
        )

    def _pairs(self, *, train: bool) -> Any:
        from .data.sampler import AVCPairs

        cfg, world = self.config, self.world
        return AVCPairs(
            cfg.data,
            "train" if train else "val",
            config=self.model_config,
            batch_size=self.batch_per_rank,
            train=train,
            seed=cfg.seed,
            rank=world.rank,
            world_size=world.world_size,
            start_step=self.state.step if train else 0,
            augment=self.augment,
            pcm=True,  # half the audio bytes through shared memory and pinning
        )

    def _check_streams(self, pairs: Any) -> None:
        # Each (rank, worker) stream needs videos of its own; say so now, not from inside a worker.
        streams = max(1, self.config.workers or 0)
        for c in range(streams):
            pairs.stream_videos(self.world.rank * streams + c, self.world.world_size * streams)

    def _val_loader(self) -> torch.utils.data.DataLoader | None:
        """The val split's fixed pairs (each rank its share), or None with a warning when unusable."""
        try:
            pairs = self._pairs(train=False)
            pairs.eval_pairs()
        except DatasetError as exc:
            _say(self.world, f"l3net train: warning: no validation ({exc}); the final model will be the run's model")
            return None
        return self._loader(pairs)

    def _announce(self, resumed_from: int | None) -> None:
        cfg, world = self.config, self.world
        model = self.state.model
        where = f"{self.device}" + (f" x {world.world_size} processes" if world.distributed else "")
        start = f"resuming at step {resumed_from:,}" if resumed_from is not None else "new run"
        _say(
            world,
            f"l3net train: {start}; preset {cfg.preset} ({model.num_parameters() / 1e6:.2f} M parameters), "
            f"{self.total_steps:,} steps of {cfg.batch_size} pairs on {where}, {_math_text(self.math)}; "
            f"run directory {self.run_dir}",
        )

    # -- the step --------------------------------------------------------------------------------
    def train_step(self, batch: Mapping[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """One synchronous optimisation step on a batch; returns (loss, correct pairs) on the device.

        Nothing here waits for the device: the loss is checked when the log is written.
        """
        images, waveforms, labels = self._to_device(batch)
        with autocast(self.config.precision, self.device):
            logits = self.step_model(images, waveforms)
        loss = F.cross_entropy(logits.float(), labels)
        optimizer_step(self.state.optimizer, self.state.scaler, loss, lr=self.config.lr_at(self.state.step))
        correct = (logits.detach().argmax(dim=1) == labels).sum()
        return loss.detach(), correct

    def _to_device(self, batch: Mapping[str, Any]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        from .data.sampler import batch_waveforms

        # uint8 images and raw waveforms travel; normalisation and the spectrogram run on the device.
        images = batch["image"].to(self.device, non_blocking=True)
        if self.config.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        waveforms = batch_waveforms(batch, self.device, non_blocking=True)  # int16 crosses; scaled there
        labels = batch["label"].to(self.device, non_blocking=True)
        return images, waveforms, labels

    # -- the loop --------------------------------------------------------------------------------
    def train(self) -> TrainResult:
        from tqdm import tqdm

        cfg, state, world = self.config, self.state, self.world
        if state.step >= self.total_steps:
            _say(world, f"l3net train: the run is already at step {state.step:,} of {self.total_steps:,}; "
                 "pass a larger --steps or --pairs to train longer")
            return self._result(None, None, None)
        bar = tqdm(
            total=self.total_steps,
            initial=state.step,
            desc="train",
            unit="step",
            file=sys.stderr,
            dynamic_ncols=True,
            mininterval=0.5 if sys.stderr.isatty() else 30.0,
            disable=not (world.is_main and self.progress),
        )
        losses: list[torch.Tensor] = []
        correct = torch.zeros((), dtype=torch.int64, device=self.device)
        data_wait = 0.0
        synchronize(self.device)  # set-up's device work is not the first interval's
        interval_start = time.perf_counter()
        run_time, run_pairs, run_wait = 0.0, 0, 0.0
        last_accuracy: float | None = None
        shown: dict[str, str] = {}  # the progress bar's postfix: latest loss, accuracy, speed, validation
        state.model.train()
        batches: Iterator[Mapping[str, Any]] = iter(self.train_loader)
        try:
            while state.step < self.total_steps:
                t0 = time.perf_counter()
                batch = next(batches)
                data_wait += time.perf_counter() - t0

                loss, n_correct = self.train_step(batch)
                losses.append(loss)
                correct += n_correct
                state.step += 1
                state.pairs_seen += cfg.batch_size
                bar.update(1)

                step = state.step
                last = step == self.total_steps
                val_due = (cfg.val_every and step % cfg.val_every == 0) or last
                save_due = step % cfg.save_every == 0 or last
                if step % cfg.log_every == 0 or val_due or save_due:
                    # The interval ends once the device has finished its steps: the losses reach the host
                    # first (the loop's only sync), then the clock is read. The next interval starts at
                    # that same reading, so no time escapes both (a GPU runs several steps behind the CPU).
                    stats = self._interval_stats(losses, correct)
                    interval_end, wall = time.perf_counter(), time.time()
                    elapsed = interval_end - interval_start
                    interval_start = interval_end
                    record = self._log_train(stats, len(losses), elapsed, data_wait, wall)
                    shown.update(loss=f"{record['loss']:.4f}", acc=f"{record['accuracy']:.3f}",
                                 pairs_s=f"{record['pairs_per_s']:.1f}")
                    bar.set_postfix(shown, refresh=False)
                    run_time += elapsed
                    run_pairs += len(losses) * cfg.batch_size
                    run_wait += data_wait
                    state.elapsed_s += elapsed
                    losses, data_wait = [], 0.0
                    correct.zero_()
                    if val_due:
                        last_accuracy = self.validate()
                        if last_accuracy is not None:
                            shown["val"] = f"{last_accuracy:.3f}"
                            bar.set_postfix(shown, refresh=False)
                    if save_due:
                        self.save_checkpoint()
                    if val_due or save_due:  # validation and saving are not training time
                        synchronize(self.device)
                        interval_start = time.perf_counter()
        except KeyboardInterrupt:
            bar.close()
            _say(world, f"l3net train: interrupted at step {state.step:,}; `--resume` continues from the last "
                 f"checkpoint in {self.run_dir / CHECKPOINT_DIR}")
            raise
        finally:
            bar.close()
        if state.best_step is None and world.is_main:
            # No validation pairs: the final model is the run's model.
            self.state.model.save(self.run_dir, extra_config=self._model_extra(None))
        result = self._result(run_pairs / run_time if run_time else None, run_wait / run_time if run_time else None,
                              last_accuracy)
        self._summarise(result)
        return result

    def _interval_stats(self, losses: list[torch.Tensor], correct: torch.Tensor) -> torch.Tensor:
        """The interval's step losses summed over ranks, then its correct pairs, on the host: the one
        sync of the loop (it waits for every step queued on the device). Stops on a non-finite loss."""
        state, world = self.state, self.world
        stats = torch.cat([torch.stack(losses).float(), correct.float().view(1)])
        stats = distributed.all_reduce_sum(stats, world).cpu()
        step_losses = stats[:-1] / world.world_size
        if not torch.isfinite(step_losses).all():
            bad = int(torch.nonzero(~torch.isfinite(step_losses))[0]) + state.step - len(losses) + 1
            saved = self.saved_step
            keep = (f"the last good state is the checkpoint of step {saved:,} in {self.run_dir / CHECKPOINT_DIR}"
                    if saved is not None else "no checkpoint had been saved yet")
            raise NonFiniteLossError(
                f"the loss became {float(step_losses[bad - (state.step - len(losses) + 1)])} at step {bad:,}; "
                f"training stopped without saving the broken weights ({keep}). Try a lower --lr, "
                "or --precision fp32 if you train in fp16"
            )
        return stats

    def _log_train(self, stats: torch.Tensor, n: int, elapsed: float, data_wait: float, wall: float) -> dict:
        """Log an interval of ``n`` steps that took ``elapsed`` s (ending at ``wall``, Unix time) from its
        host ``stats`` (:meth:`_interval_stats`)."""
        cfg, state, world = self.config, self.state, self.world
        step_losses = stats[:-1] / world.world_size
        record = {
            "event": "train",
            "step": state.step,
            "pairs": state.pairs_seen,
            "loss": float(step_losses.mean()),
            "accuracy": float(stats[-1]) / (n * cfg.batch_size),
            "lr": self.state.optimizer.param_groups[0]["lr"],
            "pairs_per_s": n * cfg.batch_size / elapsed if elapsed > 0 else None,
            "data_wait_s": data_wait,
            "data_wait_fraction": data_wait / elapsed if elapsed > 0 else None,
            "interval_s": elapsed,
            "time": wall,  # the end of the interval: the next one starts there unless val/save came between
        }
        if self.log is not None:
            self.log.write(record, {
                "train/loss": record["loss"],
                "train/accuracy": record["accuracy"],
                "train/lr": record["lr"],
                "train/pairs_per_s": record["pairs_per_s"],
                "train/data_wait_fraction": record["data_wait_fraction"],
            })
        return record

    # -- validation ------------------------------------------------------------------------------
    def validate(self) -> float | None:
        """AVC accuracy on the val split's fixed pairs (each rank its share); keeps the best model.

        Returns None when there are no validation pairs.
        """
        if self.val_loader is None:
            return None
        cfg, model = self.config, self.state.model
        limit = math.ceil(cfg.val_pairs / self.batch_per_rank) if cfg.val_pairs else None
        sums = torch.zeros(3, dtype=torch.float64, device=self.device)  # correct, pairs, summed loss
        model.eval()
        with torch.no_grad():
            for batch in self.val_loader:
                if limit is not None and batch["step"] >= limit:
                    break  # batches arrive in order: the rest are past the limit too
                images, waveforms, labels = self._to_device(batch)
                with autocast(cfg.precision, self.device):
                    logits = model(images, waveforms)
                sums[0] += (logits.argmax(dim=1) == labels).sum()
                sums[1] += labels.numel()
                sums[2] += F.cross_entropy(logits.float(), labels, reduction="sum")
        model.train()
        correct, total, loss_sum = distributed.all_reduce_sum(sums, self.world).tolist()
        if total == 0:
            return None
        accuracy, state = correct / total, self.state
        improved = state.best_accuracy is None or accuracy > state.best_accuracy
        if improved:
            state.best_accuracy, state.best_step = accuracy, state.step
        distributed.run_on_main(self._record_validation, self.world, accuracy, loss_sum / total, int(total), improved)
        return accuracy

    def _record_validation(self, accuracy: float, loss: float, pairs: int, improved: bool) -> None:
        state = self.state
        if improved:
            state.model.save(self.run_dir, extra_config=self._model_extra(accuracy))
        record = {"event": "val", "step": state.step, "pairs": state.pairs_seen, "val_accuracy": accuracy,
                  "val_loss": loss, "val_pairs": pairs, "best": improved, "time": time.time()}
        if self.log is not None:
            self.log.write(record, {"val/accuracy": accuracy, "val/loss": loss})

    # -- checkpointing ---------------------------------------------------------------------------
    def save_checkpoint(self) -> None:
        """Save RUN_DIR/last/ and the full state, atomically (all ranks call: RNG states are gathered)."""
        rng = distributed.gather_to_main(rng_state(), self.world)
        distributed.run_on_main(self._save_on_main, self.world, rng)

    def _save_on_main(self, rng: list[dict[str, Any]]) -> None:
        state = self.state
        state.model.save(self.run_dir / LAST_DIR, extra_config=self._model_extra(None))
        save_checkpoint(checkpoint_path(self.run_dir), CHECKPOINT_KIND, self._run_fingerprint(),
                        state.state_dict(rng, self.run_info))
        self.saved_step = state.step

    def _model_extra(self, accuracy: float | None) -> dict[str, Any]:
        state = self.state
        return {
            **self.run_info,
            "step": state.step,
            "pairs_seen": state.pairs_seen,
            "val_accuracy": accuracy,
        }

    # -- the end ---------------------------------------------------------------------------------
    def close(self) -> None:
        if self.log is not None:
            self.log.close()
            self.log = None

    def _result(self, pairs_per_s: float | None, wait: float | None, last_accuracy: float | None) -> TrainResult:
        s = self.state
        return TrainResult(self.run_dir, s.step, s.pairs_seen, s.best_accuracy, s.best_step, last_accuracy,
                           pairs_per_s, wait)

    def _summarise(self, result: TrainResult) -> None:
        lines = [f"l3net train: done, {result.step:,} steps ({result.pairs_seen:,} pairs)"]
        if result.pairs_per_s:
            lines[0] += f" at {result.pairs_per_s:,.{0 if result.pairs_per_s >= 100 else 1}f} pairs/s"
        lines[0] += f" in {_math_text(self.math)}"
        if result.best_accuracy is not None:
            lines.append(f"  best validation AVC accuracy {100 * result.best_accuracy:.1f} % at step "
                         f"{result.best_step:,} (chance 50 %)")
        lines += [
            f"  best model:  {self.run_dir}  (l3net.load_model('{self.run_dir}'), l3net embed --model {self.run_dir})",
            f"  last model:  {self.run_dir / LAST_DIR}",
            f"  log:         {self.run_dir / LOG_FILE}  (tensorboard --logdir {self.run_dir / TB_DIR})",
            f"  resume with: l3net train --out {self.run_dir} --resume [--steps N]",
        ]
        _say(self.world, "\n".join(lines))


def seed_everything(seed: int, rank: int = 0) -> None:
    """Seed python, numpy and torch (each rank its own stream)."""
    random.seed(seed + rank)
    np.random.seed((seed + rank) % 2**32)
    torch.manual_seed(seed + rank)


def train(config: TrainConfig, *, resume: bool = False, progress: bool = True) -> TrainResult:
    """Train (or, with ``resume``, continue) a run; see :class:`TrainConfig` and the module doc.

    Works alone or as one process of ``torchrun``; returns the run's :class:`TrainResult`.
    """
    trainer = Trainer(config, resume=resume, progress=progress)
    try:
        trainer.setup()
        return trainer.train()
    finally:
        trainer.close()
        distributed.teardown()
