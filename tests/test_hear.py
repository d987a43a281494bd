"""The HEAR 2021 API: shapes, timestamps, batching over sounds, agreement with the embedding API,
and the real validator (hear-validator, which imports TensorFlow)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from l3net import hear
from l3net.config import SAMPLE_RATE
from l3net.embed import get_audio_embedding
from l3net.errors import InputError, ModelFileError
from l3net.models import build_model

import signals as S

ATOL = 1e-5  # windows batched differently from the embedding API: float rounding only


@pytest.fixture(scope="module")
def model():
    return hear.HearModel(build_model(S.tiny_config(), seed=0).eval(), batch_size=7)


def sounds() -> torch.Tensor:
    return torch.from_numpy(np.stack([S.chirp(seconds=0.6), S.noise(0.6, seed=1), S.silence(0.6)]))


def test_attributes(model):
    assert model.sample_rate == SAMPLE_RATE
    assert isinstance(model.scene_embedding_size, int) and isinstance(model.timestamp_embedding_size, int)
    assert model.scene_embedding_size == model.timestamp_embedding_size == model.l3net.config.embedding_dim
    assert hear.HOP_SIZE <= 0.05
    transfer = hear.HearModel(model.l3net, layer="conv4_2")
    assert transfer.timestamp_embedding_size == 16 * 12


def test_timestamp_embeddings_match_the_embedding_api(model):
    audio = sounds()
    emb, stamps = hear.get_timestamp_embeddings(audio, model)
    n, count = 3, 1 + int(0.6 / hear.HOP_SIZE + 1e-9)
    assert emb.shape == (n, count, model.timestamp_embedding_size) and emb.dtype == torch.float32
    assert stamps.shape == (n, count) and stamps.dtype == torch.float32
    # milliseconds, exactly k * 50
    assert torch.equal(stamps[1], torch.arange(count, dtype=torch.float32) * 50.0)
    for i in range(n):
        ref, ref_ts = get_audio_embedding(audio[i].numpy(), SAMPLE_RATE, model.l3net, hop_size=hear.HOP_SIZE)
        np.testing.assert_allclose(emb[i].numpy(), ref, atol=ATOL, rtol=0)
        np.testing.assert_allclose(stamps[i].numpy(), ref_ts * 1000, rtol=0, atol=1e-3)


def test_sounds_are_independent_of_their_batch(model):
    audio = sounds()
    together, _ = hear.get_timestamp_embeddings(audio, model)
    alone, _ = hear.get_timestamp_embeddings(audio[1:2], model)
    np.testing.assert_allclose(together[1:2].numpy(), alone.numpy(), atol=ATOL, rtol=0)


def test_scene_embeddings(model):
    audio = sounds()
    scene = hear.get_scene_embeddings(audio, model)
    assert scene.shape == (3, model.scene_embedding_size) and scene.dtype == torch.float32
    ref, _ = get_audio_embedding(audio[0].numpy(), SAMPLE_RATE, model.l3net, hop_size=hear.SCENE_HOP_SIZE, center=False)
    np.testing.assert_allclose(scene[0].numpy(), ref.mean(0), atol=ATOL, rtol=0)
    assert torch.isfinite(scene).all()  # silence included
    np.testing.assert_allclose(model(audio).numpy(), scene.numpy(), atol=ATOL)


def test_short_sounds_are_padded(model):
    audio = torch.from_numpy(S.tone(440, 0.02))[None]
    emb, stamps = hear.get_timestamp_embeddings(audio, model)
    assert emb.shape[:2] == stamps.shape == (1, 1)
    assert hear.get_scene_embeddings(audio, model).shape == (1, model.scene_embedding_size)


@pytest.mark.parametrize(
    "audio,match",
    [
        (torch.zeros(100), "shape"),
        (torch.zeros(2, 0), "zero samples"),
        (torch.tensor([[0.0, float("nan")]]), "NaN"),
        (np.zeros((1, 100), np.float32), "torch.Tensor"),
        (torch.zeros(1, 10, dtype=torch.complex64), "real"),
    ],
)
def test_bad_audio(model, audio, match):
    with pytest.raises(InputError, match=match):
        hear.get_timestamp_embeddings(audio, model)


def test_load_model(tmp_path):
    net = build_model(S.tiny_config(), seed=3)
    net.save(tmp_path / "m")
    loaded = hear.load_model(str(tmp_path / "m"))
    assert isinstance(loaded, torch.nn.Module) and loaded.scene_embedding_size == 16
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), loaded.l3net.state_dict().values()))
    assert hear.load_model(str(tmp_path / "m" / "model.safetensors")).scene_embedding_size == 16
    assert hear.load_model("small").timestamp_embedding_size == 128
    with pytest.warns(UserWarning, match="random weights"):
        assert hear.load_model().scene_embedding_size == 512
    with pytest.raises(ModelFileError):
        hear.load_model(str(tmp_path / "nothing"))


@pytest.mark.slow
def test_hear_validator_passes(tmp_path):
    """The HEAR 2021 validator on a saved (tiny) model; it imports TensorFlow, which takes most of the time."""
    validator = shutil.which("hear-validator", path=os.path.dirname(sys.executable)) or shutil.which("hear-validator")
    if validator is None:
        pytest.fail("hear-validator is not installed (pip install -e '.[hear]')")
    build_model(S.tiny_config(), seed=0).save(tmp_path / "model")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    result = subprocess.run(
        [validator, "l3net.hear", "-m", str(tmp_path / "model"), "-d", "cpu"],
        capture_output=True, text=True, env=env, timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Looks good!" in result.stdout


def test_hear_frames_are_the_embedding_apis_frames():
    """HEAR's batched framer (framing.frame_tensor) and the API's streaming one (iter_windows) agree."""
    import numpy as np

    from l3net.framing import frame_tensor, iter_windows

    window = 4800
    rng = np.random.default_rng(0)
    for num_samples in (1000, 4800, 13_337, 48_000):
        audio = rng.standard_normal(num_samples).astype(np.float32)
        for hop, center in ((0.05, True), (0.1, False), (0.05, False)):
            framed = frame_tensor(torch.from_numpy(audio)[None], hop, center, window)[0].numpy()
            streamed = np.stack([w.copy() for w in iter_windows([audio], hop, center, window)])
            np.testing.assert_array_equal(framed, streamed)
