"""Table 4 / Figure 10: NMI, the random-assignment row, k handling, and the command end to end."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest
from fixtures_train import ORDERING_SPLIT
from test_eval_avc import read_result

from l3net.cli import main
from l3net.errors import InputError
from l3net.evaluate import paper
from l3net.evaluate.cluster import kmeans_nmi, nmi, random_assignment_nmi, resolve_k
from l3net.evaluate.result import spread_text


def test_nmi_hand_computed():
    labels, clusters = ["a", "a", "b", "b"], [0, 0, 0, 1]
    # H(Y) = ln 2; H(C) of (3/4, 1/4); I(Y; C) from the joint (a,0)=1/2, (b,0)=1/4, (b,1)=1/4.
    h_y = math.log(2)
    h_c = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    mi = 0.5 * math.log(0.5 / (0.5 * 0.75)) + 0.25 * math.log(0.25 / (0.5 * 0.75)) + 0.25 * math.log(0.25 / (0.5 * 0.25))
    assert nmi(labels, clusters) == pytest.approx(mi / ((h_y + h_c) / 2), abs=1e-9)
    assert nmi(labels, [5, 5, 7, 7]) == pytest.approx(1.0)  # cluster names do not matter
    assert nmi(labels, [0, 1, 0, 1]) == pytest.approx(0.0, abs=1e-12)


def test_random_assignment_nmi_is_the_finite_sample_floor():
    rng = np.random.default_rng(12345)  # not seed 0: the assignments draw from a seed-0 stream
    many = rng.integers(0, 10, size=3000)
    assert random_assignment_nmi(many, 2, repeats=5) < 0.01  # few clusters, many inputs: ~0
    few = rng.integers(0, 10, size=100)
    biased = random_assignment_nmi(few, 64, repeats=5)
    assert 0.4 < biased < 1.0  # many clusters, few inputs: far above 0, the paper's 0.165 effect
    assert random_assignment_nmi(few, 64, repeats=5, seed=1) == pytest.approx(biased, abs=0.05)


def test_resolve_k_clamps_with_a_note_and_rejects_nonsense():
    assert resolve_k(64, 1000) == (64, None)
    k, note = resolve_k(64, 20)
    assert k == 20 and "exceeds the 20 test inputs" in note
    with pytest.raises(InputError, match="at least 2"):
        resolve_k(1, 100)
    with pytest.raises(InputError, match="at least 2 inputs"):
        resolve_k(4, 1)


def test_kmeans_nmi_separated_blobs_vs_noise():
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(4, 16)) * 20
    labels = np.repeat(np.arange(4), 25)
    blobs = centres[labels] + rng.normal(size=(100, 16))
    assert kmeans_nmi(blobs, labels, 4) == pytest.approx(1.0)
    noise = rng.normal(size=(100, 16))
    assert kmeans_nmi(noise, labels, 4) < 0.2
    with pytest.raises(InputError, match="NaN"):
        kmeans_nmi(np.full((10, 3), np.nan), labels[:10], 2)


# ------------------------------------------------------------------------------------------------
# end to end on the synthetic world
# ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained_cluster(trained_small_run, synth_shards, tmp_path_factory):
    """``l3net eval cluster`` on the trained small run, k = the number of classes; its result."""
    out = tmp_path_factory.mktemp("cluster")
    code = main(["eval", "cluster", "--model", str(trained_small_run), "--data", str(synth_shards), "--out", str(out),
                 "--split", ORDERING_SPLIT, "--k", "4"])
    assert code == 0
    return out / "eval", read_result(out / "eval", "cluster")


@pytest.mark.slow
def test_cluster_command_writes_table_4_and_figure_10(trained_cluster, capsys):
    eval_dir, data = trained_cluster
    assert {f["path"] for f in data["figures"]} == {"cluster_nmi.png", "cluster_tsne.png"}
    nmi_scores = data["metrics"]["nmi"]
    for modality in ("vision", "audio"):
        assert set(nmi_scores[modality]) == {"random assignment", "L3 without training", "L3-Net"}
    # the random-assignment row is the same expectation for both towers (same labels, same k)
    assert nmi_scores["vision"]["random assignment"] == nmi_scores["audio"]["random assignment"] > 0
    rows = data["tables"][0]["rows"]
    assert [r[3] for r in rows] == [0.165, 0.204, 0.409]  # the paper's vision column beside ours
    assert [r[5] for r in rows] == [paper.OWN] * 3  # Table 4's numbers are all the paper's own
    assert [r[1:3] for r in (rows[0], rows[2])] == [[round(nmi_scores[t][m], 4) for t in ("vision", "audio")]
                                                     for m in ("random assignment", "L3-Net")]
    # the untrained row: mean and spread over 3 random twins (weights from seed 1000, 1001, 1002)
    spread = data["metrics"]["random_weights"]
    for i, modality in enumerate(("vision", "audio")):
        assert spread[modality]["seeds"] == [1000, 1001, 1002] and len(set(spread[modality]["values"])) > 1
        assert nmi_scores[modality]["L3 without training"] == pytest.approx(np.mean(spread[modality]["values"]))
        assert rows[1][1 + i] == spread_text(spread[modality], digits=4)
    assert data["metrics"]["k"] == 4 and data["metrics"]["num_classes"] == 4


# NMI (k = 4, train split) of the fixture trained with seeds 0, 1, 2, 3 on a 2-core AMD EPYC, against
# the mean of three untrained networks (vision 0.610, audio 0.593) and random assignment (0.136):
#   vision 0.620, 0.778, 0.664, 0.620    audio 0.600, 0.756, 0.927, 0.625
# Both towers learn, but on this world an untrained network already clusters the classes (issue #15),
# so the lead over it ranges from +0.007 to +0.334 with the seed: no bar above "untrained" would be
# safe from a change of CPU. The assertions are what holds with a margin: trained embeddings cluster
# far above random assignment (the lowest trained NMI is 0.41 above it; the bar, 0.3, fails a tower
# whose features say half as much) and not clearly worse than untrained ones. The CPU moves the
# trained fixture too: seed 0 on a 2-core Intel Xeon with AMX (2026-12-07, also with the code of
# 42956ef) gives vision 0.544 against untrained 0.610, a lead of -0.066; the bar (untrained - 0.12)
# sits 0.05 under that and still fails a training that degrades the features toward random
# assignment. "Trained beats random" with a stated margin is asserted on the units
# (test_eval_units.py), where the spread allows one.
@pytest.mark.slow
@pytest.mark.parametrize("modality", ["vision", "audio"])
def test_trained_towers_cluster_the_classes(trained_cluster, modality):
    nmi_scores = trained_cluster[1]["metrics"]["nmi"][modality]
    assert nmi_scores["L3-Net"] >= nmi_scores["random assignment"] + 0.3
    assert nmi_scores["L3-Net"] >= nmi_scores["L3 without training"] - 0.12
    assert nmi_scores["L3 without training"] > nmi_scores["random assignment"]


def test_cluster_k_larger_than_inputs_and_bad_inputs(synth_shards, unlabelled_shards, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["eval", "cluster", "--model", "small", "--data", str(synth_shards), "--out", str(out),
                 "--no-tsne", "--n-init", "1", "--seed", "7", "--random-seeds", "2"]) == 0
    data = read_result(out / "eval", "cluster")
    # a random model is the first of the random row's networks (weights from --seed, --seed + 1); no trained row
    spread = data["metrics"]["random_weights"]["vision"]
    assert spread["seeds"] == [7, 8] and spread["n"] == 2
    assert data["metrics"]["nmi"]["vision"]["L3-Net"] is None
    rows = {r[0]: r for r in data["tables"][0]["rows"]}
    assert rows["L3-Net"][1:3] == [None, None] and "(2 seeds" in rows["L3 without training"][1]
    n = data["metrics"]["num_inputs"]
    assert data["metrics"]["k_requested"] == 64 and data["metrics"]["k"] == n < 64
    assert any("exceeds" in note for note in data["notes"])
    capsys.readouterr()

    def fails(args, *needles):
        assert main(["eval", "cluster", "--model", "small", "--out", str(tmp_path / "bad"), *args]) == 2
        err = capsys.readouterr().err
        assert "Traceback" not in err
        for needle in needles:
            assert needle in err, err

    info = json.loads((synth_shards / "dataset.json").read_text())
    fails(["--data", str(unlabelled_shards)], "clustering needs class labels")
    fails(["--data", str(synth_shards), "--classes", "unicorns"], "unknown class name", "'unicorns'", info["classes"][0])
    fails(["--data", str(synth_shards), "--k", "1"], "--k must be at least 2")
    fails(["--data", str(synth_shards), "--random-seeds", "0"], "--random-seeds at least 1")
    fails(["--data", str(tmp_path / "nowhere")], "no such shard directory")
    assert not (tmp_path / "bad").exists()  # nothing is created for input that cannot work


def test_test_inputs_pick_centred_clips_and_survive_a_corrupt_frame(synth_shards, tmp_path):
    from l3net.config import SAMPLE_RATE, get_preset
    from l3net.data.shards import ShardSet
    from l3net.evaluate.inputs import clip_start, frame_indices, pick_items, read_clip, read_image

    assert frame_indices(16, 1) == [8] and frame_indices(16, 4) == [2, 6, 10, 14] and frame_indices(2, 5) == [0, 1]
    assert clip_start(2.0, 4 * SAMPLE_RATE, SAMPLE_RATE) == int(1.5 * SAMPLE_RATE)  # centred on the frame
    assert clip_start(0.1, 4 * SAMPLE_RATE, SAMPLE_RATE) == 0  # moved inside the video
    assert clip_start(3.9, 4 * SAMPLE_RATE, SAMPLE_RATE) == 3 * SAMPLE_RATE

    copy = tmp_path / "shards"
    shutil.copytree(synth_shards, copy)
    config = get_preset("small")
    shards = ShardSet(copy)
    item = pick_items(shards, "test", config)[0]
    assert read_clip(shards, item, config).shape == (config.clip_samples,)
    offset, size = item.video.frames[item.frame_index]
    with open(item.video.shard, "r+b") as handle:  # same size: the shard index still matches
        handle.seek(offset)
        handle.write(b"\0" * size)
    with pytest.warns(UserWarning, match=f"frame {item.frame_index} of video {item.key} is unreadable"):
        image = read_image(ShardSet(copy), item, config)
    assert image.ndim == 3 and image.shape[2] == 3
