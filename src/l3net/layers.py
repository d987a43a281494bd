"""Which layer answers ``layer=`` of the embedding API (and HEAR), and how many dimensions it has.

Layers (``layer=``):

- ``"pool4"`` (the tower's last pool): the embedding, ``model.config.embedding_dim``-D (512).
- ``"conv4_2"`` (the tower's last conv): the paper's transfer feature, audio conv4_2 *before* ReLU
  max-pooled to 4 x 3 (6144-D), images conv4_2 after ReLU max-pooled to 4 x 4 (8192-D).
- any other name of ``tower.feature_names`` (``conv3_1``, ``pool2``, ``conv4_1_prerelu``...): that
  layer's map max-pooled to the same grid as the transfer feature (4 x 3 audio, 4 x 4 images) and
  flattened: ``channels x 12`` (audio) or ``channels x 16`` (images) dimensions.

Images: ``pool4`` sees the centre ``image_size`` crop (224) of the image scaled so its smaller side
is ``image_resize`` (256); every other layer sees the centre ``transfer_image_size`` square (256),
as in the paper's transfer experiment.
"""

from __future__ import annotations

import torch

from .errors import InputError
from .models import PRERELU, L3Net, VGGTower


def check_layer(tower: VGGTower, layer: str) -> None:
    """An :class:`InputError` unless ``layer`` is one of the tower's feature names."""
    if not isinstance(layer, str) or layer not in tower.feature_names:
        raise InputError(f"unknown layer {layer!r}; choose one of: {', '.join(tower.feature_names)}")


def embedding_size(model: L3Net, layer: str = "pool4", modality: str = "audio") -> int:
    """Dimension of the embeddings :func:`get_audio_embedding` / :func:`get_image_embedding` return."""
    tower = model.tower(modality)
    check_layer(tower, layer)
    if layer == tower.embedding_layer:
        return model.config.embedding_dim
    channels = {info["name"]: info["channels"] for info in tower.feature_info}[layer.removesuffix(PRERELU)]
    grid = model.config.audio_transfer_grid if modality == "audio" else model.config.image_transfer_grid
    return channels * grid[0] * grid[1]


def layer_features(model: L3Net, modality: str, x: torch.Tensor, layer: str) -> torch.Tensor:
    """``(N, D)`` features of one layer for raw inputs (waveforms or images), as documented above."""
    tower = model.tower(modality)
    check_layer(tower, layer)
    if layer == tower.embedding_layer:
        return model.embed(modality, x)
    if layer == tower.last_conv:
        return model.transfer_features(modality, x)
    return model.pool_transfer(modality, model.forward_features(modality, x, [layer])[layer])
