"""What defines a training run (:class:`TrainConfig`, saved in the run's ``config.json``) and what a
finished run reports (:class:`TrainResult`)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from ..config import PAPER_BATCH_SIZE, PAPER_LR, PAPER_PAIRS, PAPER_WEIGHT_DECAY, PRESETS
from ..errors import InputError
from ..runtime import PRECISIONS

#: Learning-rate schedules: the paper's constant rate, or a cosine decay to 0 over the run (short runs,
#: such as the demo's, end better with it). Resuming with a larger --steps stretches the cosine.
LR_SCHEDULES = ("constant", "cosine")
#: Settings that define the run: a resumed run must keep them, or it would be another run.
RESUME_FIXED = ("preset", "batch_size", "lr", "lr_schedule", "weight_decay", "precision", "seed", "sync_bn", "augment", "workers")


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

