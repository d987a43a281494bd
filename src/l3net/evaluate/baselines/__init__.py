"""Table 1's supervised baselines: the protocol and its parts.

- :mod:`.protocol`: settings, the training budget and :func:`evaluate_baselines` (the table).
- :mod:`.networks`: the tower classifiers, their clips and batches, and how they score pairs.
- :mod:`.training`: training them, resumable (checkpoints, plan, history).
"""

from __future__ import annotations

from .protocol import (
    CHECKPOINT_SUBDIR,
    MODEL_SUBDIR,
    PROTOCOL,
    TITLE,
    BaselinesConfig,
    BaselinesResult,
    ReferenceRun,
    evaluate_baselines,
    reference_run,
)
from .training import CHECKPOINT_FILE, Checkpoint, TrainPlan, train_supervised

__all__ = [
    "CHECKPOINT_FILE", "CHECKPOINT_SUBDIR", "MODEL_SUBDIR", "PROTOCOL", "TITLE", "BaselinesConfig",
    "BaselinesResult", "Checkpoint", "ReferenceRun", "TrainPlan", "evaluate_baselines", "reference_run",
    "train_supervised",
]
