"""The synthetic world: deterministic, decodable, classes by shape/part and timbre/rhythm only, true boxes."""

from __future__ import annotations

import csv
import dataclasses
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from fixtures_data import SYNTH_WORLD_CONFIG
from l3net import media
from l3net.cli import main
from l3net.data import synth
from l3net.data.synth import (
    CLASS_NAMES,
    MAX_CLASSES,
    ClassSpec,
    WorldConfig,
    class_table,
    json_roundtrip,
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
    assert len(labels) == 36
    counts = Counter(c for _, c in labels)
    assert sorted(counts) == sorted(CLASS_NAMES[:4]) and set(counts.values()) == {9}  # balanced
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


def test_classes_are_shape_and_part_timbre_and_rhythm() -> None:
    for k in (10, MAX_CLASSES):
        table = class_table(k)
        assert len({(s.shape, s.part) for s in table}) == k  # the look names the class
        assert len({(s.timbre, s.rhythm) for s in table}) == k  # and so does the sound
    # up to 12 classes, every class has its own outline; beyond, classes sharing one differ in part
    assert len({s.shape for s in class_table(12)}) == 12
    assert {f.name for f in dataclasses.fields(ClassSpec)} == {"index", "name", "shape", "part", "timbre", "rhythm"}
    assert [s.name for s in class_table(MAX_CLASSES)] == list(CLASS_NAMES)
    # classes depend only on their index, never on the seed
    assert class_table(10)[:4] == class_table(4)


def _render(config: WorldConfig, plan, hide_sounding: bool = False):
    """render_video's frames, audio and boxes; with ``hide_sounding``, the visible class's object is not drawn."""
    if not hide_sounding:
        frames, audio, boxes = synth.render_video(config, plan)
        return list(frames()), audio, boxes
    real = synth._sprite

    def sprite(spec, n, look):  # distractors are other classes: only the sounding object is hidden
        rgb, mask = real(spec, n, look)
        return rgb, mask & (spec.index != plan.visual_class)

    synth._sprite = sprite
    try:
        frames, audio, boxes = synth.render_video(config, plan)
        return list(frames()), audio, boxes
    finally:
        synth._sprite = real


def test_boxes_are_exactly_where_the_sounding_object_is_drawn() -> None:
    config = WorldConfig(videos=12, classes=12, seconds=1.0, size=96, fps=8.0, seed=3, distractors=0.5)
    occluded = 0
    for plan in plan_videos(config):
        frames, _, boxes = _render(config, plan)
        hidden, _, _ = _render(config, plan, hide_sounding=True)
        assert len(frames) == len(boxes) == 8
        for frame, without, box in zip(frames, hidden, boxes):
            drawn = np.any(frame != without, axis=2)
            x0, y0, x1, y1 = box
            inside = drawn[y0:y1, x0:x1]
            assert drawn.sum() == inside.sum() > 0, plan  # nothing of the object outside its box
            # the box is tight: the object touches all four sides, unless something covers it
            if not (inside[0].any() and inside[-1].any() and inside[:, 0].any() and inside[:, -1].any()):
                occluded += 1
                assert plan.distractor_classes, plan
    assert occluded < 12 * 8 // 2


def test_decoded_frames_show_the_object_in_its_box(synth_world: Path) -> None:
    """Frame i of the MP4 (shown from i / fps s) matches the render with the object, not without it."""
    config = SYNTH_WORLD_CONFIG
    assert json.loads((synth_world / "world.json").read_text())["config"] == json_roundtrip(config.to_dict())
    for plan in plan_videos(config)[:4]:
        sidecar = read_boxes(synth_world / "videos" / f"{plan.name}.mp4")
        assert sidecar is not None and sidecar["width"] == 128 and len(sidecar["boxes"]) == 32  # 4 s at 8 fps
        frames, _, boxes = _render(config, plan)
        hidden, _, _ = _render(config, plan, hide_sounding=True)
        assert sidecar["boxes"] == boxes
        i = 12
        decoded = media.read_frames(synth_world / "videos" / f"{plan.name}.mp4", [i / config.fps + 0.01])[1][0]
        x0, y0, x1, y1 = boxes[i]
        err_with = np.abs(decoded[y0:y1, x0:x1].astype(int) - frames[i][y0:y1, x0:x1]).mean()
        err_without = np.abs(decoded[y0:y1, x0:x1].astype(int) - hidden[i][y0:y1, x0:x1]).mean()
        assert err_with < 0.5 * err_without, (plan.name, err_with, err_without)


def test_surface_is_drawn_per_video_and_the_same_for_every_class() -> None:
    """Colour, pitch and level vary within a class as much as across classes: they never name it."""
    config = WorldConfig(videos=40, classes=2, seconds=1.0, size=64, fps=2.0, seed=1, noise=0.0)
    pitch, level, colour = {0: [], 1: []}, {0: [], 1: []}, {0: [], 1: []}
    for plan in plan_videos(config):
        frames, audio, boxes = _render(config, plan)
        hidden, _, _ = _render(config, plan, hide_sounding=True)
        spectrum = np.abs(np.fft.rfft(audio))
        pitch[plan.visual_class].append(np.argmax(spectrum[50:]) + 50)  # Hz (1 s); above any rhythm
        level[plan.visual_class].append(np.abs(audio).max())
        drawn = np.any(frames[0] != hidden[0], axis=2)
        colour[plan.visual_class].append(np.median(frames[0][drawn], axis=0))
    for c in (0, 1):
        assert np.ptp(pitch[c]) > 500  # of the 150-1500 Hz range
        assert max(level[c]) > 4 * min(level[c])  # 20 dB of loudness
        assert np.ptp(np.array(colour[c]), axis=0).max() > 120  # colours all over
    assert np.median(pitch[0]) / np.median(pitch[1]) < 2 and np.median(pitch[1]) / np.median(pitch[0]) < 2


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


def test_class_surface_gives_each_class_its_own_hue_and_pitch() -> None:
    import colorsys

    config = WorldConfig(videos=6, classes=2, seconds=1.0, size=64, fps=2.0, seed=1, noise=0.0, distractors=0.0,
                         class_surface=1.0)
    for plan in plan_videos(config):
        frames, audio, _ = _render(config, plan)
        hidden, _, _ = _render(config, plan, hide_sounding=True)
        drawn = np.any(frames[0] != hidden[0], axis=2)
        r, g, b = np.median(frames[0][drawn], axis=0) / 255
        hue = colorsys.rgb_to_hsv(r, g, b)[0]
        assert min(abs(hue - synth.class_hue(plan.visual_class)), 1 - abs(hue - synth.class_hue(plan.visual_class))) < 0.05
        peak = np.argmax(np.abs(np.fft.rfft(audio))[50:]) + 50  # Hz (1 s)
        assert abs(peak / synth.class_pitch(plan.visual_class, config.pitch_range) - 1) < 0.05, (plan, peak)
    with pytest.raises(InputError, match="probability"):
        WorldConfig(class_surface=1.5).validate()


def test_pitch_range_is_shared_by_every_class_and_validated():
    from l3net.data.synth import AUDIO_RATE, _class_sound

    t = np.arange(AUDIO_RATE) / AUDIO_RATE
    rng = np.random.default_rng(0)
    for spec in class_table(6):
        if spec.timbre != "sine":  # a sine's spectrum peaks at its fundamental (1 Hz bins)
            continue
        peaks = np.array([np.argmax(np.abs(np.fft.rfft(_class_sound(spec, t, rng, (200.0, 800.0))[0])))
                          for _ in range(30)])
        assert peaks.min() >= 199 and peaks.max() <= 801
        assert peaks.min() < 300 and peaks.max() > 550
    with pytest.raises(InputError, match="--pitch-range must satisfy"):
        WorldConfig(pitch_range=(800.0, 200.0)).validate()
    with pytest.raises(InputError, match="--loudness-db"):
        WorldConfig(loudness_db=-1.0).validate()
    with pytest.raises(InputError, match="--clutter"):
        WorldConfig(clutter=-1).validate()
