"""l3net report: one self-contained HTML page, checked statically and rendered in headless Chromium."""

from __future__ import annotations

import html.parser
import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from l3net.cli import main
from l3net.errors import InputError, OutputError
from l3net.report import render as report
from l3net.evaluate.result import save_figure, write_payload
from l3net.models import build_model


def _figure(path, seed):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(3, 2))
    ax.imshow(np.random.default_rng(seed).random((8, 8)))
    return save_figure(fig, path)


@pytest.fixture
def run_dir(tmp_path):
    """A hand-made run: model files, a log (with a line cut by a kill), and three evaluation results."""
    run = tmp_path / "run"
    build_model("small", seed=0).save(run, extra_config={"train": {"steps": 100, "batch_size": 16}})
    with open(run / "log.jsonl", "w") as handle:
        for step in range(1, 41):
            # the records of l3net train's log.jsonl
            handle.write(json.dumps({"event": "train", "step": step, "pairs": 16 * step, "loss": 0.7 / step ** 0.3,
                                     "accuracy": 0.5 + step / 100, "lr": 1e-4, "pairs_per_s": 40.0}) + "\n")
            if step % 10 == 0:
                handle.write(json.dumps({"event": "val", "step": step, "pairs": 16 * step, "val_loss": 0.6,
                                         "val_accuracy": 0.5 + step / 120, "val_pairs": 64, "best": True}) + "\n")
        handle.write('{"event": "train", "step": 41, "pai')  # killed mid-line
    ev = run / "eval"
    ev.mkdir()
    _figure(ev / "sound_confusion.png", 0)
    _figure(ev / "cluster_tsne.png", 1)
    write_payload(ev, "sound", {
        "title": "Sound classification (Table 2)", "model": "run", "dataset": "esc50_mini",
        "tables": [
            {"title": "ESC-50", "columns": ["method", "ours", "paper"],
             "rows": [["L3-Net", 0.6123456, 0.793], ["SVM-MFCC", 0.41, 0.396], ["Human", None, 0.813]]},
            {"title": "Per fold", "columns": ["fold", "accuracy"], "rows": [[1, 0.5], [2, 0.75]]},
        ],
        "figures": [{"path": "sound_confusion.png", "caption": "Confusion <matrix> & more"}],
        "metrics": {"mean_accuracy": 0.6123456},
    })
    write_payload(ev, "cluster", {
        "title": "Clustering (Table 4)", "model": "run", "dataset": "synth",
        "tables": [{"title": "NMI", "columns": ["method", "vision", "audio"], "rows": [["L3-Net", 0.3, 0.2]]}],
        "figures": [{"path": "cluster_tsne.png", "caption": "t-SNE"}, {"path": "gone.png", "caption": "lost"}],
        "metrics": {},
    })
    (ev / "broken.json").write_text("{not json")
    return run


class _Collector(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def _parse(text):
    collector = _Collector()
    collector.feed(text)
    return collector.tags


def test_report_holds_every_table_picture_curve_and_the_config(run_dir):
    summary = report.write_report(run_dir)
    assert summary.path == run_dir / "report.html"
    text = summary.path.read_text(encoding="utf-8")
    assert (summary.results, summary.tables, summary.pictures) == (3, 3, 2)
    assert summary.curves and summary.config
    assert "picture cluster.json: gone.png" in summary.missing and "broken.json (unreadable)" in summary.missing
    tags = _parse(text)
    assert sum(1 for tag, attrs in tags if tag == "table" and attrs.get("class") == "result") == 3
    images = [attrs for tag, attrs in tags if tag == "img"]
    assert [i["data-source"] for i in images] == ["sound_confusion.png", "cluster_tsne.png", "log.jsonl"]
    # self-contained: every picture inline, no script, no link leaving the page
    assert all(i["src"].startswith("data:image/png;base64,") for i in images)
    assert not [t for t, _ in tags if t in ("script", "link", "iframe", "object", "embed")]
    assert all(a.get("href", "#").startswith("#") for t, a in tags if t == "a")
    assert not re.search(r"url\(|@import|https?://", text.split("<body>")[0])
    # the tables as the JSON gave them, numbers formatted, paper beside ours, text escaped
    assert "<td class=\"num\">0.6123</td><td class=\"num\">0.793</td>" in text
    assert "Confusion &lt;matrix&gt; &amp; more" in text
    assert "Picture gone.png is missing" in text and "broken.json: not readable JSON" in text
    # paper order: sound (Table 2) before cluster (Table 4)
    assert text.index("Sound classification (Table 2)") < text.index("Clustering (Table 4)")
    assert "&quot;batch_size&quot;: 16" in text  # the config (quotes escaped)
    assert "1 unreadable line(s) of the log skipped (line 45)" in text


def test_curves_split_by_phase_against_pairs_seen():
    records = [{"event": "train", "step": 1, "pairs": 10, "loss": 1.0, "accuracy": 0.5, "lr": 1e-4},
               {"event": "val", "step": 1, "pairs": 10, "val_accuracy": 0.6, "val_pairs": 64},
               {"event": "train", "step": 2, "pairs": 20, "loss": 0.5, "accuracy": 0.7}]
    x_key, panels = report.curve_series(records)
    assert x_key == "pairs"
    assert panels["loss"] == {"train loss": [(10.0, 1.0), (20.0, 0.5)]}
    assert panels["accuracy"] == {"train accuracy": [(10.0, 0.5), (20.0, 0.7)], "val accuracy": [(10.0, 0.6)]}
    # another logger's spelling: a phase key and pairs_seen
    x_key, panels = report.curve_series([{"split": "val", "pairs_seen": 5, "step": 1, "acc": 0.6}])
    assert x_key == "pairs_seen" and panels["accuracy"] == {"val acc": [(5.0, 0.6)]}
    assert report.curves_png(records).startswith(b"\x89PNG")
    assert report.curves_png([{"note": "no numbers"}]) is None


def test_cells_and_image_types():
    assert report.format_cell(0.79312) == ("0.7931", True)
    assert report.format_cell(12) == ("12", True)
    assert report.format_cell(None)[0] == "\u2013"
    assert report.format_cell("L3-Net") == ("L3-Net", False)
    assert report.format_cell(True) == ("yes", False)
    assert report.image_mime(b"\x89PNG\r\n\x1a\nrest") == "image/png"
    assert report.image_mime(b"\xff\xd8\xff\xe0") == "image/jpeg"
    assert report.image_mime(b"<svg xmlns='http://www.w3.org/2000/svg'></svg>") == "image/svg+xml"
    assert report.image_mime(b"plain text") is None


def test_an_empty_directory_says_what_is_missing(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / ".r.html.abc123.tmp").write_text("<html>half a page, then kill -9")
    summary = report.write_report(tmp_path, tmp_path / "out" / "r.html")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["r.html"]
    text = summary.path.read_text()
    assert summary.missing == ["evaluations", "training log", "config"]
    assert "No evaluation results yet" in text and "No training log" in text and "No config.json" in text


def test_bad_run_dir_and_unwritable_output(tmp_path):
    with pytest.raises(InputError, match="no such run directory"):
        report.build_report(tmp_path / "missing")
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="not a directory"):
        report.build_report(tmp_path / "file")
    with pytest.raises(OutputError):
        report.write_report(tmp_path, tmp_path / "file" / "report.html")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]  # nothing partial left behind


def test_cli(run_dir, tmp_path, capsys):
    out = tmp_path / "page.html"
    assert main(["report", str(run_dir), "--out", str(out), "--title", "My run"]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out} (3 evaluation(s), 3 table(s), 2 picture(s), training curves, config)" in printed
    assert "<title>My run</title>" in out.read_text()
    assert main(["report", str(tmp_path / "nope")]) == 2
    assert "no such run directory" in capsys.readouterr().err


# -- rendering in a real browser ----------------------------------------------------------------------
def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


# Marks every picture with its decoded width once the page has loaded (test-only; the report has no script).
_PROBE = """<script>window.addEventListener('load', () => {
  for (const img of document.images) { img.setAttribute('data-natural-width', img.naturalWidth); }
  for (const td of document.querySelectorAll('td')) {
    td.setAttribute('data-style', getComputedStyle(td).fontStyle);
    td.setAttribute('data-after', getComputedStyle(td, '::after').content);
  }
  document.body.setAttribute('data-rendered', document.querySelectorAll('table.result').length);
});</script>"""


def test_report_renders_in_headless_chromium(run_dir, tmp_path):
    browser = _chromium()
    if browser is None:
        reason = "no chromium binary installed (Debian: apt-get install chromium)"
        if os.environ.get("L3NET_REQUIRE_CHROMIUM") == "1":  # CI (.ci/run): the rendering must be checked
            pytest.fail(f"{reason}, and L3NET_REQUIRE_CHROMIUM=1 requires the rendering test")
        pytest.skip(f"{reason}; the report is checked statically above")
    summary = report.write_report(run_dir)
    page = tmp_path / "probe.html"
    page.write_text(summary.path.read_text(encoding="utf-8").replace("</body>", _PROBE + "</body>"), encoding="utf-8")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([browser, *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    tags = _parse(dom.stdout)
    body = next(attrs for tag, attrs in tags if tag == "body")
    assert body.get("data-rendered") == "3"  # every table is in the rendered DOM
    widths = {attrs["data-source"]: int(attrs.get("data-natural-width", 0)) for tag, attrs in tags if tag == "img"}
    assert set(widths) == {"sound_confusion.png", "cluster_tsne.png", "log.jsonl"}
    assert all(w > 0 for w in widths.values()), widths  # every picture decoded
    # a quoted baseline's paper number is drawn in italics with a dagger; the paper's own is plain
    cells = [attrs for tag, attrs in tags if tag == "td"]
    quoted = [c for c in cells if "quoted" in c.get("class", "").split() and "num" in c.get("class", "").split()]
    assert len(quoted) == 2 and all(c["data-style"] == "italic" and "\u2020" in c["data-after"] for c in quoted)
    plain = [c for c in cells if c.get("class") == "num"]
    assert plain and all(c["data-style"] == "normal" and "\u2020" not in c.get("data-after", "") for c in plain)
    shot = tmp_path / "shot.png"
    done = subprocess.run([browser, *flags, f"--screenshot={shot}", "--window-size=1000,1400", summary.path.as_uri()],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and shot.is_file(), done.stderr[-2000:]
    from PIL import Image

    with Image.open(shot) as image:
        pixels = np.asarray(image.convert("L"))
    assert pixels.std() > 10  # text and pictures, not a blank page


def test_no_backend_switch_and_no_pyplot(run_dir):
    """A notebook user's matplotlib backend is theirs: writing a report (training curves) and a result's
    pictures must neither switch it (the library used to call matplotlib.use("Agg")) nor touch pyplot."""
    code = (
        "import sys, matplotlib\n"
        "matplotlib.use('svg')\n"
        "import numpy as np\n"
        "from l3net.evaluate.avc import AVCResult\n"
        "from l3net.report import write_report\n"
        "from l3net.evaluate.result import write_result\n"
        f"write_report({str(run_dir)!r})\n"
        "scored = {'score': np.array([0.2, 0.9]), 'label': np.array([0, 1])}\n"
        f"write_result({str(run_dir / 'eval')!r}, AVCResult('t', 'm', 'd', [], {{}}, scored=scored))\n"
        "print(matplotlib.get_backend(), 'matplotlib.pyplot' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["svg", "False"]
    assert (run_dir / "eval" / "avc_scores.png").read_bytes()[:4] == b"\x89PNG"


def test_paper_numbers_are_labelled_own_or_quoted(run_dir):
    """ESC-50's SVM-MFCC 39.6 % is Piczak's published baseline, not our MFCC recipe: the page must say so."""
    from l3net.evaluate import paper

    text = report.write_report(run_dir).path.read_text(encoding="utf-8")
    assert text.count('class="legend"') == 1 and "Piczak's published clip-level baseline" in text
    sound = text[text.index('<section id="sound">'):text.index('<section id="cluster">')]
    rows = re.findall(r"<tr>(.*?)</tr>", sound)
    by_method = {re.findall(r"<td[^>]*>(.*?)</td>", r)[0]: r for r in rows if "<td" in r}
    # a result written without the column (an older l3net) gets it from paper.source
    assert f"<th>{paper.SOURCE_COLUMN.replace(chr(39), '&#x27;')}</th>" in sound
    assert '<td class="num quoted">0.396</td>' in by_method["SVM-MFCC"] and "not our MFCC recipe" in by_method["SVM-MFCC"]
    assert '<td class="num">0.41</td>' in by_method["SVM-MFCC"]  # ours is never marked as quoted
    assert '<td class="num">0.793</td>' in by_method["L3-Net"] and "the paper&#x27;s own result" in by_method["L3-Net"]
    assert '<td class="num quoted">0.813</td>' in by_method["Human"]
    # a table with no paper column is left as it is
    cluster = text[text.index('<section id="cluster">'):]
    assert paper.SOURCE_COLUMN.replace("'", "&#x27;") not in cluster.split("</table>")[0]


def test_a_table_that_labels_its_paper_numbers_is_not_labelled_twice():
    from l3net.evaluate import paper

    table = {"columns": ["method", "ours", "paper", paper.SOURCE_COLUMN],
             "rows": [["SVM-MFCC", 0.4, 0.396, paper.source("sound", "SVM-MFCC")], ["mine", 0.5, None, None]]}
    assert report.label_paper_numbers(table, "sound") is table
    html_text = report.render_table(table, "sound")
    assert html_text.count(f"<th>") == 4 and '<td class="num quoted">0.396</td>' in html_text
    assert "<td>\u2013</td>" in html_text  # no paper number, no label
    assert paper.source("sound", "L3-Net") == paper.OWN and paper.source("sound", "L3-Net", None) is None
    assert paper.source("probe", "Random AlexNet").startswith("quoted")
    # every quoted row names a row the paper's tables really have
    assert set(paper.QUOTED["sound"]) <= set(paper.SOUND["esc50"]) | set(paper.SOUND["dcase2013"])
    assert set(paper.QUOTED["probe"]) <= set(paper.IMAGE_PROBE)
