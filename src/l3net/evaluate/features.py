"""Batched feature extraction for the evaluations: many already-cut clips or frames -> one array.

Every evaluation asks the model for features through here, so batching, the device, the precision
(:func:`l3net.runtime.autocast`), inference mode and progress bars are handled once. Features come
from the model's own feature contract (``model.forward_features``, :func:`l3net.layers.layer_outputs`);
nothing here re-implements a forward pass.

``layer`` chooses what is returned, in the vocabulary of the embedding API (:mod:`l3net.layers`),
for audio and images alike:

- ``"transfer"`` (the default) or the tower's last conv (``"conv4_2"``): the paper's transfer
  feature (audio conv4_2 before ReLU max-pooled to 4x3, 6144-D; vision conv4_2 after ReLU
  max-pooled to 4x4, 8192-D, for the paper preset);
- ``"embedding"`` or the tower's last pool (``"pool4"``): the pool4 embedding, ``(N, C)``;
- any other layer name of ``tower.feature_names``: that layer max-pooled to the transfer grid;
- a list of names: a dict ``{name: array}`` from one forward pass.

``maps=True`` returns each layer's own output instead (``(N, C, H, W)`` for a conv layer: the unit
pictures). Images are prepared by :func:`l3net.inputs.prepare_image` exactly as
:func:`l3net.get_image_embedding` prepares them for the same layer: the transfer square for every
pooled layer but the embedding, the embedding's crop for the embedding and for maps.

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

from ..errors import InputError
from ..inference import inference_model
from ..inputs import image_batch, prepare_image  # prepare_image: importable from here too (probe, unit pictures)
from ..layers import EMBEDDING, TRANSFER, layer_outputs, resolve_layer, transfer_input
from ..media import to_mono
from ..models import L3Net
from ..runtime import autocast, resolve_device

#: One layer name or several (see the module docstring).
Layers = str | Sequence[str]
T = TypeVar("T")

__all__ = ["EMBEDDING", "TRANSFER", "audio_features", "batched", "image_features", "prepare_image"]


def audio_features(
    model: L3Net,
    clips: np.ndarray | Iterable[np.ndarray],
    *,
    layer: Layers = TRANSFER,
    maps: bool = False,
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

    Returns float32 ``(N, D)`` (``(N, C, H, W)`` for a conv layer's ``maps``), or ``{name: array}``
    when ``layer`` is a list. ``total`` sizes the progress bar of an iterable without a length.
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

    return _extract(model, "audio", clips, prepare, to_tensor, layer, maps, batch_size, device, precision, progress, desc, total)


def image_features(
    model: L3Net,
    images: np.ndarray | Iterable[np.ndarray],
    *,
    layer: Layers = TRANSFER,
    maps: bool = False,
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
    prepared by :func:`l3net.inputs.prepare_image` as the embedding API prepares it for the same
    layer: for the transfer feature (and every pooled layer) its smaller side is scaled to
    ``transfer_image_size`` and the centre ``transfer_image_size`` square kept (256 x 256 for the
    paper, section 5.3); for the embedding (and ``maps``) smaller side ``image_resize`` and centre
    crop ``image_size`` (256 -> 224), as for AVC; the model's ``image_upscale`` rule applies.

    Returns float32 ``(N, D)`` (``(N, C, H, W)`` for a conv layer's ``maps``), or ``{name: array}``.
    """
    transfer = _image_transfer(model, layer, maps)

    def prepare_one(index: int, image: np.ndarray) -> np.ndarray:
        return prepare_image(image, model.config, transfer=transfer, name=f"image {index}")

    def to_tensor(batch: list[np.ndarray], first: int) -> torch.Tensor:
        return image_batch(batch)  # (B, 3, S, S) uint8

    return _extract(model, "vision", images, prepare_one, to_tensor, layer, maps, batch_size, device, precision, progress,
                    desc, total)


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Consecutive lists of ``size`` items (the last may be shorter)."""
    if size < 1:
        raise InputError(f"batch size must be at least 1, got {size}")
    iterator = iter(items)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


# ------------------------------------------------------------------------------------------------
def _names(model: L3Net, modality: str, layer: Layers) -> list[str]:
    """The tower's own names of the requested layers (aliases resolved)."""
    tower = model.tower(modality)
    names = [layer] if isinstance(layer, str) else list(layer)
    if not names:
        raise InputError("layer: give at least one layer name")
    return [resolve_layer(tower, name) for name in names]


def _image_transfer(model: L3Net, layer: Layers, maps: bool) -> bool:
    """Whether the images of a request are the transfer square (one size per forward pass)."""
    kinds = {transfer_input(model.vision, name, maps=maps) for name in _names(model, "vision", layer)}
    if len(kinds) > 1:
        raise InputError(
            f"layers {layer}: the embedding sees the {model.config.image_size} px crop and pooled layers the "
            f"{model.config.transfer_image_size} px square; ask for them in separate calls"
        )
    return kinds.pop()


def _extract(
    model: L3Net,
    modality: str,
    inputs: Iterable[np.ndarray],
    prepare: Callable[[int, np.ndarray], np.ndarray],
    to_tensor: Callable[[list[np.ndarray], int], torch.Tensor],
    layer: Layers,
    maps: bool,
    batch_size: int,
    device: str | torch.device | None,
    precision: str,
    progress: bool,
    desc: str,
    total: int | None,
) -> np.ndarray | dict[str, np.ndarray]:
    names = _names(model, modality, layer)
    requested = [layer] if isinstance(layer, str) else list(layer)
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
                    outputs = layer_outputs(fast, modality, x, names, maps=maps)
                for name, value in outputs.items():
                    pieces[name].append(value.float().cpu().numpy())
                count += len(batch)
                bar.update(len(batch))
    finally:
        model.train(was_training)
    if count == 0:
        raise InputError(f"no {'clips' if modality == 'audio' else 'images'} to compute features of")
    result = {asked: np.concatenate(pieces[name]) for asked, name in zip(requested, names)}
    return result[requested[0]] if isinstance(layer, str) else result
