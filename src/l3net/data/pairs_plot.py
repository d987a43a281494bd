"""A picture of sampled AVC pairs (``l3net pairs``): what the network is asked, pair by pair."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ..config import ModelConfig
from ..errors import InputError
from ..fileio import atomic_path
from ..spectrogram import LogSpectrogram
from .sampler import AVCPairs


def plot_pairs(
    shards_dir: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    config: ModelConfig,
    split: str = "train",
    n: int = 8,
    seed: int = 0,
    train: bool = True,
    columns: int = 2,
) -> Path:
    """Draw ``n`` pairs of ``split`` into a PNG at ``out``: per pair the frame (as the network
    sees it, augmented in training mode), the log-spectrogram of its 1 s of audio (the model's
    front end), the answer and the provenance (video keys, frame time, audio start, classes)."""
    from matplotlib.figure import Figure

    if not 1 <= n <= 256:
        raise InputError(f"--n must be between 1 and 256, got {n}")
    dataset = AVCPairs(shards_dir, split, config=config, batch_size=n, train=train, seed=seed)
    batch = next(iter(dataset))
    dataset.close()
    with torch.no_grad():
        spectrograms = LogSpectrogram(config.spectrogram)(batch["audio"])[:, 0].numpy()
    count = len(batch["label"])
    columns = max(1, min(columns, count))
    rows = -(-count // columns)
    figure = Figure(figsize=(6.4 * columns, 2.9 * rows), dpi=90)
    height = 2.9 * rows
    grid = figure.add_gridspec(
        rows, 2 * columns, width_ratios=[1, 1.4] * columns, hspace=0.75, wspace=0.25,
        left=0.04, right=0.99, bottom=0.45 / height, top=1 - 0.75 / height,
    )
    bins_hz = config.spectrogram.sample_rate / 2
    for i in range(count):
        r, c = divmod(i, columns)
        image_ax = figure.add_subplot(grid[r, 2 * c])
        spec_ax = figure.add_subplot(grid[r, 2 * c + 1])
        image_ax.imshow(batch["image"][i].permute(1, 2, 0).numpy())
        image_ax.set_xticks([])
        image_ax.set_yticks([])
        t = float(batch["frame_time"][i])
        image_ax.set_title(f"frame {batch['image_key'][i][:8]} @ {t:.2f} s\n{batch['image_class'][i] or 'unlabelled'}", fontsize=8)
        s = float(batch["audio_start"][i])
        spec_ax.imshow(spectrograms[i], origin="lower", aspect="auto", cmap="magma", extent=(s, s + config.clip_seconds, 0, bins_hz / 1000))
        spec_ax.set_xlabel("time in its video (s)", fontsize=7)
        spec_ax.set_ylabel("kHz", fontsize=7)
        spec_ax.tick_params(labelsize=6)
        answer = "CORRESPONDS" if int(batch["label"][i]) == 1 else "does not correspond"
        spec_ax.set_title(
            f"{answer}\naudio {batch['audio_key'][i][:8]} @ {s:.2f}-{s + config.clip_seconds:.2f} s, {batch['audio_class'][i] or 'unlabelled'}",
            fontsize=8, color="tab:green" if int(batch["label"][i]) == 1 else "tab:red",
        )
    mode = "training pairs (augmented)" if train else "evaluation pairs (fixed list, centre crop)"
    figure.suptitle(f"{Path(shards_dir).name}: {count} {split} {mode}, preset {config.name}, seed {seed}", fontsize=10)
    out = Path(out)
    with atomic_path(out, suffix=out.suffix or ".png") as tmp:
        figure.savefig(tmp, format="png")
    return out


__all__ = ["plot_pairs"]
