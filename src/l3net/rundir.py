"""The names of the files and folders in a training run's directory, in one place.

The trainer writes them and the report (and anything else that reads a run) finds them here, so a
reader never imports the trainer for a file name. The model's own files (``config.json``,
``model.safetensors``) are named by :mod:`l3net.models`, which reads and writes them.
"""

from __future__ import annotations

#: The training log: one JSON record a line (train and val rows), appended as the run goes.
LOG_FILE = "log.jsonl"
#: TensorBoard's event files.
TB_DIR = "tb"
#: The resumable training state (optimiser, step, RNGs), in CHECKPOINT_DIR.
CHECKPOINT_DIR = "checkpoint"
CHECKPOINT_FILE = "state.pt"
#: The last weights written, beside the best ones at the top level.
LAST_DIR = "last"
