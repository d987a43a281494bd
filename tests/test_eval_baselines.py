"""Table 1's supervised baselines: threshold choice (hand-computed), the classifier, end to end, bad input."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from l3net.cli import main
from l3net.errors import InputError
from l3net.evaluate.baselines import TowerClassifier, choose_threshold, direct_scorer
from l3net.models import build_model, load_model


def test_choose_threshold_hand_computed():
    # sorted: 0.1 (neg), 0.35 (pos), 0.4 (neg), 0.8 (pos). Accuracy of "score > t" for the candidates
    # below 0.1: 2/4; 0.225: 3/4; 0.375: 2/4; 0.6: 3/4; 0.8: 2/4. The lowest best one is 0.225.
    t, acc = choose_threshold([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])
    assert t == pytest.approx(0.225) and acc == 0.75
    t, acc = choose_threshold([0.2, 0.2, 0.7, 0.7], [0, 0, 1, 1])  # ties: separable between 0.2 and 0.7
    assert t == pytest.approx(0.45) and acc == 1.0
    t, acc = choose_threshold([0.3, 0.5, 0.9], [1, 1, 1])  # all positive: a threshold below them all
    assert t < 0.3 and acc == 1.0
    t, acc = choose_threshold([0.3, 0.5, 0.9], [0, 0, 0])  # all negative: nothing above the maximum
    assert t == 0.9 and acc == 1.0
    with pytest.raises(InputError):
        choose_threshold([0.1, np.nan], [0, 1])
    with pytest.raises(InputError):
        choose_threshold([0.1], [0, 1])


class _Fixed(torch.nn.Module):
    def __init__(self, logits):
        super().__init__()
        self.logits = torch.tensor(logits, dtype=torch.float32)

    def forward(self, x):
        return self.logits


def test_direct_score_is_the_dot_product_of_the_softmax_outputs():
    v = [[0.0, 0.0], [2.0, 0.0]]
    a = [[1.0, 0.0], [0.0, 3.0]]
    score = direct_scorer(_Fixed(v), _Fixed(a))(torch.zeros(2, 3, 8, 8), torch.zeros(2, 100))
    pv, pa = np.exp(v) / np.exp(v).sum(1, keepdims=True), np.exp(a) / np.exp(a).sum(1, keepdims=True)
    np.testing.assert_allclose(score.numpy(), (pv * pa).sum(1), rtol=1e-6)


def test_tower_classifier_uses_one_tower_and_two_fc_layers():
    net = build_model("small", seed=0)
    clf = TowerClassifier(net, "audio", num_classes=5)
    out = clf(torch.zeros(2, net.config.clip_samples))
    assert out.shape == (2, 5)
    assert clf.fc1.in_features == net.config.embedding_dim and clf.fc1.out_features == net.config.head_hidden
    trainable = {id(p) for p in clf.trainable_parameters()}
    assert all(id(p) in trainable for p in net.audio.parameters())
    assert not any(id(p) in trainable for p in [*net.vision.parameters(), *net.head.parameters()])


@pytest.mark.slow
def test_baselines_end_to_end_and_avc_shows_them(synth_shards, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["eval", "baselines", "--data", str(synth_shards), "--out", str(out), "--epochs", "1",
                 "--samples-per-video", "1", "--head-steps", "2", "--batch-size", "8", "--pairs-per-video", "2"])
    assert code == 0
    assert "supervised-pretraining network" in capsys.readouterr().out
    data = json.loads((out / "eval" / "baselines.json").read_text())
    assert (out / "eval" / "baselines_training.png").read_bytes()[:4] == b"\x89PNG"
    avc = data["metrics"]["avc"]
    assert set(avc) == {"Supervised direct", "Supervised pretraining"}
    direct = data["metrics"]["direct"]
    assert direct["positives"] == direct["negatives"]  # the balanced test pairs
    assert avc["Supervised direct"] == direct["accuracy"]
    for v in avc.values():  # both scored on the same test pairs: a whole number of them right
        assert v * direct["pairs"] == pytest.approx(round(v * direct["pairs"]), abs=1e-6)
    for modality in ("vision", "audio"):
        assert len(data["metrics"]["training"][modality]["loss"]) == 1  # one epoch
        classifier = data["metrics"]["classifiers"][modality]
        assert classifier["chance"] == 0.25  # the fixture's 4 classes
        assert classifier["accuracy"] * classifier["inputs"] == pytest.approx(round(classifier["accuracy"] * classifier["inputs"]), abs=1e-6)
    # The supervised-pretraining network is a model directory the other evaluations take, and
    # 'eval avc' in the same folder shows the supervised rows beside the network's own accuracy.
    model_dir = data["metrics"]["model_dir"]
    load_model(model_dir)
    assert main(["eval", "avc", "--model", model_dir, "--data", str(synth_shards), "--out", str(out),
                 "--pairs-per-video", "2"]) == 0
    table = json.loads((out / "eval" / "avc.json").read_text())["tables"][0]["rows"]
    shown = {row[0]: row[1] for row in table}
    assert shown["Supervised direct"] == pytest.approx(avc["Supervised direct"])
    assert shown["Supervised pretraining"] == pytest.approx(avc["Supervised pretraining"])
    assert not [p for p in (out / "eval").iterdir() if p.name.startswith(".")]


def test_baselines_bad_inputs_give_clear_errors(synth_shards, unlabelled_shards, tmp_path, capsys):
    def fails(data, *needles, extra=()):
        assert main(["eval", "baselines", "--data", str(data), "--out", str(tmp_path / "out"), *extra]) == 2
        err = capsys.readouterr().err
        assert "Traceback" not in err
        for needle in needles:
            assert needle in err, err

    info = json.loads((synth_shards / "dataset.json").read_text())
    fails(unlabelled_shards, "needs class labels")

    extra_class = tmp_path / "extra_class"
    shutil.copytree(synth_shards, extra_class)
    (extra_class / "dataset.json").write_text(json.dumps({**info, "classes": [*info["classes"], "zebra"]}))
    fails(extra_class, "'zebra'", "no videos in the train split")

    fails(synth_shards, "epochs must be at least 1", extra=["--epochs", "0"])
    fails(tmp_path / "missing", "no such shard directory")
    assert main(["eval", "baselines", "--data", str(synth_shards)]) == 2
    assert "pass --out" in capsys.readouterr().err
    assert not (tmp_path / "out" / "eval" / "baselines.json").exists()
