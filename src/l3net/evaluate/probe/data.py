"""Image folders for the streamed linear probe (Table 3 at ImageNet's scale): layouts, file lists
that stay small, and the training and validation transforms the DataLoader workers apply.

Layouts (:func:`read_probe_images`)
-----------------------------------
- ImageNet's: ``DIR/train/<class>/*.JPEG`` and ``DIR/val/`` either as class folders
  (``val/<class>/*.JPEG``) or flat (``val/*.JPEG``) with a labels file: ImageNet's
  ``LOC_val_solution.csv`` (``ImageId,PredictionString``; the class is the first word of the
  prediction string; image ids without extension), or plain ``file,label`` lines (comma or
  whitespace separated, an optional header). The labels file is ``--val-labels FILE`` or, when not
  given, one of :data:`VAL_LABEL_FILES` found in ``DIR`` or ``DIR/val``. ``training/`` and
  ``test/``, ``validation/``... are accepted for train/ and val/ (:data:`~l3net.evaluate.splits.TRAIN_NAMES`).
- Any one-folder-per-class tree ``DIR/<class>/...``: a stratified ``1 / n_splits`` of each class
  (seeded permutation, at least one image per class of two or more) is held out for validation.

File lists are stored as one UTF-8 byte buffer with offsets and an integer label array
(:class:`ImageList`), not as Python objects: 1.28 M ImageNet paths take ~60 MB, and DataLoader
workers that fork from the main process share those pages instead of copying them as reference
counts are touched (the well-known growth of Python lists in forked workers). What the workers do
with them (decoding, augmentation, batches): :mod:`l3net.evaluate.probe.loader`.

"""

from __future__ import annotations

import array
import csv
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Sequence

import numpy as np

from ...errors import DatasetError
from ...media import IMAGE_EXTENSIONS
from ..splits import TEST_NAMES, TRAIN_NAMES

if TYPE_CHECKING:
    from ..datasets import LabelledFiles

#: Validation folder names, in order of preference (splits.TEST_NAMES, val first).
VAL_NAMES = tuple(sorted(TEST_NAMES, key=lambda n: (n not in ("val", "validation"), TEST_NAMES.index(n))))
#: Labels files looked for (in DIR, then DIR/val) when val/ is flat and no --val-labels is given.
VAL_LABEL_FILES = ("LOC_val_solution.csv", "val_labels.csv", "val_labels.txt", "val.csv", "val.txt")
#: First-row words that mark a labels file's header (ImageNet's LOC csv has ImageId,PredictionString).
_HEADER_WORDS = {"imageid", "image", "file", "filename", "path", "name", "id"}

# ------------------------------------------------------------------------------------------------
# file lists
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ImageList:
    """Paths (relative to ``base``) and class indices, packed into arrays (see the module docstring)."""

    base: Path
    blob: np.ndarray  # uint8: the UTF-8 relative paths, one after another
    offsets: np.ndarray  # int64 (n + 1,): path i is blob[offsets[i]:offsets[i + 1]]
    labels: np.ndarray  # int64 (n,)

    def __len__(self) -> int:
        return len(self.labels)

    def path(self, index: int) -> Path:
        start, end = int(self.offsets[index]), int(self.offsets[index + 1])
        return self.base / bytes(self.blob[start:end]).decode("utf-8", "surrogateescape")

    def subset(self, indices: np.ndarray) -> "ImageList":
        builder = _ListBuilder(self.base)
        for i in indices:
            start, end = int(self.offsets[i]), int(self.offsets[i + 1])
            builder.add_bytes(bytes(self.blob[start:end]), int(self.labels[i]))
        return builder.build()

    def class_counts(self, num_classes: int) -> np.ndarray:
        return np.bincount(self.labels, minlength=num_classes)


class _ListBuilder:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.blob = bytearray()
        self.offsets = array.array("q", [0])
        self.labels = array.array("q")

    def add(self, relative: str, label: int) -> None:
        self.add_bytes(relative.encode("utf-8", "surrogateescape"), label)

    def add_bytes(self, relative: bytes, label: int) -> None:
        self.blob += relative
        self.offsets.append(len(self.blob))
        self.labels.append(label)

    def build(self) -> ImageList:
        return ImageList(self.base, np.frombuffer(bytes(self.blob), dtype=np.uint8),
                         np.frombuffer(self.offsets, dtype=np.int64).copy(),
                         np.frombuffer(self.labels, dtype=np.int64).copy())


@dataclass(frozen=True)
class ProbeImages:
    """A probe's images: ``train`` and ``val`` lists over the same ``classes``, the layout read, how
    val was chosen, and the files left out with the reason."""

    root: Path
    classes: tuple[str, ...]
    train: ImageList
    val: ImageList
    layout: str  # "train/val class folders", "train/ class folders + flat val/ with labels", "class folders"
    split_rule: str
    skipped: tuple[tuple[str, str], ...] = ()

    def __len__(self) -> int:
        return len(self.train) + len(self.val)


def count_images(root: str | os.PathLike[str]) -> int:
    """How many image files (by extension) are under ``root``: decides ``--solver auto``."""
    total = 0
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        total += sum(1 for f in files if not f.startswith(".") and os.path.splitext(f)[1].lower() in IMAGE_EXTENSIONS)
    return total


def find_split_dirs(root: Path) -> tuple[Path | None, Path | None]:
    """``(train/, val/)`` of ``root`` when present (either may be None). ``val/`` is preferred to
    ``test/``: ImageNet's distributions (Kaggle's ``ILSVRC/Data/CLS-LOC``) ship an unlabelled test/ beside it."""
    train = next((root / n for n in TRAIN_NAMES if (root / n).is_dir()), None)
    val = next((root / n for n in VAL_NAMES if (root / n).is_dir()), None)
    return train, val


def read_probe_images(
    root: str | os.PathLike[str],
    *,
    val_labels: str | os.PathLike[str] | None = None,
    n_splits: int = 5,
    seed: int = 0,
) -> ProbeImages:
    """Read an image folder in any layout of the module docstring, or say exactly what is wrong
    (:class:`~l3net.errors.DatasetError`: no class folders, an empty class, train/ without val/,
    a flat val/ without labels, a val class unknown to train/...)."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetError(f"{root}: not a directory (expected one sub-folder of images per class, "
                           "or ImageNet's train/<class>/ and val/)")
    train_dir, val_dir = find_split_dirs(root)
    if train_dir is None and val_dir is not None:
        raise DatasetError(f"{root}: has {val_dir.name}/ but no train/; use train/<class>/ and {val_dir.name}/, "
                           "or put the class folders directly in the folder")
    if train_dir is None:
        return _holdout(root, n_splits, seed)
    if val_dir is None:
        raise DatasetError(f"{root}: has {train_dir.name}/ but no val/ (or test/); ImageNet's layout is "
                           "train/<class>/*.JPEG and val/ (class folders, or flat with LOC_val_solution.csv)")
    skipped: list[tuple[str, str]] = []
    classes = _class_dirs(train_dir)
    if not classes:
        raise DatasetError(f"{train_dir}: no class sub-folders (expected {train_dir.name}/<class>/*.JPEG)")
    index = {c: i for i, c in enumerate(classes)}
    train = _ListBuilder(root)
    _scan_classes(train_dir, classes, index, train, skipped)
    val = _ListBuilder(root)
    val_classes = _class_dirs(val_dir)
    if val_classes:
        unknown = sorted(set(val_classes) - set(classes))
        if unknown:
            raise DatasetError(f"{val_dir}: unknown class(es) {', '.join(unknown[:10])}"
                               f"{' ...' if len(unknown) > 10 else ''}: not among the classes of {train_dir}")
        _scan_classes(val_dir, val_classes, index, val, skipped)
        layout = f"{train_dir.name}/ and {val_dir.name}/ class folders"
        rule = f"predefined split: {train_dir.name}/ for training, {val_dir.name}/ for validation"
    else:
        labels_file = _find_labels_file(root, val_dir, val_labels)
        _scan_flat_val(val_dir, labels_file, index, val, skipped)
        layout = f"{train_dir.name}/ class folders, flat {val_dir.name}/ labelled by {labels_file.name}"
        rule = f"predefined split: {train_dir.name}/ for training, {val_dir.name}/ ({labels_file.name}) for validation"
    train_list, val_list = train.build(), val.build()
    if len(val_list) == 0:
        raise DatasetError(f"{val_dir}: no usable validation images" + (":\n" + _fmt(skipped) if skipped else ""))
    return ProbeImages(root, tuple(classes), train_list, val_list, layout, rule, tuple(skipped))


def _fmt(skipped: Sequence[tuple[str, str]], limit: int = 20) -> str:
    from ..datasets import format_skipped

    return format_skipped(skipped, limit)


def _class_dirs(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _image_files(folder: Path) -> tuple[list[str], list[str]]:
    """(images, other files) under ``folder``, relative, sorted; hidden entries ignored."""
    images, others = [], []
    for current, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        rel = os.path.relpath(current, folder)
        for name in files:
            if name.startswith("."):
                continue
            path = name if rel == "." else os.path.join(rel, name)
            (images if os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS else others).append(path)
    return sorted(images), sorted(others)


def _scan_classes(folder: Path, classes: Sequence[str], index: dict[str, int], out: _ListBuilder,
                  skipped: list[tuple[str, str]]) -> None:
    skipped += [(str(p), "not inside a class sub-folder") for p in sorted(folder.iterdir())
                if p.is_file() and not p.name.startswith(".")]
    empty = []
    prefix = os.path.relpath(folder, out.base)
    for name in classes:
        images, others = _image_files(folder / name)
        skipped += [(str(folder / name / o), f"not an image file ({os.path.splitext(o)[1] or 'no extension'})")
                    for o in others]
        if not images:
            empty.append(name)
        for rel in images:
            out.add(os.path.join(prefix, name, rel), index[name])
    if empty:
        raise DatasetError(f"{folder}: empty class folder(s) {', '.join(empty[:20])}"
                           f"{' ...' if len(empty) > 20 else ''} (no image files); remove them or add images")


def _holdout(root: Path, n_splits: int, seed: int) -> ProbeImages:
    classes = _class_dirs(root)
    if not classes:
        raise DatasetError(f"{root}: no class sub-folders (expected one sub-folder of images per class, "
                           "or ImageNet's train/<class>/ and val/)")
    if len(classes) < 2:
        raise DatasetError(f"{root}: only one class ({classes[0]}); classification needs at least two")
    skipped: list[tuple[str, str]] = []
    everything = _ListBuilder(root)
    _scan_classes(root, classes, {c: i for i, c in enumerate(classes)}, everything, skipped)
    files = everything.build()
    val_index = []
    for label in range(len(classes)):
        members = np.flatnonzero(files.labels == label)
        held = max(1, round(len(members) / n_splits)) if len(members) >= 2 else 0  # a lone image trains
        order = np.random.default_rng([seed, label]).permutation(len(members))
        val_index.append(members[np.sort(order[:held])])
    val_set = np.sort(np.concatenate(val_index))
    mask = np.zeros(len(files), dtype=bool)
    mask[val_set] = True
    rule = f"stratified hold-out: 1/{n_splits} of each class for validation (seed {seed})"
    return ProbeImages(root, tuple(classes), files.subset(np.flatnonzero(~mask)), files.subset(val_set),
                       "class folders", rule, tuple(skipped))


def _find_labels_file(root: Path, val_dir: Path, given: str | os.PathLike[str] | None) -> Path:
    if given is not None:
        path = Path(given).expanduser()
        if not path.is_file():
            raise DatasetError(f"{path}: labels file not found")
        return path
    for folder in (root, val_dir):
        for name in VAL_LABEL_FILES:
            if (folder / name).is_file():
                return folder / name
    raise DatasetError(
        f"{val_dir}: images are not in class folders, and no labels file was found; give --val-labels FILE "
        f"(ImageNet's LOC_val_solution.csv, or 'file,label' lines) or put one of {', '.join(VAL_LABEL_FILES)} "
        f"in {root} or {val_dir}"
    )


def read_labels_file(path: Path) -> Iterator[tuple[int, str, str]]:
    """``(line number, file or image id, label)`` of a labels file: ImageNet's ``LOC_val_solution.csv``
    (the label is the first word of ``PredictionString``) or ``file,label`` / ``file label`` lines."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            first = True
            loc = False
            for number, line in enumerate(handle, start=1):
                text = line.strip()
                if not text:
                    continue
                fields = next(csv.reader([text])) if "," in text else text.split()
                fields = [f.strip() for f in fields]
                if first:
                    first = False
                    if fields[0].lower() in _HEADER_WORDS:
                        loc = len(fields) > 1 and fields[1].lower() == "predictionstring"
                        continue
                if len(fields) < 2 or not fields[0] or not fields[1]:
                    raise DatasetError(f"{path}, line {number}: expected 'file,label', got {text[:80]!r}")
                label = fields[1].split()[0] if loc else fields[1]
                yield number, fields[0], label
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(f"{path}: not a readable labels file ({exc})") from exc


def _scan_flat_val(val_dir: Path, labels_file: Path, index: dict[str, int], out: _ListBuilder,
                   skipped: list[tuple[str, str]]) -> None:
    images, others = _image_files(val_dir)
    skipped += [(str(val_dir / o), f"not an image file ({os.path.splitext(o)[1] or 'no extension'})") for o in others]
    by_name: dict[str, str] = {}
    for rel in images:
        by_name[rel] = rel
        by_name.setdefault(os.path.splitext(rel)[0], rel)  # LOC_val_solution.csv names images without extension
    labelled: dict[str, int] = {}
    for number, name, label in read_labels_file(labels_file):
        if label not in index:
            raise DatasetError(f"{labels_file}, line {number}: class {label!r} is not a class folder of train/")
        rel = by_name.get(name) or by_name.get(os.path.basename(name))
        if rel is None:
            skipped.append((str(val_dir / name), f"listed in {labels_file.name} but not found in {val_dir}"))
            continue
        labelled[rel] = index[label]
    prefix = os.path.relpath(val_dir, out.base)
    for rel in images:
        if rel in labelled:
            out.add(os.path.join(prefix, rel), labelled[rel])
        else:
            skipped.append((str(val_dir / rel), f"no label in {labels_file.name}"))


def to_labelled_files(images: ProbeImages) -> "LabelledFiles":
    """The same images as a :class:`~l3net.evaluate.datasets.LabelledFiles` with a predefined train/test
    split, for ``--solver lbfgs`` (features held in memory: small folders only)."""
    from ..datasets import Example, LabelledFiles

    examples = tuple(Example(part.path(i), images.classes[int(part.labels[i])], fold=fold)
                     for part, fold in ((images.train, "train"), (images.val, "test")) for i in range(len(part)))
    return LabelledFiles("images", images.root, examples, images.classes, skipped=images.skipped)
