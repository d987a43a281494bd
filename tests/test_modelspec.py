"""The one model-spec resolver, its explicit cache and the random twin."""

from __future__ import annotations

import os

import pytest
import torch

from l3net.errors import InputError, ModelFileError
from l3net.modelspec import RANDOM_TWIN_SEED_OFFSET, ModelCache, is_untrained, random_twin, resolve_model
from l3net.models import build_model


def same_weights(a, b) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_specs(tmp_path):
    saved = build_model("small", seed=4).save(tmp_path / "run")
    trained = resolve_model(str(saved))
    assert (trained.label, trained.untrained) == ("run", False) and not trained.model.training
    assert same_weights(trained.model, build_model("small", seed=4))
    preset = resolve_model("small", seed=2)
    assert preset.untrained and preset.label == "small preset, random weights (seed 2)"
    assert same_weights(preset.model, build_model("small", seed=2))
    twin_arch = resolve_model(f"random:{saved}", seed=2)  # the run's architecture, fresh weights
    assert twin_arch.untrained and twin_arch.label == "random weights (run architecture)"
    assert same_weights(twin_arch.model, build_model("small", seed=2))
    assert resolve_model("random:small").label == "random weights (small)"
    assert [is_untrained(s) for s in ("random", "random:paper", "paper", str(saved))] == [True, True, True, False]
    with pytest.raises(ModelFileError):
        resolve_model(str(tmp_path / "missing"))
    with pytest.raises(InputError, match="model must be"):
        resolve_model(3.5)  # type: ignore[arg-type]


def test_the_random_twin_is_never_the_model_it_stands_beside():
    model = build_model("small", seed=0)
    twin = random_twin(model, seed=0)
    assert not twin.training and not same_weights(twin, model)
    assert same_weights(twin, build_model("small", seed=RANDOM_TWIN_SEED_OFFSET))
    assert same_weights(random_twin(model, seed=0), twin)  # documented, reproducible


def test_model_cache_loads_once_and_reloads_retrained_weights(tmp_path):
    cache = ModelCache(max_models=2)
    saved = build_model("small", seed=1).save(tmp_path / "m")
    first = cache.get(saved)
    assert cache.get(str(saved)).model is first.model and len(cache) == 1
    build_model("small", seed=9).save(saved)  # retrained in place
    weights = saved / "model.safetensors"
    os.utime(weights, (weights.stat().st_atime, weights.stat().st_mtime + 10))
    again = cache.get(saved)
    assert again.model is not first.model and same_weights(again.model, build_model("small", seed=9))
    cache.get("small")
    cache.get("random:small")
    assert len(cache) == 2  # bounded
    cache.clear()
    assert len(cache) == 0
