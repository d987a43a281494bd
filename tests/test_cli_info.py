"""``l3net info``: config, parameter counts, Figure 2's layer sizes, FLOPs; text and JSON."""

from __future__ import annotations

import json

from l3net.cli import main
from l3net.models import build_model

import signals as S


def test_paper_text(capsys):
    assert main(["info", "paper"]) == 0
    out = capsys.readouterr().out
    model = build_model("paper")
    assert "preset 'paper' (random weights" in out
    assert f"audio tower   {model.num_parameters('audio'):>12,}" in out
    assert f"total         {model.num_parameters():>12,}" in out
    # Figure 2's rows for the audio tower (257 x 199 in) and the vision tower (224 x 224 in)
    assert "pool1     64 x 112 x 112" in out
    assert "64 x 128 x 99" in out and "512 x 32 x 24" in out and "512 x 28 x 28" in out
    assert "GFLOPs" in out and "6144-D" in out and "8192-D" in out


def test_json_matches_the_model(tmp_path, capsys):
    net = build_model(S.tiny_config())
    net.save(tmp_path / "m", extra_config={"train": {"steps": 12}})
    assert main(["info", str(tmp_path / "m"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["parameters"]["total"] == net.num_parameters()
    assert info["parameters"]["vision"] + info["parameters"]["audio"] + info["parameters"]["head"] == net.num_parameters()
    shapes = {size: {k: tuple(v) for k, v in layers.items()} for size, layers in info["output_shapes"].items()}
    assert shapes == net.output_shapes()
    assert info["flops_per_pair"] == net.flops_per_pair()
    assert info["config"]["name"] == "tiny" and info["extra_config"] == {"train": {"steps": 12}}
    assert info["transfer"]["audio"] == {"layer": "conv4_2_prerelu", "dim": 16 * 12}
    assert main(["info", str(tmp_path / "m")]) == 0
    assert '"steps": 12' in capsys.readouterr().out


def test_bad_model(tmp_path, capsys):
    assert main(["info", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert "neither a preset" in err and "Traceback" not in err
    (tmp_path / "half").mkdir()
    build_model(S.tiny_config()).save(tmp_path / "half")
    (tmp_path / "half" / "model.safetensors").write_bytes(b"\x00" * 40)
    assert main(["info", str(tmp_path / "half")]) == 2
    assert "corrupt" in capsys.readouterr().err
