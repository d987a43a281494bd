"""The state of a training run that must survive a crash, in one place: :class:`TrainState` (model,
optimizer, loss scaler, step, best validation, random generators; the data position is the step),
where it lives in the run directory, what it belongs to (its fingerprint) and how a resumed run
finds and checks it. Saved atomically as a whole and restored as a whole (:mod:`l3net.checkpoint`).
"""

from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from ..checkpoint import SavedCheckpoint, check_fingerprint, read_checkpoint
from ..errors import InputError, OutputError
from ..fileio import atomic_open, ensure_dir, remove_stale_temporaries
from ..models import CONFIG_FILE, WEIGHTS_FILE, L3Net
from ..rundir import CHECKPOINT_DIR, CHECKPOINT_FILE, LAST_DIR, LOG_FILE, TB_DIR
from .config import RESUME_FIXED, TrainConfig

#: The loop's name in its checkpoint (l3net.checkpoint): another loop's checkpoint is refused.
CHECKPOINT_KIND = "train"


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



def seed_everything(seed: int, rank: int = 0) -> None:
    """Seed python, numpy and torch (each rank its own stream)."""
    random.seed(seed + rank)
    np.random.seed((seed + rank) % 2**32)
    torch.manual_seed(seed + rank)



def run_fingerprint(config: TrainConfig, data_fingerprint: str, world_size: int) -> dict[str, Any]:
    """What the checkpoint belongs to: the settings of :data:`RESUME_FIXED`, the data, the world size."""
    settings = config.to_dict()
    return {**{key: settings[key] for key in RESUME_FIXED}, "data": data_fingerprint, "world_size": world_size}


def check_compatible(saved: SavedCheckpoint, fingerprint: Mapping[str, Any], data: str) -> None:
    """Refuse to resume a run (``saved``) with settings that would make it another run, naming each
    (``fingerprint``: :func:`run_fingerprint` of this process; ``data``: its --data, for the message)."""
    names: dict[str, Any] = {key: f"--{key.replace('_', '-')}" for key in RESUME_FIXED}
    names["data"] = lambda old, new: f"the data in {data} is not the data the run was trained on"
    names["world_size"] = lambda old, new: (f"the run used {old} process(es), now {new} "
                                            "(each process reads its own part of the data)")
    check_fingerprint(saved, fingerprint, names=names,
                      advice="Resume with the run's own settings (options you leave out are taken from the "
                      "run), or start a new run with another --out")


def prepare_run_dir(run_dir: Path, resume: bool) -> bool:
    """Create or check RUN_DIR; True when there is a checkpoint to resume from."""
    if run_dir.exists() and not run_dir.is_dir():
        raise OutputError(f"--out {run_dir} is a file, not a directory")
    existing = sorted(p.name for p in run_dir.iterdir()) if run_dir.is_dir() else []
    has_checkpoint = checkpoint_path(run_dir).is_file()
    if existing and not resume:
        raise InputError(
            f"{run_dir} already holds a run ({', '.join(existing[:5])}{', ...' if len(existing) > 5 else ''}); "
            "pass --resume to continue it, or choose another --out"
        )
    if resume and existing and not has_checkpoint:
        ours = {LOG_FILE, TB_DIR, LAST_DIR, CHECKPOINT_DIR, CONFIG_FILE, WEIGHTS_FILE}
        if not set(existing) <= ours:
            raise InputError(f"--resume: {run_dir} is not a training run directory (it has no {CHECKPOINT_DIR}/)")
    ensure_dir(run_dir)
    ensure_dir(run_dir / CHECKPOINT_DIR)
    if resume:
        _remove_stale_temporaries(run_dir)
    # Probe the directory with a real write: permissions are not the only way to fail.
    with atomic_open(run_dir / CHECKPOINT_DIR / ".write-test") as handle:
        handle.write("ok\n")
    (run_dir / CHECKPOINT_DIR / ".write-test").unlink()
    return has_checkpoint


def _remove_stale_temporaries(run_dir: Path) -> None:
    """Delete the temporary files of atomic writes cut short by a killed run (never whole outputs)."""
    ours = (CONFIG_FILE, WEIGHTS_FILE, CHECKPOINT_FILE, LOG_FILE)
    for folder in (run_dir, run_dir / LAST_DIR, run_dir / CHECKPOINT_DIR):
        remove_stale_temporaries(folder, ours)
