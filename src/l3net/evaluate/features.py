"""Batched feature extraction for the evaluations: many already-cut clips or frames -> one array.

Every evaluation asks the model for features through here, so batching, the device, the precision
(:func:`l3net.runtime.autocast`), inference mode and progress bars are handled once. Features come
from the model's own feature contract (``model.transfer_features`` / ``model.embed`` /
``model.forward_features``); nothing here re-implements a forward pass.

``kind`` chooses what is returned, for audio and images alike:

- ``"transfer"``: the paper's transfer feature (audio conv4_2 before ReLU max-pooled to 4x3,
  6144-D; vision conv4_2 after ReLU max-pooled to 4x4, 8192-D, for the paper preset);
- ``"embedding"`` or the tower's last pool name (``"pool4"``): the pool4 embedding, ``(N, C)``;
- any other layer name of ``tower.feature_names`` (e.g. ``"conv4_2"``): that layer's output,
  ``(N, C, H, W)``;
- a list of names: a dict ``{name: array}`` from one forward pass.

Files (decoding, framing long recordings with a hop) are :mod:`l3net.embed`'s job; this module
takes arrays: waveforms at :data:`~l3net.config.SAMPLE_RATE` and RGB images.

Example::

    model = load_model("small")
    clips = np.zeros((100, model.config.clip_samples), np.float32)  # 100 one-second clips
    feats = audio_features(model, clips)                              # (100, 1536) for "small"
"""

from __future__ import annotations

import itertools
from typing import Callable, Iterable, Iterator, Sequence, TypeVar

import numpy as np
import torch
from tqdm.auto import tqdm

from ..config import ModelConfig
from ..errors import InputError
from .. import embed
from ..inference import inference_model
from ..media import to_mono
from ..models import L3Net
from ..runtime import autocast, resolve_device

Kind = str | Sequence[str]
T = TypeVar("T")

TRANSFER = "transfer"
EMBEDDING = "embedding"


def audio_features(
    model: L3Net,
    clips: np.ndarray | Iterable[np.ndarray],
    *,
    kind: Kind = TRANSFER,
    batch_size: int = 64,
    device: str | torch.device | None = None,
    precision: str = "fp32",
    progress: bool = True,
    desc: str = "audio features",
    total: int | None = None,
) -> np.ndarray | dict[str, np.ndarray]:
    """Features of audio clips, computed in batches.

    ``clips``: an array ``(N, samples)`` or an iterable of 1-D arrays, all the same length, of
    audio at :data:`~l3net.config.SAMPLE_RATE` Hz (``model.config.clip_samples`` long for the
    paper's protocols). Integer samples are scaled to [-1, 1]; NaN/Inf is an :class:`InputError`.
    An iterable is consumed lazily, so clips cut on the fly from hours of audio never sit in memory.

    Returns float32 ``(N, D)`` (``(N, C, H, W)`` for a conv layer), or ``{name: array}`` when
    ``kind`` is a list. ``total`` sizes the progress bar of an iterable without a length.
    """

    def prepare(index: int, clip: np.ndarray) -> np.ndarray:
        clip = np.asarray(clip)
        if clip.ndim != 1:
            raise InputError(f"clip {index}: expected a 1-D waveform, got shape {clip.shape}")
        return to_mono(clip, name=f"clip {index}")

    length = None  # every clip must be as long as the first

    def to_tensor(batch: list[np.ndarray], first: int) -> torch.Tensor:
        nonlocal length
        if length is None:
            length = len(batch[0])
            spec = model.config.spectrogram
            if length < spec.win_length * spec.decimation:
                raise InputError(f"clips of {length} samples are shorter than one spectrogram window")
        for offset, clip in enumerate(batch):
            if len(clip) != length:
                raise InputError(f"clip {first + offset}: {len(clip)} samples, but the first clip has {length}; "
                                 "all clips must have the same length")
        return torch.from_numpy(np.stack(batch))

    return _extract(model, "audio", clips, prepare, to_tensor, kind, batch_size, device, precision, progress, desc, total)


def image_features(
    model: L3Net,
    images: np.ndarray | Iterable[np.ndarray],
    *,
    kind: Kind = TRANSFER,
    batch_size: int = 32,
    device: str | torch.device | None = None,
    precision: str = "fp32",
    progress: bool = True,
    desc: str = "image features",
    total: int | None = None,
) -> np.ndarray | dict[str, np.ndarray]:
    """Features of images, computed in batches, with the paper's preprocessing.

    ``images``: an array ``(N, H, W, 3)`` uint8 or an iterable of images of any size and layout
    :func:`~l3net.media.to_rgb_uint8` accepts (greyscale, RGBA, float in [0, 1]...). Each is
    prepared by :func:`prepare_image`: for ``"transfer"`` its smaller side is scaled to
    ``transfer_image_size`` and the centre ``transfer_image_size`` square kept (256 x 256 for the
    paper, section 5.3); for anything else smaller side ``image_resize`` and centre crop
    ``image_size`` (256 -> 224), as for AVC.

    Returns float32 ``(N, D)`` (``(N, C, H, W)`` for a conv layer), or ``{name: array}``.
    """

    def prepare(index: int, image: np.ndarray) -> np.ndarray:
        return prepare_image(image, model.config, transfer=_is_transfer(kind), name=f"image {index}")

    def to_tensor(batch: list[np.ndarray], first: int) -> torch.Tensor:
        return torch.from_numpy(np.stack(batch)).permute(0, 3, 1, 2)  # (B, 3, S, S) uint8

    return _extract(model, "vision", images, prepare, to_tensor, kind, batch_size, device, precision, progress, desc, total)


def prepare_image(image: np.ndarray, config: ModelConfig, *, transfer: bool, name: str = "image") -> np.ndarray:
    """One image -> the square uint8 ``(S, S, 3)`` crop the vision tower sees (see :func:`image_features`)."""
    resize, crop = (
        (config.transfer_image_size, config.transfer_image_size) if transfer else (config.image_resize, config.image_size)
    )
    return embed.prepare_image(image, resize, crop, name=name)


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Consecutive lists of ``size`` items (the last may be shorter)."""
    if size < 1:
        raise InputError(f"batch size must be at least 1, got {size}")
    iterator = iter(items)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


# ------------------------------------------------------------------------------------------------
def _is_transfer(kind: Kind) -> bool:
    return kind == TRANSFER or (not isinstance(kind, str) and TRANSFER in kind)


def _names(model: L3Net, modality: str, kind: Kind) -> list[str]:
    tower = model.tower(modality)
    names = [kind] if isinstance(kind, str) else list(kind)
    if not names:
        raise InputError("kind: give at least one feature name")
    known = [TRANSFER, EMBEDDING, *tower.feature_names]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise InputError(f"unknown feature kind(s) {unknown} for the {modality} tower; known: {', '.join(known)}")
    return names


def _forward(model: L3Net, modality: str, x: torch.Tensor, names: list[str]) -> dict[str, torch.Tensor]:
    """All requested features of one batch from a single pass through the tower."""
    tower = model.tower(modality)
    transfer_layer = model.transfer_layer(modality)
    layers = []
    for name in names:
        if name == TRANSFER:
            layers.append(transfer_layer)
        elif name == EMBEDDING:
            layers.append(tower.embedding_layer)
        else:
            layers.append(name)
    outputs = model.forward_features(modality, x, layers)
    result = {}
    for name in names:
        if name == TRANSFER:
            result[name] = model.pool_transfer(modality, outputs[transfer_layer])
        elif name == EMBEDDING:
            result[name] = outputs[tower.embedding_layer]
        else:
            result[name] = outputs[name]
    return result


def _extract(
    model: L3Net,
    modality: str,
    inputs: Iterable[np.ndarray],
    prepare: Callable[[int, np.ndarray], np.ndarray],
    to_tensor: Callable[[list[np.ndarray], int], torch.Tensor],
    kind: Kind,
    batch_size: int,
    device: str | torch.device | None,
    precision: str,
    progress: bool,
    desc: str,
    total: int | None,
) -> np.ndarray | dict[str, np.ndarray]:
    names = _names(model, modality, kind)
    if device is None:
        target = next(model.parameters()).device
    else:
        target = resolve_device(device)
        model.to(target)
    fast = inference_model(model, precision=precision)  # folded, channels_last, compiled (l3net.inference)
    precision = fast.precision  # "auto" resolved for this device, and validated
    if total is None and hasattr(inputs, "__len__"):
        total = len(inputs)
    prepared = (prepare(i, item) for i, item in enumerate(inputs))
    pieces: dict[str, list[np.ndarray]] = {n: [] for n in names}
    was_training = model.training
    model.eval()  # BatchNorm must use its running statistics, whatever state the caller left
    count = 0
    try:
        with tqdm(total=total, desc=desc, unit="clip" if modality == "audio" else "image", disable=not progress,
                  dynamic_ncols=True, leave=False) as bar, torch.inference_mode():
            for batch in batched(prepared, batch_size):
                x = to_tensor(batch, count).to(target, non_blocking=True)
                with autocast(precision, target):
                    outputs = _forward(fast, modality, x, names)
                for name, value in outputs.items():
                    pieces[name].append(value.float().cpu().numpy())
                count += len(batch)
                bar.update(len(batch))
    finally:
        model.train(was_training)
    if count == 0:
        raise InputError(f"no {'clips' if modality == 'audio' else 'images'} to compute features of")
    result = {name: np.concatenate(parts) for name, parts in pieces.items()}
    return result[names[0]] if isinstance(kind, str) else result
