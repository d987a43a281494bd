"""One input preparation (issue #20, item 1): for every preset, the same image and the same clip give the
network the same input through the embedding API (arrays and files) and through every evaluation's
feature path (cluster and units via evaluate.inputs, the probe in memory and streamed, the unit
pictures, the pointing game and ``l3net localize``, HEAR; AVC's pairs, cut by the training sampler, at
the end).

The input is captured where the network receives it: :meth:`L3Net.tower_input` (the inference copy
calls it too), patched to record its argument and stop the forward pass there (no network is run).
"""

from __future__ import annotations

import io
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from l3net import hear
from l3net.config import PRESETS, SAMPLE_RATE
from l3net.data.sampler import AVCPairs
from l3net.data.shards import decode_jpeg
from l3net.embed import get_audio_embedding, get_image_embedding
from l3net.embed_files import process_image_file
from l3net.evaluate import inputs as eval_inputs
from l3net.evaluate.boxes import BoxedFrame
from l3net.evaluate.datasets import Example, LabelledFiles
from l3net.evaluate.probe.inmemory import probe_features
from l3net.evaluate.probe.loader import val_crop
from l3net.evaluate.units.pictures import unit_heatmaps
from l3net.heatmaps import low_res_heatmaps, tower_input_frames
from l3net.inputs import image_batch, prepare_image
from l3net.media import load_image
from l3net.models import L3Net, build_model


class _Captured(Exception):
    """Raised by the spy once the network's input of the wanted modality is recorded."""


@pytest.fixture(params=sorted(PRESETS), scope="module")
def model(request) -> L3Net:
    return build_model(request.param, seed=0)


@pytest.fixture
def first_input(monkeypatch):
    """``first_input(modality, call)``: the uint8 images / float waveforms ``call()`` hands the network first."""
    monkeypatch.setenv("L3NET_COMPILE", "0")
    real = L3Net.tower_input
    seen: list[torch.Tensor] = []
    wanted: list[str] = []

    def spy(self, modality, x):
        # (the inference copy traces the model with torch.fx to fold BatchNorm: proxies pass through)
        if modality == wanted[0] and not isinstance(x, torch.fx.Proxy):
            seen.append(x.detach().cpu().clone())
            raise _Captured
        return real(self, modality, x)

    monkeypatch.setattr(L3Net, "tower_input", spy)

    def run(modality: str, call) -> torch.Tensor:
        seen.clear()
        wanted[:] = [modality]
        with pytest.raises(_Captured):
            call()
        return seen[0]

    return run


def _images(model: L3Net) -> dict[str, np.ndarray]:
    """A smaller side between the crop and the resize (OpenL3 crops it, never scales it), a large
    image, a greyscale and an RGBA one."""
    c = model.config
    rng = np.random.default_rng(7)
    mid = (c.image_size + c.image_resize) // 2
    return {
        "between": rng.integers(0, 256, (mid, mid * 4 // 3, 3), dtype=np.uint8),
        "large": rng.integers(0, 256, (3 * c.image_resize, 4 * c.image_resize + 1, 3), dtype=np.uint8),
        "grey": rng.integers(0, 256, (mid + 3, 2 * mid), dtype=np.uint8),
        "rgba": rng.integers(0, 256, (2 * c.image_resize, mid + 5, 4), dtype=np.uint8),
    }


def _shards(image: np.ndarray, audio: np.ndarray, frame_times: list[float]) -> SimpleNamespace:
    """A one-video shard set (what evaluate.inputs reads of one): every frame is ``image``."""
    video = SimpleNamespace(key="v", label=None, shard="fake.tar", num_frames=len(frame_times),
                            frame_times=np.array(frame_times), num_samples=audio.size)
    return SimpleNamespace(
        root="fake", classes=None, videos=lambda split: [video],
        read_frame=lambda video, index, min_side=None: image,
        read_audio=lambda video, start, length: audio[start : start + length],
    )


def _centre_crop(batch: torch.Tensor, size: int) -> torch.Tensor:
    h, w = batch.shape[-2:]
    top, left = (h - size) // 2, (w - size) // 2
    return batch[..., top : top + size, left : left + size]


@pytest.mark.parametrize("which", ["between", "large", "grey", "rgba"])
def test_one_image_preparation(model, first_input, which, tmp_path):
    image = _images(model)[which]
    c = model.config
    embedding = first_input("vision", lambda: get_image_embedding(image, model, layer="pool4"))
    transfer = first_input("vision", lambda: get_image_embedding(image, model, layer=model.vision.last_conv))
    assert embedding.shape[-2:] == (c.image_size, c.image_size)
    assert transfer.shape[-2:] == (c.transfer_image_size, c.transfer_image_size)

    # cluster, units and the supervised baselines: evaluate.inputs.embed_items on a split's frames
    shards = _shards(image, np.zeros(3 * SAMPLE_RATE, np.float32), [0.5, 1.5, 2.5])
    items = eval_inputs.pick_items(shards, "test", c, labelled=False)
    got = first_input("vision", lambda: eval_inputs.embed_items(model, shards, items, progress=False))
    assert torch.equal(got, embedding)
    # the unit pictures: the last conv's maps, on the embedding's input
    got = first_input("vision", lambda: unit_heatmaps(model, "vision", [image], [0], (8, 8)))
    assert torch.equal(got, embedding)
    # the pointing game and `l3net localize`: the whole frame, whose centre crop is the embedding's input
    assert torch.equal(_centre_crop(tower_input_frames(model, [image]), c.image_size), embedding)
    # the streamed probe's validation crop, and the in-memory probe (image files), as the file function
    assert torch.equal(image_batch([val_crop(image, c)]), transfer)
    path = tmp_path / "image.png"
    Image.fromarray(image).save(path)
    loaded = load_image(path)
    from_file = first_input("vision", lambda: get_image_embedding(loaded, model, layer=model.vision.last_conv))
    dataset = LabelledFiles(kind="images", root=tmp_path, examples=(Example(path, "a"),), classes=("a",))
    assert torch.equal(first_input("vision", lambda: probe_features(dataset, model, progress=False)), from_file)
    assert torch.equal(first_input("vision", lambda: process_image_file(path, tmp_path / "out", model, layer="transfer")),
                       from_file)


def test_one_clip_preparation(model, first_input, monkeypatch):
    rng = np.random.default_rng(3)
    audio = (0.1 * rng.standard_normal(3 * SAMPLE_RATE)).astype(np.float32)
    centre, n = 1.3, model.config.clip_samples
    # the API: hop = centre, centred windows: window 1 is the clip centred on `centre`
    api = first_input("audio", lambda: get_audio_embedding(audio, SAMPLE_RATE, model, hop_size=centre, center=True))[1]
    assert api.shape == (n,)

    # cluster, units, baselines: the clip centred on the item's frame (its vision half left out here)
    shards = _shards(np.zeros((8, 8, 3), np.uint8), audio, [0.2, centre, 2.8])
    items = eval_inputs.pick_items(shards, "test", model.config, labelled=False)
    monkeypatch.setattr(eval_inputs, "image_features", lambda model, images, **kwargs: [next(iter(images))])
    got = first_input("audio", lambda: eval_inputs.embed_items(model, shards, items, progress=False))
    assert torch.equal(got[0], api)
    # the pointing game (and `l3net localize`, the same centred_clip): the clip centred on the frame
    frame = BoxedFrame(key="v", time=centre, frame=np.zeros((64, 64, 3), np.uint8), audio=audio, boxes=[])
    got = first_input("audio", lambda: low_res_heatmaps(model, [frame.frame], frame.clip(n)))
    assert torch.equal(got[0], api)
    # HEAR: windows centred every 50 ms; window 26 is centred on 1.3 s
    hear_model = hear.HearModel(model)
    got = first_input("audio", lambda: hear.get_timestamp_embeddings(torch.from_numpy(audio)[None], hear_model))
    assert torch.equal(got[round(centre / hear.HOP_SIZE)], api)


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_avc_pairs_cut_the_embedding_input(preset):
    """``l3net eval avc`` (and training) cut frames in data/sampler.py, resampling only the crop's source
    region: the same pixels as :func:`prepare_image` where no scaling is needed (the stored frame's smaller
    side is ``image_resize``, or OpenL3's rule keeps it), else the same up to the resampler's rounding."""
    c = PRESETS[preset]
    rng = np.random.default_rng(5)
    mid = (c.image_size + c.image_resize) // 2
    for (h, w) in [(c.image_resize, 2 * c.image_resize - 3), (mid, 2 * mid), (2 * c.image_resize + 7, 4 * c.image_resize)]:
        buffer = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(buffer, "JPEG", quality=90)
        data = buffer.getvalue()
        pairs = object.__new__(AVCPairs)  # only its frame cutting, on a one-frame stand-in for the shards
        pairs.config, pairs.train = c, False
        pairs.shards = SimpleNamespace(read_frame_bytes=lambda video, index: data)
        pair = SimpleNamespace(image=SimpleNamespace(num_frames=1, shard="x", key="v"), frame=0, flip=False,
                               saturation=1.0, brightness=1.0)
        cut = pairs._image(pair).astype(int)
        expected = prepare_image(decode_jpeg(data, min_side=c.image_resize), c, transfer=False).astype(int)
        unscaled = h == c.image_resize or (not c.image_upscale and c.image_size <= h <= c.image_resize)
        assert cut.shape == expected.shape
        assert np.abs(cut - expected).max() <= (0 if unscaled else 2), (h, w)
