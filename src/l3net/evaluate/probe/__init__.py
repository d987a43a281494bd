"""Table 3: the linear probe on frozen image features, in two solvers.

- :mod:`.inmemory`: features of centre crops held in memory, scikit-learn's L-BFGS (small sets).
- :mod:`.stream`: ImageNet's scale, images streamed and a linear layer trained by Adam, resumable;
  its parts: :mod:`.data` (folder layouts, labels), :mod:`.loader` (decoding, augmentation,
  batches), :mod:`.training` (the rows and the training loop) and :mod:`.checkpoint` (its
  training state).
"""

from __future__ import annotations

from .data import ProbeImages, count_images, find_split_dirs, read_probe_images, to_labelled_files
from .inmemory import PROTOCOL, RANDOM_ROW, TITLE, TRAINED_ROW, ProbeConfig, ProbeResult, evaluate_probe, make_probe
from .stream import (
    AUTO_LBFGS_MAX_IMAGES,
    SOLVERS,
    StreamProbeConfig,
    StreamProbeResult,
    choose_solver,
    evaluate_probe_stream,
)

__all__ = [
    "AUTO_LBFGS_MAX_IMAGES", "PROTOCOL", "RANDOM_ROW", "SOLVERS", "TITLE", "TRAINED_ROW", "ProbeConfig",
    "ProbeImages", "ProbeResult", "StreamProbeConfig", "StreamProbeResult", "choose_solver", "count_images",
    "evaluate_probe", "evaluate_probe_stream", "find_split_dirs", "make_probe", "read_probe_images",
    "to_labelled_files",
]
