"""l3net train's speed figures and device set-up: intervals that end after the device's work, the
TF32 choice on GPUs, --sync-bn with --compile. GPU behaviour is reached through torch's own query
functions, replaced here (no GPU runs these tests)."""

from __future__ import annotations

import json
import os
import sys
import time
import warnings
from pathlib import Path

import pytest
import torch

from l3net import distributed
from l3net.errors import InputError
from l3net.runtime import gpu_autotune, resolve_device, training_math
from l3net.train import TrainConfig, read_log, train

#: How long bringing an interval's losses to the host waits, standing in for a GPU that runs several
#: steps behind the host: that wait is training time, and a rate that leaves it out is too high.
DEVICE_LAG_S = 0.25


def test_reported_pairs_per_s_is_pairs_over_the_logged_wall_time(synth_shards: Path, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    reduce = distributed.all_reduce_sum
    synced: list[float] = []  # Unix time at which each reduction's result reached the host

    def lagging_device(tensor: torch.Tensor, world: distributed.World) -> torch.Tensor:
        time.sleep(DEVICE_LAG_S)
        out = reduce(tensor, world)
        synced.append(time.time())
        return out

    monkeypatch.setattr(distributed, "all_reduce_sum", lagging_device)
    run = tmp_path / "run"
    config = TrainConfig(data=str(synth_shards), out=str(run), preset="small", batch_size=4, steps=8, log_every=2,
                         val_every=0, save_every=100, val_pairs=8, workers=0)
    result = train(config, progress=False)
    records = [r for r in read_log(run) if r["event"] == "train"]
    assert [r["step"] for r in records] == [2, 4, 6, 8]
    # Each interval ends after its losses reached the host (the log lines' reductions come first, in
    # order; validation's after them): a clock read before that wait would end DEVICE_LAG_S too early.
    assert len(synced) >= len(records)
    for record, reached_host in zip(records, synced):
        assert record["time"] >= reached_host
    # No validation or checkpoint between these lines: consecutive intervals tile the wall clock.
    for before, record in zip(records, records[1:]):
        wall_s = record["time"] - before["time"]
        assert wall_s > DEVICE_LAG_S
        assert (record["pairs"] - before["pairs"]) / wall_s == pytest.approx(record["pairs_per_s"], rel=0.02)
        assert record["interval_s"] == pytest.approx(wall_s, rel=0.02)
        assert record["data_wait_fraction"] == pytest.approx(record["data_wait_s"] / record["interval_s"])
    # The run's figure is its logged intervals together.
    pairs = sum(r["pairs_per_s"] * r["interval_s"] for r in records)
    assert result.pairs_per_s == pytest.approx(pairs / sum(r["interval_s"] for r in records), rel=1e-9)
    # How it computed is part of the run's record (TF32 does not apply on a CPU).
    assert json.loads((run / "last" / "config.json").read_text())["math"] == {
        "precision": "fp32", "tf32": None, "cudnn_benchmark": None}


@pytest.fixture
def tf32_flags():
    """Restores torch's process-wide TF32 and cuDNN flags after a test that sets them."""
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True  # PyTorch's cuDNN default
    yield
    (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark) = saved


def _gpu(monkeypatch: pytest.MonkeyPatch, capability: tuple[int, int], name: str) -> torch.device:
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: name)
    return torch.device("cuda", 0)


def test_training_on_a_gpu_turns_tf32_off_and_warns_about_fp32_where_bf16_is_native(
        monkeypatch: pytest.MonkeyPatch, tf32_flags: None) -> None:
    h100 = _gpu(monkeypatch, (9, 0), "NVIDIA H100 80GB HBM3")
    with pytest.warns(UserWarning, match="fp32 on NVIDIA H100 80GB HBM3, which computes bf16 natively: --precision bf16"):
        choice = training_math("fp32", h100)
    assert choice["precision"] == "fp32" and choice["tf32"] is False
    assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = True
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # bf16 is the advice itself: nothing to warn about
        assert training_math("bf16", h100)["tf32"] is False
        assert not torch.backends.cudnn.allow_tf32
        v100 = _gpu(monkeypatch, (7, 0), "Tesla V100")  # no native bf16: fp32 is not a mistake there
        assert training_math("fp32", v100)["tf32"] is False


def test_every_gpu_path_turns_cudnn_autotuning_on(monkeypatch: pytest.MonkeyPatch, tf32_flags: None) -> None:
    torch.backends.cudnn.benchmark = False
    resolve_device("cpu")
    gpu_autotune(torch.device("cpu"))
    assert not torch.backends.cudnn.benchmark  # the CPU has no cuDNN to tune
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("cuda") == torch.device("cuda")  # training, benchmarks, the API's device= and the CLI
    assert torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = False
    gpu_autotune(torch.device("cuda", 0))  # evaluation(): a model the caller moved to a GPU
    assert torch.backends.cudnn.benchmark


def test_training_on_the_cpu_records_that_tf32_does_not_apply(tf32_flags: None) -> None:
    assert training_math("fp32", torch.device("cpu")) == {"precision": "fp32", "tf32": None, "cudnn_benchmark": None}
    assert torch.backends.cudnn.allow_tf32  # a CPU run leaves the GPU flags alone


def test_sync_bn_with_compile_is_refused_with_the_reason() -> None:
    config = TrainConfig(data="d", out="o", sync_bn=True, compile=True)
    with pytest.raises(InputError, match="--sync-bn cannot be combined with --compile: SyncBatchNorm breaks the compiled graph"):
        config.validate()
    TrainConfig(data="d", out="o", sync_bn=True).validate()
    TrainConfig(data="d", out="o", compile=True).validate()


#: Tensor methods that bring a value to the host and so wait for a GPU.
HOST_READS = ("item", "tolist", "cpu", "numpy", "__bool__", "__float__", "__int__", "__index__")


def test_the_step_reads_nothing_back_from_the_device(synth_shards: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """l3net's code in the step never waits for the device: the only sync is the log line's. (torch's own
    CPU Adam reads its step count on the host; fused Adam on a GPU does not, so only l3net's frames count.)"""
    from l3net.train import Trainer

    reads: list[str] = []
    in_step = [False]

    def watched(name: str):
        original = getattr(torch.Tensor, name)

        def read(self, *args, **kwargs):
            caller = sys._getframe(1).f_code.co_filename
            if in_step[0] and f"{os.sep}l3net{os.sep}" in caller:
                reads.append(f"{name} from {Path(caller).name}:{sys._getframe(1).f_lineno}")
            return original(self, *args, **kwargs)
        return read

    for name in HOST_READS:
        monkeypatch.setattr(torch.Tensor, name, watched(name))
    step = Trainer.train_step

    def watched_step(self, batch):
        in_step[0] = True
        try:
            return step(self, batch)
        finally:
            in_step[0] = False

    monkeypatch.setattr(Trainer, "train_step", watched_step)
    train(TrainConfig(data=str(synth_shards), out=str(tmp_path / "run"), preset="small", batch_size=4, steps=3,
                      log_every=3, val_every=0, val_pairs=8, workers=0), progress=False)
    assert reads == []
    in_step[0] = True  # the watch is armed: a read from a file of l3net's is seen
    try:
        torch.ones(1).item()  # this test's own read is not l3net's
        exec(compile("import torch; torch.ones(1).item()", f"{os.sep}l3net{os.sep}probe.py", "exec"), {})
    finally:
        in_step[0] = False
    assert reads == ["item from probe.py:1"]
