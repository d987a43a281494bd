"""Start-up cost of the command line: ``l3net --help`` and ``l3net embed --help``.

Measures the CPU time (user + system, steadier than wall-clock time on a shared machine) of each
command in a fresh interpreter, alternating with the baseline ``python -c "import torch"`` (what any
l3net command must pay), and lists which heavy libraries (scikit-learn, SciPy, matplotlib) each
loaded. ``--src DIR`` measures another checkout's ``src/`` (e.g. an older commit, extracted with
``git archive REV src | tar -x -C /tmp/old``) in the same run, for a before/after comparison.

    python benchmarks/cli_startup.py --rounds 5 [--src /tmp/old/src]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
from pathlib import Path

from _machine import describe_machine

HEAVY = ("sklearn", "scipy", "matplotlib")
CLI = (
    "import sys\nfrom l3net.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
    f"print('HEAVY', ','.join(m for m in {HEAVY!r} if m in sys.modules))"
)


def cpu_seconds(args: list[str], src: str) -> tuple[float, str]:
    env = dict(os.environ, PYTHONPATH=src)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True, check=True).stdout
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    heavy = next((line.split(" ", 1)[1] if " " in line else "" for line in out.splitlines() if line.startswith("HEAVY")), "")
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), heavy or "none"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--src", action="append", default=[], help="another src/ folder to measure beside this one")
    args = parser.parse_args()
    print(describe_machine())
    sources = {"this checkout": str(Path(__file__).resolve().parents[1] / "src"), **{s: s for s in args.src}}
    cases = {"import torch (baseline)": ["-c", "import torch"]}
    results: dict[tuple[str, str], list[float]] = {}
    heavy: dict[tuple[str, str], str] = {}
    for _ in range(args.rounds):
        for label, src in sources.items():
            for name, argv in [*cases.items(), ("l3net --help", ["-c", CLI, "--help"]),
                               ("l3net embed --help", ["-c", CLI, "embed", "--help"])]:
                seconds, loaded = cpu_seconds(argv, src)
                results.setdefault((label, name), []).append(seconds)
                heavy[(label, name)] = loaded
    for (label, name), values in results.items():
        base = statistics.median(results[(label, "import torch (baseline)")])
        median = statistics.median(values)
        print(f"{label:>16} | {name:<24} CPU {median:5.2f} s (median of {len(values)}; "
              f"{median / base:4.2f}x import torch) heavy: {heavy[(label, name)]}")


if __name__ == "__main__":
    main()
