"""What every evaluation shares: choosing the model, where results go, and the result file.

Results follow one schema (docs/DESIGN.md, "Evaluation outputs") so ``l3net report`` renders any
protocol without knowing it.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
from pathlib import Path
from typing import Any

import torch

from .. import __version__
from ..config import PRESETS
from ..errors import InputError
from ..fileio import atomic_path, ensure_dir, write_json
from ..models import CONFIG_FILE, L3Net, _read_config, build_model, load_model
from ..runtime import PRECISIONS, resolve_device

EVAL_DIRNAME = "eval"


def add_common_arguments(parser: argparse.ArgumentParser, *, model: bool = True) -> None:
    """--model, --out, --device, --precision, --batch-size, --seed: the same everywhere."""
    if model:
        parser.add_argument(
            "--model",
            required=True,
            help="a trained model or run directory, a preset name (random weights), or 'random' / "
            "'random:PRESET' / 'random:DIR' for the paper's untrained rows (the architecture of "
            "PRESET or DIR, default paper, with fresh random weights)",
        )
    parser.add_argument(
        "--out",
        help="directory whose eval/ folder receives the results (default: the --model run directory)",
    )
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default: auto)")
    parser.add_argument("--precision", default="fp32", choices=PRECISIONS, help="numeric precision (default: fp32)")
    parser.add_argument("--batch-size", type=int, default=32, help="inputs per forward pass (default: 32)")
    parser.add_argument("--seed", type=int, default=0, help="seed for random weights and sampling (default: 0)")


def load_eval_model(spec: str, *, device: str | torch.device | None = None, seed: int = 0) -> tuple[L3Net, str]:
    """A model and a label for tables from a ``--model`` value (see :func:`add_common_arguments`)."""
    if spec == "random" or spec.startswith("random:"):
        base = spec.partition(":")[2] or "paper"
        if base in PRESETS and not Path(base).exists():
            config, what = PRESETS[base], base
        else:
            config, what = _read_config(Path(base)), f"{Path(base).name} architecture"
        model = build_model(config, seed=seed).eval()
        label = f"random weights ({what})"
    elif not Path(spec).exists() and spec in PRESETS:
        model, label = build_model(spec, seed=seed).eval(), f"{spec} preset, random weights (seed {seed})"
    else:
        model, label = load_model(spec), Path(spec).resolve().name
    return model.to(resolve_device(device)), label


def is_run_dir(path: str | os.PathLike[str]) -> bool:
    return (Path(path) / CONFIG_FILE).is_file()


def eval_dir(model_spec: str | None, out: str | os.PathLike[str] | None) -> Path:
    """``OUT/eval`` when --out is given, else ``MODEL_DIR/eval``; created, writable, or a clear error."""
    if out is not None:
        return ensure_dir(Path(out) / EVAL_DIRNAME)
    if model_spec is not None and Path(model_spec).is_dir() and is_run_dir(model_spec):
        return ensure_dir(Path(model_spec) / EVAL_DIRNAME)
    raise InputError("pass --out DIR: the model is not a run directory, so there is no default place for results")


def write_result(directory: Path, protocol: str, result: dict[str, Any]) -> Path:
    """Write ``directory/<protocol>.json`` atomically, stamped with the time and l3net version."""
    payload = {"protocol": protocol, **result}
    payload.setdefault("created", _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    payload.setdefault("l3net_version", __version__)
    path = directory / f"{protocol}.json"
    write_json(path, payload)
    return path


def save_figure(figure: Any, path: str | os.PathLike[str], dpi: int = 110) -> Path:
    """Save a matplotlib figure as PNG atomically and close it."""
    import matplotlib.pyplot as plt

    path = Path(path)
    with atomic_path(path, suffix=".png") as tmp:
        figure.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png")
    plt.close(figure)
    return path
