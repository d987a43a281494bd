"""Section 3.5.3: top inputs per unit, classes with high-preference units, and the command end to end."""

from __future__ import annotations

import collections

import numpy as np
import pytest
from fixtures_train import ORDERING_SPLIT
from test_eval_avc import read_result

from l3net.cli import main
from l3net.data.shards import ShardSet
from l3net.errors import InputError
from l3net.evaluate.result import spread_text
from l3net.evaluate.units import classes_with_unit, select_units, top_inputs, unit_preferences
from l3net.models import load_model


def test_top_inputs_orders_by_activation_and_marks_dead_units():
    acts = np.array(
        [  # unit 0 ranks inputs 5, 4, 3, ...; unit 1 is dead (constant); unit 2 prefers 0 then 2
            [0.0, 1.0, 9.0],
            [1.0, 1.0, 0.5],
            [2.0, 1.0, 8.0],
            [3.0, 1.0, 0.1],
            [4.0, 1.0, 0.2],
            [5.0, 1.0, 0.3],
        ]
    )
    top, alive = top_inputs(acts, k=3)
    assert top[0].tolist() == [5, 4, 3]
    assert top[2].tolist() == [0, 2, 1]
    assert alive.tolist() == [True, False, True]
    with pytest.raises(InputError, match="at least 5 inputs"):
        top_inputs(acts[:4], k=5)


def test_ties_are_not_broken_by_input_order():
    # 50 inputs tied at the top of a unit: the first five (one class, if the inputs were sorted by
    # class) must not win by position. Over a few seeds the picks differ.
    acts = np.zeros((100, 1))
    acts[:50, 0] = 1.0
    picks = {tuple(top_inputs(acts, k=5, seed=s)[0][0]) for s in range(4)}
    assert len(picks) > 1
    assert all(set(p) <= set(range(50)) for p in picks)


def test_classes_with_unit_at_thresholds_4_and_3():
    labels = ["a"] * 5 + ["b"] * 5 + ["c"] * 5 + ["d", "e"] * 3
    lab = np.array(labels)
    by_class = {c: list(np.flatnonzero(lab == c)) for c in "abcde"}
    top = np.array(
        [
            by_class["a"][:4] + by_class["b"][:1],  # a: 4 of 5
            by_class["b"][:3] + by_class["c"][:2],  # b: 3 of 5
            by_class["c"][:2] + by_class["d"][:2] + by_class["e"][:1],  # nobody reaches 3
            by_class["e"][:3] + by_class["d"][:2],  # e: 3 of 5, but the unit is dead
        ]
    )
    alive = np.array([True, True, True, False])
    assert classes_with_unit(top, labels, 4, alive) == ["a"]
    assert classes_with_unit(top, labels, 3, alive) == ["a", "b"]
    assert classes_with_unit(top, labels, 3) == ["a", "b", "e"]  # without the dead-unit mask
    assert classes_with_unit(top, labels, 1, alive) == ["a", "b", "c", "d", "e"]
    prefs = unit_preferences(top, labels, alive)
    assert prefs[0] == ("a", 4) and prefs[1] == ("b", 3) and prefs[3] is None
    assert prefs[2] == ("c", 2)  # a 2-2 tie goes to the class of the higher-ranked input
    with pytest.raises(InputError, match="threshold"):
        classes_with_unit(top, labels, 6)


def test_select_units_prefers_pure_units_of_distinct_classes():
    labels = np.array(["a"] * 10 + ["b"] * 10)
    top = np.array([[0, 1, 2, 3, 4], [5, 6, 7, 8, 9], [10, 11, 12, 13, 14], [0, 10, 1, 11, 2]])
    acts = np.random.default_rng(0).random((20, 4))
    chosen = select_units(top, labels, np.ones(4, bool), acts, 2)
    assert sorted(chosen[:2]) != [0, 1]  # two pure units of class a: only one of them first
    assert {labels[top[u][0]] for u in chosen} == {"a", "b"}


def test_select_units_without_labels_takes_the_strongest_with_distinct_best_inputs():
    acts = np.zeros((6, 4))
    acts[0] = [9.0, 8.0, 1.0, 0.0]  # units 0 and 1 both fire hardest for input 0
    acts[1] = [1.0, 1.0, 7.0, 0.0]
    acts[2, 1] = 2.0
    top, alive = top_inputs(acts, k=2)
    assert alive.tolist() == [True, True, True, False]
    assert select_units(top, None, alive, acts, 2) == [0, 2]  # unit 1 repeats unit 0's best input
    assert select_units(top, None, alive, acts, 3) == [0, 2, 1]  # then by strength; the dead unit never


def test_top_inputs_keeps_one_input_per_video():
    acts = np.array([[9.0], [8.0], [7.0], [6.0], [5.0], [4.0], [3.0]])
    videos = ["v1", "v1", "v1", "v2", "v3", "v3", "v4"]
    top, _ = top_inputs(acts, k=3, groups=videos)
    assert top[0].tolist() == [0, 3, 4]  # the best frame of v1, v2, v3
    with pytest.raises(InputError, match="5 distinct videos"):
        top_inputs(acts, k=5, groups=videos)


# ------------------------------------------------------------------------------------------------
# end to end on the synthetic world
# ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained_units(trained_small_run, synth_shards, tmp_path_factory):
    """``l3net eval units`` on the trained small run; its eval folder and result."""
    out = tmp_path_factory.mktemp("units")
    code = main(["eval", "units", "--model", str(trained_small_run), "--data", str(synth_shards), "--out", str(out),
                 "--split", ORDERING_SPLIT, "--figure-units", "2"])
    assert code == 0
    return out / "eval", read_result(out / "eval", "units")


@pytest.mark.slow
def test_units_command_writes_counts_top_inputs_and_pictures(trained_units):
    eval_dir, data = trained_units
    assert {f["path"] for f in data["figures"]} == {"units_counts.png", "units_vision.png", "units_audio.png",
                                                   "units_audio_frames.png"}
    metrics = data["metrics"]
    # the counts follow from the units' own top-5 classes (listed for the trained network)
    for threshold in ("4", "3"):
        for modality in ("vision", "audio"):
            qualified = [u for u in metrics["units"][modality] if u["count"] >= int(threshold)]
            assert metrics["units_with_high_preference"][threshold]["trained"][modality] == len(qualified)
            assert metrics["classes_with_unit"][threshold]["trained"][modality] == len({u["class"] for u in qualified})
    # a lower threshold can only find more classes
    for network in ("trained", "random"):
        for modality in ("vision", "audio"):
            c = metrics["classes_with_unit"]
            assert c["3"][network][modality] >= c["4"][network][modality]
    inputs = metrics["inputs"]
    for modality in ("vision", "audio"):
        units = metrics["units"][modality]
        assert len(units) == 128  # the small preset's pool4
        for unit in units:
            assert len({inputs[i]["key"] for i in unit["top"]}) == 5  # five different videos
            if unit["class"] is not None:
                assert unit["count"] == sum(inputs[i]["label"] == unit["class"] for i in unit["top"])
    rows = data["tables"][0]["rows"]
    assert [r[4:6] for r in rows] == [[1, 1], [10, 11], [4, 3], [23, 20]]  # the paper's numbers beside ours
    # the random row: the mean and spread over 3 random twins (weights from 1000, 1001, 1002)
    spread = metrics["random_weights"]
    for threshold in ("4", "3"):
        for modality in ("vision", "audio"):
            assert spread[threshold][modality]["seeds"] == [1000, 1001, 1002]
            assert metrics["classes_with_unit"][threshold]["random"][modality] == spread[threshold][modality]["mean"]
    assert rows[0][2] == spread_text(spread["4"]["vision"], digits=2) and "(3 seeds" in rows[0][2]


@pytest.mark.slow
def test_trained_towers_have_more_high_preference_units_than_random(trained_units):
    metrics = trained_units[1]["metrics"]
    classes, units = metrics["classes_with_unit"]["4"], metrics["units_with_high_preference"]["4"]
    # Units (of 128) with >= 4 of their top 5 inputs of one class, the fixture trained with seeds 0-3
    # on a 2-core AMD EPYC, against the mean of three untrained networks (vision 55.3, audio 30.7):
    #   vision 120, 107, 103, 109 (>= 1.86x)    audio 87, 85, 108, 110 (>= 2.77x)
    # The bar, 1.5x for both towers, is under the lowest ratio by more than the seeds' spread and fails
    # a tower whose units prefer classes no more than an untrained one's do.
    for modality in ("vision", "audio"):
        assert units["trained"][modality] >= 1.5 * units["random"][modality], modality
    # Section 3.5.3's count: classes that have such a unit. With 4 classes the count is coarse: trained
    # vision 2, 3, 4, 4 against 1.7 untrained, so "not fewer" holds; audio 3, 4, 4, 3 (and 2 in a run
    # with 2 threads) against 3.3: an untrained audio tower already has such units for most of the 4
    # classes (issue #15), so no audio assertion on this count would be safe.
    assert classes["trained"]["vision"] >= classes["random"]["vision"]


def test_units_bad_inputs(synth_shards, tmp_path, capsys):
    test_counts = collections.Counter(v.label for v in ShardSet(synth_shards).videos("test"))
    rare = min(test_counts, key=test_counts.get)
    assert test_counts[rare] < 5  # the fixture's test split is small

    def fails(args, *needles):
        assert main(["eval", "units", "--model", "small", "--data", str(synth_shards),
                     "--out", str(tmp_path / "bad"), *args]) == 2
        err = capsys.readouterr().err
        assert "Traceback" not in err
        for needle in needles:
            assert needle in err, err

    fails(["--classes", rare], "top 5 needs at least 5")
    fails(["--classes", "unicorns"], "unknown class name")
    fails(["--figure-units", "-1"], "--figure-units")
    fails(["--per-video", "0"], "at least 1")
    assert not (tmp_path / "bad" / "eval" / "units.json").exists()
    fails(["--classes", "unicorns"], "unknown class name")


# ------------------------------------------------------------------------------------------------
# unlabelled shards (the paper's Flickr-SoundNet figures) and Figure 7
# ------------------------------------------------------------------------------------------------
#: The split ranked on the fixture shards: its 18 videos make "the top 5" a real choice.
SPLIT = ORDERING_SPLIT


@pytest.fixture(scope="module")
def random_model_dir(tmp_path_factory):
    """A saved small network with random weights (the rankings do not need a trained one)."""
    from l3net.models import build_model

    return build_model("small", seed=3).save(tmp_path_factory.mktemp("units_model") / "model")


def _independent_activations(model_dir, shards_dir, inputs):
    """pool4 activations of the listed inputs, recomputed here: frames through the public image
    embedding, clips read straight from the shards through the audio tower (no ranking code)."""
    import torch

    from l3net import get_image_embedding
    from l3net.models import load_model

    model = load_model(model_dir).eval()
    shards = ShardSet(shards_dir)
    by_key = {v.key: v for v in shards.videos(SPLIT)}
    frames, clips = [], []
    for item in inputs:
        video = by_key[item["key"]]
        index = int(np.argmin(np.abs(np.asarray(video.frame_times) - item["frame_time"])))
        frames.append(shards.read_frame(video, index, min_side=model.config.image_resize))
        start = int(round(item["audio_start"] * 48000))
        clip = shards.read_audio(video, start, min(model.config.clip_samples, video.num_samples - start))
        clips.append(np.pad(clip, (0, model.config.clip_samples - len(clip))))
    vision = get_image_embedding(frames, model=model)
    with torch.inference_mode():
        audio = model.embed("audio", torch.from_numpy(np.stack(clips))).numpy()
    return {"vision": vision, "audio": audio}, model, shards, by_key


def test_units_on_unlabelled_shards_draw_the_grids_without_the_class_counts(random_model_dir, unlabelled_shards,
                                                                           tmp_path):
    out = tmp_path / "out"
    assert main(["eval", "units", "--model", str(random_model_dir), "--data", str(unlabelled_shards), "--out", str(out),
                 "--split", SPLIT, "--figure-units", "2", "--batch-size", "8"]) == 0
    data = read_result(out / "eval", "units")
    assert {f["path"] for f in data["figures"]} == {"units_vision.png", "units_audio.png", "units_audio_frames.png"}
    for name in ("units_vision.png", "units_audio.png", "units_audio_frames.png"):
        assert (out / "eval" / name).read_bytes()[:4] == b"\x89PNG"
    assert not (out / "eval" / "units_counts.png").exists()
    metrics = data["metrics"]
    assert metrics["labelled"] is False and "classes_with_unit" not in metrics and data["tables"] == []
    assert any("no class labels" in note for note in data["notes"])
    assert len(metrics["inputs"]) == len(ShardSet(unlabelled_shards).videos(SPLIT))  # one input per video

    # Each unit's top 5 are the 5 inputs with the highest activations, recomputed independently.
    acts, *_ = _independent_activations(random_model_dir, unlabelled_shards, metrics["inputs"])
    for modality in ("vision", "audio"):
        checked = 0
        for unit in metrics["units"][modality]:
            column = acts[modality][:, unit["unit"]]
            np.testing.assert_allclose(unit["activations"], column[unit["top"]], rtol=1e-3, atol=1e-4)
            order = np.argsort(-column, kind="stable")
            if not unit["alive"] or column[order[4]] - column[order[5]] < 1e-3:
                continue  # dead, or a near-tie at the edge of the top 5
            assert sorted(unit["top"]) == sorted(order[:5].tolist()), (modality, unit["unit"])
            assert unit["top"][0] == int(order[0])
            checked += 1
        assert checked >= 20, (modality, checked)  # most of the 128 units were checked


def test_audio_units_pair_video_frames_with_the_spectrograms_of_the_same_clips(random_model_dir, unlabelled_shards):
    import torch

    from l3net.evaluate.units import UnitsConfig, evaluate_units, frames_figure
    from l3net.media import resize_smaller_side

    model = load_model(random_model_dir)
    result = evaluate_units(model, unlabelled_shards, UnitsConfig(split=SPLIT, figure_units=2, batch_size=8,
                                                                  progress=False))
    grid = next(g for g in result.grids if g.modality == "audio")
    assert grid.frames is not None and len(grid.frames) == len(grid.pictures) == len(grid.units) * 5
    assert next(g for g in result.grids if g.modality == "vision").frames is None
    units = {u["unit"]: u for u in result.metrics["units"]["audio"]}
    inputs = result.metrics["inputs"]
    _, model, shards, by_key = _independent_activations(random_model_dir, unlabelled_shards, inputs[:1])
    for row, unit in enumerate(grid.units):
        cells = grid.inputs[row * 5 : (row + 1) * 5]
        assert cells == units[unit]["top"]  # the unit's top clips, best first
        for col, index in enumerate(cells):
            cell = row * 5 + col
            item = inputs[index]
            video = by_key[item["key"]]
            assert grid.labels[cell] == item["key"]  # no labels: the caption names the video
            frame_index = int(np.argmin(np.abs(np.asarray(video.frame_times) - item["frame_time"])))
            frame = shards.read_frame(video, frame_index, min_side=model.config.image_resize)
            np.testing.assert_array_equal(grid.frames[cell], resize_smaller_side(frame, model.config.image_resize))
            start = int(round(item["audio_start"] * 48000))
            clip = shards.read_audio(video, start, min(model.config.clip_samples, video.num_samples - start))
            clip = np.pad(clip, (0, model.config.clip_samples - len(clip)))
            with torch.inference_mode():
                spectrum = model.frontend(torch.from_numpy(clip[None]))[0, 0].numpy()
            np.testing.assert_allclose(grid.pictures[cell], spectrum, rtol=1e-4, atol=1e-4)
            assert grid.heatmaps[cell].shape == spectrum.shape and grid.heatmaps[cell].max() <= 1.0
    figure = frames_figure(grid)
    assert len(figure.axes) == 2 * len(grid.units) * 5  # a frame above each spectrogram


def test_labelled_shards_still_give_the_class_table(random_model_dir, synth_shards, tmp_path):
    out = tmp_path / "out"
    assert main(["eval", "units", "--model", str(random_model_dir), "--data", str(synth_shards), "--out", str(out),
                 "--split", SPLIT, "--figure-units", "1", "--batch-size", "8"]) == 0
    data = read_result(out / "eval", "units")
    metrics = data["metrics"]
    assert metrics["labelled"] is True and metrics["num_classes"] == 4
    assert data["tables"][0]["title"].startswith("Classes with a high-preference pool4 unit")
    assert len(data["tables"][0]["rows"]) == 4
    assert {f["path"] for f in data["figures"]} == {"units_counts.png", "units_vision.png", "units_audio.png",
                                                   "units_audio_frames.png"}
    for modality in ("vision", "audio"):
        qualified = {u["class"] for u in metrics["units"][modality] if u["count"] >= 4}
        assert metrics["classes_with_unit"]["4"]["trained"][modality] == len(qualified)
    assert not any("no class labels" in note for note in data["notes"])


def test_a_random_model_is_the_first_of_the_random_rows_networks(synth_shards, tmp_path):
    out = tmp_path / "out"
    assert main(["eval", "units", "--model", "random:small", "--seed", "4", "--random-seeds", "2", "--data",
                 str(synth_shards), "--out", str(out), "--split", SPLIT, "--figure-units", "0", "--batch-size", "8"]) == 0
    data = read_result(out / "eval", "units")
    rows, spread = data["tables"][0]["rows"], data["metrics"]["random_weights"]
    assert [r[1] for r in rows] == ["random weights (same architecture)"] * 2  # no row of its own
    assert spread["4"]["audio"]["seeds"] == [4, 5] and "(2 seeds" in rows[0][3]
    # the first network is the model: its own counts are the first value
    assert spread["4"]["vision"]["values"][0] == data["metrics"]["classes_with_unit"]["4"]["trained"]["vision"]


def test_unlabelled_shards_refuse_a_class_choice(unlabelled_shards, tmp_path, capsys):
    assert main(["eval", "units", "--model", "small", "--data", str(unlabelled_shards), "--out", str(tmp_path),
                 "--classes", "a"]) == 2
    err = capsys.readouterr().err
    assert "needs class labels" in err and "Traceback" not in err
