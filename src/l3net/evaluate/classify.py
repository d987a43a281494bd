"""Classifiers on frozen features, scored per recording: what Table 2 (sound) and Table 3 (probe) share.

Each split trains a fresh classifier on its training subclips (each labelled with its recording's
class); a test recording's class scores are the mean of its subclips' decision scores (for images,
one "subclip" per image). Accuracy per split, the confusion matrix summed over splits.
:func:`fit_classifier` fits each split's classifier (a C search grouped by recording or speaker,
convergence counted); :func:`make_svm` is Table 2's classifier (z-scoring + :class:`~l3net.evaluate.svm.LinearSVM`).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
from tqdm.auto import tqdm

from ..errors import InputError
from .datasets import LabelledFiles, Split
from .result import new_figure


#: The SVMs' C when it is fixed (``--svm-c 0.01``), and where the search falls back when the training
#: split has too few groups to cross-validate. The paper gives no C; by default it is chosen per
#: training split by grouped inner cross-validation from C_GRID (``C="auto"``).
DEFAULT_C = 0.01
#: Inner cross-validation folds of the C search (fewer when the training split has fewer groups).
INNER_FOLDS = 3
#: The C values the inner cross-validation chooses from (decades around DEFAULT_C).
C_GRID = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)


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
    C: float | None = None  # the classifier's C (chosen by inner cross-validation, or the fixed one)
    #: Whether the final fit stopped before its iteration limit (None: the classifier has no such limit).
    converged: bool | None = None
    #: ConvergenceWarnings raised while fitting this split: the final fit and every inner cross-validation fit.
    convergence_warnings: int = 0
    #: The inner cross-validation that chose C: {"folds", "grouped_by", "scores": {C: mean accuracy}}, or None.
    inner_cv: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        """This split in the results' JSON (docs/DESIGN.md, "Evaluation outputs")."""
        out: dict[str, Any] = {"name": self.name, "train": self.n_train, "test": self.n_test, "accuracy": self.accuracy,
                               "subclip_accuracy": self.subclip_accuracy, "notes": list(self.notes)}
        if self.C is not None:
            out["C"] = self.C
        if self.converged is not None:
            out["converged"] = self.converged
        out["convergence_warnings"] = self.convergence_warnings
        if self.inner_cv is not None:
            out["inner_cv"] = self.inner_cv
        return out


@dataclass
class FitReport:
    """How one split's classifier was fitted: its C, whether it converged, the inner search."""

    C: float | None
    converged: bool | None
    convergence_warnings: int
    inner_cv: dict[str, Any] | None
    notes: list[str]


def _final_estimator(classifier: Any) -> Any:
    fitted = getattr(classifier, "best_estimator_", classifier)
    return fitted.steps[-1][1] if hasattr(fitted, "steps") else fitted


def _param_C(params: dict[str, Any]) -> float | None:
    for key, value in params.items():
        if key == "C" or key.endswith("__C"):
            return float(value)
    return None


def fit_classifier(classifier: Any, x: np.ndarray, y: np.ndarray, groups: np.ndarray, *, what: str = "classifier",
                   where: str = "") -> tuple[Any, FitReport]:
    """Fit ``classifier`` on ``(x, y)``; a grid search (scikit-learn ``GridSearchCV``) is fitted with
    ``groups`` so that its inner cross-validation never splits a group (a recording's subclips, a
    speaker), with as many inner folds as the groups allow (at most its own ``cv``'s); with fewer than
    two groups it falls back to its estimator's own C, said in a note. ConvergenceWarnings are caught
    here (locally) and counted, never silenced: the report says whether the final fit reached its
    iteration limit and how many fits (inner ones included) did. Returns the fitted classifier and a
    :class:`FitReport`."""
    from sklearn.base import clone
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import GridSearchCV
    from threadpoolctl import threadpool_limits

    from .svm import blas_threads

    notes: list[str] = []
    inner: dict[str, Any] | None = None
    searched = isinstance(classifier, GridSearchCV)
    if searched:
        n_groups = len(np.unique(groups))
        folds = min(getattr(classifier.cv, "n_splits", 3), n_groups)
        if folds < 2:
            classifier = clone(classifier.estimator)
            searched = False
            notes.append(f"{what}: {where} has fewer than 2 groups to cross-validate C on; C = "
                         f"{_param_C(classifier.get_params())} (the default) there")
        elif folds != getattr(classifier.cv, "n_splits", folds):
            cv = classifier.cv  # a scikit-learn splitter: the same kind, fewer folds
            kwargs = {"shuffle": cv.shuffle, "random_state": cv.random_state} if hasattr(cv, "shuffle") else {}
            classifier.set_params(cv=type(cv)(n_splits=folds, **kwargs))
    work = x.shape[0] * x.shape[1] * max(len(np.unique(y)), 1)
    with warnings.catch_warnings(record=True) as caught, threadpool_limits(blas_threads(work), user_api="blas"):
        warnings.simplefilter("always", ConvergenceWarning)
        classifier.fit(x, y, **({"groups": groups} if searched else {}))
    n_warnings = sum(issubclass(w.category, ConvergenceWarning) for w in caught)
    final = _final_estimator(classifier)
    params = final.get_params() if hasattr(final, "get_params") else {}
    n_iter, max_iter = getattr(final, "n_iter_", None), params.get("max_iter")
    converged = None if n_iter is None or max_iter is None else bool(np.max(n_iter) < max_iter)
    if searched:
        chosen = _param_C(classifier.best_params_)
        scores = {f"{_param_C(p):g}": float(m) for p, m in zip(classifier.cv_results_["params"],
                                                              classifier.cv_results_["mean_test_score"])}
        inner = {"folds": int(classifier.cv.n_splits), "grouped_by": "groups (never split across inner folds)",
                 "scores": scores}
    else:
        chosen = _param_C(classifier.get_params()) if hasattr(classifier, "get_params") else None
    if converged is False:
        notes.append(f"{what} did not converge on {where} (stopped at its limit of {max_iter} iterations; "
                     "a smaller C converges faster)")
    inner_warnings = n_warnings - (1 if converged is False and n_warnings else 0)
    if searched and inner_warnings > 0:
        fits = inner["folds"] * len(inner["scores"])
        notes.append(f"{what}: {inner_warnings} of {fits} inner cross-validation fits on {where} stopped at their "
                     "iteration limit (their C's score may be understated)")
    return classifier, FitReport(chosen, converged, n_warnings, inner, notes)


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
    groups: np.ndarray | None = None,
) -> FeatureResult:
    """Train on each split's training subclips, score its test recordings by their mean subclip score.

    ``features``: ``(S, D)`` per subclip; ``subclip_recording``: ``(S,)`` index of each subclip's
    recording; ``labels``: ``(R,)`` class of each recording; ``splits`` index recordings.
    ``groups``: ``(R,)`` what each recording belongs to (a speaker, a source recording) for the inner
    cross-validation of a grid-searched classifier (:func:`fit_classifier`); default: each recording its
    own group, so that one recording's subclips never straddle inner folds.
    """
    inner_groups = np.arange(len(labels)) if groups is None else np.asarray(groups)
    if len(inner_groups) != len(labels):
        raise InputError(f"{len(inner_groups)} groups for {len(labels)} recordings")
    confusion = np.zeros((n_classes, n_classes), dtype=np.int64)
    predictions = np.full(len(labels), -1, dtype=np.int64)
    results = []
    for split in tqdm(splits, desc=desc, unit="split", disable=not progress, leave=False, dynamic_ncols=True):
        train_sub = np.flatnonzero(np.isin(subclip_recording, split.train))
        test_sub = np.flatnonzero(np.isin(subclip_recording, split.test))
        train_groups = inner_groups[subclip_recording[train_sub]]
        classifier, report = fit_classifier(make_classifier(), features[train_sub],
                                            labels[subclip_recording[train_sub]], train_groups,
                                            what=desc, where=split.name)
        notes = list(split.notes) + report.notes
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
                report.C,
                report.converged,
                report.convergence_warnings,
                report.inner_cv,
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


# ------------------------------------------------------------------------------------------------
# Table 2's classifier: z-scoring + this SVM, C fixed or chosen by grouped inner cross-validation
# ------------------------------------------------------------------------------------------------
def make_svm(C: float | str = DEFAULT_C, *, seed: int = 0) -> Any:
    """z-scoring (fitted on the training data only) + one-vs-all linear SVM.

    ``C="auto"`` picks C from :data:`C_GRID` by :data:`INNER_FOLDS`-fold cross-validation inside the
    training data (scikit-learn ``GridSearchCV``, accuracy over subclips), folds stratified by class and
    grouped: pass ``groups`` to ``fit`` (:func:`l3net.evaluate.classify.fit_classifier` does) so that a
    recording's subclips, or a speaker's recordings, never sit on both sides of an inner fold (else C is
    chosen for memorising recordings). ``seed`` shuffles the inner folds.
    """
    from sklearn.model_selection import GridSearchCV, StratifiedGroupKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from .svm import LinearSVM

    svm = make_pipeline(StandardScaler(), LinearSVM(C=DEFAULT_C))
    if C != "auto":
        svm.set_params(linearsvm__C=float(C))
        return svm
    inner = StratifiedGroupKFold(n_splits=INNER_FOLDS, shuffle=True, random_state=seed)
    return GridSearchCV(svm, {"linearsvm__C": list(C_GRID)}, cv=inner)


def inner_cv_groups(dataset: LabelledFiles) -> np.ndarray:
    """What the C search's inner folds keep together, per recording: the dataset's groups (e.g.
    speakers) when it has them; ESC-50's folds (the dataset puts clips cut from one source recording
    in one fold); else each recording on its own (its subclips stay together)."""
    if any(e.group for e in dataset.examples):
        return np.array([e.group or f"#{i}" for i, e in enumerate(dataset.examples)], dtype=object)
    if dataset.kind == "esc50":
        return np.array([e.fold for e in dataset.examples], dtype=object)
    return np.arange(len(dataset.examples))


def describe_inner_groups(dataset: LabelledFiles) -> str:
    """In words, what :func:`inner_cv_groups` keeps together for ``dataset``."""
    if any(e.group for e in dataset.examples):
        return "the dataset's groups (e.g. speakers)"
    if dataset.kind == "esc50":
        return "ESC-50's folds (clips of one source recording share a fold)"
    return "recordings (a recording's subclips stay together)"
