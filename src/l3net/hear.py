"""The HEAR 2021 API (https://hearbenchmark.com), so any HEAR evaluation can use an L3-Net.

::

    from l3net import hear
    model = hear.load_model("runs/my_run")                       # a model or run directory
    emb, ts = hear.get_timestamp_embeddings(audio, model)         # audio: (n_sounds, n_samples) at 48 kHz
    scene = hear.get_scene_embeddings(audio, model)               # (n_sounds, 512)

Validate with ``hear-validator l3net.hear -m MODEL_DIR`` (``pip install hearvalidator``).

- Timestamp embeddings: 1-second windows *centred* every :data:`HOP_SIZE` = 50 ms, from 0 to the
  end of the sound (the framing of :func:`l3net.get_audio_embedding` with ``center=True``), so an
  event is located at the centre of the window that hears it; timestamps in milliseconds.
- Scene embeddings: the mean of the embeddings of windows every :data:`SCENE_HOP_SIZE` = 100 ms,
  not centred (the first window starts with the sound, the last reaches its end: less padding).
- The windows of all sounds of a call go through the network together, :attr:`HearModel.batch_size`
  at a time, on the device of the audio (the model is moved there if needed), in fp32.
"""

from __future__ import annotations

import torch
from torch import nn

from .config import SAMPLE_RATE
from .embed_core import DEFAULT_BATCH_SIZE
from .errors import InputError
from .framing import frame_tensor
from .inference import inference_model
from .layers import embedding_size, layer_features
from .modelspec import resolve_model
from .models import L3Net
from .runtime import evaluation

#: Seconds between timestamp embeddings (HEAR asks for <= 50 ms).
HOP_SIZE = 0.05
#: Seconds between the windows averaged into a scene embedding.
SCENE_HOP_SIZE = 0.1


class HearModel(nn.Module):
    """An :class:`~l3net.models.L3Net` with the attributes the HEAR API requires.

    ``layer`` chooses the audio feature (``"pool4"``, the 512-D embedding, by default; any layer
    :func:`l3net.get_audio_embedding` accepts, e.g. ``"conv4_2"`` for the 6144-D transfer feature).
    """

    sample_rate: int = SAMPLE_RATE

    def __init__(self, l3net: L3Net, layer: str = "pool4", batch_size: int = DEFAULT_BATCH_SIZE) -> None:
        super().__init__()
        self.l3net = l3net
        self.layer = layer
        self.batch_size = int(batch_size)
        size = embedding_size(l3net, layer, "audio")
        self.scene_embedding_size: int = size
        self.timestamp_embedding_size: int = size

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        """Scene embeddings ``(n_sounds, D)`` (same as :func:`get_scene_embeddings`)."""
        return get_scene_embeddings(audio, self)


def load_model(model_file_path: str = "") -> HearModel:
    """HEAR's entry point: the model ``model_file_path`` names, resolved by :mod:`l3net.modelspec` (a
    model or run directory or its ``model.safetensors``, a preset name with random weights,
    ``openl3:NAME``...). Empty: the default preset with random weights, with a warning."""
    return HearModel(resolve_model(model_file_path or None).model)


def _check_audio(audio: torch.Tensor) -> torch.Tensor:
    if not isinstance(audio, torch.Tensor):
        raise InputError(f"audio must be a torch.Tensor (n_sounds, n_samples), got {type(audio).__name__}")
    if audio.dim() != 2:
        raise InputError(f"audio must have shape (n_sounds, n_samples), got {tuple(audio.shape)}")
    if audio.shape[1] == 0:
        raise InputError("audio has zero samples")
    if audio.dtype == torch.bool or audio.is_complex():
        raise InputError(f"audio must be real numbers, got {audio.dtype}")
    audio = audio.float()
    if not torch.isfinite(audio).all():
        raise InputError("audio has NaN or infinite samples")
    return audio


def _window_embeddings(audio: torch.Tensor, model: HearModel, hop_size: float, center: bool) -> torch.Tensor:
    """``(n_sounds, T, D)`` embeddings of the windows of every sound, all sounds batched together."""
    audio = _check_audio(audio)
    net = model.l3net
    if next(net.parameters()).device != audio.device:
        net.to(audio.device)
    frames = frame_tensor(audio, hop_size, center, net.config.clip_samples)  # (n, T, window): a view
    n, count = frames.shape[:2]
    out = torch.empty(n * count, model.timestamp_embedding_size, device=audio.device)
    fast = inference_model(net)  # fp32, BatchNorm folded, channels_last (l3net.inference)
    with evaluation(net, "fp32"):
        for first in range(0, n * count, model.batch_size):
            index = torch.arange(first, min(first + model.batch_size, n * count), device=audio.device)
            batch = frames[index // count, index % count]  # only this batch is copied
            out[first : first + len(index)] = layer_features(fast, "audio", batch, model.layer).float()
    return out.view(n, count, -1)


def get_timestamp_embeddings(audio: torch.Tensor, model: HearModel) -> tuple[torch.Tensor, torch.Tensor]:
    """``audio`` ``(n_sounds, n_samples)`` at 48 kHz -> ``(embeddings (n_sounds, T, D) float32,
    timestamps (n_sounds, T) in milliseconds)``, one window centred every 50 ms."""
    embeddings = _window_embeddings(audio, model, HOP_SIZE, center=True)
    n, count = embeddings.shape[:2]
    # k * hop from the integer k: exact, evenly spaced.
    stamps = (torch.arange(count, dtype=torch.float64) * (HOP_SIZE * 1000.0)).to(torch.float32)
    return embeddings, stamps.to(embeddings.device).expand(n, count).contiguous()


def get_scene_embeddings(audio: torch.Tensor, model: HearModel) -> torch.Tensor:
    """``audio`` ``(n_sounds, n_samples)`` at 48 kHz -> ``(n_sounds, D)`` float32: the mean of the
    embeddings of 1-second windows every 100 ms."""
    return _window_embeddings(audio, model, SCENE_HOP_SIZE, center=False).mean(dim=1)
