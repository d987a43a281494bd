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


def test_random_twins_are_distinct_seeded_networks_and_the_random_model_is_its_own_first():
    from l3net.modelspec import random_twins, random_weight_seeds

    model = build_model("small", seed=3)
    twins = list(random_twins(model, seed=3, n=3))
    assert [s for s, _ in twins] == [1003, 1004, 1005] == random_weight_seeds(3, 3)
    assert same_weights(twins[0][1], random_twin(model, seed=3))  # the first is the documented twin
    assert all(not t.training and same_weights(t, build_model("small", seed=s)) for s, t in twins)
    assert not same_weights(twins[1][1], twins[2][1]) and not any(same_weights(t, model) for _, t in twins)
    own = list(random_twins(model, seed=3, n=2, untrained=True))  # --model random --seed 3
    assert [s for s, _ in own] == [3, 4] and own[0][1] is model
    assert same_weights(own[1][1], build_model("small", seed=4))
    with pytest.raises(InputError, match="at least one"):
        random_weight_seeds(0, 0)


def test_mean_spread_against_numpy():
    import numpy as np

    from l3net.evaluate.result import mean_spread, spread_text

    values = [0.364, 0.404, 0.38]
    stats = mean_spread(values, seeds=[0, 1, 2])
    assert stats["mean"] == pytest.approx(np.mean(values)) and stats["std"] == pytest.approx(np.std(values))
    assert (stats["min"], stats["max"], stats["n"], stats["seeds"]) == (0.364, 0.404, 3, [0, 1, 2])
    assert spread_text(stats) == "0.383 \u00b1 0.016 (3 seeds: 0.364-0.404)"
    assert spread_text(mean_spread([0.5])) == "0.500 (1 seed)"
    with pytest.raises(ValueError):
        mean_spread([0.1, 0.2], seeds=[1])
