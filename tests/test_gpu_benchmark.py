"""benchmarks/gpu.sh, the one-shot GPU benchmark, runs end to end (at toy sizes, on the CPU)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_benchmark_smoke_run(tmp_path):
    out = tmp_path / "gpu.json"
    env = dict(os.environ, PYTHON=sys.executable)
    done = subprocess.run(
        [str(REPO / "benchmarks" / "gpu.sh"), "--device", "cpu", "--smoke", "--json", str(out), "--keep", str(tmp_path / "data")],
        capture_output=True, text=True, env=env, timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(out.read_text())
    train = figures["train"]
    assert train["bare_pairs_per_s"] > 0 and train["train_pairs_per_s"] > 0
    assert 0 < train["ratio"] < 10 and 0 <= train["data_wait_fraction"] <= 1
    assert train["train_flop_per_s"] > 0
    assert [row["precision"] for row in figures["embed"]][0] == "fp32"
    assert all(row["windows_per_s"] > 0 and row["first_call_s"] > 0 for row in figures["embed"])
    # The data were made by the l3net commands themselves, as the script promises.
    assert list((tmp_path / "data" / "shards").glob("*.tar")) and (tmp_path / "data" / "world" / "labels.csv").is_file()
    for heading in ("training (", "embedding (", "achieved FLOP/s"):
        assert heading in done.stdout
