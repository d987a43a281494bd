"""The AVC pair sampler: batches of (frame, 1 s of audio, corresponds?) from shards (PAPER_SPEC 1-2).

:class:`AVCPairs` is an ``IterableDataset`` that yields whole batches; use it with
``DataLoader(dataset, batch_size=None, num_workers=...)``.

Pairs (paper 2.1): a *positive* is a frame of a video at time t and a 1 s audio clip of the same
video whose start s satisfies t - 1 < s <= t, clipped to the video; a *negative* is a frame of one
video and 1 s of audio from a different video. Every training batch is exactly half and half
(one more negative when the batch size is odd and the coin says so).

Streams, workers and ranks. The sampler is a set of G = world_size x num_workers independent
*streams*; stream ``g = rank * num_workers + c`` owns a disjoint part of the split's videos
(whole shards when there are at least G shards, else every G-th video) and produces the global
steps ``s`` with ``s % num_workers == c`` of its rank. An *epoch* of a stream uses each of its
videos once as the image source, in a seeded random order; across epochs each video cycles
through its frames in a seeded order. Every random choice of step ``s`` comes from a generator
seeded with ``(seed, g, s // num_workers)``, so batch content is a pure function of the step:
``AVCPairs(..., start_step=s)`` yields exactly the batches an uninterrupted run would have
yielded from step ``s`` on, instantly and with the same ``num_workers`` (DataLoader workers take
steps round-robin, and worker ``w`` of a resumed loader serves stream ``(s + w) % num_workers``).

Reading is random access (one seek per frame and per second of audio, through the shard
sidecar's index), so the cost of a pair does not depend on the size of the dataset.

Evaluation (``train=False``): a fixed list of pairs drawn from ``seed`` alone: for each video of
the split, ``eval_pairs_per_video`` frames, alternately positive and negative (negatives take
audio from any other video of the split); centre crop, no augmentation. The list is finite and
the same whatever the number of workers or ranks; batch ``b`` goes to rank ``b % world_size``.
"""

from __future__ import annotations

import io
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np
import torch
from PIL import Image
from torch.utils.data import IterableDataset, get_worker_info

from ..config import SAMPLE_RATE, ModelConfig
from ..errors import DatasetError, InputError
from ..inputs import scaled_side
from .shards import ShardSet, VideoRecord


@dataclass(frozen=True)
class AugmentConfig:
    """Training augmentation (paper 2.2; the paper gives no magnitudes, these are moderate).

    Image: scale so the smaller side is ``config.image_resize``, random ``config.image_size``
    crop, horizontal flip with probability ``flip``, brightness x U[1 - b, 1 + b], saturation x
    U[1 - s, 1 + s] (0 = grey, 1 = unchanged). Audio: one gain from U[gain] over the clip.
    """

    flip: float = 0.5
    brightness: float = 0.2
    saturation: float = 0.2
    gain: tuple[float, float] = (0.9, 1.1)

    def validate(self) -> None:
        if not 0 <= self.flip <= 1:
            raise InputError(f"flip probability must be in [0, 1], got {self.flip}")
        if not 0 <= self.brightness < 1 or not 0 <= self.saturation < 1:
            raise InputError("brightness and saturation jitter must be in [0, 1)")
        lo, hi = self.gain
        if not 0 < lo <= hi:
            raise InputError(f"gain range must satisfy 0 < lo <= hi, got {self.gain}")


#: No augmentation at all (evaluation; also usable for training ablations).
NO_AUGMENT = AugmentConfig(flip=0.0, brightness=0.0, saturation=0.0, gain=(1.0, 1.0))


@dataclass(frozen=True)
class _Pair:
    image: VideoRecord
    frame: int
    audio: VideoRecord
    start: int  # first audio sample (at SAMPLE_RATE)
    label: int
    # augmentation draws (uniforms in [0, 1); ignored in evaluation)
    crop_x: float = 0.5
    crop_y: float = 0.5
    flip: bool = False
    brightness: float = 1.0
    saturation: float = 1.0
    gain: float = 1.0


#: ITU-R 601 luma weights, as Pillow's own RGB -> L conversion.
_LUMA = np.array([0.299, 0.587, 0.114])


def _colour_matrix(brightness: float, saturation: float) -> tuple[float, ...]:
    """The 3 x 4 RGB matrix (Pillow's ``convert`` format) of a saturation change (a blend with
    the pixel's grey) followed by a brightness change (a scale): one pass over the pixels."""
    m = brightness * (saturation * np.eye(3) + (1.0 - saturation) * np.outer(np.ones(3), _LUMA))
    return tuple(float(x) for row in m for x in (*row, 0.0))


def _stream_rng(*words: int) -> np.random.Generator:
    return np.random.default_rng([int(w) & 0xFFFFFFFFFFFF for w in words])


def positive_start(t: float, num_samples: int, clip: int, u: float) -> int:
    """First sample of a positive clip for a frame at ``t`` (s): uniform over the starts s with
    t - 1 < s <= t (clip_seconds = 1) that keep the clip inside the audio; ``u`` in [0, 1)."""
    clip_s = clip / SAMPLE_RATE
    lo = max(math.floor((t - clip_s) * SAMPLE_RATE) + 1, 0)
    hi = min(math.floor(t * SAMPLE_RATE), num_samples - clip)
    if hi < lo:  # only for frames past the audio's end; keep the clip inside the audio
        return max(0, min(hi, num_samples - clip))
    return lo + int(u * (hi - lo + 1))


class AVCPairs(IterableDataset):
    """Batches of audio-visual correspondence pairs from a shard directory (see the module doc).

    Yields dicts: ``image`` uint8 (B, 3, S, S) with S = ``config.image_size``; ``audio`` float32
    (B, ``config.clip_samples``) at 48 kHz, or with ``pcm=True`` the stored 16-bit samples ``pcm``
    int16 (B, clip_samples) and ``pcm_scale`` float32 (B,) instead (half the bytes through shared
    memory and pinning; :func:`batch_waveforms` scales them on the device, to the same float32
    numbers); ``label`` int64 (B,) (1 = corresponds);
    ``image_key``/``audio_key`` lists of video keys; ``frame_time``/``audio_start`` float64 (B,)
    in seconds; ``image_class``/``audio_class`` lists of labels (None when unlabelled); and
    ``step`` (int; the global step in training, the batch number in evaluation).
    """

    def __init__(
        self,
        shards_dir: str | os.PathLike[str],
        split: str,
        *,
        config: ModelConfig,
        batch_size: int,
        train: bool = True,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        start_step: int = 0,
        augment: AugmentConfig = AugmentConfig(),
        eval_pairs_per_video: int = 10,
        pcm: bool = False,
    ) -> None:
        super().__init__()
        if batch_size < 1:
            raise InputError(f"batch_size must be at least 1, got {batch_size}")
        if world_size < 1 or not 0 <= rank < world_size:
            raise InputError(f"rank must be in [0, world_size), got {rank} of {world_size}")
        if start_step < 0:
            raise InputError(f"start_step must be >= 0, got {start_step}")
        if eval_pairs_per_video < 1:
            raise InputError(f"eval_pairs_per_video must be at least 1, got {eval_pairs_per_video}")
        augment.validate()
        self.shards = ShardSet(shards_dir)
        self.split = split
        self.paths = self.shards.shard_paths(split)
        if not self.paths:
            raise DatasetError(f"{self.shards.root}: no {split} shards (did 'l3net prepare' assign any video to {split}?)")
        self.config = config
        self.batch_size = batch_size
        self.train = train
        self.seed = int(seed)
        self.rank, self.world_size = rank, world_size
        self.start_step = start_step
        self.augment = augment if train else NO_AUGMENT
        self.eval_pairs_per_video = eval_pairs_per_video
        self.clip = config.clip_samples
        self.pcm = pcm
        self._eval_pairs: list[_Pair] | None = None

    @property
    def batch_nbytes(self) -> int:
        """Bytes of one batch's tensors: what a DataLoader worker passes through shared memory."""
        image = 3 * self.config.image_size**2  # uint8
        audio = self.clip * 2 + 4 if self.pcm else self.clip * 4  # int16 and a float32 scale, or float32
        return self.batch_size * (image + audio + 8 + 2 * 8)  # + label int64, frame_time and audio_start float64

    def _usable(self, videos: list[VideoRecord]) -> list[VideoRecord]:
        """Videos with a frame and at least one clip of audio (others are left out, with a warning)."""
        usable = [v for v in videos if v.num_frames > 0 and v.num_samples >= self.clip]
        if len(usable) < len(videos):
            short = [v.key for v in videos if v not in usable]
            warnings.warn(
                f"{self.shards.root}: {len(short)} {self.split} video(s) have no frame or less than "
                f"{self.config.clip_seconds:g} s of audio and are left out ({', '.join(short[:5])}"
                f"{' ...' if len(short) > 5 else ''})"
            )
        return usable

    # -- evaluation list -------------------------------------------------------------------------
    def eval_pairs(self) -> list[_Pair]:
        """The fixed evaluation list of the split (all ranks), in order."""
        if self._eval_pairs is None:
            videos = self._usable(self.shards.videos(self.split))
            if len(videos) < 2:
                raise DatasetError(f"{self.shards.root}: the {self.split} split has {len(videos)} usable video(s); AVC pairs need at least 2")
            pairs = []
            per = self.eval_pairs_per_video
            for i, video in enumerate(videos):
                rng = _stream_rng(self.seed, 0xE7A1, i)
                for k in range(per):
                    label = int((i * per + k) % 2 == 0)
                    frame = int(rng.integers(video.num_frames))
                    if label:
                        audio = video
                        start = positive_start(video.frame_times[frame], video.num_samples, self.clip, rng.random())
                    else:
                        j = int(rng.integers(len(videos) - 1))
                        audio = videos[j + (j >= i)]
                        start = int(rng.integers(audio.num_samples - self.clip + 1))
                    pairs.append(_Pair(video, frame, audio, start, label))
            self._eval_pairs = pairs
        return self._eval_pairs

    @property
    def num_pairs(self) -> int:
        """Evaluation pairs of the split (all ranks)."""
        return len(self.eval_pairs())

    def __len__(self) -> int:
        """Evaluation batches of this rank (training is endless and has no length)."""
        if self.train:
            raise TypeError("a training AVCPairs stream is endless and has no length")
        total = math.ceil(self.num_pairs / self.batch_size)
        return len(range(self.rank, total, self.world_size))

    # -- training streams ------------------------------------------------------------------------
    def stream_videos(self, stream: int, num_streams: int) -> list[VideoRecord]:
        """The videos of stream ``stream`` out of ``num_streams`` (disjoint, together all)."""
        if len(self.paths) >= num_streams:
            videos: list[VideoRecord] = []
            for path in self.paths[stream::num_streams]:
                videos.extend(self.shards.load_shard(path))
        else:
            videos = self.shards.videos(self.split)[stream::num_streams]
        videos = self._usable(videos)
        if len(videos) < 2:
            raise DatasetError(
                f"{self.shards.root}: stream {stream} of {num_streams} (world_size x DataLoader workers) gets "
                f"{len(videos)} usable {self.split} video(s); negatives need at least 2 per stream: use fewer "
                "workers or ranks, or more videos"
            )
        return videos

    def _train_batch(self, videos: list[VideoRecord], stream: int, local: int, cache: dict[str, Any]) -> list[_Pair]:
        n, b = len(videos), self.batch_size
        rng = _stream_rng(self.seed, stream, local, 0xBA7C)
        labels = np.zeros(b, dtype=np.int64)
        positives = b // 2 + (int(rng.random() < 0.5) if b % 2 else 0)
        labels[rng.permutation(b)[:positives]] = 1
        draws = rng.random((b, 8))
        aug = self.augment
        pairs = []
        for p in range(b):
            slot = local * b + p
            epoch, pos = divmod(slot, n)
            if cache.get("epoch") != epoch:
                cache["epoch"], cache["order"] = epoch, _stream_rng(self.seed, stream, epoch, 0xE90C).permutation(n)
            v = int(cache["order"][pos])
            video = videos[v]
            frames = cache.setdefault("frames", {})
            if v not in frames:
                frames[v] = _stream_rng(self.seed, stream, v, 0xF4A3).permutation(video.num_frames)
            frame = int(frames[v][epoch % video.num_frames])
            u = draws[p]
            if labels[p]:
                audio, start = video, positive_start(video.frame_times[frame], video.num_samples, self.clip, u[0])
            else:
                j = int(u[1] * (n - 1))
                audio = videos[j + (j >= v)]
                start = int(u[0] * (audio.num_samples - self.clip + 1))
            pairs.append(
                _Pair(
                    video, frame, audio, start, int(labels[p]),
                    crop_x=u[2], crop_y=u[3], flip=bool(u[4] < aug.flip),
                    brightness=1.0 + aug.brightness * (2 * u[5] - 1),
                    saturation=1.0 + aug.saturation * (2 * u[6] - 1),
                    gain=aug.gain[0] + (aug.gain[1] - aug.gain[0]) * u[7],
                )
            )
        return pairs

    # -- pixels and samples ----------------------------------------------------------------------
    def _image(self, pair: _Pair) -> np.ndarray:
        resize, size = self.config.image_resize, self.config.image_size
        video, frame = pair.image, pair.frame
        for attempt in range(video.num_frames):
            index = (frame + attempt) % video.num_frames
            try:
                data = self.shards.read_frame_bytes(video, index)
                image = Image.open(io.BytesIO(data))
                w, h = image.size
                scale = min(w, h) // resize
                if scale >= 2:  # decode at 1/2, 1/4 or 1/8 scale: a fraction of the work
                    image.draft("RGB", (-(-w // scale), -(-h // scale)))
                if image.mode != "RGB":
                    image = image.convert("RGB")
                else:
                    image.load()
                break
            except (OSError, SyntaxError, ValueError, DatasetError) as exc:
                warnings.warn(f"{video.shard}: frame {index} of {video.key} is unreadable ({exc}); using another frame")
        else:
            raise DatasetError(f"{video.shard}: no frame of {video.key} can be decoded")
        # Crop in the coordinates of the frame scaled to `resize`, then resize only the crop's
        # source region (one resampling of size x size pixels instead of the whole frame).
        w, h = image.size
        side = scaled_side(self.config, min(w, h), resize, size)  # l3net.inputs: OpenL3's image_upscale rule
        k = side / min(w, h)
        rw, rh = max(side, round(w * k)), max(side, round(h * k))
        if self.train:
            x, y = int(pair.crop_x * (rw - size + 1)), int(pair.crop_y * (rh - size + 1))
        else:
            x, y = (rw - size) // 2, (rh - size) // 2
        if (rw, rh) == (w, h):
            image = image.crop((x, y, x + size, y + size))
        else:
            sx, sy = w / rw, h / rh
            box = (x * sx, y * sy, (x + size) * sx, (y + size) * sy)
            image = image.resize((size, size), Image.Resampling.BILINEAR, box=box)
        if pair.flip:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        if pair.saturation != 1.0 or pair.brightness != 1.0:
            image = image.convert("RGB", _colour_matrix(pair.brightness, pair.saturation))
        return np.asarray(image)

    def _collate(self, pairs: list[_Pair], step: int) -> dict[str, Any]:
        b, size = len(pairs), self.config.image_size
        images = np.empty((b, size, size, 3), dtype=np.uint8)
        pcm = np.empty((b, self.clip), dtype=np.int16)
        for i, pair in enumerate(pairs):
            images[i] = self._image(pair)
            pcm[i] = self.shards.read_pcm(pair.audio, pair.start, self.clip)
        # The clip's gain and the int16 -> [-1, 1) scale in one float32 factor: pcm x factor is a single
        # float32 product, the same number whether it is computed here or on the device.
        scale = np.array([p.gain / 32768.0 for p in pairs], dtype=np.float32)
        audio = ({"pcm": torch.from_numpy(pcm), "pcm_scale": torch.from_numpy(scale)} if self.pcm
                 else {"audio": torch.from_numpy(np.multiply(pcm, scale[:, None]))})
        return {
            # (B, 3, S, S) in channels_last memory: no copy here, and convolutions prefer it
            "image": torch.from_numpy(images).permute(0, 3, 1, 2),
            **audio,
            "label": torch.tensor([p.label for p in pairs], dtype=torch.int64),
            "image_key": [p.image.key for p in pairs],
            "audio_key": [p.audio.key for p in pairs],
            "frame_time": torch.tensor([p.image.frame_times[p.frame] for p in pairs], dtype=torch.float64),
            "audio_start": torch.tensor([p.start / SAMPLE_RATE for p in pairs], dtype=torch.float64),
            "image_class": [p.image.label for p in pairs],
            "audio_class": [p.audio.label for p in pairs],
            "step": step,
        }

    # -- iteration -------------------------------------------------------------------------------
    def _worker(self) -> tuple[int, int]:
        info = get_worker_info()
        return (info.id, info.num_workers) if info is not None else (0, 1)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        worker, num_workers = self._worker()
        if not self.train:
            yield from self._iter_eval(worker, num_workers)
            return
        # worker w of a loader started at step S serves the steps S + w, S + w + n, ...
        first = self.start_step + worker
        stream_local = first % num_workers
        stream = self.rank * num_workers + stream_local
        videos = self.stream_videos(stream, self.world_size * num_workers)
        cache: dict[str, Any] = {}
        local = first // num_workers
        step = first
        while True:
            yield self._collate(self._train_batch(videos, stream, local, cache), step)
            local += 1
            step += num_workers

    def _iter_eval(self, worker: int, num_workers: int) -> Iterator[dict[str, Any]]:
        pairs = self.eval_pairs()
        total = math.ceil(len(pairs) / self.batch_size)
        mine = list(range(self.rank, total, self.world_size))
        for batch in mine[worker::num_workers]:
            chunk = pairs[batch * self.batch_size : (batch + 1) * self.batch_size]
            yield self._collate(chunk, batch)

    def close(self) -> None:
        self.shards.close()


def batch_waveforms(batch: Mapping[str, Any], device: torch.device, *, non_blocking: bool = False) -> torch.Tensor:
    """A batch's audio as float32 waveforms in [-1, 1) on ``device``, (B, clip_samples) at 48 kHz.

    A ``pcm=True`` batch crosses to the device as int16 and is scaled there (one float32 product per
    sample, as the sampler computes it: the same numbers); a float batch is moved as it is.
    """
    if "pcm" not in batch:
        return batch["audio"].to(device, non_blocking=non_blocking)
    pcm = batch["pcm"].to(device, non_blocking=non_blocking)
    scale = batch["pcm_scale"].to(device, non_blocking=non_blocking)
    return pcm.to(torch.float32).mul_(scale[:, None])


def shard_dir_summary(shards_dir: str | os.PathLike[str]) -> dict[str, int]:
    """Usable videos per split of a shard directory (a quick check for users and tests)."""
    shards = ShardSet(Path(shards_dir))
    return {split: len(shards.videos(split)) for split in ("train", "val", "test")}
