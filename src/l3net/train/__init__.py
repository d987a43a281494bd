"""Training L3-Net on the audio-visual correspondence task (paper section 4): ``l3net train``.

The loop reads top to bottom like a torchtune recipe (:mod:`.loop`): :class:`Trainer` sets up
(processes, run directory, model, optimizer, data), then :meth:`Trainer.train` runs the step,
validates, saves and logs. Everything a resumed run needs is one :class:`TrainState` (:mod:`.state`),
written atomically to ``RUN_DIR/checkpoint/state.pt`` and restored as a whole, so ``--resume`` after
``kill -9`` loses at most the steps since the last save, and on the CPU ends with exactly the
parameters of an uninterrupted run.

One entry point for the CPU, one GPU and ``torchrun`` (DDP; see :mod:`l3net.distributed`): the global
batch is split over the processes, each reads its own part of the data, only rank 0 writes.

The modules: :mod:`.config` (:class:`TrainConfig`, what defines a run), :mod:`.state` (what survives a
crash, the run directory, resume), :mod:`.model` (the network, its optimizer, DDP), :mod:`.data` (the
pair streams and loaders), :mod:`.log` (``log.jsonl``, TensorBoard, the console), :mod:`.loop` (the
recipe).
"""

from ..rundir import CHECKPOINT_DIR, CHECKPOINT_FILE, LAST_DIR, LOG_FILE, TB_DIR
from .config import LR_SCHEDULES, RESUME_FIXED, TrainConfig, TrainResult
from .log import RunLog, read_log
from .loop import NonFiniteLossError, Trainer, train
from .model import init_towers
from .state import (
    CHECKPOINT_KIND,
    TrainState,
    checkpoint_path,
    load_checkpoint,
    read_run_checkpoint,
    resume_config,
    rng_state,
    seed_everything,
    set_rng_state,
)

__all__ = [
    "CHECKPOINT_DIR",
    "CHECKPOINT_FILE",
    "CHECKPOINT_KIND",
    "LAST_DIR",
    "LOG_FILE",
    "LR_SCHEDULES",
    "NonFiniteLossError",
    "RESUME_FIXED",
    "RunLog",
    "TB_DIR",
    "TrainConfig",
    "TrainResult",
    "TrainState",
    "Trainer",
    "checkpoint_path",
    "init_towers",
    "load_checkpoint",
    "read_log",
    "read_run_checkpoint",
    "resume_config",
    "rng_state",
    "seed_everything",
    "set_rng_state",
    "train",
]
