"""Labelled datasets for the transfer evaluations, read from their published layouts, and their splits.

Readers check the layout and say exactly what is wrong (:class:`~l3net.errors.DatasetError`):
a missing metadata file or column, an empty class, an unknown class, a fold with no examples.
Files that are listed but missing or not media are *skipped* and listed with the reason; files
that fail to decode later are dropped the same way (:meth:`LabelledFiles.without`).

Layouts
-------
``esc50``
    ESC-50 as published (github.com/karolpiczak/ESC-50): ``audio/*.wav`` and ``meta/esc50.csv``
    with columns ``filename, fold, target, category, ...``. Leave-one-fold-out over its folds.
``dcase2013``
    DCASE 2013 scene classification as published: ``scenes_stereo/`` (the public development
    set) and ``scenes_stereo_testset/`` (the private set released later), files ``<class><NN>.wav``
    (``bus01.wav`` ... ``tubestation10.wav``), 10 classes, 30 s each. With both folders, train on
    the first and test on the second (the paper's protocol); with only ``scenes_stereo/``,
    stratified 5-fold cross-validation over it.
``folder``
    Any labelled audio: one sub-folder per class, or a CSV (``labels.csv`` in the folder, or the
    CSV's own path) with columns ``path, label`` and optionally ``fold`` (predefined folds, or
    ``train``/``test``) or ``group`` (splits keep a group, e.g. a speaker, together).
images
    One sub-folder per class, optionally inside ``train/`` and ``val/`` (or ``test/``).
"""

from __future__ import annotations

import csv
import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np

from ..errors import DatasetError
from ..media import AUDIO_EXTENSIONS, IMAGE_EXTENSIONS, VIDEO_EXTENSIONS
from .splits import TEST_NAMES, TRAIN_NAMES, Split, describe_split_rule, make_splits  # noqa: F401 - also importable from here

#: File name extensions taken as sound (audio, or video with its sound track) in a class folder.
SOUND_EXTENSIONS = AUDIO_EXTENSIONS | VIDEO_EXTENSIONS

#: ESC-50's published layout.
ESC50_CSV = Path("meta") / "esc50.csv"
ESC50_AUDIO = "audio"
ESC50_COLUMNS = ("filename", "fold", "category")
#: Subclips per 5 s ESC-50 recording (paper, Table 2 protocol).
ESC50_SUBCLIPS = 10

#: DCASE 2013 scene classification: folders and the 10 scene classes as its file names spell them.
DCASE2013_TRAIN = "scenes_stereo"
DCASE2013_TEST = "scenes_stereo_testset"
DCASE2013_CLASSES = (
    "bus", "busystreet", "office", "openairmarket", "park",
    "quietstreet", "restaurant", "supermarket", "tube", "tubestation",
)  # fmt: skip
#: Subclips per 30 s DCASE 2013 recording (paper, Table 2 protocol).
DCASE2013_SUBCLIPS = 60
_DCASE_NAME = re.compile(r"^([a-z]+)(\d{2})\.wav$")

#: A generic labelled folder's CSV: accepted column names for each role.
LABELS_CSV = "labels.csv"
_PATH_COLUMNS = ("path", "filename", "file")
_LABEL_COLUMNS = ("label", "category", "class")
#: Fold values meaning "train" / "test" in a fold column, and split folder names for images.

DATASET_KINDS = ("esc50", "dcase2013", "folder")


@dataclass(frozen=True)
class Example:
    """One labelled file. ``fold``: its predefined fold or train/test split; ``group``: examples
    that must stay on the same side of a split (a speaker, a source recording)."""

    path: Path
    label: str
    fold: str | None = None
    group: str | None = None


@dataclass(frozen=True)
class LabelledFiles:
    """A validated labelled dataset: its examples, classes, split rule and what was skipped."""

    kind: str  # "esc50", "dcase2013", "folder" or "images"
    root: Path
    examples: tuple[Example, ...]
    classes: tuple[str, ...]
    subclips: int | None = None  # subclips per recording fixed by the paper (None: by duration)
    skipped: tuple[tuple[str, str], ...] = ()  # (path, reason)

    @property
    def name(self) -> str:
        return f"{self.kind}:{self.root}"

    def labels(self) -> np.ndarray:
        """Class index of every example (into :attr:`classes`)."""
        index = {c: i for i, c in enumerate(self.classes)}
        return np.array([index[e.label] for e in self.examples], dtype=np.int64)

    def without(self, failures: Mapping[int, str]) -> "LabelledFiles":
        """The dataset minus examples that could not be used (index -> reason), re-validated."""
        if not failures:
            return self
        kept = tuple(e for i, e in enumerate(self.examples) if i not in failures)
        skipped = self.skipped + tuple((str(self.examples[i].path), r) for i, r in sorted(failures.items()))
        empty = [c for c in self.classes if not any(e.label == c for e in kept)]
        if empty:
            raise DatasetError(
                f"{self.root}: class(es) {', '.join(empty)} have no usable files left; skipped:\n"
                + format_skipped(skipped)
            )
        return dataclasses.replace(self, examples=kept, skipped=skipped)

    def splits(self, n_splits: int = 5, seed: int = 0) -> list[Split]:
        """The evaluation splits: predefined folds or train/test when the dataset has them, else
        (group-)stratified ``n_splits``-fold cross-validation (fewer when classes or groups are few)."""
        return make_splits(self, n_splits=n_splits, seed=seed)


# ------------------------------------------------------------------------------------------------
# opening a dataset from a command-line spec
# ------------------------------------------------------------------------------------------------
def load_audio_dataset(spec: str) -> LabelledFiles:
    """``esc50:DIR``, ``dcase2013:DIR`` or ``folder:DIR|CSV`` (a bare path: the layout is detected)."""
    kind, sep, location = spec.partition(":")
    if not sep or kind not in DATASET_KINDS:
        kind, location = _detect_kind(Path(spec)), spec
    root = Path(location).expanduser()
    if not root.exists():
        raise DatasetError(f"{root}: no such file or directory")
    if kind == "esc50":
        return read_esc50(root)
    if kind == "dcase2013":
        return read_dcase2013(root)
    return read_labelled_folder(root)


def _detect_kind(path: Path) -> str:
    if (path / ESC50_CSV).is_file():
        return "esc50"
    if (path / DCASE2013_TRAIN).is_dir() or (path / DCASE2013_TEST).is_dir():
        return "dcase2013"
    return "folder"


# ------------------------------------------------------------------------------------------------
# ESC-50
# ------------------------------------------------------------------------------------------------
def read_esc50(root: str | Path) -> LabelledFiles:
    """ESC-50 in its published layout; folds from ``meta/esc50.csv``."""
    root = Path(root)
    meta, audio_dir = root / ESC50_CSV, root / ESC50_AUDIO
    layout = f"ESC-50's layout is {ESC50_AUDIO}/*.wav and {ESC50_CSV.as_posix()} (as published at github.com/karolpiczak/ESC-50)"
    if not meta.is_file():
        raise DatasetError(f"{root} is not in ESC-50's layout: {ESC50_CSV.as_posix()} is missing ({layout})")
    if not audio_dir.is_dir():
        raise DatasetError(f"{root} is not in ESC-50's layout: the {ESC50_AUDIO}/ folder is missing ({layout})")
    rows = _read_csv(meta, required=ESC50_COLUMNS)
    examples, skipped, listed = [], [], set()
    for line, row in rows:
        name, fold, label = row["filename"].strip(), row["fold"].strip(), row["category"].strip()
        where = f"{meta}, line {line}"
        if not name or not label:
            raise DatasetError(f"{where}: empty filename or category")
        if not fold.isdigit() or int(fold) < 1:
            raise DatasetError(f"{where}: fold must be a positive integer, got {fold!r}")
        listed.add(label)
        path = audio_dir / name
        if not path.is_file():
            skipped.append((str(path), f"listed in {ESC50_CSV.as_posix()} but missing from {ESC50_AUDIO}/"))
            continue
        examples.append(Example(path, label, fold=str(int(fold))))
    return _finish("esc50", root, examples, skipped, listed, subclips=ESC50_SUBCLIPS)


# ------------------------------------------------------------------------------------------------
# DCASE 2013 scenes
# ------------------------------------------------------------------------------------------------
def read_dcase2013(root: str | Path) -> LabelledFiles:
    """DCASE 2013 scene classification: ``scenes_stereo/`` (+ ``scenes_stereo_testset/``)."""
    root = Path(root)
    train_dir, test_dir = root / DCASE2013_TRAIN, root / DCASE2013_TEST
    if not train_dir.is_dir():
        raise DatasetError(
            f"{root} is not in DCASE 2013's layout: the {DCASE2013_TRAIN}/ folder is missing (expected "
            f"{DCASE2013_TRAIN}/<class><NN>.wav, e.g. bus01.wav, and optionally {DCASE2013_TEST}/ for the test set)"
        )
    examples, skipped = [], []
    parts = [(train_dir, "train")] + ([(test_dir, "test")] if test_dir.is_dir() else [])
    for folder, fold in parts:
        for path in _files(folder, recursive=False):
            match = _DCASE_NAME.match(path.name)
            if not match:
                skipped.append((str(path), "not named <class><NN>.wav as DCASE 2013 files are"))
                continue
            label = match.group(1)
            if label not in DCASE2013_CLASSES:
                raise DatasetError(
                    f"{path}: unknown class {label!r}; DCASE 2013's classes are {', '.join(DCASE2013_CLASSES)}"
                )
            examples.append(Example(path, label, fold=fold if len(parts) == 2 else None))
    if len(parts) == 2 and not any(e.fold == "test" for e in examples):
        raise DatasetError(f"{test_dir}: the test set folder has no recordings")
    return _finish("dcase2013", root, examples, skipped, subclips=DCASE2013_SUBCLIPS)


# ------------------------------------------------------------------------------------------------
# any labelled folder (audio)
# ------------------------------------------------------------------------------------------------
def read_labelled_folder(location: str | Path, extensions: Iterable[str] = SOUND_EXTENSIONS) -> LabelledFiles:
    """One sub-folder per class, or a CSV (``labels.csv`` inside, or the CSV's path)."""
    location = Path(location)
    if location.is_file():
        return _read_labels_csv(location)
    if (location / LABELS_CSV).is_file():
        return _read_labels_csv(location / LABELS_CSV)
    examples, skipped = _class_folders(location, frozenset(extensions), "audio")
    return _finish("folder", location, examples, skipped)


def _read_labels_csv(path: Path) -> LabelledFiles:
    rows = _read_csv(path)
    header = list(rows[0][1]) if rows else []
    path_col = next((c for c in _PATH_COLUMNS if c in header), None)
    label_col = next((c for c in _LABEL_COLUMNS if c in header), None)
    if path_col is None or label_col is None:
        raise DatasetError(
            f"{path}: needs a path column ({' or '.join(_PATH_COLUMNS)}) and a label column "
            f"({' or '.join(_LABEL_COLUMNS)}); it has: {', '.join(header)}"
        )
    has_fold, has_group = "fold" in header, "group" in header
    if has_fold and has_group:
        raise DatasetError(f"{path}: give a fold column or a group column, not both")
    examples, skipped, listed = [], [], set()
    for line, row in rows:
        rel, label = (row[path_col] or "").strip(), (row[label_col] or "").strip()
        if not rel or not label:
            raise DatasetError(f"{path}, line {line}: empty {path_col} or {label_col}")
        file = Path(rel) if Path(rel).is_absolute() else path.parent / rel
        fold = (row["fold"] or "").strip() if has_fold else None
        group = (row["group"] or "").strip() if has_group else None
        if has_fold and not fold:
            raise DatasetError(f"{path}, line {line}: empty fold")
        if has_group and not group:
            raise DatasetError(f"{path}, line {line}: empty group")
        listed.add(label)
        if not file.is_file():
            skipped.append((str(file), f"listed in {path.name} but not found"))
            continue
        examples.append(Example(file, label, fold=fold, group=group))
    return _finish("folder", path, examples, skipped, listed)


# ------------------------------------------------------------------------------------------------
# image folders (the probe)
# ------------------------------------------------------------------------------------------------
def read_image_folder(root: str | Path) -> LabelledFiles:
    """Images in one sub-folder per class, optionally split into ``train/`` and ``val/`` (or ``test/``)."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: not a directory (expected one sub-folder of images per class)")
    train_dir = next((root / n for n in TRAIN_NAMES if (root / n).is_dir()), None)
    test_dir = next((root / n for n in TEST_NAMES if (root / n).is_dir()), None)
    if (train_dir is None) != (test_dir is None):
        present = train_dir or test_dir
        raise DatasetError(
            f"{root}: has {present.name}/ but no {'val/ (or test/)' if test_dir is None else 'train/'}; "
            "use both train/ and val/, or put the class folders directly in the folder"
        )
    if train_dir is None:
        examples, skipped = _class_folders(root, IMAGE_EXTENSIONS, "image")
        return _finish("images", root, examples, skipped)
    train, skipped_train = _class_folders(train_dir, IMAGE_EXTENSIONS, "image")
    test, skipped_test = _class_folders(test_dir, IMAGE_EXTENSIONS, "image")
    known = {e.label for e in train}
    unknown = sorted({e.label for e in test} - known)
    if unknown:
        raise DatasetError(
            f"{test_dir}: unknown class(es) {', '.join(unknown)}: not among the classes of {train_dir} "
            f"({', '.join(sorted(known))})"
        )
    examples = [dataclasses.replace(e, fold="train") for e in train] + [dataclasses.replace(e, fold="test") for e in test]
    return _finish("images", root, examples, skipped_train + skipped_test)


def _read_csv(path: Path, required: Iterable[str] = ()) -> list[tuple[int, dict[str, str]]]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            header = [h.strip() for h in (reader.fieldnames or [])]
            reader.fieldnames = header
            rows = [(i + 2, row) for i, row in enumerate(reader)]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(f"{path}: not a readable CSV file ({exc})") from exc
    missing = [c for c in required if c not in header]
    if missing:
        raise DatasetError(
            f"{path}: missing column(s) {', '.join(missing)} (has: {', '.join(header) or 'nothing'}; "
            f"needs: {', '.join(required)})"
        )
    if not rows:
        raise DatasetError(f"{path}: no rows (an empty dataset)")
    return rows


def _files(folder: Path, recursive: bool = True) -> list[Path]:
    """Non-hidden files under ``folder``, sorted."""
    found = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(
        p for p in found if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def _class_folders(root: Path, extensions: frozenset[str], what: str) -> tuple[list[Example], list[tuple[str, str]]]:
    if not root.is_dir():
        raise DatasetError(f"{root}: not a directory")
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not class_dirs:
        raise DatasetError(
            f"{root}: no class sub-folders (expected one sub-folder of {what} files per class"
            + (f", or a {LABELS_CSV} with path,label columns)" if what == "audio" else ")")
        )
    skipped = [(str(p), "not inside a class sub-folder") for p in _files(root, recursive=False)]
    examples, empty = [], []
    for class_dir in class_dirs:
        files = _files(class_dir)
        usable = [p for p in files if p.suffix.lower() in extensions]
        skipped += [(str(p), f"not {'an audio' if what == 'audio' else 'an image'} file ({p.suffix or 'no extension'})")
                    for p in files if p.suffix.lower() not in extensions]
        if not usable:
            empty.append(class_dir.name)
        examples += [Example(p, class_dir.name) for p in usable]
    if empty:
        raise DatasetError(
            f"{root}: empty class folder(s) {', '.join(empty)} (no {what} files); remove them or add files"
        )
    return examples, skipped


def _finish(
    kind: str,
    root: Path,
    examples: list[Example],
    skipped: list[tuple[str, str]],
    listed_classes: Iterable[str] = (),
    subclips: int | None = None,
) -> LabelledFiles:
    """Check what every reader must (files, classes) and build the dataset. ``listed_classes``:
    classes the metadata names, each of which must keep at least one existing file."""
    found = {e.label for e in examples}
    empty = sorted(set(listed_classes) - found)
    if empty:
        raise DatasetError(
            f"{root}: class(es) {', '.join(empty)} have no existing files; skipped:\n" + format_skipped(skipped)
        )
    if not examples:
        detail = (":\n" + format_skipped(skipped)) if skipped else ""
        raise DatasetError(f"{root}: no usable files{detail}")
    classes = tuple(sorted(found))
    if len(classes) < 2:
        raise DatasetError(f"{root}: only one class ({classes[0]}); classification needs at least two")
    return LabelledFiles(kind, root, tuple(examples), classes, subclips=subclips, skipped=tuple(skipped))


def format_skipped(skipped: Iterable[tuple[str, str]], limit: int = 20) -> str:
    """Skipped files as indented ``path: reason`` lines (at most ``limit``, then a count)."""
    items = list(skipped)
    lines = [f"  {path}: {reason}" for path, reason in items[:limit]]
    if len(items) > limit:
        lines.append(f"  ... and {len(items) - limit} more")
    return "\n".join(lines)

