"""What the embedding API's two halves share: :mod:`l3net.embed` (arrays) and :mod:`l3net.embed_files`
(files) both import it, neither imports the other.

The model a call names (:func:`embedding_model`, through the one resolver :mod:`l3net.modelspec`
and a cache), the defaults, and the batched forward passes over audio windows
(:func:`embed_audio_stream`) and over prepared images (:func:`embed_images`). Framing is
:mod:`l3net.framing`'s, layers :mod:`l3net.layers`', image preparation :mod:`l3net.inputs`'.
"""

from __future__ import annotations

import os
from typing import Iterable

import numpy as np
import torch
from tqdm.auto import tqdm

from .errors import InputError
from .framing import batch_windows, iter_windows, window_timestamps
from .inference import InferenceModel, inference_model
from .inputs import image_batch
from .layers import embedding_size, layer_features
from .modelspec import ModelCache, ModelSpec, default_spec
from .models import L3Net
from .runtime import evaluation, resolve_device

#: Hop (s) between audio windows when none is given (as OpenL3).
DEFAULT_HOP_SIZE = 0.1
#: Windows or images per forward pass when none is given.
DEFAULT_BATCH_SIZE = 32
#: Models named by a path or preset are loaded once, here (``MODEL_CACHE.clear()`` empties it; pass a
#: loaded model to bypass it).
MODEL_CACHE = ModelCache(max_models=4)


def embedding_model(model: ModelSpec | None = None, device: str | torch.device | None = None) -> L3Net:
    """The :class:`L3Net` an embedding call names: an L3Net (moved to ``device`` when one is given),
    an :class:`InferenceModel` (used on its own device), or any spec of :mod:`l3net.modelspec`,
    loaded once per device (:data:`MODEL_CACHE`). ``None``: the default preset, random weights, with
    a warning."""
    if isinstance(model, L3Net):
        return model if device is None else model.to(resolve_device(device))
    if isinstance(model, InferenceModel):  # l3net.inference: runs on its device, precision and compile setting
        return model  # type: ignore[return-value]
    model = default_spec(model, stacklevel=3)
    if not isinstance(model, (str, os.PathLike)):
        raise InputError(f"model must be an L3Net, a preset name or a model directory, got {type(model).__name__}")
    return MODEL_CACHE.get(model, device=device).model


def check_batch_size(batch_size: int) -> int:
    """``batch_size`` as an int; an :class:`InputError` unless it is a positive integer."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise InputError(f"batch_size must be a positive integer, got {batch_size!r}")
    return int(batch_size)


def embed_audio_stream(
    model: L3Net,
    chunks: Iterable[np.ndarray],
    *,
    hop_size: float,
    center: bool,
    batch_size: int,
    layer: str,
    precision: str,
    total: int | None,
    verbose: bool,
    desc: str,
) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings ``(T, D)`` float32 and timestamps ``(T,)`` s of a stream of 48 kHz mono chunks,
    framed by :func:`l3net.framing.iter_windows` (``total``: windows expected, for the progress bar)."""
    window = model.config.clip_samples
    dim = embedding_size(model, layer, "audio")
    outputs: list[np.ndarray] = []
    fast = inference_model(model, precision=precision)  # l3net.inference: folded, channels_last, compiled
    with evaluation(model, fast.precision) as device, tqdm(
        total=total, unit="win", desc=desc, disable=not verbose, leave=False
    ) as bar:
        windows = iter_windows(chunks, hop_size, center, window, framing=model.config.framing)
        for batch in batch_windows(windows, batch_size, window):
            x = torch.from_numpy(batch).to(device)
            outputs.append(layer_features(fast, "audio", x, layer).float().cpu().numpy())
            bar.update(len(batch))
    embedding = np.concatenate(outputs) if outputs else np.zeros((0, dim), np.float32)
    return np.ascontiguousarray(embedding, dtype=np.float32), window_timestamps(len(embedding), hop_size)


def embed_images(
    model: L3Net, frames: Iterable[np.ndarray], layer: str, batch_size: int, precision: str,
    total: int | None, verbose: bool,
) -> np.ndarray:
    """Embeddings ``(N, D)`` float32 of images already prepared for ``layer`` (:mod:`l3net.inputs`)."""
    outputs: list[np.ndarray] = []
    fast = inference_model(model, precision=precision)  # l3net.inference: folded, channels_last, compiled
    with evaluation(model, fast.precision) as device, tqdm(
        total=total, unit="img", desc="images", disable=not verbose, leave=False
    ) as bar:
        batch: list[np.ndarray] = []

        def flush() -> None:
            x = image_batch(batch).to(device)
            outputs.append(layer_features(fast, "vision", x, layer).float().cpu().numpy())
            bar.update(len(batch))
            batch.clear()

        for frame in frames:
            batch.append(frame)
            if len(batch) == batch_size:
                flush()
        if batch:
            flush()
    if not outputs:
        return np.zeros((0, embedding_size(model, layer, "vision")), np.float32)
    return np.ascontiguousarray(np.concatenate(outputs), dtype=np.float32)
