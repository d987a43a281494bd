"""``l3net report``: one self-contained HTML page for a run directory.

The page holds every table of ``RUN_DIR/eval/*.json`` (rendered generically from the shared result
schema of docs/DESIGN.md, "Evaluation outputs", so the paper's numbers appear beside ours exactly as
each protocol put them), every picture those results list, the training curves drawn from
``RUN_DIR/log.jsonl`` and the run's ``config.json``. It is a single file: CSS inline, pictures as
base64 ``data:`` URIs, no scripts, no links outside the page, so it opens offline in any browser and
can be mailed or attached as is. Missing pieces (no evaluations yet, no log, no config, a result that
cannot be read) are said in the page, never fatal.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._version import __version__
from ..errors import InputError
from ..fileio import atomic_open, read_jsonl, remove_stale_temporaries
from ..models import CONFIG_FILE
from ..rundir import LOG_FILE
from ..evaluate import paper, registry
from .curves import curve_series, curves_png  # noqa: F401 - the report's training curves
from ..evaluate.result import EVAL_DIRNAME

REPORT_FILE = "report.html"
_IMAGE_TYPES = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)

CSS = """
body { font-family: -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1100px; padding: 0 1em; color: #222; line-height: 1.45; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: 0.2em;
margin-top: 2em; } h3 { margin-bottom: 0.3em; }
.meta { color: #666; font-size: 0.9em; }
table { border-collapse: collapse; margin: 0.6em 0 1.2em; font-size: 0.92em; }
caption { text-align: left; font-weight: 600; padding-bottom: 0.3em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; }
th { background: #f2f2f2; text-align: left; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
tbody tr:nth-child(even) { background: #fafafa; }
figure { margin: 1em 0; } figure img { max-width: 100%; height: auto; border: 1px solid #ddd; }
figcaption { color: #555; font-size: 0.9em; }
td.quoted { font-style: italic; color: #555; } td.quoted.num::after { content: " \\2020"; }
.legend { font-size: 0.9em; color: #444; border-left: 4px solid #9ab; padding: 0.2em 0.8em; }
.missing { background: #fff6e0; border-left: 4px solid #e0a000; padding: 0.4em 0.8em; }
pre { background: #f6f6f6; padding: 0.8em; overflow-x: auto; font-size: 0.85em; }
nav ul { columns: 2; } details { margin: 0.5em 0; }
"""


#: Said once above the tables: what the "paper" columns hold, so that no reader takes a quoted
#: baseline for the recipe recomputed in the "ours" column.
PAPER_LEGEND = (
    '<p class="legend">Columns headed <em>paper</em> hold the numbers published in the paper, and the column '
    f'<em>{html.escape(paper.SOURCE_COLUMN)}</em> says what each one is: the paper\'s own result (its protocol and '
    "networks, at its scale), or <em>quoted</em> (in italics, marked &dagger;): a published result of another "
    "work that the paper's table quotes, computed with its authors' own features, classifier and protocol. For "
    "example ESC-50's SVM-MFCC 39.6 % is Piczak's published clip-level baseline, not the MFCC recipe that the "
    "<em>ours</em> column recomputes on these splits.</p>"
)


# ------------------------------------------------------------------------------------------------
# reading the run directory
# ------------------------------------------------------------------------------------------------
@dataclass
class EvalResult:
    """One ``eval/<protocol>.json``: its data, or why it could not be read."""

    path: Path
    data: dict[str, Any] | None
    error: str | None = None

    @property
    def protocol(self) -> str:
        if self.data and isinstance(self.data.get("protocol"), str):
            return self.data["protocol"]
        return self.path.stem


def _protocol_rank(result: EvalResult) -> tuple[int, str]:
    return registry.rank(result.protocol)  # the paper's order (Table 1 to Section 3.5), then others by name


def read_results(eval_dir: Path) -> list[EvalResult]:
    """Every ``*.json`` of ``eval_dir`` (in the paper's order); unreadable ones carry an error."""
    results = []
    for path in sorted(eval_dir.glob("*.json")):
        if path.name.startswith("."):
            continue  # a temporary file of an atomic write
        try:
            with open(path, encoding="utf-8") as handle:
                data = json.load(handle)
        except (OSError, ValueError) as exc:
            results.append(EvalResult(path, None, f"not readable JSON ({exc})"))
            continue
        if not isinstance(data, dict):
            results.append(EvalResult(path, None, "not a result object (expected a JSON object)"))
            continue
        results.append(EvalResult(path, data))
    return sorted(results, key=_protocol_rank)


# ------------------------------------------------------------------------------------------------
# pictures
# ------------------------------------------------------------------------------------------------
def image_mime(data: bytes) -> str | None:
    """MIME type of PNG/JPEG/GIF/SVG bytes by their content, else None."""
    for magic, mime in _IMAGE_TYPES:
        if data.startswith(magic):
            return mime
    head = data[:512].lstrip().lower()
    if head.startswith(b"<svg") or (head.startswith(b"<?xml") and b"<svg" in data[:2048].lower()):
        return "image/svg+xml"
    return None


def data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


# ------------------------------------------------------------------------------------------------
# HTML
# ------------------------------------------------------------------------------------------------
def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def format_cell(value: Any) -> tuple[str, bool]:
    """``(text, is_number)`` of a table cell: numbers to 4 significant digits, None as a dash."""
    if value is None:
        return "\u2013", False
    if isinstance(value, bool):
        return ("yes" if value else "no"), False
    if isinstance(value, int):
        return str(value), True
    if isinstance(value, float):
        return (f"{value:.4g}" if math.isfinite(value) else str(value)), True
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False), False
    return str(value), False


def _slug(text: str, taken: set[str]) -> str:
    base = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "section"
    slug, n = base, 2
    while slug in taken:
        slug, n = f"{base}-{n}", n + 1
    taken.add(slug)
    return slug


def _paper_columns(columns: list[Any]) -> list[int]:
    return [i for i, c in enumerate(columns) if isinstance(c, str) and c.lower().startswith("paper")
            and c != paper.SOURCE_COLUMN]


def label_paper_numbers(table: dict[str, Any], protocol: str | None) -> dict[str, Any]:
    """``table`` with the column that says what each "paper" number is (:data:`paper.SOURCE_COLUMN`):
    as the protocol wrote it, or, for results written without it, from :func:`paper.source` by the
    row's method (its first cell). Tables without a "paper" column are returned as they are."""
    columns = list(table.get("columns") or [])
    wanted = _paper_columns(columns)
    if not wanted or paper.SOURCE_COLUMN in columns or protocol is None:
        return table
    rows = []
    for row in table["rows"]:
        cells = list(row) if isinstance(row, list) else [row]
        values = [cells[i] for i in wanted if i < len(cells) and cells[i] is not None]
        method = str(cells[0]) if cells else ""
        rows.append(cells + [paper.source(protocol, method, values[0] if values else None)])
    return {**table, "columns": columns + [paper.SOURCE_COLUMN], "rows": rows}


def render_table(table: Any, protocol: str | None = None) -> str:
    """One schema table ``{"title", "columns", "rows"}`` as HTML; a malformed one is said so. Each
    number of a "paper" column is labelled with what it is (:func:`label_paper_numbers`); those that
    another work published and the paper quotes are marked (class ``quoted``, a dagger)."""
    if not isinstance(table, dict) or not isinstance(table.get("rows"), list):
        return f'<p class="missing">A table that does not follow the result schema: {_e(json.dumps(table)[:300])}</p>'
    table = label_paper_numbers(table, protocol)
    columns = table.get("columns") or []
    paper_columns = set(_paper_columns(columns))
    source_column = columns.index(paper.SOURCE_COLUMN) if paper.SOURCE_COLUMN in columns else None
    out = ['<table class="result">']
    if table.get("title"):
        out.append(f"<caption>{_e(table['title'])}</caption>")
    if columns:
        out.append("<thead><tr>" + "".join(f"<th>{_e(c)}</th>" for c in columns) + "</tr></thead>")
    out.append("<tbody>")
    for row in table["rows"]:
        cells = row if isinstance(row, list) else [row]
        source = cells[source_column] if source_column is not None and source_column < len(cells) else None
        quoted = isinstance(source, str) and source.startswith("quoted")
        rendered = []
        for i, cell in enumerate(cells):
            text, numeric = format_cell(cell)
            classes = (["num"] if numeric else []) + (["quoted"] if quoted and (i in paper_columns or i == source_column) else [])
            rendered.append(f'<td class="{" ".join(classes)}">{_e(text)}</td>' if classes else f"<td>{_e(text)}</td>")
        out.append("<tr>" + "".join(rendered) + "</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


def render_figure(figure: Any, base: Path) -> tuple[str, bool]:
    """One schema figure ``{"path", "caption"}`` embedded as a data URI; ``(html, embedded)``."""
    if isinstance(figure, str):
        figure = {"path": figure}
    if not isinstance(figure, dict) or not isinstance(figure.get("path"), str):
        return f'<p class="missing">A figure entry that does not follow the result schema: {_e(figure)}</p>', False
    path = Path(figure["path"])
    path = path if path.is_absolute() else base / path
    caption = figure.get("caption") or path.name
    try:
        data = path.read_bytes()
    except OSError as exc:
        reason = "missing" if isinstance(exc, FileNotFoundError) else f"unreadable ({exc.strerror or exc})"
        return f'<p class="missing">Picture {_e(figure["path"])} is {_e(reason)}.</p>', False
    mime = image_mime(data)
    if mime is None:
        return f'<p class="missing">Picture {_e(figure["path"])} is not a PNG, JPEG, GIF or SVG image.</p>', False
    return (
        f'<figure><img src="{data_uri(data, mime)}" alt="{_e(caption)}" data-source="{_e(figure["path"])}">'
        f"<figcaption>{_e(caption)}</figcaption></figure>",
        True,
    )


_SKIP_FIELDS = {"protocol", "title", "tables", "figures", "metrics", "notes", "created", "l3net_version"}


def render_result(result: EvalResult, anchor: str, missing: list[str] | None = None) -> tuple[str, int, int]:
    """A section for one result; returns ``(html, tables rendered, pictures embedded)``.

    Pictures listed but not embedded (missing, not images) are appended to ``missing``.
    """
    if result.data is None:
        return (
            f'<section id="{anchor}"><h3>{_e(result.path.name)}</h3>'
            f'<p class="missing">{_e(result.path.name)}: {_e(result.error)}</p></section>',
            0,
            0,
        )
    data = result.data
    out = [f'<section id="{anchor}"><h3>{_e(data.get("title") or result.protocol)}</h3>']
    facts = [f"protocol <code>{_e(result.protocol)}</code>"]
    for key in ("model", "dataset"):
        if data.get(key):
            facts.append(f"{key}: {_e(data[key])}")
    if data.get("created"):
        facts.append(f"computed {_e(data['created'])}")
    if data.get("l3net_version"):
        facts.append(f"l3net {_e(data['l3net_version'])}")
    out.append(f'<p class="meta">{" &middot; ".join(facts)}</p>')
    other = {k: v for k, v in data.items() if k not in _SKIP_FIELDS and k not in ("model", "dataset")}
    tables = data.get("tables") or []
    n_tables = n_pictures = 0
    if not isinstance(tables, list):
        tables = [tables]
    for table in tables:
        out.append(render_table(table, result.protocol))
        n_tables += isinstance(table, dict) and isinstance(table.get("rows"), list)
    if not tables:
        out.append('<p class="missing">This result has no table.</p>')
    notes = data.get("notes")
    if notes:
        items = notes if isinstance(notes, list) else [notes]
        out.append("<ul>" + "".join(f"<li>{_e(n)}</li>" for n in items) + "</ul>")
    figures = data.get("figures") or []
    for figure in figures if isinstance(figures, list) else [figures]:
        text, embedded = render_figure(figure, result.path.parent)
        out.append(text)
        n_pictures += embedded
        if not embedded and missing is not None:
            name = figure.get("path") if isinstance(figure, dict) else figure
            missing.append(f"picture {result.path.name}: {name}")
    extra = {"metrics": data["metrics"]} if "metrics" in data else {}
    extra.update(other)
    if extra:
        dump = json.dumps(extra, indent=2, ensure_ascii=False, default=str)
        out.append(f"<details><summary>All numbers (JSON)</summary><pre>{_e(dump)}</pre></details>")
    out.append("</section>")
    return "\n".join(out), n_tables, n_pictures


@dataclass
class ReportSummary:
    """What :func:`write_report` put in the page."""

    path: Path
    results: int = 0
    tables: int = 0
    pictures: int = 0
    curves: bool = False
    config: bool = False
    missing: list[str] = field(default_factory=list)


def build_report(run_dir: str | os.PathLike[str], *, title: str | None = None) -> tuple[str, ReportSummary]:
    """The HTML text of the report of ``run_dir`` and a summary of what it holds (nothing written).

    The recipe: the evaluations, the training curves and the configuration, each a section (what is
    missing is said in it and listed in the summary), then the page around them."""
    run_dir = Path(run_dir)
    if not run_dir.exists():
        raise InputError(f"{run_dir}: no such run directory")
    if not run_dir.is_dir():
        raise InputError(f"{run_dir}: not a directory (pass a training run directory, or the --out of evaluations)")
    summary = ReportSummary(path=run_dir / REPORT_FILE)
    nav: list[tuple[str, str]] = []
    body = _evaluations_section(run_dir / EVAL_DIRNAME, summary, nav)
    body += _curves_section(run_dir / LOG_FILE, summary)
    nav.append(("training", "Training curves"))
    config_html, config = _config_section(run_dir / CONFIG_FILE, summary)
    body += config_html
    nav.append(("config", "Configuration"))

    name = title or f"l3net report: {run_dir.resolve().name}"
    facts = [f"run directory <code>{_e(run_dir.resolve())}</code>"]
    if isinstance(config, dict) and isinstance(config.get("model"), dict) and config["model"].get("name"):
        facts.append(f"preset <code>{_e(config['model']['name'])}</code>")
    facts.append(f"made {_e(_dt.datetime.now(_dt.timezone.utc).isoformat(timespec='seconds'))}")
    facts.append(f"l3net {_e(__version__)}")
    return _page(name, facts, summary.missing, nav, body), summary


def _evaluations_section(eval_path: Path, summary: ReportSummary, nav: list[tuple[str, str]]) -> list[str]:
    """Every result of ``eval/``, in the registry's order (each added to ``nav`` and ``summary``)."""
    results = read_results(eval_path) if eval_path.is_dir() else []
    body = ['<h2 id="evaluations">Evaluations</h2>']
    if results:
        body.append(PAPER_LEGEND)
    if not results:
        summary.missing.append("evaluations")
        body.append(
            f'<p class="missing">No evaluation results yet: {_e(eval_path)} holds no <code>*.json</code>. '
            "Run <code>l3net eval PROTOCOL --model RUN_DIR ...</code> "
            f"({', '.join(registry.NAMES)}) and make this report again.</p>"
        )
    taken: set[str] = set()
    for result in results:
        anchor = _slug(result.protocol, taken)
        nav.append((anchor, (result.data or {}).get("title") or result.protocol))
        text, n_tables, n_pictures = render_result(result, anchor, summary.missing)
        body.append(text)
        if result.data is None:
            summary.missing.append(f"{result.path.name} (unreadable)")
        summary.results += 1
        summary.tables += n_tables
        summary.pictures += n_pictures
    return body


def _curves_section(log_path: Path, summary: ReportSummary) -> list[str]:
    """The training curves drawn from the run's log, or why there are none."""
    body = ['<h2 id="training">Training curves</h2>']
    if not log_path.is_file():
        summary.missing.append("training log")
        body.append(f'<p class="missing">No training log ({_e(log_path.name)} is missing): nothing to draw.</p>')
        return body
    log = read_jsonl(log_path)
    png = curves_png(log.records)
    if png is None:
        summary.missing.append("training curves")
        body.append(
            f'<p class="missing">{_e(log_path.name)} has {len(log.records)} records but no loss or accuracy '
            "against pairs seen (or steps) to draw.</p>"
        )
    else:
        summary.curves = True
        body.append(
            f'<figure><img src="{data_uri(png, "image/png")}" alt="training curves" data-source="{LOG_FILE}">'
            f"<figcaption>Loss and AVC accuracy (chance 0.5, dotted) from {len(log.records)} records of "
            f"{_e(log_path.name)}.</figcaption></figure>"
        )
    if log.bad_lines:
        shown = ", ".join(map(str, log.bad_lines[:10])) + (" ..." if len(log.bad_lines) > 10 else "")
        body.append(f'<p class="meta">{len(log.bad_lines)} unreadable line(s) of the log skipped (line {shown}).</p>')
    return body


def _config_section(config_path: Path, summary: ReportSummary) -> tuple[list[str], Any]:
    """The run's ``config.json`` as it is (and its contents, None when missing or unreadable)."""
    body = ['<h2 id="config">Configuration</h2>']
    if not config_path.is_file():
        summary.missing.append("config")
        body.append(f'<p class="missing">No {_e(CONFIG_FILE)}: this directory is not a run or model directory.</p>')
        return body, None
    try:
        with open(config_path, encoding="utf-8") as handle:
            config = json.load(handle)
    except (OSError, ValueError) as exc:
        summary.missing.append("config")
        body.append(f'<p class="missing">{_e(config_path.name)} is not readable JSON ({_e(exc)}).</p>')
        return body, None
    summary.config = True
    body.append(f"<pre>{_e(json.dumps(config, indent=2, ensure_ascii=False))}</pre>")
    return body, config


def _page(name: str, facts: list[str], missing: list[str], nav: list[tuple[str, str]], body: list[str]) -> str:
    """The whole page: head, title, facts, what is missing, the table of contents, the sections."""
    missing_html = f'<p class="missing">Not in this run yet: {_e(", ".join(missing))} (see below).</p>' if missing else ""
    toc = "".join(f'<li><a href="#{a}">{_e(t)}</a></li>' for a, t in nav)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(name)}</title>
<style>{CSS}</style>
</head>
<body>
<h1>{_e(name)}</h1>
<p class="meta">{" &middot; ".join(facts)}</p>
<p>Look, Listen and Learn (Arandjelovi&#263; &amp; Zisserman, ICCV 2017) reproduced with l3net. Each table
shows this run's numbers beside the paper's, as the evaluation wrote them.</p>
{missing_html}
<nav><ul>{toc}</ul></nav>
{chr(10).join(body)}
</body>
</html>
"""


def write_report(
    run_dir: str | os.PathLike[str], out: str | os.PathLike[str] | None = None, *, title: str | None = None
) -> ReportSummary:
    """Write the report of ``run_dir`` to ``out`` (default ``RUN_DIR/report.html``), atomically."""
    page, summary = build_report(run_dir, title=title)
    summary.path = Path(out) if out is not None else Path(run_dir) / REPORT_FILE
    if summary.path.is_dir():
        summary.path = summary.path / REPORT_FILE
    remove_stale_temporaries(summary.path.parent, [summary.path.name])  # of an earlier run killed mid-write
    with atomic_open(summary.path, "w", encoding="utf-8") as handle:
        handle.write(page)
    return summary
