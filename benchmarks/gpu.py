"""The one-shot GPU check's stages and report, run by ``benchmarks/gpu.sh OUTDIR`` (see it for how).

    python benchmarks/gpu.py STAGE --work DIR [--device cuda] [--smoke] [--workers N]
    python benchmarks/gpu.py report --work DIR --out OUTDIR

STAGE is one of data, train, loader, numerics, embed (benchmarks/gpu_stages.py says what each
measures); each writes ``DIR/STAGE.json``. ``report`` gathers them with each stage's exit status and
time (``DIR/status``, written by gpu.sh) into ``OUTDIR/gpu.json`` and prints the figures against the
targets of issue #23: on one H100, ``l3net train`` >= 3,000 pairs/s in bf16 and >= 0.9 x the bare step,
the loader >= 4,000 pairs/s with at most 15 workers, fp32 embeddings within 1e-5 of the CPU's.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/: _machine, gpu_stages, train

STAGES = ("data", "train", "loader", "numerics", "embed")

#: The targets of issue #23 (one H100, paper preset, bf16).
TARGETS = {"train_pairs_per_s": 3000.0, "train_ratio_to_bare": 0.9, "loader_pairs_per_s": 4000.0,
           "fp32_rel_err": 1e-5}


def read_status(work: Path) -> dict[str, dict[str, Any]]:
    """gpu.sh's ``name rc seconds limit`` lines -> {name: {...}}; rc 124/137: stopped at its limit."""
    status: dict[str, dict[str, Any]] = {}
    path = work / "status"
    if path.is_file():
        for line in path.read_text().splitlines():
            name, rc, seconds, limit = line.split()
            state = "ok" if rc == "0" else ("timed out" if rc in ("124", "137") else f"failed (exit {rc})")
            status[name] = {"state": state, "exit": int(rc), "seconds": float(seconds), "limit_s": float(limit)}
    return status


def gather(work: Path) -> dict[str, Any]:
    """Every stage's figures and status in one dictionary (what ``OUTDIR/gpu.json`` holds)."""
    from _machine import describe_machine

    report: dict[str, Any] = {"machine": describe_machine(), "stages": read_status(work)}
    try:
        import torch

        if torch.cuda.is_available():
            from gpu_stages import peak_bf16

            name = torch.cuda.get_device_name()
            report.update(device=name, peak_bf16_flop_per_s=peak_bf16(name))
    except Exception as exc:  # noqa: BLE001 - the report is written whatever the device says
        report["device_error"] = repr(exc)
    for stage in STAGES:
        path = work / f"{stage}.json"
        if path.is_file():
            report[stage] = json.loads(path.read_text())
    report["targets"] = TARGETS
    return report


def verdicts(report: dict[str, Any]) -> list[str]:
    """One line per target: the figure, the target, and whether it was met (or why there is no figure)."""
    lines = []

    def line(label: str, value: float | None, target: float, higher: bool, fmt: str) -> None:
        if value is None:
            lines.append(f"  {label:<36} no figure (stage not finished)")
            return
        met = value >= target if higher else value <= target
        lines.append(f"  {label:<36} {format(value, fmt):>12}  target {'>=' if higher else '<='} "
                     f"{format(target, fmt)}: {'met' if met else 'NOT met'}")

    train = report.get("train", {})
    line("l3net train pairs/s", train.get("train", {}).get("pairs_per_s"), TARGETS["train_pairs_per_s"], True, ",.0f")
    line("l3net train / bare step", train.get("train", {}).get("ratio_to_bare"), TARGETS["train_ratio_to_bare"], True, ".3f")
    loader = report.get("loader", {}).get("loader") or []
    best = max((row["pairs_per_s"] for row in loader if row["workers"] <= 15), default=None)
    line("loader pairs/s (<= 15 workers)", best, TARGETS["loader_pairs_per_s"], True, ",.0f")
    errors = report.get("numerics", {}).get("embeddings_vs_cpu", {}).get("errors", {}).get("fp32")
    line("fp32 embeddings vs CPU (max rel err)", max(errors.values()) if errors else None, TARGETS["fp32_rel_err"],
         False, ".1e")
    return lines


def write_report(work: Path, out: Path, smoke: bool = False) -> dict[str, Any]:
    from l3net.fileio import write_json

    report = gather(work)
    report["smoke"] = smoke
    write_json(out / "gpu.json", report)
    print(report["machine"])
    for name in STAGES:
        state = report["stages"].get(name)
        print(f"  stage {name:<9} " + (f"{state['state']} in {state['seconds']:.0f} s (limit {state['limit_s']:.0f} s)"
                                      if state else "not run"))
    print("targets (issue #23; one H100, paper preset, bf16)" + (": a --smoke run (toy sizes), not comparable" if smoke else ":"))
    for text in verdicts(report):
        print(text)
    print(f"figures: {out / 'gpu.json'}; log: {out / 'gpu.log'}")
    return report


def run_stage(args: argparse.Namespace) -> None:
    """The stage ``args.stage`` with the sizes ``--smoke`` picks; figures to ``WORK/STAGE.json``."""
    from gpu_numerics import stage_embed, stage_numerics
    from gpu_stages import Results, Sizes, stage_data, stage_loader, stage_train

    from l3net.runtime import cpu_has_native_bf16, resolve_device

    device = resolve_device(args.device)
    sizes = Sizes.choose(args.smoke)
    work = Path(args.work)
    results = Results(work / f"{args.stage}.json")
    precision = "bf16" if device.type == "cuda" or cpu_has_native_bf16() else "fp32"
    print(f"== {args.stage} ({device}, preset {sizes.preset}{', smoke sizes' if args.smoke else ''})", flush=True)
    results.put("sizes", dataclasses.asdict(sizes))
    if args.stage == "data":
        stage_data(work, sizes, args.workers, results)
    elif args.stage == "train":
        stage_train(work, sizes, device, precision, args.train_workers, results)
    elif args.stage == "loader":
        stage_loader(work, sizes, device, results)
    elif args.stage == "numerics":
        stage_numerics(sizes, device, results)
    elif args.stage == "embed":
        stage_embed(sizes, device, results)
    else:
        raise ValueError(f"unknown stage {args.stage!r}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stage", choices=(*STAGES, "report"))
    parser.add_argument("--work", required=True, help="the check's working folder (shards, runs, stage figures)")
    parser.add_argument("--out", help="report: the folder for gpu.json")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--smoke", action="store_true", help="toy sizes: checks the script end to end on a CPU")
    parser.add_argument("--workers", type=int, default=None,
                        help="processes making the data (default: cores - 1, at most 15)")
    parser.add_argument("--train-workers", type=int, default=None,
                        help="l3net train's loader workers in the train stage (default: l3net train's own default)")
    args = parser.parse_args()
    if args.stage == "report":
        if not args.out:
            parser.error("report needs --out")
        write_report(Path(args.work), Path(args.out), args.smoke)
        return 0
    if args.workers is None:
        args.workers = 1 if args.smoke else max(1, min(15, len(os.sched_getaffinity(0)) - 1))
    run_stage(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
