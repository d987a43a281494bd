"""Session fixtures of synthetic data, built once per test session (seconds, never committed).

- ``synth_world``: a small world made by :func:`l3net.data.synth.make_world` (``l3net synth``):
  60 videos of 4 s, 128 x 128 px, 4 classes, seed 0; ``labels.csv`` and ``videos/*.boxes.json``.
  60 rather than 36: with 36 (21 training videos) whether the trained fixture learnt at all within its
  budget depended on the training seed (best val AVC 0.658, 0.517, 0.617 for seeds 0-2 at 100 steps);
  with 60 it reached 0.733 for each seed measured (see fixtures_train.py).
  Pitch varies +-50 % per video, so that a class's sound is told by its timbre and rhythm, which
  random audio features do not separate (with distinct fixed pitches they do: NMI 0.8-1.0), and
  "trained beats random" means something for the audio tower too.
- ``unlabelled_shards``: a copy of ``synth_shards`` whose ``dataset.json`` names no classes.
- ``synth_shards``: that world prepared with labels (frames at 4 fps, smaller side 112 = the small
  preset's image_resize; shards of 6 videos; splits 0.6/0.2/0.2, all three non-empty; several
  shards per split so partitioning over workers can be tested).

Both are read-only for tests: copy them (``shutil.copytree``) before changing anything.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from l3net.data.prepare import PrepareConfig, prepare
from l3net.data.synth import WorldConfig, make_world

#: The settings of the session world and shards (tests may read them; never change them).
SYNTH_WORLD_CONFIG = WorldConfig(videos=60, classes=4, seconds=4.0, size=128, fps=8.0, seed=0, pitch_jitter=0.5)
SYNTH_PREPARE_CONFIG = PrepareConfig(seconds=4.0, fps=4.0, frame_size=112, split_ratios=(0.6, 0.2, 0.2), shard_size=6)


@pytest.fixture(scope="session")
def synth_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Path of a small synthetic world (see the module docstring)."""
    return make_world(tmp_path_factory.mktemp("synth") / "world", SYNTH_WORLD_CONFIG, workers=2)


@pytest.fixture(scope="session")
def synth_shards(synth_world: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Path of ``synth_world`` prepared into labelled shards (see the module docstring)."""
    out = tmp_path_factory.mktemp("shards") / "shards"
    summary = prepare(
        [synth_world / "videos"], out, labels=synth_world / "labels.csv", config=SYNTH_PREPARE_CONFIG,
        workers=2, progress=False,
    )
    assert all(summary.kept[split] >= 2 for split in ("train", "val", "test")), summary.table()
    return out


@pytest.fixture(scope="session")
def unlabelled_shards(synth_shards: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of ``synth_shards`` whose ``dataset.json`` names no classes (for "needs labels" errors)."""
    out = tmp_path_factory.mktemp("unlabelled") / "shards"
    shutil.copytree(synth_shards, out)
    info = json.loads((out / "dataset.json").read_text())
    (out / "dataset.json").write_text(json.dumps({**info, "classes": None}))
    return out
