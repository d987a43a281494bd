"""Table 2's protocol: subclips, averaging, z-scoring with training statistics, MFCC, and the command."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.fft
from signals import noise, tone, write_audio

from l3net.cli import main
from l3net.config import SAMPLE_RATE
from l3net.errors import DatasetError
from l3net.evaluate import paper
from l3net.evaluate.datasets import Split, load_audio_dataset
from l3net.evaluate.mfcc import N_MFCC, deltas, hz_to_mel, mel_filterbank, mfcc, mfcc_summary
from l3net.evaluate.result import spread_text
from l3net.evaluate.sound import (
    C_GRID,
    class_scores,
    classify_recordings,
    cut_subclips,
    SoundConfig,
    evaluate_sound,
    make_svm,
    recording_scores,
    subclip_count,
    subclip_starts,
)
from l3net.evaluate.svm import LinearSVM

SR = SAMPLE_RATE


# -- subclips --------------------------------------------------------------------------------------
def test_subclip_counts_follow_the_paper():
    assert subclip_count(5 * SR, SR) == 10  # ESC-50
    assert subclip_count(30 * SR, SR) == 60  # DCASE 2013
    assert subclip_count(int(1.2 * SR), SR) == 2
    assert subclip_count(int(0.4 * SR), SR) == 1
    assert subclip_count(3 * SR, SR, fixed=10) == 10


def test_subclip_positions_are_equally_spaced_end_to_end():
    starts = subclip_starts(5 * SR, SR, 10)
    # 10 starts from 0 to 4 s: a step of 4/9 s = 21333.3 samples
    assert starts.tolist() == [round(i * 4 * SR / 9) for i in range(10)]
    assert starts[-1] + SR == 5 * SR
    assert subclip_starts(30 * SR, SR, 60)[[0, 1, -1]].tolist() == [0, round(29 * SR / 59), 29 * SR]
    assert subclip_starts(3 * SR, SR, 1).tolist() == [SR]  # one subclip: the centred one


def test_subclip_positions_agree_with_the_embedding_api_framing():
    from l3net import embed

    for seconds, count, hop in ((5, 10, 4 / 9), (30, 60, 29 / 59)):
        n = seconds * SR
        assert embed.window_count(n, hop, center=False, window=SR) == count
        expected = [embed.window_start(k, hop, False, SR) for k in range(count)]
        assert subclip_starts(n, SR, count).tolist() == expected


def test_cut_subclips_takes_the_samples_at_those_positions_and_pads_short_clips():
    audio = np.arange(3 * SR, dtype=np.float32)
    clips = cut_subclips(audio, SR, 3)
    assert clips.shape == (3, SR)
    assert clips[:, 0].tolist() == [0, SR, 2 * SR] and clips[2, -1] == 3 * SR - 1
    short = cut_subclips(np.ones(SR // 2, np.float32), SR, 1)
    assert short.shape == (1, SR)
    assert short[0, : SR // 2].sum() == SR // 2 and not short[0, SR // 2 :].any()  # silence after the end


# -- averaging and the classifier ------------------------------------------------------------------
def test_a_recording_is_decided_by_its_mean_subclip_score_not_a_vote():
    # recording 0: one subclip strongly A, two weakly B -> mean favours A although B wins a vote
    scores = np.array([[5.0, 0.0], [0.0, 1.0], [0.0, 1.0], [0.0, 2.0]])
    recording = np.array([0, 0, 0, 1])
    mean = recording_scores(scores, recording, 2)
    np.testing.assert_allclose(mean, [[5 / 3, 2 / 3], [0.0, 2.0]])
    assert mean.argmax(1).tolist() == [0, 1]


class FixedScores:
    """A 'classifier' whose decision scores are the features themselves (to test the averaging)."""

    classes_ = np.array([0, 1])

    def fit(self, x, y):
        return self

    def decision_function(self, x):
        return x


def test_classify_recordings_averages_subclip_scores_per_test_recording():
    features = np.array([[1.0, 0.0], [0.0, 1.0], [5.0, 0.0], [0.0, 1.0], [0.0, 1.0], [0.0, 3.0]])
    recording = np.array([0, 1, 2, 2, 2, 3])
    labels = np.array([0, 1, 0, 1])
    split = Split("only", train=np.array([0, 1]), test=np.array([2, 3]))
    result = classify_recordings(features, recording, labels, [split], 2, make_classifier=FixedScores, progress=False)
    assert result.predictions.tolist() == [-1, -1, 0, 1]
    assert result.accuracy == 1.0
    # the per-subclip view gets recording 2 mostly wrong: 1 of 3 subclips, plus recording 3's one
    assert result.splits[0].subclip_accuracy == pytest.approx(2 / 4)
    assert result.confusion.tolist() == [[1, 0], [0, 1]]


def test_z_scoring_uses_training_statistics_only():
    # Training: class 0 at 0, class 1 at 10 (one feature). Test recordings at 9 and 11 are both
    # class 1 with training statistics; z-scored with their own statistics they would straddle 0.
    x_train = np.array([[0.0], [0.5], [10.0], [9.5]])
    svm = make_svm(C=1.0).fit(x_train, [0, 0, 1, 1])
    scaler = svm[0]
    np.testing.assert_allclose(scaler.mean_, [5.0])
    np.testing.assert_allclose(svm.predict(np.array([[9.0], [11.0]])), [1, 1])


def test_classes_missing_from_training_can_never_be_predicted():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((30, 4))
    y = np.repeat([0, 2], 15)  # class 1 of 3 never seen
    svm = make_svm().fit(x, y)
    scores = class_scores(svm, x[:5], 3)
    assert scores.shape == (5, 3) and np.isneginf(scores[:, 1]).all()
    assert np.isfinite(scores[:, [0, 2]]).all()
    # binary: one decision value, positive for classes_[1]
    np.testing.assert_allclose(scores[:, 2], -scores[:, 0])


@pytest.mark.parametrize("C", [0.01, 1.0])
def test_linear_svm_solves_linearsvc_objective(C):
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC

    rng = np.random.default_rng(1)
    y = np.repeat(np.arange(4), 60)
    x = StandardScaler().fit_transform(rng.standard_normal((240, 30)) + 0.8 * rng.standard_normal((4, 30))[y])
    # LinearSVC penalises its intercept as a feature of value intercept_scaling: make that negligible
    reference = LinearSVC(C=C, dual=False, tol=1e-8, max_iter=100_000, intercept_scaling=1000).fit(x, y)
    ours = LinearSVM(C=C).fit(x, y)
    scale = np.abs(reference.coef_).max()
    np.testing.assert_allclose(ours.coef_, reference.coef_, atol=0.01 * scale)
    np.testing.assert_allclose(ours.decision_function(x), reference.decision_function(x), atol=0.02 * scale * 10)
    assert (ours.predict(x) == reference.predict(x)).mean() > 0.98
    binary = LinearSVM(C=C).fit(x[y < 2], np.where(y[y < 2] == 1, "b", "a"))
    assert binary.decision_function(x[:3]).shape == (3,) and set(binary.predict(x)) <= {"a", "b"}


# -- MFCC ------------------------------------------------------------------------------------------
def test_mel_filterbank_triangles():
    fb = mel_filterbank(16000, 512, n_mels=10)
    assert fb.shape == (10, 257)
    freqs = np.fft.rfftfreq(512, 1 / 16000)
    peaks = freqs[fb.argmax(axis=1)]
    mel_step = hz_to_mel(8000) / 11
    np.testing.assert_allclose(hz_to_mel(peaks), mel_step * np.arange(1, 11), atol=mel_step * 0.2)
    assert (fb >= 0).all() and fb.max() <= 1


def test_mfcc_of_a_tone_and_of_silence():
    c = mfcc(tone(1000.0, 1.0))
    assert c.shape == (98, N_MFCC)  # (48000 - 1200) / 480 + 1 frames
    # a steady tone: every frame has the same coefficients
    np.testing.assert_allclose(c.std(axis=0), 0, atol=1e-2 * np.abs(c).max())
    s = mfcc_summary(np.zeros((2, SR), np.float32))
    assert s.shape == (2, 4 * N_MFCC) and np.isfinite(s).all()
    # silence: log of the floor in every band -> only c0 is non-zero (the DCT of a constant)
    expected_c0 = scipy.fft.dct(np.full(40, np.log(1e-10)), norm="ortho")[0]
    np.testing.assert_allclose(s[0, 0], expected_c0, rtol=1e-5)
    np.testing.assert_allclose(s[0, 1:N_MFCC], 0, atol=1e-3)


def test_deltas_of_a_ramp_are_its_slope():
    ramp = np.arange(10, dtype=np.float64)[:, None] * np.array([[1.0, -2.0]])
    d = deltas(ramp)
    np.testing.assert_allclose(d[2:-2], [[1.0, -2.0]] * 6)


# -- end to end ------------------------------------------------------------------------------------
def read_result(out: Path) -> dict:
    return json.loads((out / "eval" / "sound.json").read_text())


def check_schema(result: dict) -> None:
    assert result["protocol"] == "sound"
    for key in ("title", "model", "dataset", "tables", "figures", "metrics", "created", "l3net_version"):
        assert key in result
    for table in result["tables"]:
        assert all(len(row) == len(table["columns"]) for row in table["rows"])


@pytest.mark.slow
def test_eval_sound_on_esc50_mini(data_dir, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["eval", "sound", "--model", "random:small", "--dataset", f"esc50:{data_dir / 'esc50_mini'}",
                 "--out", str(out), "--no-progress"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "L3 random weights" in printed and str(out / "eval" / "sound.json") in printed
    result = read_result(out)
    check_schema(result)
    metrics = result["metrics"]
    assert metrics["dataset"]["recordings"] == 17 and metrics["dataset"]["subclips"] == 170
    assert [s["name"] for s in metrics["l3"]["splits"]] == [f"fold {i}" for i in range(1, 6)]
    assert [s["test"] for s in metrics["l3"]["splits"]] == [4, 3, 4, 3, 3]
    assert metrics["l3"]["feature_dim"] == 128 * 4 * 3
    assert metrics["mfcc"]["feature_dim"] == 4 * N_MFCC
    for name in ("l3", "mfcc"):
        folds = [s["accuracy"] for s in metrics[name]["splits"]]
        assert metrics[name]["accuracy"] == pytest.approx(np.mean(folds))
        assert np.sum(metrics[name]["confusion"]) == 17  # every recording tested once
    # the random-weights row: three random networks (weights from --seed 0, 1, 2), mean and spread
    spread = metrics["random_weights"]
    per_seed = [run["accuracy"] for run in spread["per_seed"]]
    assert spread["seeds"] == [0, 1, 2] == [run["seed"] for run in spread["per_seed"]]
    assert per_seed[0] == metrics["l3"]["accuracy"] and metrics["l3"]["weights_seed"] == 0
    assert spread["mean"] == pytest.approx(np.mean(per_seed)) and spread["std"] == pytest.approx(np.std(per_seed))
    assert (spread["min"], spread["max"]) == (min(per_seed), max(per_seed))
    assert len(set(per_seed)) > 1  # different networks, not one network three times
    table = {row[0]: row[1:] for row in result["tables"][0]["rows"]}
    assert table["L3 random weights"] == [spread_text(spread), paper.SOUND["esc50"]["L3 random weights"], paper.OWN]
    assert "(3 seeds" in table["L3 random weights"][0] and "seeds 0, 1, 2" in result["tables"][0]["title"]
    assert table["SVM-MFCC"][:2] == [metrics["mfcc"]["accuracy"], paper.SOUND["esc50"]["SVM-MFCC"]]
    assert "Piczak" in table["SVM-MFCC"][2] and "not our MFCC recipe" in table["SVM-MFCC"][2]
    assert table["L3-Net"][0] is None  # random weights fill the random row only
    assert "3 random networks" in printed
    # C chosen per split by grouped inner cross-validation (ESC-50: by fold), from the grid
    assert metrics["classifier"]["C"] == "auto" and "fold" in metrics["classifier"]["inner_groups"]
    for name in ("l3", "mfcc"):
        for split in metrics[name]["splits"]:
            assert split["C"] in C_GRID and split["inner_cv"]["folds"] == 3 and "converged" in split
            assert set(split["inner_cv"]["scores"]) == {f"{c:g}" for c in C_GRID}
    assert (out / "eval" / "sound_confusion.png").read_bytes()[:4] == b"\x89PNG"
    assert sorted(p.name for p in (out / "eval").iterdir()) == ["sound.json", "sound_confusion.png"]


def test_eval_sound_on_labelled_audio_with_groups(data_dir):
    ds = load_audio_dataset(f"folder:{data_dir / 'labelled_audio'}")
    result = evaluate_sound(ds, None, SoundConfig(feature_sets=("mfcc",), progress=False))
    assert result.n_subclips == 40  # every clip under 1 s: padded to one subclip
    assert len(result.splits) == 3
    assert sum(s.n_test for s in result.results["mfcc"].splits) == 40
    # speakers never straddle a split
    groups = np.array([e.group for e in ds.examples])
    for split in result.splits:
        assert not set(groups[split.train]) & set(groups[split.test])


def make_two_class_folder(root: Path) -> Path:
    for cls in ("tone", "noise"):
        (root / cls).mkdir(parents=True)
    for i in range(3):
        write_audio(root / "tone" / f"t{i}.wav", tone(300.0 + 50 * i, 1.5, sr=16000), sr=16000)
        write_audio(root / "noise" / f"n{i}.flac", noise(2.0, sr=22050, seed=i), sr=22050)
    return root


def test_unreadable_audio_is_listed_and_skipped(tmp_path, capsys):
    data = make_two_class_folder(tmp_path / "data")
    (data / "tone" / "empty.wav").write_bytes(b"")
    (data / "noise" / "text.wav").write_text("not audio\n")
    (data / "noise" / "notes.txt").write_text("a note\n")
    out = tmp_path / "out"
    code = main(["eval", "sound", "--model", "random:small", "--dataset", f"folder:{data}", "--out", str(out),
                 "--no-progress", "--batch-size", "8"])
    assert code == 0
    err = capsys.readouterr().err
    assert "empty.wav" in err and "text.wav" in err and "notes.txt" in err
    metrics = read_result(out)["metrics"]
    skipped = {Path(s["path"]).name: s["reason"] for s in metrics["dataset"]["skipped"]}
    assert set(skipped) == {"empty.wav", "text.wav", "notes.txt"}
    assert "0 bytes" in skipped["empty.wav"] and "not an audio file" in skipped["notes.txt"]
    assert metrics["dataset"]["recordings"] == 6
    assert metrics["dataset"]["subclips"] == 3 * 3 + 3 * 4  # 1.5 s -> 3 subclips, 2 s -> 4
    assert metrics["l3"]["accuracy"] == 1.0 and metrics["mfcc"]["accuracy"] == 1.0  # tones vs noise


def test_every_recording_unreadable(tmp_path):
    for cls in ("a", "b"):
        for i in range(2):
            (tmp_path / cls).mkdir(exist_ok=True)
            (tmp_path / cls / f"{i}.wav").write_text("text")
    with pytest.raises(DatasetError, match="no recording could be decoded"):
        evaluate_sound(load_audio_dataset(f"folder:{tmp_path}"), None, SoundConfig(feature_sets=("mfcc",), progress=False))


def test_cli_errors_are_clear(tmp_path, capsys):
    assert main(["eval", "sound", "--model", "random:small", "--dataset", f"esc50:{tmp_path}", "--out",
                 str(tmp_path / "o")]) == 2
    assert "meta/esc50.csv is missing" in capsys.readouterr().err
    data = make_two_class_folder(tmp_path / "data")
    assert main(["eval", "sound", "--model", "random:small", "--dataset", f"folder:{data}"]) == 2
    assert "pass --out" in capsys.readouterr().err
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["eval", "sound", "--model", "random:small", "--dataset", f"folder:{data}", "--out",
                 str(blocker / "sub")]) == 2
    assert "cannot write" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["eval", "sound", "--model", "small", "--dataset", f"folder:{data}", "--svm-c", "-1"])
    assert main(["eval", "sound", "--model", "random:small", "--dataset", f"folder:{data}", "--out", str(tmp_path / "o"),
                 "--random-seeds", "0"]) == 2
    assert "--random-seeds must be at least 1" in capsys.readouterr().err


# -- the SVM's C: grouped inner cross-validation, convergence reported -----------------------------
def _reference_inner_scores(x, y, groups, folds, seed):
    """Mean inner accuracy per C, by hand: the same grouped folds, one plain fit per fold and C."""
    from sklearn.model_selection import StratifiedGroupKFold

    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    scores = {}
    for c in C_GRID:
        accuracies = []
        for train, test in splitter.split(x, y, groups):
            svm = make_svm(c).fit(x[train], y[train])
            accuracies.append(np.mean(svm.predict(x[test]) == y[test]))
        scores[f"{c:g}"] = float(np.mean(accuracies))
    return scores


def test_inner_cv_picks_a_working_C_where_a_tiny_fixed_C_only_predicts_the_majority():
    # 3 classes of recordings, 2:1:1, well separated; 4 subclips each. With C = 1e-4 the SVM's weights
    # are ~0 and its unpenalised intercepts (the class priors) decide: every recording is the majority.
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 0, 1, 2], 12)
    centres = 3.0 * np.eye(3, 8)[labels]
    features = np.repeat(centres, 4, axis=0) + 0.5 * rng.standard_normal((len(labels) * 4, 8))
    recording = np.repeat(np.arange(len(labels)), 4)
    splits = [Split(f"fold {k}", np.flatnonzero(np.arange(48) % 4 != k), np.flatnonzero(np.arange(48) % 4 == k))
              for k in range(4)]
    tiny = classify_recordings(features, recording, labels, splits, 3, lambda: make_svm(1e-4), progress=False)
    assert tiny.accuracy == pytest.approx(0.5)  # the majority class's share, exactly
    auto = classify_recordings(features, recording, labels, splits, 3, lambda: make_svm("auto", seed=5), progress=False)
    assert auto.accuracy > 0.95
    for split, result in zip(splits, auto.splits):
        train_sub = np.flatnonzero(np.isin(recording, split.train))
        reference = _reference_inner_scores(features[train_sub], labels[recording[train_sub]], recording[train_sub], 3, 5)
        assert result.inner_cv["scores"] == pytest.approx(reference)
        best = max(reference.values())
        assert result.C == float(next(c for c, v in reference.items() if v == best))  # the first best, as sklearn
        assert result.C > 1e-4 and result.converged and result.convergence_warnings == 0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_grouped_inner_cv_does_not_reward_memorising_recordings(seed):
    # Labels (2:1) that no feature shares across recordings; each recording has its own random
    # "fingerprint", repeated with little noise in its subclips. Held-out recordings can only be
    # guessed by the majority, which the smallest C does; an inner CV that splits recordings across
    # folds sees the fingerprints again and rewards memorising them with a large C.
    from sklearn.model_selection import GridSearchCV, StratifiedKFold

    from l3net.evaluate.classify import fit_classifier

    rng = np.random.default_rng(seed)
    n_rec, per, dim = 60, 4, 50
    y = np.repeat(np.repeat([0, 0, 1], n_rec // 3), per)
    x = np.repeat(rng.standard_normal((n_rec, dim)), per, axis=0) + 0.3 * rng.standard_normal((n_rec * per, dim))
    groups = np.repeat(np.arange(n_rec), per)
    _, grouped = fit_classifier(make_svm("auto"), x, y, groups)
    ungrouped = GridSearchCV(make_svm(), {"linearsvm__C": list(C_GRID)},
                             cv=StratifiedKFold(3, shuffle=True, random_state=0)).fit(x, y)
    assert grouped.C <= 1e-3 and ungrouped.best_params_["linearsvm__C"] >= 0.1
    assert max(grouped.inner_cv["scores"].values()) < 0.7 < ungrouped.best_score_  # the leak inflates its score


def test_non_convergence_is_counted_and_said_never_silent():
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 2], 8)
    features = np.repeat(np.eye(3, 20)[labels], 3, axis=0) + rng.standard_normal((72, 20))
    recording = np.repeat(np.arange(24), 3)
    splits = [Split("fold 1", np.arange(0, 24, 2), np.arange(1, 24, 2))]
    result = classify_recordings(features, recording, labels, splits, 3,
                                 lambda: make_pipeline(StandardScaler(), LinearSVM(C=1.0, max_iter=2)), progress=False)
    split = result.splits[0]
    assert split.converged is False and split.convergence_warnings == 1 and split.C == 1.0
    assert any("did not converge on fold 1" in n and "2 iterations" in n for n in split.notes)
    assert split.to_json()["converged"] is False
    # inside a C search every fit is counted: 3 inner folds x 5 C values, plus the final one
    search = make_svm("auto")
    search.estimator.set_params(linearsvm__max_iter=2)
    result = classify_recordings(features, recording, labels, splits, 3, lambda: search, progress=False)
    split = result.splits[0]
    assert split.convergence_warnings == 3 * len(C_GRID) + 1 and split.converged is False
    assert any("15 of 15 inner cross-validation fits" in n for n in split.notes)
    # and a converging fit says so
    fine = classify_recordings(features, recording, labels, splits, 3, lambda: make_svm(0.01), progress=False)
    assert fine.splits[0].converged is True and fine.splits[0].convergence_warnings == 0 and not fine.splits[0].notes


def test_c_search_falls_back_with_a_note_when_the_training_split_has_one_group():
    from l3net.evaluate.classify import fit_classifier

    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((12, 3)), np.repeat([0, 1], 6)
    fitted, report = fit_classifier(make_svm("auto"), x, y, np.zeros(12), what="SVM", where="fold 2")
    assert report.C == 0.01 and report.inner_cv is None and "fewer than 2 groups" in report.notes[0]
    assert fitted.predict(x).shape == (12,)
