"""What every ``l3net eval`` protocol shares on the command line: the common options, where the
results go and printing a result (the model spec is :func:`l3net.modelspec.resolve_model`'s)."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from ...errors import InputError
from ...fileio import ensure_dir
from ...runtime import PRECISIONS

if TYPE_CHECKING:
    from ...evaluate.result import Result

#: The folder of a run directory (or of ``--out``) that receives the results (evaluate.result.EVAL_DIRNAME).
EVAL_DIRNAME = "eval"


def config_defaults(config_class: type) -> dict[str, Any]:
    """The defaults of a protocol's settings dataclass by field name: options read their defaults
    here, so the dataclass stays the one home of each (as cli/train.py reads TrainConfig's)."""
    return {f.name: f.default for f in dataclasses.fields(config_class) if f.default is not dataclasses.MISSING}


def add_common_arguments(parser: argparse.ArgumentParser, config_class: type, *, model: bool = True) -> None:
    """--model, --out, --device, --precision, --batch-size, --seed: the same everywhere; the defaults of
    --precision, --batch-size and --seed are those of ``config_class`` (the protocol's settings)."""
    defaults = config_defaults(config_class)
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
    parser.add_argument("--precision", default=defaults["precision"], choices=PRECISIONS,
                        help=f"numeric precision (default: {defaults['precision']})")
    parser.add_argument("--batch-size", type=int, default=defaults["batch_size"],
                        help=f"inputs per forward pass (default: {defaults['batch_size']})")
    parser.add_argument("--seed", type=int, default=defaults["seed"],
                        help=f"seed for random weights and sampling (default: {defaults['seed']}; the random-weights "
                        "reference row uses seed + 1000)")


def add_random_seeds_argument(parser: argparse.ArgumentParser, config_class: type, *,
                              random_model_only: bool = False) -> None:
    """--random-seeds: how many random-weights networks the reference row averages (default: the
    ``random_seeds`` field of ``config_class``). ``random_model_only``: the protocol has that row only
    when the model is random itself (``eval sound``)."""
    default = config_defaults(config_class)["random_seeds"]
    if random_model_only:
        text = (f"with a random --model (random, random:PRESET|RUN_DIR, a preset name): random networks averaged in "
                f"the random-weights row, reported as mean +- std and min-max with their seeds (default: {default}); "
                "weights from --seed, --seed + 1, ... Each costs one more pass over the data. A trained model's "
                "run has no such row: run again with --model random:RUN_DIR for it")
    else:
        text = (f"random-weights networks averaged in the untrained reference row, reported as mean +- std and "
                f"min-max with their seeds (default: {default}); weights from --seed + 1000, + 1001, ... (with "
                "--model random: --seed, --seed + 1, ...). Each costs one more pass of a random network over the data")
    parser.add_argument("--random-seeds", type=int, default=default, metavar="N", help=text)


def is_run_dir(path: str | os.PathLike[str]) -> bool:
    from ...models import CONFIG_FILE

    return (Path(path) / CONFIG_FILE).is_file()


def eval_dir(model_spec: str | None, out: str | os.PathLike[str] | None, *, create: bool = True) -> Path:
    """``OUT/eval`` when --out is given, else ``MODEL_DIR/eval``; created (unless ``create`` is False),
    writable, or a clear error."""
    if out is not None:
        path = Path(out) / EVAL_DIRNAME
    elif model_spec is not None and Path(model_spec).is_dir() and is_run_dir(model_spec):
        path = Path(model_spec) / EVAL_DIRNAME
    else:
        raise InputError("pass --out DIR: the model is not a run directory, so there is no default place for results")
    return ensure_dir(path) if create else path


def print_result(result: "Result", file: TextIO | None = None) -> None:
    """A result's tables and notes as plain text."""
    file = file or sys.stdout
    for table in result.tables:
        print(table.get("title", ""), file=file)
        cells = [[("-" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v)) for v in row]
                 for row in [table["columns"], *table["rows"]]]
        widths = [max(len(r[i]) for r in cells) for i in range(len(cells[0]))]
        for row in cells:
            print("  " + "  ".join(v.ljust(w) for v, w in zip(row, widths)), file=file)
    for note in result.notes:
        print(f"note: {note}", file=file)


def write_and_report(out: Path, result: "Result", *, figures: bool = True) -> Path:
    """Write ``result`` into ``out`` (an eval/ folder), print its tables and where it went."""
    from ...evaluate.result import write_result

    path = write_result(out, result, figures=figures)
    print_result(result)
    pictures = [str(out / spec.name) for spec in result.figures()] if figures else []
    print(f"wrote {path}" + (f"; pictures: {', '.join(pictures)}" if pictures else ""))
    return path


def say(message: str) -> None:
    """A line for the user on stderr (warnings, skipped files)."""
    print(message, file=sys.stderr)


def positive(name: str, value: Any, low: int | float = 1) -> None:
    """An :class:`InputError` unless ``value >= low``."""
    if value < low:
        raise InputError(f"--{name} must be at least {low}, got {value}")
