"""Exact resume: a run killed with SIGKILL and resumed ends with the parameters of an uninterrupted run."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from l3net.models import WEIGHTS_FILE
from l3net.train import CHECKPOINT_DIR, LAST_DIR, Trainer, TrainConfig, load_checkpoint, read_log, train

STEPS = 8
ARGS = ["--preset", "small", "--batch-size", "8", "--steps", str(STEPS), "--save-every", "2", "--val-every", "4", "--val-pairs", "16",
        "--log-every", "1", "--workers", "1", "--seed", "3", "--device", "cpu", "--no-progress"]


def _train(*args: str) -> subprocess.Popen[str]:
    # Separate processes, started the same way, so that both runs use the same threads and kernels.
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "l3net", "train", *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _logged_steps(run: Path) -> list[int]:
    try:
        return [r["step"] for r in read_log(run) if r["event"] == "train"]
    except FileNotFoundError:
        return []


@pytest.mark.slow
def test_kill_9_and_resume_gives_the_same_parameters(synth_shards: Path, tmp_path: Path) -> None:
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    reference = _train("--data", str(synth_shards), "--out", str(whole), *ARGS)
    victim = _train("--data", str(synth_shards), "--out", str(cut), *ARGS)
    deadline = time.monotonic() + 300
    # Kill it mid-run: after its step-4 checkpoint (and validation), while it trains step 5 or 6.
    while not any(s >= 5 for s in _logged_steps(cut)):
        assert victim.poll() is None, victim.communicate()[0]
        assert time.monotonic() < deadline, "the run did not reach step 5"
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert load_checkpoint(cut)["step"] in (4, 6)

    resumed = _train("--out", str(cut), "--resume")  # everything else comes from the run
    out, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, out
    assert "resuming at step" in out
    out, _ = reference.communicate(timeout=300)
    assert reference.returncode == 0, out

    a = load_file(str(whole / LAST_DIR / WEIGHTS_FILE))
    b = load_file(str(cut / LAST_DIR / WEIGHTS_FILE))
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name
    assert torch.equal(torch.tensor(load_checkpoint(whole)["step"]), torch.tensor(STEPS))
    # The resumed log reads as one run: every step once, validations at 4 and 8 once each.
    assert _logged_steps(cut) == list(range(1, STEPS + 1))
    assert [r["step"] for r in read_log(cut) if r["event"] == "val"] == [4, 8]
    assert json.loads((cut / "config.json").read_text())["train"] == json.loads(
        (whole / "config.json").read_text())["train"] | {"out": str(cut)}
    # No temporary file of an interrupted write is left behind.
    assert not [p for d in (cut, cut / LAST_DIR, cut / CHECKPOINT_DIR) for p in d.glob(".*.tmp*")]


def _global_draws(device: torch.device) -> tuple[float, ...]:
    """One draw from each process-wide generator a step may use: Python, NumPy, torch CPU (and CUDA)."""
    draws = (random.random(), float(np.random.random()), float(torch.rand(())))
    if device.type == "cuda":
        draws += (float(torch.rand((), device=device)),)
    return draws


def test_resume_restores_every_global_generator(synth_shards: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A step that draws from the global generators (dropout, on-device augmentation) draws the same
    numbers after a resume as in an uninterrupted run: Python, NumPy, torch CPU and, on a GPU, CUDA.

    The run is "killed" by copying its run directory as it stood right after the step-2 checkpoint;
    the copy is resumed in this process after the generators have been scrambled."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    drawn: dict[str, dict[int, tuple[float, ...]]] = {"whole": {}, "resumed": {}}
    current = ["whole"]
    snapshot = tmp_path / "killed"
    original_step, original_save = Trainer.train_step, Trainer._save_on_main

    def drawing_step(self: Trainer, batch):
        drawn[current[0]][self.state.step + 1] = _global_draws(self.device)
        return original_step(self, batch)

    def save_and_snapshot(self: Trainer, rng):
        original_save(self, rng)
        if current[0] == "whole" and self.state.step == 2:
            shutil.copytree(self.run_dir, snapshot)

    monkeypatch.setattr(Trainer, "train_step", drawing_step)
    monkeypatch.setattr(Trainer, "_save_on_main", save_and_snapshot)
    config = dict(data=str(synth_shards), preset="small", batch_size=4, steps=4, save_every=2, val_every=0,
                  val_pairs=4, log_every=1, workers=0, seed=11, device=device.type)
    train(TrainConfig(out=str(tmp_path / "whole"), **config), progress=False)
    assert sorted(drawn["whole"]) == [1, 2, 3, 4] and load_checkpoint(snapshot)["step"] == 2

    current[0] = "resumed"
    random.seed(99), np.random.seed(99), torch.manual_seed(99)  # a fresh process's generators, not the run's
    train(TrainConfig(out=str(snapshot), **config), resume=True, progress=False)
    assert sorted(drawn["resumed"]) == [3, 4]
    for step in (3, 4):
        assert drawn["resumed"][step] == drawn["whole"][step], f"step {step}: the resumed run drew other numbers"
    # and the run's own draws differ from step to step (the comparison above is not of constants)
    assert len({drawn["whole"][s] for s in (1, 2, 3, 4)}) == 4
