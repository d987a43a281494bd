"""How a labelled dataset is split for the transfer evaluations (Tables 2 and 3): its predefined folds
(leave-one-fold-out) or train/test, else stratified cross-validation keeping each group (speaker,
source recording) on one side.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, Sequence

import numpy as np

from ..errors import DatasetError


class _Example(Protocol):
    @property
    def fold(self) -> str | None: ...
    @property
    def group(self) -> str | None: ...


class LabelledFiles(Protocol):
    """What splitting reads of a dataset (:class:`l3net.evaluate.datasets.LabelledFiles` has it; this
    module does not import that one, which imports this)."""

    @property
    def root(self) -> Path: ...
    @property
    def examples(self) -> Sequence[_Example]: ...
    @property
    def classes(self) -> Sequence[str]: ...
    def labels(self) -> np.ndarray: ...

#: Fold names that mean "train" / "test" (case-insensitive).
TRAIN_NAMES = ("train", "training")
TEST_NAMES = ("test", "val", "validation", "eval", "evaluation")


@dataclass(frozen=True)
class Split:
    """One train/test split: indices into :attr:`LabelledFiles.examples`."""

    name: str
    train: np.ndarray
    test: np.ndarray
    notes: tuple[str, ...] = ()


def make_splits(dataset: LabelledFiles, n_splits: int = 5, seed: int = 0) -> list[Split]:
    """Predefined folds (leave-one-fold-out) or train/test when every example has a fold; else
    ``StratifiedGroupKFold`` over groups, or ``StratifiedKFold``. Every split is checked: a fold
    with no examples or a training side with fewer than two classes is a :class:`DatasetError`."""
    examples = dataset.examples
    if not examples:
        raise DatasetError(f"{dataset.root}: no examples")
    labels = dataset.labels()
    folds = [e.fold for e in examples]
    if all(f is not None for f in folds):
        splits = _fold_splits(dataset, np.array(folds, dtype=object))
    else:
        splits = _cv_splits(dataset, labels, n_splits, seed)
    checked = []
    for split in splits:
        if len(split.test) == 0:
            raise DatasetError(f"{dataset.root}: {split.name} has no test examples")
        train_classes = set(labels[split.train].tolist())
        if len(train_classes) < 2:
            raise DatasetError(
                f"{dataset.root}: {split.name} leaves fewer than two classes to train on; a classifier needs two"
            )
        notes = list(split.notes)
        for c in sorted(set(labels[split.test].tolist()) - train_classes):
            n = int((labels[split.test] == c).sum())
            notes.append(
                f"class {dataset.classes[c]!r} has no training examples in {split.name}; "
                f"its {n} test example(s) cannot be classified correctly"
            )
        checked.append(dataclasses.replace(split, notes=tuple(notes)))
    return checked


def _fold_splits(dataset: LabelledFiles, folds: np.ndarray) -> list[Split]:
    values = sorted(set(folds.tolist()))
    lowered = {v.lower() for v in values}
    if lowered <= set(TRAIN_NAMES + TEST_NAMES):
        train = np.flatnonzero([f.lower() in TRAIN_NAMES for f in folds])
        test = np.flatnonzero([f.lower() in TEST_NAMES for f in folds])
        if len(train) == 0:
            raise DatasetError(f"{dataset.root}: the training split has no examples")
        if len(test) == 0:
            raise DatasetError(f"{dataset.root}: the test split has no examples")
        return [Split("train/test", train, test)]
    if all(v.isdigit() for v in values):
        numbers = sorted(int(v) for v in values)
        missing = sorted(set(range(numbers[0], numbers[-1] + 1)) - set(numbers))
        if missing:
            raise DatasetError(
                f"{dataset.root}: fold(s) {', '.join(map(str, missing))} have no examples (folds present: "
                f"{', '.join(map(str, numbers))}); every fold needs at least one usable file"
            )
        values = [str(n) for n in numbers]
    if len(values) < 2:
        raise DatasetError(f"{dataset.root}: only one fold ({values[0]}); leave-one-fold-out needs at least two")
    return [
        Split(f"fold {v}", np.flatnonzero(folds != v), np.flatnonzero(folds == v))
        for v in values
    ]


def _cv_splits(dataset: LabelledFiles, labels: np.ndarray, n_splits: int, seed: int) -> list[Split]:
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    indices = np.arange(len(labels))
    counts = np.bincount(labels, minlength=len(dataset.classes))
    groups = [e.group for e in dataset.examples]
    if all(g is not None for g in groups):
        unique = sorted(set(groups))
        k = min(n_splits, len(unique))
        if k < 2:
            raise DatasetError(f"{dataset.root}: only one group ({unique[0]}); splits that keep groups together need two")
        splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
        parts = list(splitter.split(indices, labels, groups))
        group_array = np.array(groups, dtype=object)
        names = [f"held-out group(s) {', '.join(sorted(set(group_array[te].tolist())))}" for _, te in parts]
        return [Split(n, np.sort(tr), np.sort(te)) for n, (tr, te) in zip(names, parts)]
    else:
        small = [dataset.classes[c] for c in np.flatnonzero(counts < 2)]
        if small:
            raise DatasetError(
                f"{dataset.root}: class(es) {', '.join(small)} have a single example; "
                "cross-validation needs at least two per class"
            )
        k = max(2, min(n_splits, int(counts.min())))
        parts = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(indices, labels)
    return [Split(f"split {i + 1}/{k}", np.sort(tr), np.sort(te)) for i, (tr, te) in enumerate(parts)]


def describe_split_rule(dataset: LabelledFiles, splits: list[Split]) -> str:
    """One line for reports: how the dataset was split."""
    if splits and splits[0].name == "train/test":
        return "predefined train/test split"
    if splits and splits[0].name.startswith("fold"):
        return f"leave-one-fold-out over {len(splits)} predefined folds"
    if all(e.group is not None for e in dataset.examples):
        return f"{len(splits)}-fold cross-validation keeping each group together (stratified by class)"
    return f"stratified {len(splits)}-fold cross-validation"


# ------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------
