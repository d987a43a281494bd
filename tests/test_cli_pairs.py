"""l3net pairs: a picture of sampled pairs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from l3net.cli import main


def test_pairs_picture(synth_shards: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "pairs.png"
    assert main(["pairs", str(synth_shards), "--out", str(out), "--n", "4"]) == 0
    assert "preset small" in capsys.readouterr().out  # matched to the 112 px frames
    image = np.asarray(Image.open(out).convert("RGB"))
    assert image.shape[0] > 200 and image.shape[1] > 400 and image.std() > 10
    assert main(["pairs", str(synth_shards), "--out", str(tmp_path / "eval.png"), "--split", "test", "--eval", "--n", "1"]) == 0
    assert (tmp_path / "eval.png").stat().st_size > 1000
    assert not list(tmp_path.glob(".*tmp*"))


def test_pairs_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pairs", str(tmp_path / "nowhere"), "--out", str(tmp_path / "x.png")]) == 2
    assert "no such shard directory" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()
