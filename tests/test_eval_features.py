"""Batched feature extraction: the same numbers as the model's own feature contract, any batching."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from l3net.errors import InputError
from l3net.evaluate.features import audio_features, batched, image_features, prepare_image
from l3net.layers import embedding_size
from l3net.models import build_model


@pytest.fixture(scope="module")
def model():
    return build_model("small", seed=3).eval()


@pytest.fixture(scope="module")
def clips(model):
    rng = np.random.default_rng(0)
    return (0.1 * rng.standard_normal((7, model.config.clip_samples))).astype(np.float32)


def test_audio_transfer_matches_model_contract_in_any_batching(model, clips):
    with torch.inference_mode():
        expected = model.transfer_features("audio", torch.from_numpy(clips)).numpy()
    whole = audio_features(model, clips, batch_size=64, progress=False)
    assert whole.shape == (7, model.config.transfer_dim("audio"))
    assert whole.dtype == np.float32
    np.testing.assert_allclose(whole, expected, rtol=1e-5, atol=1e-5)
    lazy = audio_features(model, (c for c in clips), batch_size=3, progress=False)  # 3 + 3 + 1
    np.testing.assert_allclose(lazy, expected, rtol=1e-5, atol=1e-5)


def test_several_layers_from_one_pass(model, clips):
    out = audio_features(model, clips, layer=["transfer", "embedding", "pool3"], batch_size=4, progress=False)
    with torch.inference_mode():
        emb = model.embed("audio", torch.from_numpy(clips)).numpy()
        transfer = model.transfer_features("audio", torch.from_numpy(clips)).numpy()
    np.testing.assert_allclose(out["embedding"], emb, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out["transfer"], transfer, rtol=1e-5, atol=1e-5)
    # the API's vocabulary: a pooled layer has the API's dimension
    assert out["pool3"].shape == (len(clips), embedding_size(model, "pool3", "audio"))
    pool_name, last_conv = model.audio.embedding_layer, model.audio.last_conv
    np.testing.assert_allclose(audio_features(model, clips, layer=pool_name, progress=False), emb, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(audio_features(model, clips, layer=last_conv, progress=False), transfer, rtol=1e-5, atol=1e-5)
    # maps: the layer's own output; pool4 is the max of conv4_2 (after ReLU) over all positions
    maps = audio_features(model, clips, layer=[last_conv, "embedding"], maps=True, progress=False)
    assert maps[last_conv].ndim == 4
    np.testing.assert_allclose(maps[last_conv].max(axis=(2, 3)), emb, rtol=1e-5, atol=1e-5)


def test_int16_and_silence_are_accepted(model, clips):
    pcm = np.round(clips * 32767).astype(np.int16)
    a = audio_features(model, pcm, progress=False)
    b = audio_features(model, clips, progress=False)
    np.testing.assert_allclose(a, b, atol=1e-2)
    silent = audio_features(model, np.zeros((2, model.config.clip_samples), np.float32), progress=False)
    assert np.isfinite(silent).all()


def test_training_mode_is_restored_and_eval_mode_used(clips):
    model = build_model("small", seed=3).train()
    a = audio_features(model, clips[:2], progress=False)
    assert model.training
    model.eval()
    np.testing.assert_allclose(a, audio_features(model, clips[:2], progress=False), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "bad, message",
    [
        ("nan", "NaN"),
        ("ragged", "same length"),
        ("short", "shorter than one spectrogram window"),
        ("empty", "no clips"),
        ("2d", "1-D waveform"),
    ],
)
def test_bad_audio_is_a_clear_error(model, clips, bad, message):
    if bad == "nan":
        x = clips.copy()
        x[1, 5] = np.nan
    elif bad == "ragged":
        x = [clips[0], clips[1][:-10]]
    elif bad == "short":
        x = np.zeros((2, 100), np.float32)
    elif bad == "empty":
        x = np.zeros((0, model.config.clip_samples), np.float32)
    else:
        x = [np.zeros((2, 3, 4), np.float32)]
    with pytest.raises(InputError, match=message):
        audio_features(model, x, progress=False)


def test_unknown_layer_and_fp16_on_cpu(model, clips):
    with pytest.raises(InputError, match="unknown layer"):
        audio_features(model, clips, layer="conv9_9", progress=False)
    with pytest.raises(InputError, match="fp16"):
        audio_features(model, clips, precision="fp16", device="cpu", progress=False)


def test_image_preprocessing_follows_the_paper(model):
    cfg = model.config
    rng = np.random.default_rng(1)
    wide = rng.integers(0, 256, (60, 150, 3), dtype=np.uint8)
    assert prepare_image(wide, cfg, transfer=True).shape == (cfg.transfer_image_size, cfg.transfer_image_size, 3)
    assert prepare_image(wide, cfg, transfer=False).shape == (cfg.image_size, cfg.image_size, 3)
    grey = rng.integers(0, 256, (120, 130), dtype=np.uint8)
    rgba = rng.integers(0, 256, (130, 120, 4), dtype=np.uint8)
    feats = image_features(model, [wide, grey, rgba], batch_size=2, progress=False)
    assert feats.shape == (3, cfg.transfer_dim("vision"))
    batch = np.stack([prepare_image(im, cfg, transfer=True) for im in (wide, grey, rgba)])
    with torch.inference_mode():
        expected = model.transfer_features("vision", torch.from_numpy(batch).permute(0, 3, 1, 2)).numpy()
    np.testing.assert_allclose(feats, expected, rtol=1e-5, atol=1e-5)
    emb = image_features(model, np.stack([wide, wide]), layer="embedding", progress=False)
    assert emb.shape == (2, cfg.embedding_dim)
    with pytest.raises(InputError, match="separate calls"):  # two crops cannot share one forward pass
        image_features(model, [wide], layer=["embedding", "transfer"], progress=False)


def test_bad_images(model):
    with pytest.raises(InputError):
        image_features(model, [np.zeros((10, 10, 5), np.uint8)], progress=False)
    with pytest.raises(InputError, match="NaN"):
        image_features(model, [np.full((40, 40, 3), np.nan, np.float32)], progress=False)


def test_batched():
    assert list(batched(range(7), 3)) == [[0, 1, 2], [3, 4, 5], [6]]
    with pytest.raises(InputError):
        list(batched(range(3), 0))
