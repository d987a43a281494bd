"""Table 3's linear probe: trained and random rows on the same splits, outputs, bad images."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from l3net.cli import main
from l3net.evaluate import paper
from l3net.evaluate.datasets import Split
from l3net.evaluate.probe import RANDOM_ROW, TRAINED_ROW, make_probe
from l3net.evaluate.sound import classify_recordings
from l3net.models import build_model


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """A saved model directory (weights from another seed than the random twin's)."""
    return build_model("small", seed=11).save(tmp_path_factory.mktemp("model") / "run")


def test_probe_is_a_linear_layer_on_z_scored_features():
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((3, 20)) * 3
    labels = np.repeat(np.arange(3), 10)
    x = centres[labels] + 0.3 * rng.standard_normal((30, 20))
    split = Split("s", train=np.arange(0, 30, 2), test=np.arange(1, 30, 2))
    result = classify_recordings(x, np.arange(30), labels, [split], 3, make_classifier=make_probe, progress=False)
    assert result.accuracy == 1.0
    probe = make_probe().fit(x, labels)
    assert probe[-1].coef_.shape == (3, 20)  # one linear layer, multinomial (one row per class)
    np.testing.assert_allclose(probe[0].mean_, x.mean(axis=0))


def test_eval_probe_on_photos_trained_and_random_rows(model_dir, data_dir, capsys):
    code = main(["eval", "probe", "--model", str(model_dir), "--images", str(data_dir / "photos"), "--no-progress"])
    assert code == 0
    out = model_dir / "eval"  # a model directory is a run directory: results go into its eval/
    assert "wrote" in capsys.readouterr().out
    result = json.loads((out / "probe.json").read_text())
    assert result["protocol"] == "probe" and result["figures"][0]["path"] == "probe_confusion.png"
    assert (out / "probe_confusion.png").read_bytes()[:4] == b"\x89PNG"
    metrics = result["metrics"]
    assert metrics["feature_dim"] == 128 * 4 * 4  # conv4_2 pooled to 4 x 4
    assert metrics["dataset"]["images"] == 21 and len(metrics["dataset"]["classes"]) == 4
    for row in (TRAINED_ROW, RANDOM_ROW):
        splits = metrics[row]["splits"]
        assert len(splits) == 5 and sum(s["test"] for s in splits) == 21
    assert metrics[TRAINED_ROW]["accuracy"] == pytest.approx(np.mean([s["accuracy"] for s in metrics[TRAINED_ROW]["splits"]]))
    assert [s["test"] for s in metrics[TRAINED_ROW]["splits"]] == [s["test"] for s in metrics[RANDOM_ROW]["splits"]]
    # the random row: mean over 3 random networks (weights seed + 1000, 1001, 1002), each over the same splits
    spread = metrics["random_weights"]
    per_seed = metrics[RANDOM_ROW]["per_seed"]
    assert spread["seeds"] == [1000, 1001, 1002] == [p["seed"] for p in per_seed]
    for run in per_seed:
        assert run["accuracy"] == pytest.approx(np.mean(run["split_accuracy"]))
    assert metrics[RANDOM_ROW]["accuracy"] == pytest.approx(np.mean([p["accuracy"] for p in per_seed])) == spread["mean"]
    assert [s["accuracy"] for s in metrics[RANDOM_ROW]["splits"]] == per_seed[0]["split_accuracy"]
    table = {row[0]: row[1:] for row in result["tables"][0]["rows"]}
    assert table[TRAINED_ROW] == [metrics[TRAINED_ROW]["accuracy"], paper.IMAGE_PROBE["L3-Net"], paper.OWN]
    assert table[RANDOM_ROW][0].startswith(f"{spread['mean']:.3f} ± ") and "3 seeds" in table[RANDOM_ROW][0]
    assert table[RANDOM_ROW][1:] == [paper.IMAGE_PROBE["L3 random weights"], paper.OWN]
    assert sorted(p.name for p in out.iterdir()) == ["probe.json", "probe_confusion.png"]


def test_train_val_split_and_unreadable_images(data_dir, tmp_path, capsys):
    images = tmp_path / "images"
    for part, take in (("train", slice(0, 4)), ("val", slice(4, 5))):
        for cls in ("animal", "nature", "object"):
            (images / part / cls).mkdir(parents=True)
            for src in sorted((data_dir / "photos" / cls).iterdir())[take]:
                shutil.copy(src, images / part / cls / src.name)
    (images / "train" / "animal" / "broken.jpg").write_text("not a picture")
    (images / "val" / "nature" / "empty.png").write_bytes(b"")
    out = tmp_path / "out"
    code = main(["eval", "probe", "--model", "random:small", "--images", str(images), "--out", str(out),
                 "--no-progress", "--batch-size", "4", "--random-seeds", "1"])
    assert code == 0
    assert "broken.jpg" in capsys.readouterr().err
    metrics = json.loads((out / "eval" / "probe.json").read_text())["metrics"]
    assert set(metrics) >= {RANDOM_ROW} and TRAINED_ROW not in metrics  # random model: one row
    (split,) = metrics[RANDOM_ROW]["splits"]
    assert (split["name"], split["train"], split["test"]) == ("train/test", 12, 3)
    assert {Path(s["path"]).name for s in metrics["dataset"]["skipped"]} == {"broken.jpg", "empty.png"}
    assert metrics["dataset"]["split_rule"] == "predefined train/test split"


def test_bad_image_folders(tmp_path, capsys):
    images = tmp_path / "images"
    (images / "a").mkdir(parents=True)
    (images / "b").mkdir()
    (images / "a" / "x.jpg").write_text("text")
    code = main(["eval", "probe", "--model", "random:small", "--images", str(images), "--out", str(tmp_path / "o")])
    assert code == 2
    assert "empty class folder(s) b" in capsys.readouterr().err
    (images / "b" / "y.jpg").write_text("text")
    code = main(["eval", "probe", "--model", "random:small", "--images", str(images), "--out", str(tmp_path / "o"),
                 "--no-progress"])
    assert code == 2
    assert "no image could be read" in capsys.readouterr().err
    assert not (tmp_path / "o" / "eval" / "probe.json").exists()


def test_corrupt_model_is_a_clear_error_and_writes_nothing(model_dir, data_dir, tmp_path, capsys):
    broken = tmp_path / "broken"
    broken.mkdir()
    shutil.copy(model_dir / "config.json", broken / "config.json")
    (broken / "model.safetensors").write_text("junk")
    code = main(["eval", "probe", "--model", str(broken), "--images", str(data_dir / "photos"), "--no-progress"])
    assert code == 2
    assert "model.safetensors: corrupt" in capsys.readouterr().err
    assert sorted(p.name for p in broken.iterdir()) == ["config.json", "model.safetensors"]  # no eval/ left
