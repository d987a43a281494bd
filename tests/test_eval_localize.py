"""l3net eval localize: the pointing game, against hand-computed cases and on synthetic worlds."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from l3net.cli import main
from l3net.errors import DatasetError, InputError
from l3net.evaluate import localize as loc
from l3net.evaluate.result import spread_text
from l3net.models import build_model


# -- the metric, by hand --------------------------------------------------------------------------
def test_pointing_game_hand_cases():
    box = (10, 20, 30, 40)  # x0, y0, x1, y1
    peaks = [(15, 25), (5, 25), (30, 40), (31, 40), (20, 41), (50, 50)]
    boxes = [[box], [box], [box], [box], [box], [box, (45, 45, 55, 55)]]
    hits = loc.pointing_game(peaks, boxes)
    assert hits.tolist() == [True, False, True, False, False, True]  # edges count; any box counts
    assert loc.pointing_game([(31, 40), (5, 25)], [[box], [box]], tolerance=1).tolist() == [True, False]
    with pytest.raises(InputError):
        loc.pointing_game([(0, 0)], [])


def test_centre_guess_and_a_peak_in_pixels():
    assert loc.centre_guess(240, 320) == (160.0, 120.0)  # (x, y) of a 320 x 240 frame
    assert loc.pointing_game([loc.centre_guess(100, 100)], [[(40, 40, 60, 60)]]).tolist() == [True]
    assert loc.pointing_game([loc.centre_guess(100, 100)], [[(0, 0, 30, 30)]]).tolist() == [False]
    heat = np.zeros((100, 100))
    heat[10, 80] = 1  # row 10, column 80: the peak is at x = 80.5, y = 10.5
    assert loc.pointing_game([loc.peak_location(heat)], [[(70, 0, 90, 20)]]).tolist() == [True]
    assert loc.pointing_game([loc.peak_location(heat)], [[(0, 70, 20, 90)]]).tolist() == [False]


def test_visible_boxes_clip_to_the_frame():
    assert loc.visible_boxes([(-10, -5, 20, 30)], 100, 50) == [(0.0, 0.0, 20.0, 30.0)]
    assert loc.visible_boxes([(90, 10, 120, 20)], 100, 50) == [(90.0, 10.0, 100.0, 20.0)]
    assert loc.visible_boxes([(110, 10, 120, 20), (10, 60, 20, 70)], 100, 50) == []  # off-screen
    assert loc.visible_boxes([(20, 30, 10, 5)], 100, 50) == [(10.0, 5.0, 20.0, 30.0)]  # corners swapped


def test_wilson_interval():
    low, high = loc.wilson_interval(0, 10)
    assert low == 0.0 and high == pytest.approx(0.2775, abs=1e-4)
    low, high = loc.wilson_interval(5, 10)
    assert (low, high) == (pytest.approx(0.2366, abs=1e-4), pytest.approx(0.7634, abs=1e-4))


# -- end to end on a tiny synthetic world -----------------------------------------------------------
WORLD_FPS = 2.0


@pytest.fixture(scope="module")
def tiny_world(tmp_path_factory):
    from l3net.data.synth import WorldConfig, make_world

    # half the soundtracks unrelated to the picture: their frames have no visible source
    config = WorldConfig(videos=4, classes=2, seconds=2.0, size=64, fps=8, unrelated=0.5, seed=0)
    return make_world(tmp_path_factory.mktemp("world"), config)


def _centre_hits_by_hand(world: Path) -> tuple[int, int, int]:
    """(hits, frames with a box, frames without) of the centre guess, straight from the sidecars."""
    hits = kept = excluded = 0
    for sidecar in sorted(world.rglob("*.boxes.json")):
        truth = json.loads(sidecar.read_text())
        n = math.ceil(len(truth["boxes"]) / truth["fps"] * WORLD_FPS)
        for k in range(n):
            box = truth["boxes"][int(math.floor(k / WORLD_FPS * truth["fps"] + 1e-6))]
            if box is None:
                excluded += 1
                continue
            kept += 1
            cx, cy = truth["width"] / 2, truth["height"] / 2
            hits += box[0] <= cx <= box[2] and box[1] <= cy <= box[3]
    return hits, kept, excluded


def test_eval_localize_on_a_world_folder(tiny_world, tmp_path, capsys):
    saved = build_model("small", seed=5).save(tmp_path / "model")  # a model directory: gets a random-twin row
    rc = main(["eval", "localize", "--model", str(saved), "--data", str(tiny_world), "--examples", "3",
               "--fps", str(WORLD_FPS)])
    assert rc == 0
    result = json.loads((saved / "eval" / "localize.json").read_text())
    assert (saved / "eval" / result["figures"][0]["path"]).is_file()
    hits, kept, excluded = _centre_hits_by_hand(tiny_world)
    assert kept > 0 and excluded > 0  # the world has both kinds of frames
    metrics = result["metrics"]
    assert metrics["frames_scored"] == kept
    assert metrics["frames_excluded"]["no_visible_source"] == excluded
    assert metrics["accuracy"]["centre_guess"] == pytest.approx(hits / kept)
    rows = {row[0]: row for row in result["tables"][0]["rows"]}
    assert set(rows) == {"model", "random weights (same architecture)", "centre guess (baseline)"}
    assert rows["centre guess (baseline)"][3] == f"{hits}/{kept}"
    for name in ("model", "centre guess (baseline)"):
        assert 0.0 <= rows[name][1] <= 1.0
    # the random-weights row: three random twins (weights from 1000, 1001, 1002), their hits beside
    spread = metrics["random_weights"]
    assert spread["seeds"] == [1000, 1001, 1002] and metrics["accuracy"]["random_weights"] == spread["mean"]
    assert rows["random weights (same architecture)"][1] == spread_text(spread, digits=4)
    counted = [int(k.split("/")[0]) / kept for k in rows["random weights (same architecture)"][3].split(", ")]
    assert counted == pytest.approx(spread["values"])
    assert f"wrote {saved / 'eval' / 'localize.json'}" in capsys.readouterr().out


def test_random_model_has_no_twin_row(tiny_world, tmp_path):
    assert main(["eval", "localize", "--model", "random:small", "--data", str(tiny_world), "--out", str(tmp_path),
                 "--max-videos", "2", "--examples", "1"]) == 0
    result = json.loads((tmp_path / "eval" / "localize.json").read_text())
    assert [row[0] for row in result["tables"][0]["rows"]] == ["random weights (small)", "centre guess (baseline)"]
    # the model's row is the random row: the model (seed 0) and networks from seeds 1 and 2
    metrics = result["metrics"]
    assert metrics["videos"] == 2 and metrics["random_weights"]["seeds"] == [0, 1, 2]
    assert metrics["accuracy"]["model"] == metrics["random_weights"]["values"][0]
    assert metrics["accuracy"]["random_weights"] == pytest.approx(np.mean(metrics["random_weights"]["values"]))


def test_a_preset_is_untrained_and_the_twin_has_its_own_seed(tiny_world, tmp_path):
    """'--model small --seed 0' has random weights from seed 0: it used to get a "random weights" row built
    with the same seed, i.e. the same network scored twice."""
    assert main(["eval", "localize", "--model", "small", "--seed", "0", "--data", str(tiny_world), "--out",
                 str(tmp_path), "--max-videos", "2", "--examples", "1"]) == 0
    result = json.loads((tmp_path / "eval" / "localize.json").read_text())
    assert [row[0] for row in result["tables"][0]["rows"]] == ["small preset, random weights (seed 0)",
                                                               "centre guess (baseline)"]
    from l3net.modelspec import RANDOM_TWIN_SEED_OFFSET, random_twin

    model = build_model("small", seed=0)
    twin = random_twin(model, seed=0)
    assert not torch.equal(twin.state_dict()["vision.layers.conv1_1.conv.weight"], model.state_dict()["vision.layers.conv1_1.conv.weight"])
    same = build_model("small", seed=RANDOM_TWIN_SEED_OFFSET)
    assert all(torch.equal(a, b) for a, b in zip(twin.state_dict().values(), same.state_dict().values()))


def test_bad_data(tiny_world, tmp_path, capsys):
    base = ["eval", "localize", "--model", "random:small", "--out", str(tmp_path / "o")]
    assert main([*base, "--data", str(tmp_path / "missing")]) == 2
    assert "no such directory" in capsys.readouterr().err
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "clip.mp4").write_bytes(b"")
    assert main([*base, "--data", str(tmp_path / "plain")]) == 2
    assert "neither a shard directory" in capsys.readouterr().err
    with pytest.raises(DatasetError, match="plain: neither a shard directory"):
        loc.load_boxed_frames(tmp_path / "plain")
    # a world whose videos are unreadable: listed and skipped, then a clear error (nothing left)
    broken = tmp_path / "broken" / "videos"
    broken.mkdir(parents=True)
    for sidecar in sorted((tiny_world / "videos").glob("*.boxes.json"))[:2]:
        (broken / sidecar.name).write_text(sidecar.read_text())
        (broken / sidecar.name.replace(".boxes.json", ".mp4")).write_text("not a video\n")
    assert main([*base, "--data", str(broken.parent)]) == 2
    err = capsys.readouterr().err
    assert "skipped" in err and "v00000.mp4" in err and "no frame has a visible sounding object" in err
    assert not (tmp_path / "o").exists()  # no output folder for a failed evaluation
    assert main(["eval", "localize", "--model", "random:small", "--data", str(tiny_world)]) == 2
    assert "pass --out DIR" in capsys.readouterr().err


def test_frames_without_a_visible_source_are_excluded(tiny_world):
    examples, counts = loc.load_boxed_frames(tiny_world, fps=WORLD_FPS, progress=False)
    assert counts["source"] == "videos" and counts["videos"] == 4
    assert counts["kept"] == len(examples) and counts["frames"] == counts["kept"] + counts["no_visible_source"]
    for ex in examples:
        assert ex.boxes and ex.frame.shape == (64, 64, 3)
        assert ex.clip(48_000).shape == (48_000,)


# -- with the shared fixtures of the data and training engineers ------------------------------------
def _fixture(request, name):
    try:
        return request.getfixturevalue(name)
    except pytest.FixtureLookupError:
        pytest.skip(f"fixture {name!r} is not available (tests/fixtures_*.py)")


def test_pointing_game_on_shards(request, tmp_path):
    shards = _fixture(request, "synth_shards")
    examples, counts = loc.load_boxed_frames(shards, split="test", progress=False)
    assert counts["source"] == "shards" and examples
    assert counts["frames"] == counts["kept"] + counts["no_visible_source"] + counts["box_outside_frame"]
    for ex in examples:  # boxes in the stored frames' pixels (smaller side 112), with area
        assert min(ex.frame.shape[:2]) == 112
        assert all(0 <= x0 < x1 <= ex.frame.shape[1] and 0 <= y0 < y1 <= ex.frame.shape[0] for x0, y0, x1, y1 in ex.boxes)
    assert main(["eval", "localize", "--model", "random:small", "--data", str(shards), "--out", str(tmp_path),
                 "--max-videos", "4", "--examples", "2", "--random-seeds", "1"]) == 0
    result = json.loads((tmp_path / "eval" / "localize.json").read_text())
    assert result["metrics"]["source"] == "shards" and result["metrics"]["split"] == "test"


@pytest.mark.slow
def test_a_trained_model_beats_the_centre_guess(request, tmp_path):
    """On all videos of the world (boxes are never seen in training: AVC needs no labels), 1 frame/s."""
    run = _fixture(request, "trained_small_run")
    world = _fixture(request, "synth_world")
    assert main(["eval", "localize", "--model", str(run), "--data", str(world), "--fps", "1",
                 "--out", str(tmp_path)]) == 0
    accuracy = json.loads((tmp_path / "eval" / "localize.json").read_text())["metrics"]["accuracy"]
    # Pointing-game accuracy (240 frames) of the fixture trained with seeds 0, 1, 2, 3 on a 2-core AMD
    # EPYC: 0.892, 0.742, 0.842, 0.529; the centre guess 0.588, three random networks 0.381 on average.
    # The lead over random weights is at least +0.148: the bar, +0.1, is under it by 11 frames and
    # fails a model that points like an untrained one. The lead over the centre guess ranges from
    # -0.06 to +0.30 with the seed, so only "not far below it" is safe on another CPU; a model that
    # points at the wrong place (as random weights do, 0.38) fails it.
    assert accuracy["model"] >= accuracy["random_weights"] + 0.1, accuracy
    assert accuracy["model"] >= accuracy["centre_guess"] - 0.1, accuracy
