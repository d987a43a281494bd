"""The shard format: readable by webdataset and tar, indexed by the sidecar, damage detected."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import tarfile
import wave
from pathlib import Path

import numpy as np
import pytest
import webdataset as wds
from PIL import Image

from l3net.data import shards as fmt
from l3net.data.shards import ShardSet
from l3net.errors import DatasetError


def test_webdataset_reads_the_shards(synth_shards: Path) -> None:
    urls = [str(p) for p in sorted(synth_shards.glob("train-*.tar"))]
    samples = list(wds.WebDataset(urls, shardshuffle=False).decode("rgb8"))
    index = {v.key: v for v in ShardSet(synth_shards).videos("train")}
    assert sorted(s["__key__"] for s in samples) == sorted(index)
    for sample in samples[:3]:
        video = index[sample["__key__"]]
        meta = sample["json"]
        assert meta["key"] == video.key and meta["frame_times"] == video.frame_times
        frames = sorted(k for k in sample if k.endswith(".jpg"))
        assert frames == [f"{i:03d}.jpg" for i in range(video.num_frames)]
        assert sample["000.jpg"].shape == (112, 112, 3) and sample["000.jpg"].dtype == np.uint8
        with wave.open(io.BytesIO(sample["wav"])) as handle:
            assert (handle.getframerate(), handle.getnchannels(), handle.getsampwidth()) == (48_000, 1, 2)
            pcm = np.frombuffer(handle.readframes(handle.getnframes()), "<i2")
        assert np.array_equal(pcm, ShardSet(synth_shards).read_pcm(video))


def test_plain_tar_lists_and_extracts(synth_shards: Path, tmp_path: Path) -> None:
    shard = sorted(synth_shards.glob("val-*.tar"))[0]
    listing = subprocess.run(["tar", "tf", str(shard)], check=True, capture_output=True, text=True).stdout.split()
    sidecar = json.loads(fmt.sidecar_path(shard).read_text())
    assert sidecar["samples"] == len(sidecar["keys"]) > 0
    key = sidecar["keys"][0]
    assert listing[:3] == [f"{key}.json", f"{key}.wav", f"{key}.000.jpg"]
    assert len(listing) == sum(2 + len(e["members"]["frames"]) for e in sidecar["index"])
    subprocess.run(["tar", "xf", str(shard), "-C", str(tmp_path)], check=True)
    shards = ShardSet(synth_shards)
    video = next(v for v in shards.videos("val") if v.key == key)
    extracted = np.asarray(Image.open(tmp_path / f"{key}.003.jpg").convert("RGB"))
    assert np.array_equal(extracted, shards.read_frame(video, 3))
    assert json.loads((tmp_path / f"{key}.json").read_text()) == dict(video.meta)


def test_sequential_reader_agrees_with_the_index(synth_shards: Path) -> None:
    paths = sorted(synth_shards.glob("test-*.tar"))
    samples = list(fmt.iter_tar_samples(paths))
    shards = ShardSet(synth_shards)
    videos = shards.videos("test")
    assert [s["__key__"].decode() for s in samples] == [v.key for v in videos]
    for sample, video in zip(samples, videos):
        assert sample["001.jpg"] == shards.read_frame_bytes(video, 1)


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_damaged_shards_are_skipped_with_a_warning(synth_shards: Path, tmp_path: Path) -> None:
    root = _copy(synth_shards, tmp_path / "s")
    train = sorted(root.glob("train-*.tar"))
    total = len(ShardSet(root).videos("train"))
    with open(train[0], "r+b") as handle:  # truncated (a copy interrupted, a full disk)
        handle.truncate(train[0].stat().st_size // 2)
    fmt.sidecar_path(train[1]).unlink()  # unfinished
    with pytest.warns(UserWarning) as caught:
        videos = ShardSet(root).videos("train")
    messages = " ".join(str(w.message) for w in caught)
    assert train[0].name in messages and "truncated" in messages
    assert train[1].name in messages and "unfinished" in messages
    remaining = sum(json.loads(fmt.sidecar_path(t).read_text())["samples"] for t in train[2:])
    assert len(videos) == remaining < total
    for shard in train[2:]:
        fmt.sidecar_path(shard).write_text("{not json")
    with pytest.warns(UserWarning) as caught:
        assert ShardSet(root).videos("train") == []
    assert any("unreadable" in str(w.message) and train[2].name in str(w.message) for w in caught)


def test_the_fingerprint_names_the_settings_and_the_finished_train_and_val_shards(synth_shards: Path,
                                                                                 tmp_path: Path) -> None:
    """What a resume compares: another finished train or val shard, or other settings, is other data; a
    shard still being written (no sidecar yet) or a test shard is not."""
    root = _copy(synth_shards, tmp_path / "shards")
    before = ShardSet(root).fingerprint()
    assert len(before) == 16 and ShardSet(root).fingerprint() == before
    source = sorted(root.glob("train-*.tar"))[0]
    for split in ("train", "val", "test"):
        added = root / fmt.shard_name(split, 99, 0)
        shutil.copyfile(source, added)  # written, sidecar not yet: unfinished
        assert ShardSet(root).fingerprint() == before, split
        shutil.copyfile(fmt.sidecar_path(source), fmt.sidecar_path(added))
        assert (ShardSet(root).fingerprint() == before) == (split == "test"), split
        added.unlink()
        fmt.sidecar_path(added).unlink()
    assert ShardSet(root).fingerprint() == before
    info = json.loads((root / "dataset.json").read_text())
    (root / "dataset.json").write_text(json.dumps({**info, "classes": None}))
    assert ShardSet(root).fingerprint() != before


def test_not_a_shard_directory(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no such shard directory"):
        ShardSet(tmp_path / "missing")
    with pytest.raises(DatasetError, match="not a shard directory"):
        ShardSet(tmp_path)
    (tmp_path / "dataset.json").write_text('{"format": "something else"}')
    with pytest.raises(DatasetError, match="not an l3net shard"):
        ShardSet(tmp_path)


def test_random_access_bounds(synth_shards: Path) -> None:
    shards = ShardSet(synth_shards)
    video = shards.videos("train")[0]
    audio = shards.read_audio(video, 100, 480)
    assert audio.dtype == np.float32 and audio.shape == (480,) and np.abs(audio).max() <= 1.0
    with pytest.raises(ValueError, match="outside"):
        shards.read_pcm(video, video.num_samples - 10, 20)
    reduced = shards.read_frame(video, 0, min_side=50)
    assert min(reduced.shape[:2]) >= 50 and reduced.shape[0] < 112  # decoded at 1/2 scale


def test_writer_offsets_match_tarfile(tmp_path: Path) -> None:
    path = tmp_path / "x.tar"
    with open(path, "wb") as handle:
        writer = fmt.ShardWriter(handle)
        writer.add("abc", {"key": "abc"}, fmt.wav_bytes(np.zeros(10)), [b"\xff\xd8jpeg-ish", b"second"])
        writer.close()
    with tarfile.open(path) as tar:
        members = {m.name: m for m in tar}
        assert members["abc.001.jpg"].offset_data == writer.index[0]["members"]["frames"][1][0]
        assert members["abc.wav"].offset_data + fmt.WAV_HEADER_BYTES == writer.index[0]["members"]["pcm"][0]
    with pytest.raises(ValueError, match="dots"):
        fmt.ShardWriter(io.BytesIO()).add("a.b", {}, b"", [])
