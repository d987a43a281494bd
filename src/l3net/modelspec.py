"""From a model spec (what a user types after ``--model``, or passes as ``model=``) to a model.

The one resolver for every entry point (``l3net.load_model``, the embedding API, HEAR, ``l3net
localize``, ``l3net info`` and every evaluation). Specs:

- an :class:`~l3net.models.L3Net` or an :class:`~l3net.inference.InferenceModel`: used as is;
- a model or run directory (or its ``model.safetensors``), a preset name (random weights from
  ``seed``): read by :func:`l3net.models.load_model`, which knows only these two;
- ``openl3:NAME`` (e.g. ``openl3:mel256-env``): one of OpenL3's published models, found and
  converted once (:func:`l3net.openl3.openl3_model_dir`), then read as a directory;
- ``random`` / ``random:PRESET`` / ``random:DIR``: the architecture of PRESET or DIR (default
  ``paper``) with fresh random weights from ``seed`` (the paper's untrained rows);
- ``None`` (where a caller may leave the model out): the :data:`DEFAULT_PRESET` architecture with
  random weights, with a warning.

The evaluations compare a trained model with its *random twin*: the same architecture with fresh
weights from ``seed + RANDOM_TWIN_SEED_OFFSET`` (:func:`random_twin`), so that a run on ``--model
random --seed S`` (weights from S) and its reference row are never the same network.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import warnings

import torch

from .config import PRESETS, ModelConfig
from .errors import InputError
from .inference import InferenceModel
from .models import OPENL3_PREFIX, WEIGHTS_FILE, L3Net, build_model
from .models import load_model as read_model
from .openl3 import openl3_model_dir
from .runtime import resolve_device

#: What names a model: a loaded one, or a spec (see the module docstring).
ModelSpec = L3Net | InferenceModel | str | os.PathLike[str]

#: The preset used when no model is given (random weights: l3net ships no trained weights).
DEFAULT_PRESET = "paper"

#: The spec prefix meaning "this architecture, random weights".
RANDOM = "random"
#: The random twin of a run with seed S takes its weights from S + this offset.
RANDOM_TWIN_SEED_OFFSET = 1000
#: Random-weights models averaged in a "random weights" reference row (``--random-seeds``): one
#: random network is one draw, and its score moves by points from one seed to another.
DEFAULT_RANDOM_SEEDS = 3


@dataclass(frozen=True)
class ResolvedModel:
    """A model in eval mode, how tables name it, and whether its weights are random."""

    model: L3Net
    label: str
    untrained: bool


def default_spec(spec: ModelSpec | None, *, stacklevel: int = 2) -> ModelSpec:
    """``spec``, or :data:`DEFAULT_PRESET` with a warning (``stacklevel`` as for :func:`warnings.warn`,
    counted from the caller) when it is None."""
    if spec is not None:
        return spec
    warnings.warn(
        f"no model given: using the '{DEFAULT_PRESET}' architecture with random weights; "
        "pass a trained model directory for meaningful embeddings",
        stacklevel=stacklevel + 1,
    )
    return DEFAULT_PRESET


def is_untrained(spec: ModelSpec) -> bool:
    """Whether ``spec`` means random weights: ``random``, ``random:X`` or a preset name that is not a path."""
    if isinstance(spec, (L3Net, InferenceModel)):
        return False
    text = os.fspath(spec)
    return text == RANDOM or text.startswith(RANDOM + ":") or (text in PRESETS and not Path(text).exists())


def _architecture(base: str) -> tuple[ModelConfig, str]:
    if base in PRESETS and not Path(base).exists():
        return PRESETS[base], base
    model = _read(base, seed=0)  # a directory or openl3:NAME: its config (the weights are dropped)
    return model.config, f"{Path(base).name} architecture"


def _read(text: str, *, seed: int) -> L3Net:
    """A saved model, a preset (random weights from ``seed``) or ``openl3:NAME``."""
    if text.startswith(OPENL3_PREFIX) and not Path(text).exists():
        return read_model(openl3_model_dir(text))
    return read_model(text, seed=seed)


def resolve_model(
    spec: ModelSpec | None, *, device: str | torch.device | None = None, seed: int = 0
) -> ResolvedModel:
    """The model ``spec`` names (see the module docstring), on ``device`` (None: where it is / the
    CPU for a new one), in eval mode. An :class:`InferenceModel` stays on its own device."""
    spec = default_spec(spec, stacklevel=2)
    if isinstance(spec, InferenceModel):
        return ResolvedModel(spec, spec.config.name, False)  # type: ignore[arg-type] - same feature methods
    if isinstance(spec, L3Net):
        model = spec if device is None else spec.to(resolve_device(device))
        return ResolvedModel(model.eval(), model.config.name, False)
    if not isinstance(spec, (str, os.PathLike)):
        raise InputError(f"model must be an L3Net, a preset name or a model directory, got {type(spec).__name__}")
    text = os.fspath(spec)
    target = None if device is None else resolve_device(device)
    if text == RANDOM or text.startswith(RANDOM + ":"):
        config, what = _architecture(text.partition(":")[2] or "paper")
        model = build_model(config, seed=seed)
        label = f"random weights ({what})"
    elif is_untrained(text):
        model, label = build_model(text, seed=seed), f"{text} preset, random weights (seed {seed})"
    else:
        model = _read(text, seed=seed)
        label = Path(text).resolve().name if Path(text).exists() else text
    if target is not None:
        model = model.to(target)
    return ResolvedModel(model.eval(), label, is_untrained(text))


def load_model(
    spec: ModelSpec = DEFAULT_PRESET, *, device: str | torch.device | None = None, seed: int = 0
) -> L3Net:
    """The model ``spec`` names (any spec of the module docstring), in eval mode: ``l3net.load_model``.

    A preset name gives random weights from ``seed``; ``"openl3:<front end>-<content>"`` (e.g.
    ``"openl3:mel256-env"``) one of OpenL3's published models, found and converted once (see
    :mod:`l3net.openl3`); a directory is one written by :meth:`L3Net.save` or by ``l3net train``
    (its run directory), or its ``model.safetensors``.
    """
    return resolve_model(spec, device=device, seed=seed).model


class ModelCache:
    """An explicit, bounded cache of resolved models, keyed by spec, device, seed and the weights'
    modification time (a retrained directory is reloaded). The embedding API keeps one
    (``l3net.embed.MODEL_CACHE``) so that calls naming a model by path or preset load it once;
    :meth:`clear` empties it, and a loaded :class:`L3Net` passed instead bypasses it."""

    def __init__(self, max_models: int = 4) -> None:
        self.max_models = max_models
        self._models: dict[tuple[str, str, int, float], ResolvedModel] = {}

    def __len__(self) -> int:
        return len(self._models)

    def clear(self) -> None:
        self._models.clear()

    def get(self, spec: str | os.PathLike[str], *, device: str | torch.device | None = None, seed: int = 0) -> ResolvedModel:
        """The model ``spec`` names (:func:`resolve_model`), loaded on first use."""
        text, target = os.fspath(spec), resolve_device(device)
        path, stamp = Path(text), 0.0
        if path.exists():
            text = str(path.resolve())
            weights = path / WEIGHTS_FILE if path.is_dir() else path
            stamp = weights.stat().st_mtime if weights.exists() else 0.0
        key = (text, str(target), seed, stamp)
        if key not in self._models:
            if len(self._models) >= self.max_models:  # a few models at most: they are large
                self._models.pop(next(iter(self._models)))
            self._models[key] = resolve_model(text, device=target, seed=seed)
        return self._models[key]


def random_twin(model: L3Net, seed: int = 0) -> L3Net:
    """``model``'s architecture with fresh weights from ``seed + RANDOM_TWIN_SEED_OFFSET``, on its device,
    in eval mode: the "random weights" reference row of a run with seed ``seed``."""
    device = next(model.parameters()).device
    return build_model(model.config, seed=seed + RANDOM_TWIN_SEED_OFFSET).to(device).eval()


def random_weight_seeds(seed: int = 0, n: int = DEFAULT_RANDOM_SEEDS, *, untrained: bool = False) -> list[int]:
    """The weight seeds of the ``n`` random networks of a reference row: ``seed + RANDOM_TWIN_SEED_OFFSET
    + i`` (the random twins of a model), or ``seed + i`` when the model is random itself (``--model random
    --seed S``: S is its own seed, S + 1, ... the others)."""
    if n < 1:
        raise InputError(f"need at least one random seed, got {n}")
    base = seed if untrained else seed + RANDOM_TWIN_SEED_OFFSET
    return [base + i for i in range(n)]


def random_twins(
    model: L3Net, seed: int = 0, n: int = DEFAULT_RANDOM_SEEDS, *, untrained: bool = False
) -> Iterator[tuple[int, L3Net]]:
    """``(weight seed, network)`` for the ``n`` random networks of a reference row, one at a time (each
    is built when asked for, so only one extra network is in memory), on ``model``'s device, in eval mode.

    ``untrained=False``: ``model``'s random twins, weights from ``seed + RANDOM_TWIN_SEED_OFFSET + i``
    (the first is :func:`random_twin`). ``untrained=True`` (``model`` has random weights from ``seed``
    itself): ``model`` first, then its architecture with weights from ``seed + 1``, ``seed + 2``, ...
    """
    device = next(model.parameters()).device
    for i, weight_seed in enumerate(random_weight_seeds(seed, n, untrained=untrained)):
        if untrained and i == 0:
            yield weight_seed, model.eval()
        else:
            yield weight_seed, build_model(model.config, seed=weight_seed).to(device).eval()


def random_row_networks(
    model: L3Net, seed: int = 0, n: int = DEFAULT_RANDOM_SEEDS, *, untrained: bool = False,
    given: L3Net | None = None,
) -> Iterator[tuple[int | None, L3Net]]:
    """The networks of a protocol's random-weights row: ``given`` alone (weight seed None) when the
    caller supplies one, else :func:`random_twins` ``(model, seed, n, untrained=untrained)``."""
    if given is not None:
        yield None, given.eval()
    else:
        yield from random_twins(model, seed, n, untrained=untrained)
