"""The protocol registry is the one list: every protocol it names has its code, its command and its
place in the report, every protocol module is in it, and the docs' table is its text."""

from __future__ import annotations

import argparse
import importlib
import random
import re
from pathlib import Path

import pytest

from l3net.cli import build_parser
from l3net.evaluate import registry
from l3net.report.render import EvalResult, read_results

ROOT = Path(__file__).resolve().parents[1]


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(actions[0].choices) if actions else {}


@pytest.mark.parametrize("protocol", registry.PROTOCOLS, ids=registry.NAMES)
def test_every_registered_protocol_has_its_code(protocol: registry.Protocol) -> None:
    path = ROOT / protocol.path
    assert path.is_dir() if protocol.package else path.is_file(), f"{protocol.name}: {protocol.path} is missing"
    module = importlib.import_module(protocol.module)
    assert module.PROTOCOL == protocol.name, "the result's 'protocol' field must be the registered name"
    assert callable(getattr(module, protocol.function, None)), f"{protocol.module} has no {protocol.function}"


@pytest.mark.parametrize("protocol", registry.PROTOCOLS, ids=registry.NAMES)
def test_every_registered_protocol_has_its_command(protocol: registry.Protocol) -> None:
    # The CLI skips a command module that does not exist yet, so import it here to catch a typo.
    command = importlib.import_module(protocol.cli_module)
    assert callable(command.run) and command.HELP
    eval_parser = _subcommands(build_parser())["eval"]
    subcommand = _subcommands(eval_parser)[protocol.name]
    assert subcommand.get_default("_protocol_run") is command.run


def test_every_protocol_module_is_registered() -> None:
    """A module that declares a protocol (``PROTOCOL = "..."``) under evaluate/ is in the registry."""
    declared = set()
    for path in (ROOT / "src" / "l3net" / "evaluate").rglob("*.py"):
        declared.update(re.findall(r'^PROTOCOL = "(\w+)"', path.read_text(encoding="utf-8"), flags=re.M))
    assert declared == set(registry.NAMES)


def test_the_report_shows_results_in_the_registry_order(tmp_path: Path) -> None:
    names = [*registry.NAMES, "zz_extra", "aa_extra"]
    shuffled = names[:]
    random.Random(0).shuffle(shuffled)
    for i, name in enumerate(shuffled):  # file names unrelated to the order: the protocol field decides
        (tmp_path / f"{i:02d}.json").write_text(f'{{"protocol": "{name}"}}', encoding="utf-8")
    order = [r.protocol for r in read_results(tmp_path)]
    assert order == [*registry.NAMES, "aa_extra", "zz_extra"]
    assert isinstance(read_results(tmp_path)[0], EvalResult)


@pytest.mark.parametrize("doc", ["docs/DESIGN.md", "README.md"])
def test_the_docs_table_is_the_registry(doc: str) -> None:
    text = (ROOT / doc).read_text(encoding="utf-8")
    assert registry.markdown_table() in text, (
        f"{doc}: the 'Where the paper lives' table differs from l3net.evaluate.registry.markdown_table(); "
        "paste its output there"
    )


def test_an_unknown_protocol_is_refused_by_name() -> None:
    assert registry.get("sound").paper == "Table 2"
    with pytest.raises(KeyError, match="known: avc, baselines"):
        registry.get("nope")
