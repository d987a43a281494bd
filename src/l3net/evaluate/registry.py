"""The paper's evaluations, one entry each: name -> code -> the table or figure it reproduces.

This is the one list of protocols. ``l3net eval`` makes a subcommand of each (``cli/eval/<name>.py``),
the report shows their results in this order (the paper's, Table 1 to Section 3.5, then anything
else by name), and the table of docs/DESIGN.md and README.md ("Where the paper lives") is
:func:`markdown_table`'s text (a test compares them). The protocol's code is ``evaluate/<name>.py``
or, for one that spans several modules, the package ``evaluate/<name>/``; each writes
``eval/<name>.json``, whose ``protocol`` field is the name here (the module's ``PROTOCOL``).

A new protocol: add it here, write ``evaluate/<name>.py`` (``evaluate_<name>`` returning a
:class:`~l3net.evaluate.result.Result`) and ``cli/eval/<name>.py``; tests/test_registry.py checks
that the three agree. Nothing heavy is imported here: ``l3net eval --help`` reads this list.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Protocol:
    """One evaluation of the paper."""

    #: The subcommand (``l3net eval NAME``), the result file (``eval/NAME.json``) and the module's
    #: ``PROTOCOL``.
    name: str
    #: Where in the paper: "Table 2", "Table 4, Figure 10", ...
    paper: str
    #: What it measures, in one line.
    description: str
    #: The library's entry point, in :attr:`module`: computes and returns a ``Result``.
    function: str
    #: Whether its code is a package (``evaluate/<name>/``) rather than one module (``evaluate/<name>.py``).
    package: bool = False

    @property
    def module(self) -> str:
        """The library's code: ``l3net.evaluate.<name>`` (a module or a package)."""
        return f"l3net.evaluate.{self.name}"

    @property
    def path(self) -> str:
        """Its code's path in the source tree: ``src/l3net/evaluate/<name>.py`` or ``.../<name>/``."""
        return f"src/l3net/evaluate/{self.name}" + ("/" if self.package else ".py")

    @property
    def cli_module(self) -> str:
        """The command's code (arguments, printing, writing): ``l3net.cli.eval.<name>``."""
        return f"l3net.cli.eval.{self.name}"


#: In the paper's order: the report shows results in this order.
PROTOCOLS: tuple[Protocol, ...] = (
    Protocol("avc", "Table 1 (L3-Net row)",
             "audio-visual correspondence accuracy on fixed balanced test pairs", "evaluate_avc"),
    Protocol("baselines", "Table 1 (supervised rows)",
             "supervised direct and supervised pretraining: classifiers trained on the labels, same pairs",
             "evaluate_baselines", package=True),
    Protocol("sound", "Table 2",
             "sound classification: a linear SVM on frozen audio features (+ the MFCC row)", "evaluate_sound"),
    Protocol("probe", "Table 3",
             "image classification: a linear probe on frozen conv4_2 image features", "evaluate_probe",
             package=True),
    Protocol("cluster", "Table 4, Figure 10",
             "k-means NMI of pool4 embeddings against the classes; t-SNE", "evaluate_clustering"),
    Protocol("units", "Section 3.5.3, Figures 3-9",
             "what each pool4 unit prefers: rankings, heatmaps, class counts", "evaluate_units", package=True),
    Protocol("localize", "Figures 3-4, made quantitative",
             "the pointing game: does the heatmap's peak fall on the sounding object's box?",
             "evaluate_localization"),
)

#: The names, in the paper's order.
NAMES: tuple[str, ...] = tuple(p.name for p in PROTOCOLS)


def get(name: str) -> Protocol:
    """The protocol called ``name``; ``KeyError`` naming the known ones otherwise."""
    for protocol in PROTOCOLS:
        if protocol.name == name:
            return protocol
    raise KeyError(f"no evaluation protocol {name!r} (known: {', '.join(NAMES)})")


def rank(name: str) -> tuple[int, str]:
    """Sort key of a result's protocol: the paper's order, then unknown names alphabetically."""
    return (NAMES.index(name) if name in NAMES else len(NAMES), name)


def markdown_table() -> str:
    """The "Where the paper lives" table of docs/DESIGN.md and README.md (ends with a newline)."""
    lines = ["| paper | code | command | what it measures |", "|---|---|---|---|"]
    for p in PROTOCOLS:
        lines.append(f"| {p.paper} | `{p.path}` `{p.function}` | `l3net eval {p.name}` | {p.description} |")
    return "\n".join(lines) + "\n"
