"""Which layer answers ``layer=``, and how many dimensions it has: the one layer vocabulary of the
embedding API, HEAR and every evaluation (:mod:`l3net.evaluate.features`).

Layers (``layer=``):

- ``"pool4"`` (the tower's last pool): the embedding, ``model.config.embedding_dim``-D (512).
- ``"conv4_2"`` (the tower's last conv): the paper's transfer feature, audio conv4_2 *before* ReLU
  max-pooled to 4 x 3 (6144-D), images conv4_2 after ReLU max-pooled to 4 x 4 (8192-D).
- any other name of ``tower.feature_names`` (``conv3_1``, ``pool2``, ``conv4_1_prerelu``...): that
  layer's map max-pooled to the same grid as the transfer feature (4 x 3 audio, 4 x 4 images) and
  flattened: ``channels x 12`` (audio) or ``channels x 16`` (images) dimensions.
- ``"embedding"`` and ``"transfer"``: names of the tower's last pool and last conv that hold for
  every architecture (the evaluations use them).

The evaluations may also ask for a layer's map itself, ``(N, C, H, W)`` (``maps=True`` of
:func:`layer_outputs`; the unit pictures), computed on the embedding's input.

Images: ``pool4`` sees the centre ``image_size`` crop (224) of the image scaled so its smaller side
is ``image_resize`` (256); every other layer sees the centre ``transfer_image_size`` square (256),
as in the paper's transfer experiment (:func:`transfer_input`; the preparation: :mod:`l3net.inputs`).
"""

from __future__ import annotations

from typing import Sequence

import torch

from .errors import InputError
from .models import PRERELU, L3Net, VGGTower


#: The tower's last pool (the embedding) and last conv (the transfer feature), by names that hold
#: for every architecture.
EMBEDDING = "embedding"
TRANSFER = "transfer"


def resolve_layer(tower: VGGTower, layer: str) -> str:
    """The tower's own name for ``layer`` (``"embedding"`` / ``"transfer"`` resolved); an
    :class:`InputError` unless it is one of the tower's feature names."""
    name = {EMBEDDING: tower.embedding_layer, TRANSFER: tower.last_conv}.get(layer, layer) if isinstance(layer, str) else layer
    check_layer(tower, name)
    return name


def check_layer(tower: VGGTower, layer: str) -> None:
    """An :class:`InputError` unless ``layer`` is one of the tower's feature names."""
    if not isinstance(layer, str) or layer not in tower.feature_names:
        known = ", ".join([*tower.feature_names, EMBEDDING, TRANSFER])
        raise InputError(f"unknown layer {layer!r}; choose one of: {known}")


def transfer_input(tower: VGGTower, layer: str, *, maps: bool = False) -> bool:
    """Whether images for ``layer`` (a tower name) are the transfer square rather than the embedding's
    crop (:func:`l3net.inputs.image_sizes`): every pooled layer but the embedding; never for maps."""
    return not maps and layer != tower.embedding_layer


def embedding_size(model: L3Net, layer: str = "pool4", modality: str = "audio") -> int:
    """Dimension of the embeddings :func:`get_audio_embedding` / :func:`get_image_embedding` return."""
    tower = model.tower(modality)
    layer = resolve_layer(tower, layer)
    if layer == tower.embedding_layer:
        return model.config.embedding_dim
    channels = {info["name"]: info["channels"] for info in tower.feature_info}[layer.removesuffix(PRERELU)]
    grid = model.config.audio_transfer_grid if modality == "audio" else model.config.image_transfer_grid
    return channels * grid[0] * grid[1]


def layer_features(model: L3Net, modality: str, x: torch.Tensor, layer: str) -> torch.Tensor:
    """``(N, D)`` features of one layer for raw inputs (waveforms or images), as documented above."""
    tower = model.tower(modality)
    layer = resolve_layer(tower, layer)
    if layer == tower.embedding_layer:
        return model.embed(modality, x)
    if layer == tower.last_conv:
        return model.transfer_features(modality, x)
    return model.pool_transfer(modality, model.forward_features(modality, x, [layer])[layer])


def layer_outputs(
    model: L3Net, modality: str, x: torch.Tensor, layers: Sequence[str], *, maps: bool = False
) -> dict[str, torch.Tensor]:
    """``{name: features}`` of several layers (tower names, see :func:`resolve_layer`) from one pass:
    each as :func:`layer_features` gives it, or with ``maps`` each layer's own output (conv layers
    ``(N, C, H, W)``, the embedding ``(N, C)``)."""
    tower = model.tower(modality)
    transfer = model.transfer_layer(modality)

    def source(name: str) -> str:  # the output a name is computed from
        return transfer if name == tower.last_conv and not maps else name

    outputs = model.forward_features(modality, x, [source(name) for name in layers])
    result = {}
    for name in layers:
        out = outputs[source(name)]
        result[name] = out if maps or name == tower.embedding_layer else model.pool_transfer(modality, out)
    return result
