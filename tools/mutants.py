"""A mutation check of the test suite: does it catch plausible bugs?

Each mutant of ``tools/mutant_list.py`` is one small, plausible bug in the core (a pair sampler
rule, the augmentation, int16 audio, the spectrogram, the model, framing, resume, checkpoints and
the data fingerprint, the speed figures, z-scoring, the per-recording mean, the folds, the random
twin, NMI, AVC scoring, the one input preparation, the inference buckets, the audio clock, format
and size changes mid-stream, prepare's clock). For each, the tool copies ``src/`` and ``tests/``
(with ``pyproject.toml`` and the docs the tests read) to a temporary folder, applies the bug there
(the repository is never touched), and runs the tests that cover it, with ``PYTHONPATH`` pointing
at the copy. A mutant is *caught* when a test fails, *survived* when they all pass.

    make mutants                                  # all mutants, from the working tree
    python tools/mutants.py --head --baseline     # from the last commit; check each selection passes unmutated first
    python tools/mutants.py --only svm-z-score-refit-on-test --keep

A mutant's text must occur exactly once in its file; when the code has moved, it is looked for in
every file under src/ and applied where it occurs once; when it occurs nowhere the mutant is *stale*
(update its text). Results go to stdout and, with ``--markdown FILE``, to a Markdown table (see
docs/TESTING.md, where the last run is recorded and every survivor explained).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mutant_list import MUTANTS, Mutant  # tools/ is on sys.path when this script runs

REPO = Path(__file__).resolve().parents[1]
#: What a copy needs besides src/ and tests/ (tests read the README's examples and the design doc).
COPIED_FILES = ("pyproject.toml", "README.md", "BENCHMARKS.md")
COPIED_DIRS = ("src", "tests", "docs")


# ------------------------------------------------------------------------------------------------
def copy_tree(dest: Path, from_head: bool) -> None:
    """The repository's sources and tests at ``dest``: the working tree, or the last commit."""
    dest.mkdir(parents=True)
    if from_head:
        paths = [p for p in (*COPIED_DIRS, *COPIED_FILES)
                 if subprocess.run(["git", "cat-file", "-e", f"HEAD:{p}"], cwd=REPO, capture_output=True).returncode == 0]
        archive = subprocess.run(["git", "archive", "HEAD", *paths], cwd=REPO, capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
        return
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache", "*.egg-info")
    for name in COPIED_DIRS:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, dest / name, ignore=ignore)
    for name in COPIED_FILES:
        if (REPO / name).is_file():
            shutil.copy2(REPO / name, dest / name)


def apply(mutant: Mutant, root: Path) -> str | None:
    """Apply the mutant under ``root``; returns the file changed (relative), or None when stale."""
    candidates = [root / mutant.path] + sorted((root / "src").rglob("*.py"))
    for path in candidates:
        if not path.is_file():
            continue
        text = path.read_text(encoding="utf-8")
        if text.count(mutant.old) == 1:
            path.write_text(text.replace(mutant.old, mutant.new), encoding="utf-8")
            return str(path.relative_to(root))
    return None


def run_tests(root: Path, tests: tuple[str, ...], timeout: float) -> tuple[int, str, float]:
    env = {**os.environ, "PYTHONPATH": str(root / "src"), "PYTHONDONTWRITEBYTECODE": "1"}
    env.setdefault("L3NET_TEST_DATA", str(REPO.parent / "shared" / "data"))
    command = [sys.executable, "-m", "pytest", "-q", "-rfE", "-p", "no:cacheprovider", "-o", "addopts=", *tests]
    start = time.perf_counter()
    try:
        done = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=timeout)
        return done.returncode, done.stdout + done.stderr, time.perf_counter() - start
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or b"").decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        return -1, out, time.perf_counter() - start


def failures(output: str) -> list[str]:
    """The tests that failed (pytest's -rfE summary lines)."""
    return re.findall(r"^(?:FAILED|ERROR) (\S+)", output, re.MULTILINE)


def first_failure(output: str) -> str:
    failed = failures(output)
    return failed[0] + (f" (+{len(failed) - 1} more)" if len(failed) > 1 else "") if failed else ""


def verdict(code: int) -> str:
    # pytest: 0 all passed, 1 some failed, 2 interrupted, 3 internal error, 4 usage error, 5 no tests
    return {0: "SURVIVED", 1: "caught", 5: "no tests selected", -1: "timeout"}.get(code, f"error (pytest exit {code})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run only these mutants")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    parser.add_argument("--check", action="store_true", help="only check that every mutant still applies (no tests)")
    parser.add_argument("--head", action="store_true", help="mutate the last commit, not the working tree")
    parser.add_argument("--baseline", action="store_true",
                        help="first run each mutant's tests on the unmutated copy (they must pass)")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per test run (default: 900)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary copies (printed)")
    parser.add_argument("--markdown", metavar="FILE", help="also write the results as a Markdown table")
    args = parser.parse_args(argv)

    mutants = [m for m in MUTANTS if not args.only or m.name in args.only]
    unknown = set(args.only or ()) - {m.name for m in MUTANTS}
    if unknown:
        parser.error(f"unknown mutant(s): {', '.join(sorted(unknown))}; see --list")
    if args.list:
        for m in MUTANTS:
            print(f"{m.name:38s} {m.path:32s} {m.bug}")
        return 0

    # A TERM (make's or a user's kill) unwinds like ^C: the running tests are killed, the copies removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    work = Path(tempfile.mkdtemp(prefix="l3net-mutants-"))
    rows = []
    try:
        pristine = work / "pristine"
        copy_tree(pristine, args.head)
        baseline: dict[tuple[str, ...], str] = {}
        for i, mutant in enumerate(mutants, 1):
            print(f"[{i}/{len(mutants)}] {mutant.name}: {mutant.bug}", flush=True)
            if args.baseline and mutant.tests not in baseline:
                code, output, seconds = run_tests(pristine, mutant.tests, args.timeout)
                baseline[mutant.tests] = "passes" if code == 0 else f"FAILS unmutated ({verdict(code)}: {first_failure(output)})"
                print(f"    baseline: {baseline[mutant.tests]} ({seconds:.0f} s)", flush=True)
            root = work / mutant.name
            shutil.copytree(pristine, root)
            where = apply(mutant, root)
            if args.check:
                print(f"    applies to {where}" if where else "    STALE", flush=True)
                rows.append((mutant, "applies" if where else "stale", where or "", "", 0.0))
                shutil.rmtree(root, ignore_errors=True)
                continue
            if where is None:
                rows.append((mutant, "stale", "", "", 0.0))
                print("    stale: its text is in no file under src/ (update the mutant)", flush=True)
                continue
            code, output, seconds = run_tests(root, mutant.tests, args.timeout)
            status = verdict(code)
            if args.baseline and baseline[mutant.tests] != "passes":
                status += " (baseline fails: not meaningful)"
            by = first_failure(output) if code == 1 else ""
            rows.append((mutant, status, where, by, seconds))
            print(f"    {status}{' by ' + by if by else ''} ({seconds:.0f} s)", flush=True)
            if code not in (0, 1):
                print("    " + "\n    ".join(output.strip().splitlines()[-15:]), flush=True)
            if not args.keep:
                shutil.rmtree(root, ignore_errors=True)
    finally:
        if args.keep:
            print(f"copies kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    if args.check:
        return 0 if all(r[1] == "applies" for r in rows) else 1
    caught = sum(r[1] == "caught" for r in rows)
    survived = [r[0].name for r in rows if r[1].startswith("SURVIVED")]
    print(f"\n{caught} of {len(rows)} mutants caught" + (f"; survived: {', '.join(survived)}" if survived else ""))
    if args.markdown:
        lines = ["| mutant | the bug | result | first test that failed | seconds |", "|---|---|---|---|---|"]
        for mutant, status, where, by, seconds in rows:
            lines.append(f"| `{mutant.name}` | {mutant.bug} (`{where or mutant.path}`) | {status} | "
                         f"{'`' + by + '`' if by else ''} | {seconds:.0f} |")
        Path(args.markdown).write_text("\n".join(lines) + "\n", encoding="utf-8")
        print(f"wrote {args.markdown}")
    return 0 if not survived and all(r[1] == "caught" for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
