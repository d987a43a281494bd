"""The pictures of ``l3net eval units`` (:mod:`l3net.evaluate.units.protocol`): per unit, its top inputs with
the unit's heatmap, channel k of the last conv layer (conv4_2, after ReLU) over the input (pool4
unit k is that channel's maximum, so the map shows where the unit fires): frames (Figures 3-6, 8),
spectrograms (Figure 9), and the audio units' top clips as their video frames above their
spectrograms (Figure 7); and the class counts beside the paper's. Overlays and upsampling are
:mod:`l3net.heatmaps`'s, as ``l3net localize``'s.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch

from ...data.shards import ShardSet
from ...errors import InputError
from ...heatmaps import overlay, upsample
from ...inputs import full_frame
from ...models import MODALITIES, L3Net
from .. import paper
from ..features import audio_features, image_features, prepare_image
from ..inputs import Item, read_clip, read_image
from ..result import new_figure


@dataclass
class UnitGrid:
    """What a picture grid shows: ``units`` (rows) x their top inputs (columns), each input's picture
    (frame as the tower saw it, or spectrogram), the unit's heatmap over it, and its caption (class,
    or video when unlabelled). For the audio tower, ``frames`` holds the video frame of each clip
    (the frame the clip is centred on), cell for cell: Figure 7."""

    modality: str
    units: list[int]
    pictures: list[np.ndarray]  # row-major, len(units) * k
    heatmaps: np.ndarray  # (len(units) * k, H, W) in [0, 1]
    labels: list[Any]  # caption of each picture: its class, or its video's key without labels
    purity: list[tuple[Any, int] | None]  # per unit: its top inputs' main class and how many have it (None: no labels)
    k: int
    clip_seconds: float
    max_khz: float
    inputs: list[int] = field(default_factory=list)  # index (into the ranked inputs) of each picture
    frames: list[np.ndarray] | None = None  # audio grids: the video frame of each clip, uint8 H x W x 3


def unit_heatmaps(
    model: L3Net,
    modality: str,
    inputs: Sequence[np.ndarray],
    units: Sequence[int],
    size: tuple[int, int],
    *,
    batch_size: int = 32,
    device: str | torch.device | None = None,
    precision: str = "fp32",
) -> np.ndarray:
    """Channel ``units[i]`` of the last conv layer (after ReLU) for ``inputs[i]``, upsampled to ``size``
    (H, W) and scaled to [0, 1] per map: ``(len(inputs), H, W)``."""
    extract = image_features if modality == "vision" else audio_features
    maps = extract(model, list(inputs), layer=model.tower(modality).last_conv, maps=True, batch_size=batch_size,
                   device=device, precision=precision, progress=False)
    up = upsample(maps[np.arange(len(units)), np.asarray(units)], *size)
    peak = up.reshape(len(up), -1).max(axis=1).reshape(-1, 1, 1)
    return np.where(peak > 0, up / np.maximum(peak, 1e-12), 0.0)


def spectrograms(model: L3Net, clips: np.ndarray) -> np.ndarray:
    """The model's own front end output for clips ``(N, samples)``: ``(N, bins, frames)``."""
    device = next(model.parameters()).device
    with torch.inference_mode():
        return model.frontend(torch.from_numpy(np.asarray(clips, np.float32)).to(device))[:, 0].float().cpu().numpy()


def unit_grid(
    model: L3Net, shards: ShardSet, items: Sequence[Item], modality: str, units: Sequence[int],
    top: np.ndarray, labels: np.ndarray | None, *, batch_size: int, device: Any, precision: str,
) -> UnitGrid:
    """The pictures and heatmaps of ``units``' top inputs (re-read from the shards); ``labels`` None
    for unlabelled shards (captions are then the videos' keys). Audio grids also carry each clip's
    video frame, smaller side ``image_resize``, uncropped."""
    config = model.config
    k = top.shape[1]
    flat_units = [u for u in units for _ in range(k)]
    indices = [int(i) for u in units for i in top[u]]
    chosen = [items[i] for i in indices]
    frames = None
    if modality == "vision":
        raw = [read_image(shards, item, config) for item in chosen]
        pictures = [prepare_image(img, config, transfer=False) for img in raw]  # exactly what the tower saw
        size = pictures[0].shape[:2]
        heat = unit_heatmaps(model, modality, raw, flat_units, size, batch_size=batch_size, device=device, precision=precision)
    else:
        clips = np.stack([read_clip(shards, item, config) for item in chosen])
        pictures = list(spectrograms(model, clips))
        size = pictures[0].shape
        heat = unit_heatmaps(model, modality, clips, flat_units, size, batch_size=batch_size, device=device, precision=precision)
        frames = [full_frame(read_image(shards, item, config), config) for item in chosen]
    if labels is None:
        purity: list[tuple[Any, int] | None] = [None] * len(units)
        captions: list[Any] = [item.key for item in chosen]
    else:
        purity = [Counter(labels[top[u]]).most_common(1)[0] for u in units]
        captions = [item.label for item in chosen]
    return UnitGrid(modality, list(units), pictures, heat, captions, purity, k,
                    config.clip_seconds, config.spectrogram.sample_rate / 2 / 1000, inputs=indices, frames=frames)


def _unit_caption(grid: UnitGrid, row: int) -> str:
    purity = grid.purity[row]
    if purity is None:
        return f"unit {grid.units[row]}"
    return f"unit {grid.units[row]}\n{purity[0]} ({purity[1]}/{grid.k})"


def _spectrogram_cell(ax: Any, grid: UnitGrid, cell: int, *, first: bool) -> None:
    """A spectrogram (frequency up, time across: the front end's (bins, frames) from 0 Hz to
    Nyquist) with the unit's heatmap over it."""
    extent = (0, grid.clip_seconds, 0, grid.max_khz)
    ax.imshow(grid.pictures[cell], origin="lower", aspect="auto", cmap="gray", extent=extent)
    ax.imshow(grid.heatmaps[cell], origin="lower", aspect="auto", cmap="jet", alpha=0.4, vmin=0, vmax=1, extent=extent)
    if first:
        ax.set_ylabel("kHz", fontsize=7)
    ax.tick_params(labelsize=6)


def grid_figure(grid: UnitGrid) -> Any:
    """Figures 3-4 (frames) or 9 (spectrograms): a row per unit, its top inputs with its heatmap."""
    k, modality = grid.k, grid.modality
    fig = new_figure(2.0 * k, 2.1 * len(grid.units))
    axes = fig.subplots(len(grid.units), k, squeeze=False)
    cell = 0
    for row, u in enumerate(grid.units):
        for col in range(k):
            ax = axes[row][col]
            if modality == "vision":
                ax.imshow(overlay(grid.pictures[cell], grid.heatmaps[cell], scale="absolute"))
                ax.set_xticks([])
                ax.set_yticks([])
            else:
                _spectrogram_cell(ax, grid, cell, first=col == 0)
            ax.set_title(f"{grid.labels[cell]}", fontsize=7)
            cell += 1
        axes[row][0].annotate(
            _unit_caption(grid, row), xy=(-0.15 if modality == "vision" else -0.3, 0.5),
            xycoords="axes fraction", ha="right", va="center", fontsize=8,
        )
    name = "Figures 3-6, 8" if modality == "vision" else "Figure 9 (time x frequency)"
    fig.suptitle(f"{modality}: top {k} test inputs of selected pool4 units, with conv4_2 heatmaps ({name})", fontsize=10)
    fig.tight_layout()
    return fig


def frames_figure(grid: UnitGrid) -> Any:
    """Figure 7: per audio unit, the video frames of its top clips (upper row) above each clip's
    spectrogram with the unit's heatmap (lower row), column for column the same clip."""
    if grid.frames is None:
        raise InputError("this grid carries no video frames (only audio grids do)")
    k = grid.k
    fig = new_figure(2.0 * k, 3.6 * len(grid.units))
    axes = fig.subplots(2 * len(grid.units), k, squeeze=False)
    for row in range(len(grid.units)):
        for col in range(k):
            cell = row * k + col
            picture, spectrum = axes[2 * row][col], axes[2 * row + 1][col]
            picture.imshow(grid.frames[cell])
            picture.set_xticks([])
            picture.set_yticks([])
            picture.set_title(f"{grid.labels[cell]}", fontsize=7)
            _spectrogram_cell(spectrum, grid, cell, first=col == 0)
        axes[2 * row][0].annotate(_unit_caption(grid, row), xy=(-0.15, 0.0), xycoords="axes fraction", ha="right",
                                  va="center", fontsize=8)
    fig.suptitle(f"audio: top {k} test clips of selected pool4 units, as their video frames above their spectrograms "
                 "with the unit's conv4_2 heatmap (Figure 7)", fontsize=10)
    fig.tight_layout()
    return fig


def counts_figure(counts: dict[str, dict[str, dict[str, int]]]) -> Any:
    """Classes with a high-preference unit, ours beside the paper's, per threshold."""
    fig = new_figure(10, 3.6)
    axes = fig.subplots(1, len(paper.UNIT_CLASSES), squeeze=False)
    for ax, threshold in zip(axes[0], paper.UNIT_CLASSES):
        names, ours, ref = [], [], []
        for modality in MODALITIES:
            for network in ("random", "trained"):
                names.append(f"{modality}\n{network}")
                ours.append(counts[str(threshold)][network][modality])
                ref.append(paper.UNIT_CLASSES[threshold][network][modality])
        x = np.arange(len(names))
        ax.bar(x - 0.2, ours, 0.4, label="ours")
        ax.bar(x + 0.2, ref, 0.4, label="paper (of 34 classes)", alpha=0.6)
        ax.set_xticks(x, names, fontsize=8)
        ax.set_title(f">= {threshold} of a unit's top {paper.UNIT_TOP_K} in one class")
    axes[0][0].set_ylabel("classes with such a unit")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    return fig
