"""The README's command-line examples parse with l3net's own parser (they run as written)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from l3net.cli import build_parser

README = Path(__file__).resolve().parents[1] / "README.md"


def _readme_commands() -> list[list[str]]:
    blocks = re.findall(r"```bash\n(.*?)```", README.read_text(), flags=re.S)
    commands = []
    for line in "\n".join(blocks).splitlines():
        line = line.split("  #")[0].strip()
        words = shlex.split(line) if line else []
        if words[:1] == ["l3net"]:
            commands.append(words[1:])
        elif words[:1] == ["torchrun"] and "l3net" in words:
            commands.append(words[words.index("l3net") + 1:])
    return commands


def test_readme_has_the_commands() -> None:
    names = {words[0] if words[0] != "eval" else f"eval {words[1]}" for words in _readme_commands()}
    expected = {"synth", "prepare", "pairs", "train", "embed", "info", "localize", "report", "eval avc",
                "eval baselines", "eval sound", "eval probe", "eval cluster", "eval units", "eval localize"}
    assert expected <= names, expected - names


@pytest.mark.parametrize("words", _readme_commands(), ids=" ".join)
def test_readme_command_parses(words: list[str]) -> None:
    args = build_parser().parse_args(words)  # argparse exits with status 2 on anything it does not know
    assert args.command == words[0]
