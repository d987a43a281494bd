"""Table 1's supervised baselines: threshold choice (hand-computed), the classifier, the budget (from the
L3 run compared with), exact resume, the audio classifier's batches, end to end, bad input."""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import shutil

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from l3net.cli import main
from l3net.config import get_preset
from l3net.data.sampler import AugmentConfig
from l3net.data.shards import ShardSet
from l3net.errors import InputError
from l3net.evaluate.baselines.networks import TowerClassifier, choose_threshold, direct_scorer
from l3net.evaluate.baselines.protocol import BaselinesConfig, plan_budget, reference_run, training_augment
from l3net.evaluate.baselines.training import Checkpoint, TrainPlan, train_supervised
from l3net.models import build_model, load_model
from l3net.config import PAPER_PAIRS


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


def _fake_run(directory, *, steps, batch_size, preset="small"):
    """A model directory as 'l3net train' leaves it: config.json records the run's steps and batch."""
    build_model(preset, seed=5).save(directory, extra_config={
        "train": {"preset": preset, "batch_size": batch_size, "augment": None}, "step": steps, "pairs_seen": steps * batch_size})
    return directory


def test_budget_follows_the_reference_run_or_the_settings(tmp_path):
    run = reference_run(_fake_run(tmp_path / "run", steps=40, batch_size=32))
    assert (run.steps, run.batch_size, run.pairs, run.preset) == (40, 32, 1280, "small")
    budget = plan_budget(BaselinesConfig(batch_size=8), 18, run)
    # the head sees the run's 1280 pairs; each classifier as many examples: ceil(1280 / 18) = 72 epochs
    assert budget["head"] == {"steps": 160, "pairs": 1280, "from": budget["head"]["from"]}
    assert str(tmp_path / "run") in budget["head"]["from"] and "40 steps x 32 pairs" in budget["head"]["from"]
    assert budget["classifiers"]["epochs"] == 72 and budget["classifiers"]["steps"] == 162  # ceil(72 * 18 / 8)
    assert budget["reference"]["pairs"] == 1280
    explicit = plan_budget(BaselinesConfig(batch_size=8, epochs=2, head_pairs=100), 18, run)
    assert explicit["classifiers"]["epochs"] == 2 and explicit["classifiers"]["steps"] == 5
    assert explicit["head"]["steps"] == 13 and explicit["head"]["from"] == "set (head pairs)"
    assert plan_budget(BaselinesConfig(batch_size=8, head_steps=3, head_pairs=100), 18, run)["head"]["steps"] == 3
    alone = plan_budget(BaselinesConfig(batch_size=256), 1000, None)  # no run: l3net train's default
    assert alone["head"]["pairs"] == PAPER_PAIRS and alone["classifiers"]["epochs"] == PAPER_PAIRS // 1000
    assert "no L3 run given" in alone["head"]["from"]
    assert training_augment(run) == AugmentConfig() == training_augment(None)  # the run used the defaults
    tuned = {"flip": 0.3, "brightness": 0.1, "saturation": 0.0, "gain": [0.8, 1.2]}  # as config.json holds it
    assert training_augment(dataclasses.replace(run, augment=tuned)) == AugmentConfig(0.3, 0.1, 0.0, (0.8, 1.2))
    with pytest.raises(InputError, match="augmentation"):
        training_augment(dataclasses.replace(run, augment={**tuned, "flip": 2.0}))
    with pytest.raises(InputError, match="no record of an 'l3net train' run"):
        reference_run(build_model("small").save(tmp_path / "not_a_run"))
    with pytest.raises(InputError, match="not a model directory"):
        reference_run(tmp_path / "missing")


def _plan(shards_dir, *, classifier_steps, head_steps, batch_size=8):
    config = get_preset("small")
    return TrainPlan(config, tuple(ShardSet(shards_dir).classes), classifier_steps, head_steps, batch_size, 1e-3, 1e-3,
                     1e-5, 0, "fp32", AugmentConfig(), 0, ShardSet(shards_dir).fingerprint())


def _states(trained):
    return {**{f"{m}.{k}": v for m, c in trained.classifiers.items() for k, v in c.state_dict().items()},
            **{f"net.{k}": v for k, v in trained.network.state_dict().items()}}


def test_interrupted_and_resumed_training_equals_an_uninterrupted_one(synth_shards, tmp_path, monkeypatch):
    from l3net.evaluate.baselines import training as supervised_train

    shards = ShardSet(synth_shards)
    plan = _plan(synth_shards, classifier_steps=4, head_steps=4)
    device = torch.device("cpu")
    whole = train_supervised(shards, plan, device=device, progress=False)

    # Interrupted twice: in the audio classifier's 3rd step (saved at step 2), then in the head's 4th
    # step (saved at 2); each resumed from the checkpoint.
    real_step = supervised_train.optimizer_step
    for crash_after in (4 + 2, 2 + 2):  # optimizer steps of this process before the crash
        calls = {"n": 0}

        def crashing(*args, **kwargs):
            if calls["n"] == crash_after:
                raise KeyboardInterrupt("simulated kill")
            calls["n"] += 1
            return real_step(*args, **kwargs)

        monkeypatch.setattr(supervised_train, "optimizer_step", crashing)
        checkpoint = Checkpoint(tmp_path / "checkpoint", plan, save_every=2)
        with pytest.raises(KeyboardInterrupt):
            train_supervised(shards, plan, device=device, checkpoint=checkpoint, resume=True, progress=False)
    monkeypatch.setattr(supervised_train, "optimizer_step", real_step)
    resumed = train_supervised(shards, plan, device=device, checkpoint=Checkpoint(tmp_path / "checkpoint", plan, 2),
                               resume=True, progress=False)
    assert resumed.resumed_from == {"vision": 4, "audio": 4, "head": 2}
    a, b = _states(whole), _states(resumed)
    assert a.keys() == b.keys()
    assert [k for k in a if not torch.equal(a[k], b[k])] == []
    assert {k: dataclasses.asdict(h) for k, h in whole.histories.items()} == \
        {k: dataclasses.asdict(h) for k, h in resumed.histories.items()}
    # A checkpoint is only resumed under the same plan.
    other = _plan(synth_shards, classifier_steps=5, head_steps=4)
    with pytest.raises(InputError, match="classifier_steps was 4, now 5"):
        train_supervised(shards, other, device=device, checkpoint=Checkpoint(tmp_path / "checkpoint", other, 2),
                         resume=True, progress=False)
    assert not [p for p in (tmp_path / "checkpoint").iterdir() if p.name != "state.pt"]  # no temporaries left


def test_audio_classifier_batches_cover_each_video_once_per_epoch_and_workers_change_nothing(synth_shards):
    from l3net.evaluate.baselines.networks import ClassifierClips, usable_train_videos

    config = get_preset("small")
    shards = ShardSet(synth_shards)
    videos = usable_train_videos(shards, config)
    classes = shards.classes
    n = len(videos)
    data = ClassifierClips(synth_shards, config, classes, batch_size=n, seed=0, augment=AugmentConfig())
    first, second = itertools.islice(iter(data), 2)
    expected = sorted(classes.index(v.label) for v in videos)
    assert sorted(first[1].tolist()) == expected and sorted(second[1].tolist()) == expected  # one epoch each
    assert not torch.equal(first[0], second[0])
    small = ClassifierClips(synth_shards, config, classes, batch_size=4, seed=0, augment=AugmentConfig(), start_step=3)
    here = list(itertools.islice(iter(small), 4))
    loaded = list(itertools.islice(iter(DataLoader(small, batch_size=None, num_workers=2)), 4))
    for (x1, y1), (x2, y2) in zip(here, loaded):
        assert torch.equal(x1, x2) and torch.equal(y1, y2)
    # step 4 of a stream started at 3 is step 1 of one started at 3 + 1
    later = ClassifierClips(synth_shards, config, classes, batch_size=4, seed=0, augment=AugmentConfig(), start_step=4)
    assert torch.equal(next(iter(later))[0], here[1][0])


@pytest.mark.slow
def test_baselines_end_to_end_with_the_budget_of_a_run_and_avc_shows_them(synth_shards, tmp_path, capsys):
    run = _fake_run(tmp_path / "l3run", steps=2, batch_size=8)  # 16 pairs
    out = tmp_path / "run"
    args = ["eval", "baselines", "--data", str(synth_shards), "--model", str(run), "--out", str(out),
            "--batch-size", "8", "--pairs-per-video", "2", "--no-progress", "--workers", "1"]
    assert main(args) == 0
    assert "supervised-pretraining network" in capsys.readouterr().out
    data = json.loads((out / "eval" / "baselines.json").read_text())
    assert (out / "eval" / "baselines_training.png").read_bytes()[:4] == b"\x89PNG"
    budget = data["metrics"]["budget"]
    # the run saw 2 x 8 = 16 pairs: the head trains 16 pairs (2 steps of 8), each classifier
    # ceil(16 / n usable train videos) = 1 epoch = ceil(n / 8) steps
    n = len(ShardSet(synth_shards).videos("train"))
    assert budget["head"]["steps"] == 2 and budget["head"]["pairs"] == 16 and str(run) in budget["head"]["from"]
    assert budget["classifiers"]["epochs"] == 1 and budget["classifiers"]["steps"] == math.ceil(n / 8)
    assert budget["classifiers"]["train_videos"] == n and budget["reference"]["steps"] == 2
    table = next(t for t in data["tables"] if t["title"].startswith("Training budgets"))
    assert [row[2] for row in table["rows"]] == [math.ceil(n / 8), math.ceil(n / 8), 2]
    training = data["metrics"]["training"]
    for modality in ("vision", "audio"):
        assert training[modality]["step"][-1] == math.ceil(n / 8)
        classifier = data["metrics"]["classifiers"][modality]
        assert classifier["chance"] == 0.25  # the fixture's 4 classes
        assert classifier["accuracy"] * classifier["inputs"] == pytest.approx(round(classifier["accuracy"] * classifier["inputs"]), abs=1e-6)
    assert training["fusion_head"]["step"][-1] == 2
    assert training["workers"] == 1 and training["augment"]["flip"] == AugmentConfig().flip
    avc = data["metrics"]["avc"]
    assert set(avc) == {"Supervised direct", "Supervised pretraining"}
    direct = data["metrics"]["direct"]
    assert direct["positives"] == direct["negatives"]  # the balanced test pairs
    assert avc["Supervised direct"] == direct["accuracy"]
    for v in avc.values():  # both scored on the same test pairs: a whole number of them right
        assert v * direct["pairs"] == pytest.approx(round(v * direct["pairs"]), abs=1e-6)
    # A second run refuses to overwrite the checkpoint without --resume; with it, nothing is retrained
    # and the result is the same.
    assert main(args) == 2
    assert "pass --resume" in capsys.readouterr().err
    assert main([*args, "--resume"]) == 0
    again = json.loads((out / "eval" / "baselines.json").read_text())
    assert again["metrics"]["training"]["resumed_from"] == {"vision": math.ceil(n / 8), "audio": math.ceil(n / 8), "head": 2}
    assert again["metrics"]["avc"] == avc
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
    fails(synth_shards, "head pairs must be at least 1", extra=["--head-pairs", "0"])
    fails(synth_shards, "not a model directory", extra=["--model", str(tmp_path / "no_run")])
    fails(synth_shards, "no record of an 'l3net train' run",
          extra=["--model", str(build_model("small").save(tmp_path / "converted"))])
    fails(tmp_path / "missing", "no such shard directory")
    assert main(["eval", "baselines", "--data", str(synth_shards)]) == 2
    assert "pass --out" in capsys.readouterr().err
    assert not (tmp_path / "out" / "eval" / "baselines.json").exists()
