"""DDP: two CPU processes (gloo) under torchrun train exactly like one process with the same global batch.

What equality is possible. With DDP each rank draws its own pairs (its own stream of the sampler)
and normalises its BatchNorm layers over its own half of the batch (PyTorch has no SyncBatchNorm on
CPUs, and the paper's BatchNorm also saw only 16 pairs per GPU). So the single-process reference
takes, at every step, the global batch made of both ranks' halves, runs the network once per half
(BatchNorm grouped as under DDP), averages the two losses and takes one Adam step. Everything else
is the same arithmetic, so the parameters must be bitwise equal, not merely close: the gradient
all-reduce adds two halves that each process computed alone, as the reference's backward does.
(BatchNorm running statistics are buffers, not parameters: DDP keeps rank 0's, the reference saw
both halves, so they are not compared.)
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch.nn import functional as F

from l3net import build_model, get_preset
from l3net.data.sampler import AVCPairs
from l3net.models import CONFIG_FILE, WEIGHTS_FILE
from l3net.train import LAST_DIR, read_log

WORLD, BATCH, STEPS, SEED, LR, WD = 2, 8, 3, 5, 1e-4, 1e-5


@pytest.mark.slow
def test_two_gloo_processes_match_one_process_with_the_same_global_batch(synth_shards: Path, tmp_path: Path) -> None:
    run = tmp_path / "ddp"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(WORLD),
        "-m", "l3net", "train", "--data", str(synth_shards), "--out", str(run), "--preset", "small",
        "--batch-size", str(BATCH), "--steps", str(STEPS), "--lr", str(LR), "--weight-decay", str(WD), "--seed", str(SEED),
        "--val-every", str(STEPS), "--save-every", str(STEPS), "--log-every", "1", "--workers", "0",
        "--device", "cpu", "--no-progress",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=400,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stdout + done.stderr
    # Only rank 0 wrote, once: one log line per step, one validation over both ranks' shares.
    records = read_log(run)
    assert [r["step"] for r in records if r["event"] == "train"] == list(range(1, STEPS + 1))
    assert [r["pairs"] for r in records if r["event"] == "train"] == [BATCH * s for s in range(1, STEPS + 1)]
    val = [r for r in records if r["event"] == "val"]
    config = get_preset("small")
    num_val = AVCPairs(synth_shards, "val", config=config, batch_size=BATCH // WORLD, train=False).num_pairs
    assert len(val) == 1 and val[0]["val_pairs"] == num_val
    assert (run / CONFIG_FILE).is_file() and len(list((run / "tb").iterdir())) == 1

    # The single-process reference on the same global batches (threads as each torchrun process).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = build_model(config, seed=SEED).train()
        optimizer = torch.optim.Adam(model.parameters(), lr=LR, weight_decay=WD)
        streams = [
            iter(AVCPairs(synth_shards, "train", config=config, batch_size=BATCH // WORLD, seed=SEED, rank=r,
                          world_size=WORLD))
            for r in range(WORLD)
        ]
        for _ in range(STEPS):
            halves = [next(stream) for stream in streams]
            losses = [F.cross_entropy(model(h["image"], h["audio"]).float(), h["label"]) for h in halves]
            optimizer.zero_grad()
            (sum(losses) / WORLD).backward()
            optimizer.step()
    finally:
        torch.set_num_threads(threads)

    trained = load_file(str(run / LAST_DIR / WEIGHTS_FILE))
    for name, param in model.named_parameters():
        assert torch.equal(param.detach(), trained[name]), name
