"""Hot loops outside l3net train read nothing back from the device per batch (on a GPU each read waits
for the device): the streamed probe's validation and training. Checked on the CPU by watching the Tensor
methods that bring a value to the host, called from one l3net file: their count must not grow with the
number of batches."""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
import torch
from PIL import Image

from l3net.evaluate.probe.data import read_probe_images
from l3net.evaluate.probe.stream import TRAINED_ROW, StreamProbeConfig, evaluate_probe_stream
from l3net.models import build_model

#: Tensor methods that bring a value to the host and so wait for a GPU.
HOST_READS = ("item", "tolist", "cpu", "numpy", "__bool__", "__float__", "__int__", "__index__")


@contextlib.contextmanager
def host_reads(monkeypatch: pytest.MonkeyPatch, source: str) -> Iterator[list[str]]:
    """Record every host read made directly by code in the l3net file ``source`` (e.g. "probe/stream.py")."""
    reads: list[str] = []
    suffix = f"{os.sep}l3net{os.sep}" + source.replace("/", os.sep)

    def watched(name: str):
        original = getattr(torch.Tensor, name)

        def read(self, *args, **kwargs):
            frame = sys._getframe(1)
            if frame.f_code.co_filename.endswith(suffix):
                reads.append(f"{name} at {Path(frame.f_code.co_filename).name}:{frame.f_lineno}")
            return original(self, *args, **kwargs)

        return read

    with monkeypatch.context() as patch:
        for name in HOST_READS:
            patch.setattr(torch.Tensor, name, watched(name))
        yield reads


def _tree(root: Path, per_class: tuple[int, int], seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for split, count in zip(("train", "val"), per_class):
        for c in range(3):
            folder = root / split / f"c{c}"
            folder.mkdir(parents=True)
            for i in range(count):
                picture = rng.integers(0, 256, (24, 20, 3), dtype=np.uint8)
                picture[..., c] = 255  # a class's colour: something to learn
                Image.fromarray(picture).save(folder / f"{i}.png")
    return root


@pytest.mark.slow  # two probe runs of a small network: ~1 minute on 2 shared cores
def test_streamed_probe_reads_the_device_once_per_run_not_per_batch(tmp_path, monkeypatch):
    images = read_probe_images(_tree(tmp_path / "tree", (4, 8)))  # 12 training and 24 validation images
    model = build_model("small", seed=3).eval()
    counts, results = [], []
    for batch_size in (12, 3):  # 1 and 4 training batches per epoch, 2 and 8 validation batches
        config = StreamProbeConfig(epochs=1, batch_size=batch_size, workers=0, lr=0.003, random_seeds=1,
                                   progress=False)
        with host_reads(monkeypatch, "evaluate/probe/stream.py") as reads:
            result = evaluate_probe_stream(images, model, config)
        counts.append(len(reads))
        results.append(result)
    assert counts[0] == counts[1], counts  # the same reads, at the end, however many batches
    for result in results:
        for row in result.results.values():  # the counts kept on the device add up as the host's would
            assert row.val_images == 24 and row.confusion.sum() == 24
            assert int(np.trace(row.confusion)) == row.correct1 <= row.correct5
    assert results[1].results[TRAINED_ROW].confusion.shape == (3, 3)


def _stage(steps: int, losses, monkeypatch) -> tuple[list[str], object]:
    """The baselines trainer's loop (`_run_stage`) on a stand-in step returning device-side sums."""
    from torch import nn

    from l3net.evaluate.baselines import training

    trainable = nn.Linear(1, 1)
    optimizer = torch.optim.Adam(trainable.parameters())
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    values = iter(losses)

    def batches(start: int):
        while True:
            yield None

    def step(batch):
        return torch.tensor(next(values), dtype=torch.float64) * 4, torch.tensor(3), 4

    with host_reads(monkeypatch, "evaluate/baselines/training.py") as reads:
        history, _ = training._run_stage("vision", trainable=trainable, optimizer=optimizer, scaler=scaler,
                                         batches=batches, step_fn=step, total=steps, stages={}, checkpoint=None,
                                         desc="", progress=False, diverged="the vision classifier's training diverged")
    return reads, history


def test_baselines_trainer_reads_the_device_at_history_points_only(monkeypatch):
    reads, history = _stage(200, [0.5] * 200, monkeypatch)
    assert history.every == 4 and len(history.step) == 50
    assert len(reads) == 2 * len(history.step)  # the loss and correct sums, once per history point
    assert history.loss == [0.5] * 50 and history.accuracy == [0.75] * 50


def test_baselines_trainer_stops_on_a_non_finite_loss_at_the_next_history_point(monkeypatch):
    from l3net.errors import InputError

    losses = [0.5] * 9 + [float("nan")] + [0.5] * 190
    with pytest.raises(InputError, match=r"diverged \(the loss became nan at or before step 12\)"):
        _stage(200, losses, monkeypatch)
