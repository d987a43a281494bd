"""What a training run tells: ``log.jsonl`` (one JSON record a line), TensorBoard scalars, and the
console's announcement and summary (rank 0 only)."""

from __future__ import annotations

import json
import os
import sys
import types
from pathlib import Path
from typing import Any, Mapping

from ..distributed import World
from ..errors import OutputError
from ..fileio import atomic_open, read_jsonl
from ..rundir import LAST_DIR, LOG_FILE, TB_DIR
from .config import TrainResult

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


def math_text(math_choice: Mapping[str, Any]) -> str:
    """How the run computes, for its announcement and summary: "fp32", "bf16 (TF32 off)", ..."""
    return math_choice["precision"] + (" (TF32 off)" if math_choice.get("tf32") is False else "")


def say(world: World, message: str) -> None:
    """Tell the user ``message`` on stderr, from rank 0 only, without breaking a progress bar."""
    if world.is_main:
        from tqdm import tqdm

        tqdm.write(message, file=sys.stderr)


def announcement(*, start: str, preset: str, parameters: int, steps: int, batch_size: int, where: str,
                 math_choice: Mapping[str, Any], run_dir: Path) -> str:
    """The line a run starts with (``start``: "new run" or "resuming at step N")."""
    return (f"l3net train: {start}; preset {preset} ({parameters / 1e6:.2f} M parameters), "
            f"{steps:,} steps of {batch_size} pairs on {where}, {math_text(math_choice)}; "
            f"run directory {run_dir}")


def summary(result: TrainResult, math_choice: Mapping[str, Any]) -> str:
    """The lines a finished run ends with: its speed, best validation, where its models and log are."""
    run_dir = result.run_dir
    lines = [f"l3net train: done, {result.step:,} steps ({result.pairs_seen:,} pairs)"]
    if result.pairs_per_s:
        lines[0] += f" at {result.pairs_per_s:,.{0 if result.pairs_per_s >= 100 else 1}f} pairs/s"
    lines[0] += f" in {math_text(math_choice)}"
    if result.best_accuracy is not None:
        lines.append(f"  best validation AVC accuracy {100 * result.best_accuracy:.1f} % at step "
                     f"{result.best_step:,} (chance 50 %)")
    lines += [
        f"  best model:  {run_dir}  (l3net.load_model('{run_dir}'), l3net embed --model {run_dir})",
        f"  last model:  {run_dir / LAST_DIR}",
        f"  log:         {run_dir / LOG_FILE}  (tensorboard --logdir {run_dir / TB_DIR})",
        f"  resume with: l3net train --out {run_dir} --resume [--steps N]",
    ]
    return "\n".join(lines)
