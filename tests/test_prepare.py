"""l3net prepare: videos -> shards, bad inputs in the manifest, stable splits, resume, slices."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from fixtures_data import SYNTH_PREPARE_CONFIG, SYNTH_WORLD_CONFIG
from l3net import media
from l3net.cli import main
from l3net.data import shards as fmt
from l3net.data.prepare import (
    PrepareConfig,
    assign_split,
    collect_inputs,
    prepare,
    read_manifest,
    video_key,
)
from l3net.data.shards import ShardSet
from l3net.data.synth import WorldConfig, make_world
from l3net.errors import DatasetError, OutputError

FAST = PrepareConfig(seconds=2.0, fps=2.0, frame_size=48, split_ratios=(1.0, 0.0, 0.0), shard_size=2)


@pytest.fixture(scope="module")
def tiny_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_world(tmp_path_factory.mktemp("tiny") / "world", WorldConfig(videos=6, classes=3, seconds=2.0, size=64, seed=3))


def _tars(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.glob("*.tar"))}


def test_synthetic_shards(synth_world: Path, synth_shards: Path) -> None:
    manifest = read_manifest(synth_shards)
    assert len(manifest) == SYNTH_WORLD_CONFIG.videos and all(m["status"] == "kept" for m in manifest)
    labels = dict(line.strip().split(",", 1) for line in (synth_world / "labels.csv").read_text().splitlines()[1:])
    info = json.loads((synth_shards / "dataset.json").read_text())
    assert info["frame_smaller_side"] == 112 and info["fps"] == 4.0 and info["sample_rate"] == 48_000
    assert info["classes"] == sorted(set(labels.values()))
    shards = ShardSet(synth_shards)
    seen = 0
    for split in fmt.SPLITS:
        for video in shards.videos(split):
            seen += 1
            meta = video.meta
            assert meta["split"] == split == assign_split(video.key, SYNTH_PREPARE_CONFIG.normalised_ratios)
            assert video.key == video_key(meta["source"]) and meta["source"].startswith("videos/")
            assert meta["label"] == labels[meta["source"]]
            assert meta["frame_times"] == [k / 4 for k in range(16)]
            assert video.num_samples == pytest.approx(4 * 48_000, abs=2048)
            assert (meta["width"], meta["height"]) == (112, 112)
            assert len(meta["boxes"]) == 16
            for box in meta["boxes"]:
                if box is not None:
                    assert 0 <= box[0] < box[2] <= 112 and 0 <= box[1] < box[3] <= 112
            frame = shards.read_frame(video, 5)
            assert frame.shape == (112, 112, 3)
    assert seen == SYNTH_WORLD_CONFIG.videos


def test_real_videos(data_dir: Path, tmp_path: Path) -> None:
    config = PrepareConfig(seconds=3.0, fps=2.0, frame_size=64, split_ratios=(1, 1, 1), shard_size=10)
    summary = prepare([data_dir / "real_av"], tmp_path / "s", config=config, progress=False)
    assert sum(summary.kept.values()) == 5 and not summary.skipped
    shards = ShardSet(tmp_path / "s")
    videos = [v for split in fmt.SPLITS for v in shards.videos(split)]
    assert sorted(v.meta["source"] for v in videos) == sorted(f"real_av/{p.name}" for p in (data_dir / "real_av").iterdir())
    for video in videos:
        assert min(video.meta["width"], video.meta["height"]) == 64
        assert video.frame_times == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5][: len(video.frame_times)]
        assert video.duration == pytest.approx(3.0, abs=0.05)  # the first 3 s
        audio = shards.read_audio(video)
        assert np.isfinite(audio).all() and audio.std() > 1e-3
        assert "boxes" not in video.meta and video.label is None


def test_bad_inputs_are_skipped_with_reasons(data_dir: Path, tiny_world: Path, tmp_path: Path) -> None:
    summary = prepare([data_dir / "bad", tiny_world / "videos" / "v00000.mp4"], tmp_path / "s", config=FAST, progress=False)
    outcomes = {Path(m["source"]).name: m for m in read_manifest(tmp_path / "s")}
    expected = {
        "empty.wav": "empty",
        "truncated.mp4": "undecodable",
        "not_media.mp4": "not media",
        "audio_only.m4a": "no video stream",
        "video_only.mp4": "no audio stream",
        "short_0.5s.mp4": "shorter than 1 s",
        "corrupt_header.wav": "undecodable",
    }
    for name, reason in expected.items():
        assert outcomes[name]["status"] == "skipped" and outcomes[name]["reason"] == reason, outcomes[name]
        assert outcomes[name]["detail"]
    assert outcomes["v00000.mp4"]["status"] == "kept"
    assert summary.skipped == Counter(expected.values()) and sum(summary.kept.values()) == 1
    table = summary.table()
    assert "shorter than 1 s" in table and "not media" in table
    assert not list((tmp_path / "s").glob(".*tmp*"))  # nothing half-written


def test_directory_scan_ignores_non_media_names(tiny_world: Path, tmp_path: Path) -> None:
    root = tmp_path / "in"
    shutil.copytree(tiny_world / "videos", root)
    (root / "notes.txt").write_text("not a video")
    (root / ".hidden.mp4").write_text("editor backup")
    (root / "sub").mkdir()
    shutil.copy(tiny_world / "videos" / "v00001.mp4", root / "sub" / "clip.MOV")
    found = [identity for _, identity in collect_inputs([root])]
    assert found == sorted(found)
    assert "in/sub/clip.MOV" in found and "in/v00000.mp4" in found
    assert not any(i.endswith((".txt", ".json")) or "/." in i for i in found)
    with pytest.raises(DatasetError, match="no such file"):
        collect_inputs([tmp_path / "missing"])


def test_splits_are_stable_and_follow_ratios(tiny_world: Path, tmp_path: Path) -> None:
    ratios = PrepareConfig(split_ratios=(0.8, 0.1, 0.1)).normalised_ratios
    splits = Counter(assign_split(video_key(f"videos/{i}.mp4"), ratios) for i in range(20_000))
    assert abs(splits["train"] / 20_000 - 0.8) < 0.015 and abs(splits["test"] / 20_000 - 0.1) < 0.01
    # the identity does not depend on where the data lives: two copies give the same keys
    for place in ("a", "b"):
        shutil.copytree(tiny_world / "videos", tmp_path / place / "videos")
    keys_a = [video_key(i) for _, i in collect_inputs([tmp_path / "a" / "videos"])]
    keys_b = [video_key(i) for _, i in collect_inputs([tmp_path / "b" / "videos"])]
    assert keys_a == keys_b


def test_rerun_is_idempotent_and_workers_give_the_same_bytes(tiny_world: Path, tmp_path: Path) -> None:
    first = prepare([tiny_world / "videos"], tmp_path / "one", config=FAST, workers=1, progress=False)
    assert first.written_shards == 3 and first.reused_shards == 0
    mtimes = {p: p.stat().st_mtime_ns for p in (tmp_path / "one").glob("*.tar*")}
    again = prepare([tiny_world / "videos"], tmp_path / "one", config=FAST, workers=1, progress=False)
    assert again.written_shards == 0 and again.reused_shards == 3
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "one").glob("*.tar*")} == mtimes
    assert again.table() == first.table()
    parallel = prepare([tiny_world / "videos"], tmp_path / "two", config=FAST, workers=2, progress=False)
    assert parallel.written_shards == 3
    assert _tars(tmp_path / "one") == _tars(tmp_path / "two")


def test_resume_after_a_kill(tiny_world: Path, tmp_path: Path) -> None:
    reference = tmp_path / "ref"
    prepare([tiny_world / "videos"], reference, config=FAST, progress=False)
    out = tmp_path / "killed"
    shutil.copytree(reference, out)
    names = sorted(p.name for p in out.glob("*.tar"))
    # killed after a tar was renamed but before its sidecar was written
    fmt.sidecar_path(out / names[0]).unlink()
    # killed while writing: a temporary file, and no final tar or sidecar
    (out / names[1]).rename(out / f".{names[1]}.abc123.tmp")
    fmt.sidecar_path(out / names[1]).unlink()
    # a tar cut short by a crash of the machine (the sidecar records its size)
    with open(out / names[2], "r+b") as handle:
        handle.truncate(1000)
    (out / "manifest-00000.jsonl").unlink()
    summary = prepare([tiny_world / "videos"], out, config=FAST, progress=False)
    assert summary.written_shards == 3
    assert _tars(out) == _tars(reference)
    assert not list(out.glob(".*tmp*"))
    assert read_manifest(out) == read_manifest(reference)


def test_slices_for_a_cluster(tiny_world: Path, tmp_path: Path) -> None:
    whole = prepare([tiny_world / "videos"], tmp_path / "whole", config=FAST, progress=False)
    out = tmp_path / "sliced"
    for index in range(3):
        prepare([tiny_world / "videos"], out, config=FAST, num_shards=3, shard_index=index, progress=False)
    assert sorted(p.name for p in out.glob("manifest-*.jsonl")) == [f"manifest-{i:05d}.jsonl" for i in range(3)]
    sliced = ShardSet(out).videos("train")
    assert sorted(v.key for v in sliced) == sorted(v.key for v in ShardSet(tmp_path / "whole").videos("train"))
    assert len({v.key for v in sliced}) == len(sliced) == sum(whole.kept.values())
    assert all(v.shard.name.split("-")[1] == f"{int(v.shard.name.split('-')[1]):05d}" for v in sliced)


def test_other_settings_or_inputs_are_refused(tiny_world: Path, tmp_path: Path) -> None:
    out = tmp_path / "s"
    prepare([tiny_world / "videos"], out, config=FAST, progress=False)
    with pytest.raises(DatasetError, match="other settings.*fps"):
        prepare([tiny_world / "videos"], out, config=PrepareConfig(**{**FAST.__dict__, "fps": 1.0}), progress=False)
    with pytest.raises(DatasetError, match="different list of inputs"):
        prepare([tiny_world / "videos" / "v00000.mp4"], out, config=FAST, progress=False)


def test_labels_file_problems(tiny_world: Path, tmp_path: Path) -> None:
    bad = tmp_path / "labels.csv"
    bad.write_text("a,b\nx,y\n")
    with pytest.raises(DatasetError, match="header"):
        prepare([tiny_world / "videos"], tmp_path / "s", labels=bad, config=FAST, progress=False)
    with pytest.raises(DatasetError, match="not found"):
        prepare([tiny_world / "videos"], tmp_path / "s", labels=tmp_path / "nope.csv", config=FAST, progress=False)
    partial = tmp_path / "partial.csv"
    partial.write_text("video,class\nworld/videos/v00000.mp4,cat\n")
    shutil.copytree(tiny_world, tmp_path / "world")
    summary = prepare([tmp_path / "world" / "videos"], tmp_path / "p", labels=partial, config=FAST, progress=False)
    assert summary.unlabelled == 5 and summary.class_counts == Counter({"cat": 1})
    assert "no row in the labels file" in summary.table()


def test_unusable_output_directory(tiny_world: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("I am a file")
    with pytest.raises(OutputError, match="cannot write"):
        prepare([tiny_world / "videos"], blocker / "shards", config=FAST, progress=False)


def test_cli(tiny_world: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "s"
    args = ["prepare", str(tiny_world / "videos"), "--out", str(out), "--labels", str(tiny_world / "labels.csv"),
            "--seconds", "2", "--fps", "2", "--frame-size", "48", "--workers", "1", "--quiet"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "train" in printed and "manifest-00000.jsonl" in printed and "3 classes" in printed
    assert main(["prepare", str(tmp_path / "missing"), "--out", str(out)]) == 2
    assert "no such file or directory" in capsys.readouterr().err
    assert main(["prepare", str(tiny_world / "videos"), "--out", str(out), "--num-shards", "2", "--shard-index", "2"]) == 2
    assert "--shard-index" in capsys.readouterr().err


def test_start_and_audio_stream(tiny_world: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    video = tiny_world / "videos" / "v00000.mp4"
    out = tmp_path / "s"
    args = ["prepare", str(video), "--out", str(out), "--seconds", "1.5", "--start", "0.5", "--audio-stream", "0",
            "--fps", "2", "--frame-size", "48", "--split-ratios", "1", "0", "0", "--quiet"]
    assert main(args) == 0
    shards = ShardSet(out)
    [sample] = shards.videos("train")
    assert sample.meta["start"] == 0.5 and sample.frame_times == [0.0, 0.5, 1.0]
    assert sample.meta["timing"]["audio_stream"] == 0 and sample.meta["timing"]["audio_seek"] == "seek"
    # the stored sound is the file's from 0.5 s; the frame stored at 0.0 is the one on screen at 0.5 s
    expected = media.load_audio(video, start=0.5, duration=1.5)
    # one 16-bit step, plus float rounding of the two decodes that grows with the level (loud worlds: ~6e-5 relative)
    np.testing.assert_allclose(shards.read_audio(sample), expected, atol=1 / 32768 + 1e-6, rtol=1e-4)
    candidates = dict(media.iter_video_frames(video, times=[0.0, 0.5, 1.0], smaller_side=48))
    stored = shards.read_frame(sample, 0).astype(int)
    distance = {t: np.abs(stored - frame.astype(int)).mean() for t, frame in candidates.items()}
    assert min(distance, key=distance.get) == 0.5, distance  # (JPEG: not equal, but nearest)
    with pytest.raises(DatasetError, match="other settings.*start"):
        prepare([video], out, config=PrepareConfig(seconds=1.5, start=1.0, audio_stream=0, fps=2, frame_size=48), progress=False)
    capsys.readouterr()
    assert main([*args[:7], "-1", *args[8:]]) == 2 and "--start must be a non-negative" in capsys.readouterr().err
    summary = prepare([video], tmp_path / "t", config=PrepareConfig(seconds=1.5, audio_stream=1, fps=2, frame_size=48), progress=False)
    [outcome] = summary.outcomes
    assert outcome.reason == "no audio stream" and outcome.detail == "no audio stream 1 (it has 1)"


def test_help_has_an_example(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["prepare", "--help"])
    assert "example:" in capsys.readouterr().out




def test_full_disk_leaves_no_partial_shard(tiny_world: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    calls = {"n": 0}
    original = fmt.ShardWriter.add_block

    def add_then_fail(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(fmt.ShardWriter, "add_block", add_then_fail)
    out = tmp_path / "s"
    with pytest.raises(OutputError, match="disk is full"):
        prepare([tiny_world / "videos"], out, config=FAST, progress=False)
    finished = sorted(p.name for p in out.glob("*.tar"))
    assert len(finished) == 1 and all(fmt.sidecar_path(out / n).exists() for n in finished)
    assert not list(out.glob(".*tmp*"))
    monkeypatch.setattr(fmt.ShardWriter, "add", original)
    assert prepare([tiny_world / "videos"], out, config=FAST, progress=False).reused_shards == 1


def test_labels_matched_by_file_name(tiny_world: Path, tmp_path: Path) -> None:
    labels = tmp_path / "elsewhere" / "labels.csv"
    labels.parent.mkdir()
    labels.write_text("file,label\nv00000.mp4,dog\nv00001.mp4,cat\n")
    summary = prepare([tiny_world / "videos"], tmp_path / "s", labels=labels, config=FAST, progress=False)
    assert summary.class_counts == Counter({"dog": 1, "cat": 1}) and summary.classes == ["cat", "dog"]


@pytest.mark.slow
def test_kill_9_at_any_moment_then_resume(tiny_world: Path, tmp_path: Path) -> None:
    """A real `l3net prepare` killed with SIGKILL mid-run; the re-run finishes with the same bytes."""
    import signal
    import subprocess
    import sys
    import time

    reference = tmp_path / "ref"
    prepare([tiny_world / "videos"], reference, config=FAST, progress=False)
    out = tmp_path / "killed"
    command = [sys.executable, "-m", "l3net", "prepare", str(tiny_world / "videos"), "--out", str(out), "--seconds", "2",
               "--fps", "2", "--frame-size", "48", "--split-ratios", "1", "0", "0", "--shard-size", "2", "--workers", "1", "--quiet"]
    process = subprocess.Popen(command)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if len(list(out.glob("*.tar.json"))) >= 1:
            break
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert len(list(out.glob("*.tar.json"))) < 3, "the run finished before it could be killed"
    for tar in out.glob("*.tar"):  # whatever is under a final name is whole
        side = fmt.sidecar_path(tar)
        assert not side.exists() or json.loads(side.read_text())["tar_bytes"] == tar.stat().st_size
    summary = prepare([tiny_world / "videos"], out, config=FAST, progress=False)
    assert summary.reused_shards >= 1
    assert _tars(out) == _tars(reference)
    assert not list(out.glob(".*tmp*"))


def test_other_labels_are_refused_on_resume(tiny_world: Path, tmp_path: Path) -> None:
    out = tmp_path / "s"
    prepare([tiny_world / "videos"], out, labels=tiny_world / "labels.csv", config=FAST, progress=False)
    swapped = tmp_path / "labels.csv"
    rows = (tiny_world / "labels.csv").read_text().splitlines()
    names = [r.split(",")[1] for r in rows[1:]]
    rotated = names[1:] + names[:1]  # the same classes, given to other videos
    swapped.write_text("\n".join([rows[0]] + [f"{r.split(',')[0]},{c}" for r, c in zip(rows[1:], rotated)]) + "\n")
    (tmp_path / "videos").symlink_to(tiny_world / "videos")
    with pytest.raises(DatasetError, match="inputs or labels"):
        prepare([tiny_world / "videos"], out, labels=swapped, config=FAST, progress=False)
