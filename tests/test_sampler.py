"""The AVC pair sampler: paper-exact pairs, balance, workers and ranks, exact resume, damage."""

from __future__ import annotations

import json
import shutil
import warnings
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from l3net.config import PRESETS, SAMPLE_RATE
from l3net.data import shards as fmt
from l3net.data.sampler import NO_AUGMENT, AugmentConfig, AVCPairs, batch_waveforms, positive_start
from l3net.data.shards import ShardSet
from l3net.errors import DatasetError, InputError
from l3net.media import center_crop

SMALL = PRESETS["small"]
CLIP = SMALL.clip_samples


def _batches(dataset: AVCPairs, n: int, workers: int = 0) -> list[dict]:
    loader = DataLoader(dataset, batch_size=None, num_workers=workers)
    out = []
    for batch in loader:
        out.append(batch)
        if len(out) == n:
            break
    return out


def test_positive_start_is_inside_the_overlap_window() -> None:
    rng = np.random.default_rng(0)
    num = 4 * SAMPLE_RATE
    for t in np.concatenate([rng.uniform(0, 4, 2000), [0.0, 0.5, 1.0, 3.0, 3.99]]):
        for u in (0.0, 0.999999, rng.random()):
            start = positive_start(float(t), num, CLIP, u)
            assert 0 <= start <= num - CLIP
            assert t - 1 < start / SAMPLE_RATE <= t + 1e-12


def test_training_pairs_are_the_papers(synth_shards: Path) -> None:
    """Over thousands of pairs: balance per batch, aligned positives, distinct videos in negatives,
    audio that is exactly the stored audio at the stated start, and distinct pairs."""
    dataset = AVCPairs(synth_shards, "train", config=SMALL, batch_size=32, seed=1, augment=NO_AUGMENT)
    shards = ShardSet(synth_shards)
    videos = {v.key: v for v in shards.videos("train")}
    seen: Counter = Counter()
    batches = _batches(dataset, 64)
    for step, batch in enumerate(batches):
        assert batch["step"] == step
        assert batch["image"].shape == (32, 3, 96, 96) and batch["image"].dtype == torch.uint8
        assert batch["audio"].shape == (32, CLIP) and batch["audio"].dtype == torch.float32
        assert int(batch["label"].sum()) == 16  # exactly half
        for i in range(32):
            image_key, audio_key = batch["image_key"][i], batch["audio_key"][i]
            t, s = float(batch["frame_time"][i]), float(batch["audio_start"][i])
            audio_video = videos[audio_key]
            assert 0 <= s and s + 1.0 <= audio_video.duration + 1e-9
            if batch["label"][i] == 1:
                assert image_key == audio_key and t - 1 < s <= t
                assert batch["image_class"][i] == batch["audio_class"][i]
            else:
                assert image_key != audio_key
            assert t in videos[image_key].frame_times
            if step % 10 == 0:  # provenance is the truth: the audio is the stored audio there
                stored = shards.read_audio(audio_video, round(s * SAMPLE_RATE), CLIP)
                assert torch.equal(batch["audio"][i], torch.from_numpy(stored))
            seen[(image_key, t, audio_key, s)] += 1
    assert sum(seen.values()) == 64 * 32
    # the only repeats: a frame at t = 0, whose overlapping clip can only start at 0
    assert all(key[1] == key[3] == 0.0 for key, n in seen.items() if n > 1)


def test_epochs_use_every_video_once_and_cycle_frames(synth_shards: Path) -> None:
    dataset = AVCPairs(synth_shards, "train", config=SMALL, batch_size=16, seed=2)
    keys = [v.key for v in ShardSet(synth_shards).videos("train")]
    n = len(keys)
    slots = []
    frames = defaultdict(list)
    for batch in _batches(dataset, (6 * n) // 16):
        slots.extend(zip(batch["image_key"], batch["frame_time"].tolist()))
    for epoch in range(len(slots) // n):
        chunk = slots[epoch * n : (epoch + 1) * n]
        assert sorted(k for k, _ in chunk) == sorted(keys)  # each video once per epoch
        for key, t in chunk:
            frames[key].append(t)
    assert all(len(set(ts)) == len(ts) for ts in frames.values())  # a new frame every epoch


def test_training_augmentation(synth_shards: Path) -> None:
    plain = _batches(AVCPairs(synth_shards, "train", config=SMALL, batch_size=32, seed=3, augment=NO_AUGMENT), 4)
    jittered = _batches(AVCPairs(synth_shards, "train", config=SMALL, batch_size=32, seed=3), 4)
    shards = ShardSet(synth_shards)
    videos = {v.key: v for v in shards.videos("train")}
    ratios = []
    for a, b in zip(plain, jittered):
        assert a["image_key"] == b["image_key"] and torch.equal(a["audio_start"], b["audio_start"])  # same pairs
        for i in range(32):
            stored = shards.read_audio(videos[b["audio_key"][i]], round(float(b["audio_start"][i]) * SAMPLE_RATE), CLIP)
            big = np.abs(stored) > 0.05
            ratios.append(float(np.median(b["audio"][i].numpy()[big] / stored[big])))
    assert 0.9 <= min(ratios) < 0.97 and 1.03 < max(ratios) <= 1.1  # one gain in [0.9, 1.1] per clip
    assert not all(torch.equal(a["image"], b["image"]) for a, b in zip(plain, jittered))
    with pytest.raises(InputError, match="gain"):
        AVCPairs(synth_shards, "train", config=SMALL, batch_size=4, augment=AugmentConfig(gain=(1.2, 1.1)))


def test_int16_audio_scaled_on_the_device_is_the_float_audio(synth_shards: Path) -> None:
    """pcm=True (what l3net train loads): half the audio bytes cross, the same float32 numbers arrive."""
    floats = _batches(AVCPairs(synth_shards, "train", config=SMALL, batch_size=16, seed=4), 3)
    dataset = AVCPairs(synth_shards, "train", config=SMALL, batch_size=16, seed=4, pcm=True)
    for a, b in zip(floats, _batches(dataset, 3, workers=1)):
        assert "audio" not in b and b["pcm"].dtype == torch.int16 and b["pcm_scale"].dtype == torch.float32
        assert torch.equal(batch_waveforms(b, torch.device("cpu")), a["audio"])  # bit for bit
        assert torch.equal(batch_waveforms(a, torch.device("cpu")), a["audio"])
        assert 0.9 / 32768 <= float(b["pcm_scale"].min()) and float(b["pcm_scale"].max()) <= 1.1 / 32768
        tensors = [v for v in b.values() if isinstance(v, torch.Tensor)]
        assert dataset.batch_nbytes == sum(t.numel() * t.element_size() for t in tensors)
    float_bytes = AVCPairs(synth_shards, "train", config=SMALL, batch_size=16).batch_nbytes
    assert float_bytes - dataset.batch_nbytes == 16 * (SMALL.clip_samples * 2 - 4)


def test_evaluation_pairs_are_fixed_and_balanced(synth_shards: Path) -> None:
    def collect(**kwargs) -> list[tuple]:
        workers = kwargs.pop("workers", 0)
        dataset = AVCPairs(synth_shards, "test", config=SMALL, batch_size=7, train=False, seed=4, **kwargs)
        return [
            (b["step"], tuple(b["image_key"]), tuple(b["audio_key"]), tuple(b["frame_time"].tolist()),
             tuple(b["audio_start"].tolist()), tuple(b["label"].tolist()), b["image"].sum().item())
            for b in DataLoader(dataset, batch_size=None, num_workers=workers)
        ]

    first = collect()
    assert first == collect()  # fixed
    assert first == collect(workers=2)  # whatever the number of workers, the same list in order
    ranks = [collect(rank=r, world_size=2) for r in range(2)]
    assert sorted(ranks[0] + ranks[1]) == sorted(first)
    labels = [label for batch in first for label in batch[5]]
    videos = ShardSet(synth_shards).videos("test")
    assert len(labels) == 10 * len(videos) and sum(labels) == len(labels) // 2
    dataset = AVCPairs(synth_shards, "test", config=SMALL, batch_size=7, train=False, seed=4)
    assert dataset.num_pairs == len(labels) and len(dataset) == len(first)
    # centre crop of the resized frame, no augmentation
    batch = next(iter(dataset))
    shards = ShardSet(synth_shards)
    video = next(v for v in videos if v.key == batch["image_key"][0])
    frame = shards.read_frame(video, video.frame_times.index(float(batch["frame_time"][0])))
    assert np.array_equal(batch["image"][0].permute(1, 2, 0).numpy(), center_crop(frame, SMALL.image_size))
    other_seed = AVCPairs(synth_shards, "test", config=SMALL, batch_size=7, train=False, seed=5)
    assert next(iter(other_seed))["audio_start"].tolist() != list(first[0][4])


def test_streams_partition_the_videos(synth_shards: Path) -> None:
    dataset = AVCPairs(synth_shards, "train", config=SMALL, batch_size=8)
    keys = sorted(v.key for v in dataset.shards.videos("train"))
    for num_streams in (1, 2, 3, 4, 6):  # shard-level up to 3 streams (3 shards), video-level above
        parts = [[v.key for v in dataset.stream_videos(g, num_streams)] for g in range(num_streams)]
        assert sorted(k for part in parts for k in part) == keys
    with pytest.raises(DatasetError, match="at least 2 per stream"):
        dataset.stream_videos(len(keys) - 2, len(keys) - 1)  # n videos over n - 1 streams: the last gets one


@pytest.mark.parametrize("world_size", [1, 2])
def test_workers_and_ranks_read_disjoint_videos(synth_shards: Path, world_size: int) -> None:
    owner: dict[str, tuple[int, int]] = {}
    count = Counter()
    steps = len(ShardSet(synth_shards).videos("train"))  # enough for every stream to reach all its videos
    for rank in range(world_size):
        dataset = AVCPairs(synth_shards, "train", config=SMALL, batch_size=4, rank=rank, world_size=world_size)
        for step, batch in enumerate(_batches(dataset, steps, workers=2)):
            stream = (rank, step % 2)
            for key in batch["image_key"] + batch["audio_key"]:
                assert owner.setdefault(key, stream) == stream, "a video was read by two (rank, worker)s"
                count[key] += 1
    assert len(owner) == len(ShardSet(synth_shards).videos("train"))  # and together they cover all


def test_resume_from_a_step_gives_the_same_batches(synth_shards: Path) -> None:
    def signature(batch: dict) -> tuple:
        return (batch["step"], tuple(batch["image_key"]), tuple(batch["audio_start"].tolist()),
                batch["image"].to(torch.int64).sum().item(), float(batch["audio"].sum()))

    kwargs = dict(config=SMALL, batch_size=8, seed=7, rank=1, world_size=2)
    uninterrupted = [signature(b) for b in _batches(AVCPairs(synth_shards, "train", **kwargs), 9, workers=2)]
    resumed = [signature(b) for b in _batches(AVCPairs(synth_shards, "train", start_step=5, **kwargs), 4, workers=2)]
    assert resumed == uninterrupted[5:]
    single = [signature(b) for b in _batches(AVCPairs(synth_shards, "train", **kwargs), 5)]
    assert [signature(b) for b in _batches(AVCPairs(synth_shards, "train", start_step=3, **kwargs), 2)] == single[3:]
    far = next(iter(AVCPairs(synth_shards, "train", start_step=1_000_000, **kwargs)))
    assert far["step"] == 1_000_000  # resuming far ahead is instant


def test_a_corrupt_shard_is_skipped_and_training_goes_on(synth_shards: Path, tmp_path: Path) -> None:
    root = tmp_path / "s"
    shutil.copytree(synth_shards, root)
    train = sorted(root.glob("train-*.tar"))
    with open(train[0], "r+b") as handle:
        handle.truncate(4096)
    lost = set(json.loads(fmt.sidecar_path(train[0]).read_text())["keys"])
    # a damaged JPEG inside a healthy shard: another frame of that video is used
    side = json.loads(fmt.sidecar_path(train[1]).read_text())
    with open(train[1], "r+b") as handle:
        for entry in side["index"]:
            offset, size = entry["members"]["frames"][0]
            handle.seek(offset)
            handle.write(b"\x00" * size)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        batches = _batches(AVCPairs(root, "train", config=SMALL, batch_size=16, seed=0), 12)
    messages = [str(w.message) for w in caught]
    assert any(train[0].name in m and "truncated" in m for m in messages)
    assert any(train[1].name in m and "unreadable" in m for m in messages)
    keys = {k for b in batches for k in b["image_key"] + b["audio_key"]}
    assert keys and not keys & lost


def test_bad_arguments(synth_shards: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="batch_size"):
        AVCPairs(synth_shards, "train", config=SMALL, batch_size=0)
    with pytest.raises(InputError, match="rank"):
        AVCPairs(synth_shards, "train", config=SMALL, batch_size=4, rank=2, world_size=2)
    with pytest.raises(DatasetError, match="unknown split"):
        AVCPairs(synth_shards, "holdout", config=SMALL, batch_size=4)
    root = tmp_path / "s"
    shutil.copytree(synth_shards, root)
    for path in root.glob("test-*"):
        path.unlink()
    with pytest.raises(DatasetError, match="no test shards"):
        AVCPairs(root, "test", config=SMALL, batch_size=4, train=False)
    with pytest.raises(TypeError, match="endless"):
        len(AVCPairs(synth_shards, "train", config=SMALL, batch_size=4))


def test_videos_shorter_than_the_clip_are_left_out(synth_shards: Path) -> None:
    long_clip = SMALL.replace(clip_seconds=3.5)  # the fixture's videos last 4 s; some frames sit past 3.5 s
    dataset = AVCPairs(synth_shards, "train", config=long_clip, batch_size=8)
    batch = next(iter(dataset))
    assert batch["audio"].shape == (8, long_clip.clip_samples)
    too_long = SMALL.replace(clip_seconds=5.0)
    with pytest.warns(UserWarning, match="left out"), pytest.raises(DatasetError, match="at least 2"):
        next(iter(AVCPairs(synth_shards, "train", config=too_long, batch_size=8)))


@pytest.mark.parametrize("split", ["val", "test"])
def test_evaluation_pairs_are_the_papers(synth_shards: Path, split: str) -> None:
    """Every rule of the training pairs holds for the fixed evaluation list too (validation, the best
    model's choice and `eval avc` read it): aligned positives, a distinct video's audio in negatives,
    balance per video, the stored audio at the stated start, the centre crop, and determinism."""
    shards = ShardSet(synth_shards)
    videos = {v.key: v for v in shards.videos(split)}
    per = 12
    lists = {}
    for seed in (0, 1, 2):
        dataset = AVCPairs(synth_shards, split, config=SMALL, batch_size=16, train=False, seed=seed,
                           eval_pairs_per_video=per)
        pairs = dataset.eval_pairs()
        assert len(pairs) == per * len(videos)
        positives = Counter()
        for pair in pairs:
            t, s = pair.image.frame_times[pair.frame], pair.start / SAMPLE_RATE
            assert 0 <= pair.start <= pair.audio.num_samples - CLIP  # the clip lies inside the audio
            if pair.label == 1:
                assert pair.audio.key == pair.image.key and t - 1 < s <= t, (pair.image.key, t, s)
                positives[pair.image.key] += 1
            else:
                assert pair.audio.key != pair.image.key, f"a negative took its own video's audio ({pair.image.key})"
        assert positives == Counter({key: per // 2 for key in videos})  # balanced, video by video
        lists[seed] = [(p.image.key, p.frame, p.audio.key, p.start, p.label) for p in pairs]
        if seed == 0:
            again = AVCPairs(synth_shards, split, config=SMALL, batch_size=16, train=False, seed=0, eval_pairs_per_video=per)
            assert [(p.image.key, p.frame, p.audio.key, p.start, p.label) for p in again.eval_pairs()] == lists[0]
            # What the batches carry is those pairs: the stored audio at the start, the centre crop.
            flat = [b for b in DataLoader(dataset, batch_size=None)]
            assert sum(len(b["label"]) for b in flat) == len(pairs)
            i = 0
            for batch in flat[:3]:
                for j in range(len(batch["label"])):
                    pair = pairs[i]
                    i += 1
                    assert (batch["image_key"][j], batch["audio_key"][j], int(batch["label"][j])) == (
                        pair.image.key, pair.audio.key, pair.label)
                    assert float(batch["audio_start"][j]) == pair.start / SAMPLE_RATE
                    stored = shards.read_audio(pair.audio, pair.start, CLIP)
                    assert torch.equal(batch["audio"][j], torch.from_numpy(stored))
                    frame = shards.read_frame(pair.image, pair.frame)
                    assert np.array_equal(batch["image"][j].permute(1, 2, 0).numpy(), center_crop(frame, SMALL.image_size))
    # A different seed draws different frames and clips (most pairs differ).
    for other in (1, 2):
        same = sum(a == b for a, b in zip(lists[0], lists[other]))
        assert same < len(lists[0]) // 4, same
