"""Class lists for ``l3net prepare --classes``: a file of names, or a built-in list by name.

The built-in ``kinetics-sounds`` list is the 34 Kinetics classes of the L3 paper (Arandjelovic &
Zisserman, "Look, Listen and Learn", ICCV 2017, Section 4), spelt as the paper prints them.
Verified against two sources: /work/shared/PAPER_SPEC.md section 2.3 (which abbreviates the
"playing ..." names) and a public audio-visual repository that lists them in the paper's own
words. Not verified against the paper's PDF itself (not available offline here).

The paper used a pre-release of Kinetics. In the published Kinetics-400 class list (checked
against a copy of its 400 names) four of the 34 carry a longer name; a label of either spelling
is kept, and recorded under the name the labels file uses:

- "blowing out" -> "blowing out candles"
- "dribbling ball" -> "dribbling basketball"
- "mowing the lawn by pushing lawnmower" -> "mowing lawn"
- "stomping" -> "stomping grapes"

and three have no Kinetics-400 class: "fingerpicking", "patting", "typing" (so a Kinetics-400
labels file gives at most 31 of the 34; ``prepare`` warns about the missing ones).

Names are compared after folding case, turning ``_`` into a space and collapsing white space
(Kinetics' folder names use ``playing_guitar``); the labels file's own spelling is what is stored.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

from ..errors import InputError

#: The paper's 34 Kinetics-Sounds classes, in the paper's order and spelling.
KINETICS_SOUNDS: tuple[str, ...] = (
    "blowing nose", "bowling", "chopping wood", "ripping paper", "shuffling cards", "singing",
    "tapping pen", "typing", "blowing out", "dribbling ball", "laughing",
    "mowing the lawn by pushing lawnmower", "shoveling snow", "stomping", "tap dancing",
    "tapping guitar", "tickling", "fingerpicking", "patting", "playing accordion", "playing bagpipes",
    "playing bass guitar", "playing clarinet", "playing drums", "playing guitar", "playing harmonica",
    "playing keyboard", "playing organ", "playing piano", "playing saxophone", "playing trombone",
    "playing trumpet", "playing violin", "playing xylophone",
)

#: Paper name -> the published Kinetics-400 name, where they differ (see the module docstring).
KINETICS_400_NAMES: Mapping[str, str] = {
    "blowing out": "blowing out candles",
    "dribbling ball": "dribbling basketball",
    "mowing the lawn by pushing lawnmower": "mowing lawn",
    "stomping": "stomping grapes",
}

#: Built-in class lists, by the name ``--classes`` accepts: (classes, other accepted spellings).
BUILTIN: Mapping[str, tuple[tuple[str, ...], Mapping[str, str]]] = {
    "kinetics-sounds": (KINETICS_SOUNDS, KINETICS_400_NAMES),
}


def normalise(name: str) -> str:
    """A class name as compared: case folded, ``_`` as a space, white space collapsed."""
    return " ".join(name.replace("_", " ").split()).casefold()


@dataclass(frozen=True)
class ClassList:
    """Classes to keep: ``names`` as listed, each also accepted under its ``aliases`` spelling."""

    source: str  # the built-in name, or the file it was read from
    names: tuple[str, ...]
    aliases: Mapping[str, str] = field(default_factory=dict)  # listed name -> another accepted spelling

    def __post_init__(self) -> None:
        lookup: dict[str, str] = {}
        for name in self.names:
            lookup[normalise(name)] = name
            if name in self.aliases:
                lookup[normalise(self.aliases[name])] = name
        object.__setattr__(self, "_lookup", lookup)

    def listed_as(self, label: str) -> str | None:
        """The listed class a label belongs to (None: not listed)."""
        return self._lookup.get(normalise(label))  # type: ignore[attr-defined]

    def absent_from(self, labels: Iterable[str]) -> list[str]:
        """Listed classes that none of ``labels`` belongs to, in list order."""
        present = {self.listed_as(label) for label in labels}
        return [name for name in self.names if name not in present]

    def describe(self) -> dict[str, object]:
        """What dataset.json records of the list."""
        return {"source": self.source, "classes": list(self.names)}


def read_class_file(path: str | os.PathLike[str]) -> ClassList:
    """One class name per line; blank lines and ``#`` comments (whole line or after a name) ignored."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError(f"{path}: classes file not found (give a file with one class per line, or 'kinetics-sounds')") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, not a classes file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read the classes file ({exc})") from exc
    names: list[str] = []
    seen: set[str] = set()
    for line in text.splitlines():
        name = line.split("#", 1)[0].strip()
        if name and normalise(name) not in seen:
            seen.add(normalise(name))
            names.append(name)
    if not names:
        raise InputError(f"{path}: the classes file lists no class (one name per line; '#' starts a comment)")
    return ClassList(str(path), tuple(names))


def resolve_classes(spec: str | os.PathLike[str]) -> ClassList:
    """A built-in list by name (``kinetics-sounds``), else a classes file."""
    if isinstance(spec, str) and spec.strip().lower() in BUILTIN:
        key = spec.strip().lower()
        names, aliases = BUILTIN[key]
        return ClassList(key, names, aliases)
    return read_class_file(spec)
