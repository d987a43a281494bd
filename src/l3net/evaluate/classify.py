"""Classifiers on frozen features, scored per recording: what Table 2 (sound) and Table 3 (probe) share.

Each split trains a fresh classifier on its training subclips (each labelled with its recording's
class); a test recording's class scores are the mean of its subclips' decision scores (for images,
one "subclip" per image). Accuracy per split, the confusion matrix summed over splits.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
from tqdm.auto import tqdm

from ..errors import InputError
from .datasets import Split
from .result import new_figure


def class_scores(classifier: Any, x: np.ndarray, n_classes: int) -> np.ndarray:
    """Decision scores ``(N, n_classes)``; classes the classifier never saw score -inf."""
    decision = classifier.decision_function(x)
    trained = np.asarray(classifier.classes_)
    if decision.ndim == 1:  # a binary problem: one score, positive for classes_[1]
        decision = np.stack([-decision, decision], axis=1)
    scores = np.full((len(x), n_classes), -np.inf)
    scores[:, trained] = decision
    return scores


def recording_scores(subclip_scores: np.ndarray, recording: np.ndarray, n_recordings: int) -> np.ndarray:
    """Mean of each recording's subclip scores: ``(n_recordings, K)`` from ``(S, K)`` and the
    recording index ``(S,)`` of every subclip (0 .. n_recordings - 1, each at least once)."""
    counts = np.bincount(recording, minlength=n_recordings)
    if (counts == 0).any():
        raise InputError(f"recordings {np.flatnonzero(counts == 0).tolist()} have no subclips")
    sums = np.zeros((n_recordings, subclip_scores.shape[1]))
    np.add.at(sums, recording, subclip_scores)
    return sums / counts[:, None]


@dataclass
class SplitResult:
    name: str
    n_train: int  # recordings
    n_test: int
    accuracy: float  # over test recordings
    subclip_accuracy: float  # each subclip on its own
    notes: tuple[str, ...] = ()
    C: float | None = None  # the SVM's C when chosen by inner cross-validation


@dataclass
class FeatureResult:
    """Accuracy of one feature set over all splits."""

    splits: list[SplitResult]
    confusion: np.ndarray  # (K, K): rows true class, columns predicted, summed over splits
    predictions: np.ndarray  # predicted class per recording (-1 where never tested)
    dim: int

    @property
    def accuracy(self) -> float:
        return float(np.mean([s.accuracy for s in self.splits]))

    @property
    def std(self) -> float:
        return float(np.std([s.accuracy for s in self.splits]))


def classify_recordings(
    features: np.ndarray,
    subclip_recording: np.ndarray,
    labels: np.ndarray,
    splits: Sequence[Split],
    n_classes: int,
    make_classifier: Callable[[], Any],
    progress: bool = True,
    desc: str = "SVM",
) -> FeatureResult:
    """Train on each split's training subclips, score its test recordings by their mean subclip score.

    ``features``: ``(S, D)`` per subclip; ``subclip_recording``: ``(S,)`` index of each subclip's
    recording; ``labels``: ``(R,)`` class of each recording; ``splits`` index recordings.
    """
    confusion = np.zeros((n_classes, n_classes), dtype=np.int64)
    predictions = np.full(len(labels), -1, dtype=np.int64)
    results = []
    for split in tqdm(splits, desc=desc, unit="split", disable=not progress, leave=False, dynamic_ncols=True):
        train_sub = np.flatnonzero(np.isin(subclip_recording, split.train))
        test_sub = np.flatnonzero(np.isin(subclip_recording, split.test))
        classifier = make_classifier()
        searched = hasattr(classifier, "best_params_") or type(classifier).__name__ == "GridSearchCV"
        # A grid search must keep each recording's subclips in one inner fold.
        fit_params = {"groups": subclip_recording[train_sub]} if searched else {}
        work = len(train_sub) * features.shape[1] * n_classes
        from sklearn.exceptions import ConvergenceWarning
        from threadpoolctl import threadpool_limits

        from .svm import blas_threads

        with warnings.catch_warnings(record=True) as caught, threadpool_limits(blas_threads(work), user_api="blas"):
            warnings.simplefilter("always", ConvergenceWarning)
            classifier.fit(features[train_sub], labels[subclip_recording[train_sub]], **fit_params)
        notes = list(split.notes)
        chosen = float(classifier.best_params_["linearsvm__C"]) if searched else None
        if any(issubclass(w.category, ConvergenceWarning) for w in caught):
            notes.append(f"{desc} did not fully converge on {split.name} (a smaller --svm-c converges faster)")
        sub_scores = class_scores(classifier, features[test_sub], n_classes)
        # Recordings of this split renumbered 0..n-1 so their subclip scores can be averaged.
        local = np.searchsorted(split.test, subclip_recording[test_sub])
        rec_scores = recording_scores(sub_scores, local, len(split.test))
        predicted = rec_scores.argmax(axis=1)
        truth = labels[split.test]
        predictions[split.test] = predicted
        np.add.at(confusion, (truth, predicted), 1)
        results.append(
            SplitResult(
                split.name,
                len(split.train),
                len(split.test),
                float(np.mean(predicted == truth)),
                float(np.mean(sub_scores.argmax(axis=1) == labels[subclip_recording[test_sub]])),
                tuple(notes),
                chosen,
            )
        )
    return FeatureResult(results, confusion, predictions, int(features.shape[1]))


def confusion_figure(panels: Sequence[tuple[str, np.ndarray]], classes: Sequence[str]) -> Any:
    """Row-normalised confusion matrices side by side: ``panels`` of (title, counts (K, K)),
    rows the true class and columns the predicted one."""
    k = len(classes)
    size = min(12.0, max(4.0, 0.22 * k + 2.5))
    fig = new_figure(size * len(panels), size)
    axes = fig.subplots(1, len(panels), squeeze=False)
    font = max(4, min(9, int(240 / max(k, 1))))
    for ax, (title, counts) in zip(axes[0], panels):
        counts = np.asarray(counts, dtype=float)
        rates = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
        image = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
        ax.set_title(title)
        ax.set_xlabel("predicted class")
        ax.set_ylabel("true class")
        if k <= 60:  # beyond that the names are unreadable anyway
            ax.set_xticks(range(k), classes, rotation=90, fontsize=font)
            ax.set_yticks(range(k), classes, fontsize=font)
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="fraction of the true class")
    fig.tight_layout()
    return fig
