"""The synthetic world: deterministic, decodable, classes that need more than one cue, true boxes."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from fixtures_data import SYNTH_WORLD_CONFIG
from l3net import media
from l3net.cli import main
from l3net.data.synth import (
    CLASS_NAMES,
    MAX_CLASSES,
    WorldConfig,
    class_table,
    make_world,
    plan_videos,
    read_boxes,
)
from l3net.errors import InputError

TINY = WorldConfig(videos=4, classes=3, seconds=2.0, size=64, fps=8.0, seed=5)


def _labels(world: Path) -> list[tuple[str, str]]:
    with open(world / "labels.csv", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["video", "class"]
    return [tuple(r) for r in rows[1:]]


def test_world_layout_and_decodability(synth_world: Path) -> None:
    labels = _labels(synth_world)
    assert len(labels) == SYNTH_WORLD_CONFIG.videos
    counts = Counter(c for _, c in labels)
    assert sorted(counts) == sorted(CLASS_NAMES[:4]) and set(counts.values()) == {SYNTH_WORLD_CONFIG.videos // 4}  # balanced
    world = json.loads((synth_world / "world.json").read_text())
    assert world["config"]["seed"] == 0 and len(world["classes"]) == 4
    for video, _ in labels[:3]:
        info = media.probe(synth_world / video)
        assert info.has_audio and info.has_video
        assert (info.width, info.height) == (128, 128)
        assert info.duration == pytest.approx(4.0, abs=0.1)
        audio = media.load_audio(synth_world / video)
        assert audio.size == pytest.approx(4 * 48_000, abs=2048) and np.isfinite(audio).all()
        assert 0.05 < np.abs(audio).max() <= 1.0


def test_same_seed_same_world_other_seed_other_world(tmp_path: Path) -> None:
    a = make_world(tmp_path / "a", TINY)
    b = make_world(tmp_path / "b", TINY)
    c = make_world(tmp_path / "c", WorldConfig(**{**TINY.to_dict(), "seed": 6}))
    assert _labels(a) == _labels(b)
    for name in ("v00000", "v00003"):
        assert (a / "videos" / f"{name}.boxes.json").read_text() == (b / "videos" / f"{name}.boxes.json").read_text()
        fa = media.read_frames(a / "videos" / f"{name}.mp4", [0.5, 1.5])[1]
        fb = media.read_frames(b / "videos" / f"{name}.mp4", [0.5, 1.5])[1]
        assert np.array_equal(fa, fb)
        assert np.array_equal(media.load_audio(a / "videos" / f"{name}.mp4"), media.load_audio(b / "videos" / f"{name}.mp4"))
    fa = media.read_frames(a / "videos" / "v00000.mp4", [0.5])[1]
    fc = media.read_frames(c / "videos" / "v00000.mp4", [0.5])[1]
    assert not np.array_equal(fa, fc)


def test_no_single_attribute_names_a_class() -> None:
    for k in (10, MAX_CLASSES):
        table = class_table(k)
        assert len({(s.shape, s.colour) for s in table}) == k
        assert len({(s.timbre, s.pitch) for s in table}) == k
        for attribute in ("shape", "colour", "texture", "timbre", "rhythm"):
            values = [getattr(s, attribute) for s in table]
            assert len(set(values)) < k, f"{attribute} alone would identify the class"
    assert [s.name for s in class_table(MAX_CLASSES)] == list(CLASS_NAMES)
    # classes depend only on their index, never on the seed
    assert class_table(10)[:4] == class_table(4)


def test_boxes_cover_the_sounding_object(synth_world: Path) -> None:
    """Inside the box, the class colour dominates; outside it, it is rare (no distractor of that class)."""
    table = {s.name: s for s in class_table(4)}
    checked = 0
    for video, label in _labels(synth_world)[:12]:
        path = synth_world / video
        sidecar = read_boxes(path)
        assert sidecar is not None and sidecar["class"] == label and sidecar["width"] == 128
        assert len(sidecar["boxes"]) == 32  # 4 s at 8 fps
        if sidecar["audio_class"] != label:
            continue
        if any(table[d].colour == table[label].colour for d in sidecar["distractors"]):
            continue
        i = 12
        frame = media.read_frames(path, [i / sidecar["fps"] + 0.01])[1][0].astype(int)
        x0, y0, x1, y1 = sidecar["boxes"][i]
        colour = np.array(table[label].colour)
        near = np.abs(frame - colour).sum(axis=2) < 90
        in_box = near[y0:y1, x0:x1].sum()
        inside = in_box / near[y0:y1, x0:x1].size
        outside = (near.sum() - in_box) / (near.size - near[y0:y1, x0:x1].size)
        # textures darken parts of the object and distractors may occlude it: compare densities
        assert inside > 0.05 and inside > 10 * outside, (video, inside, outside)
        checked += 1
    assert checked >= 5


def test_difficulty_knobs(tmp_path: Path) -> None:
    plans = plan_videos(WorldConfig(videos=200, classes=5, unrelated=0.5, offscreen=0.5, distractors=1.0))
    unrelated = sum(p.audio_class != p.visual_class for p in plans)
    assert 60 < unrelated < 140
    assert 60 < sum(p.offscreen_class is not None for p in plans) < 140
    assert all(p.distractor_classes and p.visual_class not in p.distractor_classes for p in plans)
    assert all(p.offscreen_class != p.visual_class for p in plans)
    world = make_world(tmp_path / "w", WorldConfig(videos=2, classes=2, seconds=1.0, size=32, unrelated=1.0, seed=1))
    sidecar = read_boxes(world / "videos" / "v00000.mp4")
    assert sidecar["audio_class"] != sidecar["class"] and all(b is None for b in sidecar["boxes"])


def test_bad_settings_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="classes"):
        make_world(tmp_path / "x", WorldConfig(classes=MAX_CLASSES + 1))
    with pytest.raises(InputError, match="size"):
        make_world(tmp_path / "x", WorldConfig(size=33))
    with pytest.raises(InputError, match="probability"):
        make_world(tmp_path / "x", WorldConfig(distractors=1.5))
    make_world(tmp_path / "y", TINY)
    with pytest.raises(InputError, match="different synthetic world"):
        make_world(tmp_path / "y", WorldConfig(**{**TINY.to_dict(), "seed": 9}))


def test_interrupted_world_is_completed(tmp_path: Path) -> None:
    world = make_world(tmp_path / "w", TINY)
    (world / "videos" / "v00002.boxes.json").unlink()  # as if killed between the video and its sidecar
    (world / "videos" / "v00003.mp4").unlink()
    before = (world / "videos" / "v00000.mp4").stat().st_mtime_ns
    make_world(world, TINY)
    assert (world / "videos" / "v00002.boxes.json").exists() and (world / "videos" / "v00003.mp4").exists()
    assert (world / "videos" / "v00000.mp4").stat().st_mtime_ns == before  # finished videos are kept


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli"
    assert main(["synth", str(out), "--videos", "3", "--classes", "2", "--seconds", "1", "--size", "32", "--quiet", "--workers", "2"]) == 0
    printed = capsys.readouterr().out
    assert str(out) in printed and "l3net prepare" in printed
    assert len(list((out / "videos").glob("*.mp4"))) == 3
    assert main(["synth", str(tmp_path / "bad"), "--classes", "99"]) == 2
    assert "classes" in capsys.readouterr().err


def test_pitch_jitter_spreads_a_class_pitch_and_is_validated():
    from l3net.data.synth import AUDIO_RATE, _class_sound, class_table

    spec = class_table(4)[0]  # a sine: its spectrum peaks at the fundamental
    t = np.arange(AUDIO_RATE) / AUDIO_RATE

    def peaks(jitter: float) -> np.ndarray:
        rng = np.random.default_rng(0)
        return np.array([np.argmax(np.abs(np.fft.rfft(_class_sound(spec, t, rng, jitter)[0]))) for _ in range(30)])

    narrow, wide = peaks(0.06), peaks(0.5)  # 1 Hz bins
    assert narrow.min() >= spec.pitch * 0.93 and narrow.max() <= spec.pitch * 1.07
    assert wide.min() < spec.pitch * 0.75 and wide.max() > spec.pitch * 1.25
    with pytest.raises(InputError, match="--pitch-jitter must be in"):
        WorldConfig(pitch_jitter=0.95).validate()
