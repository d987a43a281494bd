"""``l3net info``: what a model is: its config, size, layer output sizes and cost."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..config import PRESETS
from ..embed import embedding_size
from ..models import CONFIG_FILE, L3Net
from ..modelspec import load_model
from ..fileio import read_json

HELP = "Show a model's config, parameter counts, layer output sizes and FLOPs"
DESCRIPTION = """Describe an L3-Net: a preset (paper, small) or a saved model / training run directory.

Prints the model config (the towers, input sizes, the spectrogram settings), the parameter count of
each tower and of the fusion head, the output size of every layer at the model's input sizes (the
paper's Figure 2 for the paper preset), the size of the embeddings and transfer features, and the
forward cost per image-audio pair (FLOPs, a multiply-add counting 2). --json prints the same as
JSON for scripts.

examples:
  l3net info paper
  l3net info runs/my_run --json
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODEL", help="a preset name (paper, small, openl3-mel256...), a model / run directory, or openl3:NAME")
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")


def describe(model: L3Net, source: str) -> dict[str, Any]:
    """Everything ``l3net info`` shows, as plain data."""
    c = model.config
    params = {part: model.num_parameters(part) for part in ("vision", "audio", "head")}
    params["total"] = model.num_parameters()
    shapes = {
        size: {layer: list(shape) for layer, shape in layers.items()} for size, layers in model.output_shapes().items()
    }
    emb = model.vision.embedding_layer
    return {
        "source": source,
        "config": c.to_dict(),
        "parameters": params,
        "flops_per_pair": model.flops_per_pair(),
        "output_shapes": shapes,
        "embedding_dim": c.embedding_dim,
        "transfer": {
            modality: {"layer": model.transfer_layer(modality), "dim": embedding_size(model, model.tower(modality).last_conv, modality)}
            for modality in ("audio", "vision")
        },
        "embedding_layer": emb,
        "spectrogram_shape": list(c.spectrogram_shape),
        "clip_samples": c.clip_samples,
        "absent": sorted(model.absent),
    }


def _source(spec: str, model: L3Net) -> tuple[str, dict[str, Any]]:
    path = Path(spec)
    if model.directory is None and spec in PRESETS:
        return f"preset '{spec}' (random weights, seed 0)", {}
    # the directory load_model read (for openl3:NAME, the converted model in the cache)
    directory = model.directory if model.directory is not None else path.parent if path.is_file() else path
    data = read_json(directory / CONFIG_FILE)
    extra = {k: v for k, v in data.items() if k not in ("model", "architecture", "l3net_format")}
    return f"model directory {directory.resolve()}", extra


def _fmt_flops(value: int) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if value >= scale:
            return f"{value / scale:.2f} {unit}FLOPs"
    return f"{value} FLOPs"


def _fmt_shape(shape: list[int]) -> str:
    return " x ".join(str(s) for s in shape)


def _render(info: dict[str, Any], extra: dict[str, Any]) -> str:
    lines = [f"L3-Net: {info['source']}", "", "config:"]
    for key, value in info["config"].items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in value.items())
        elif isinstance(value, (list, tuple)):
            value = ", ".join(str(v) for v in value)
        lines.append(f"  {key:<20} {value}")
    p = info["parameters"]
    lines += [
        "",
        "parameters:",
        f"  vision tower  {p['vision']:>12,}",
        f"  audio tower   {p['audio']:>12,}",
        f"  fusion head   {p['head']:>12,}" + ("  (absent: none was published or trained)" if "head" in info["absent"] else ""),
        f"  total         {p['total']:>12,}",
        "",
        "forward FLOPs per pair (multiply-add = 2):",
    ]
    for part in ("vision", "audio", "head", "total"):
        lines.append(f"  {part:<12}  {_fmt_flops(info['flops_per_pair'][part])}")
    lines += ["", "layer output sizes (channels x height x width; height = frequency for audio):"]
    columns = list(info["output_shapes"])
    layers = list(info["output_shapes"][columns[0]])
    width = max(18, *(len(c) + 2 for c in columns))
    lines.append("  " + "layer".ljust(10) + "".join(c.ljust(width) for c in columns))
    for layer in layers:
        row = "".join(_fmt_shape(info["output_shapes"][c][layer]).ljust(width) for c in columns)
        lines.append(f"  {layer:<10}{row}")
    t = info["transfer"]
    lines += [
        "",
        f"embedding: {info['embedding_layer']}, {info['embedding_dim']}-D (audio and images)",
        f"transfer features: audio {t['audio']['layer']} max-pooled, {t['audio']['dim']}-D; "
        f"images {t['vision']['layer']} max-pooled, {t['vision']['dim']}-D",
        f"audio input: {info['clip_samples']} samples (48 kHz) -> spectrogram {_fmt_shape(info['spectrogram_shape'])}",
    ]
    if extra:
        lines += ["", "also in config.json:"]
        lines += ["  " + line for line in json.dumps(extra, indent=2, default=str).splitlines()]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    model = load_model(args.model)  # validates the files, not only the config
    source, extra = _source(args.model, model)
    info = describe(model, source)
    if args.json:
        print(json.dumps({**info, "extra_config": extra}, indent=2, default=str))
    else:
        print(_render(info, extra))
    return 0
