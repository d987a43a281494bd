"""``l3net report RUN_DIR [--out report.html]``: one self-contained HTML page of a run."""

from __future__ import annotations

import argparse

from ..report import REPORT_FILE, write_report

HELP = "One self-contained HTML page: every evaluation table and picture, training curves, config"
DESCRIPTION = f"""Gather a run into one HTML page: every table of RUN_DIR/eval/*.json (this run's numbers
beside the paper's), every picture those results list, the training curves from RUN_DIR/log.jsonl
(loss and AVC accuracy against pairs seen) and the run's config.json. The page is a single file:
styles inline, pictures embedded, no scripts and nothing fetched, so it opens offline in any browser.
Pieces not there yet (no evaluations, no log) are said in the page.

RUN_DIR is a training run directory, or any directory whose eval/ folder evaluations wrote to
(their --out).

example:
  l3net report runs/small                 # writes runs/small/{REPORT_FILE}
  l3net report runs/small --out ~/small.html
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR", help="training run directory (or an evaluation --out directory)")
    parser.add_argument("--out", help=f"the HTML file to write (default: RUN_DIR/{REPORT_FILE})")
    parser.add_argument("--title", help="page title (default: 'l3net report: <run name>')")


def run(args: argparse.Namespace) -> int:
    summary = write_report(args.run_dir, args.out, title=args.title)
    parts = [
        f"{summary.results} evaluation(s)",
        f"{summary.tables} table(s)",
        f"{summary.pictures} picture(s)",
        "training curves" if summary.curves else "no training curves",
        "config" if summary.config else "no config",
    ]
    print(f"wrote {summary.path} ({', '.join(parts)})")
    if summary.missing:
        print(f"not in the run yet: {', '.join(summary.missing)}")
    return 0
