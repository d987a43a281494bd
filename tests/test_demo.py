"""l3net demo end to end at a toy size (the default size is measured in BENCHMARKS.md, not here)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from l3net import load_model
from l3net.cli import main

TOY = ["--videos", "30", "--classes", "4", "--seconds", "2", "--steps", "3", "--batch-size", "8", "--no-progress"]


@pytest.mark.slow
def test_demo_writes_everything_into_one_folder_and_continues(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), *TOY]) == 0
    printed = capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    for line in ("everything is in", "test accuracy", "NMI", "localization.png", "report.html"):
        assert line in printed
    assert summary["train"]["steps"] == 3 and summary["train"]["pairs"] == 24
    avc = json.loads((out / "run" / "eval" / "avc.json").read_text())["metrics"]
    assert summary["test_avc_accuracy"] == avc["accuracy"] and summary["test_pairs"] == avc["pairs"] > 0
    right = summary["test_avc_accuracy"] * summary["test_pairs"]
    assert right == pytest.approx(round(right), abs=1e-6)  # a whole number of test pairs right
    assert summary["nmi"] == json.loads((out / "run" / "eval" / "cluster.json").read_text())["metrics"]["nmi"]
    assert set(summary["nmi"]) == {"vision", "audio"} and summary["cluster_k"] == 4
    assert min(summary["videos"].values()) >= 2
    for path in ("run/config.json", "run/model.safetensors", "run/last/model.safetensors", "run/checkpoint/state.pt",
                 "run/log.jsonl", "run/eval/avc.json", "run/eval/cluster.json", "run/report.html",
                 "localization.png", "localize/localize.json", "world/labels.csv", "shards/dataset.json"):
        assert (out / path).is_file(), path
    assert load_model(out / "run").config.name == "small"

    # Run again: every stage finds its work done (the run is complete) and the summary is rewritten.
    assert main(["demo", "--out", str(out), *TOY]) == 0
    assert "already at step 3" in capsys.readouterr().err
    assert json.loads((out / "summary.json").read_text())["test_avc_accuracy"] == summary["test_avc_accuracy"]


def test_demo_refuses_a_folder_of_other_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "notes.txt").write_text("mine\n")
    assert main(["demo", "--out", str(tmp_path), *TOY]) == 2
    err = capsys.readouterr().err
    assert "already holds other files (notes.txt)" in err and "Traceback" not in err
    assert main(["demo", "--out", str(tmp_path / "d"), "--videos", "0"]) == 2
    assert "--videos must be at least 1" in capsys.readouterr().err
