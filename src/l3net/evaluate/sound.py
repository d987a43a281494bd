"""``l3net eval sound``: Table 2's sound classification transfer, with the MFCC baseline beside it.

The protocol (paper section 5.2, following SoundNet):

1. Each recording is cut into 1 s subclips, equally spaced from its start to its end: 10 per 5 s
   ESC-50 clip, 60 per 30 s DCASE 2013 clip, and the same density (:data:`SUBCLIPS_PER_SECOND`)
   for recordings of any other length. A recording shorter than 1 s is padded with silence at
   the end and gives one subclip.
2. Features of each subclip: the audio tower's conv4_2 before its ReLU, max-pooled to a 4 x 3
   grid (``model.transfer_features``; 6144-D for the paper preset). The baseline row uses 52-D
   MFCC statistics of the same subclips (:mod:`l3net.evaluate.mfcc`).
3. Per split: z-score with the training subclips' mean and variance, then a one-vs-all linear
   SVM (``make_pipeline(StandardScaler(), LinearSVM())``: LinearSVC's objective, solved fast on
   dense features, see :mod:`l3net.evaluate.svm`) trained on the training subclips, each
   labelled with its recording's class.
4. A test recording's class scores are the mean of its subclips' SVM decision scores; the top
   class is its prediction. Accuracy is over recordings, per split and averaged over splits.
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np
from sklearn.base import ClassifierMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, GroupKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from ..config import PRESETS, SAMPLE_RATE
from ..errors import DatasetError, InputError, MediaError
from ..media import load_audio
from ..models import L3Net
from . import paper
from .common import add_common_arguments, eval_dir, load_eval_model, save_figure, write_result
from .datasets import LabelledFiles, Split, describe_split_rule, format_skipped, load_audio_dataset
from .features import audio_features
from .mfcc import mfcc_summary
from .svm import LinearSVM, blas_threads

HELP = "Table 2: sound classification transfer (ESC-50, DCASE 2013 or your labelled audio), L3 vs MFCC"
DESCRIPTION = """Table 2 of the paper on your data: sound classification with a linear SVM on the frozen
audio tower's conv4_2 features (before ReLU, max-pooled to 4x3xC), beside the MFCC + SVM baseline
computed on the same splits.

Every recording is cut into 1 s subclips (10 per 5 s ESC-50 clip, 60 per 30 s DCASE clip, 2 per
second for other lengths; clips under 1 s are padded); features are z-scored with training-split
statistics; a one-vs-all linear SVM scores each subclip and a recording's scores are the mean of its
subclips'. Accuracy per split and the mean, a confusion matrix, and the paper's Table 2 beside ours
are written to OUT/eval/sound.json and sound_confusion.png.

Datasets:
  esc50:DIR       ESC-50 as published (DIR/audio/*.wav, DIR/meta/esc50.csv); leave-one-fold-out
  dcase2013:DIR   DCASE 2013 scenes (DIR/scenes_stereo/ [+ DIR/scenes_stereo_testset/])
  folder:DIR      one sub-folder per class, or DIR/labels.csv (path,label[,fold|group]);
                  without folds: stratified cross-validation, keeping each group together

Examples:
  l3net eval sound --model runs/flickr --dataset esc50:~/data/ESC-50
  l3net eval sound --model random:small --dataset folder:my_sounds --out results
  l3net eval sound --model small --features mfcc --dataset dcase2013:~/data/dcase2013 --out results
"""

#: Subclips per second of audio for recordings of any length: the density of the paper's
#: 10 per 5 s ESC-50 clip and 60 per 30 s DCASE clip.
SUBCLIPS_PER_SECOND = 2
FEATURE_SETS = ("l3", "mfcc")
#: The SVMs' C. The paper gives none; on thousands of z-scored dimensions C = 1 barely
#: regularises and trains several times slower, so a firmer default; ``--svm-c auto`` searches C_GRID.
DEFAULT_C = 0.01
C_GRID = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)
#: How many recordings are decoded ahead of the one being featurised (in a background thread).
DECODE_AHEAD = 4


# ------------------------------------------------------------------------------------------------
# subclips
# ------------------------------------------------------------------------------------------------
def subclip_count(num_samples: int, clip_samples: int, fixed: int | None = None) -> int:
    """Subclips for a recording of ``num_samples``: ``fixed`` when the dataset's protocol fixes it,
    else :data:`SUBCLIPS_PER_SECOND` per second of audio (at least one)."""
    if fixed is not None:
        return fixed
    seconds = num_samples / SAMPLE_RATE
    return max(1, round(SUBCLIPS_PER_SECOND * seconds))


def subclip_starts(num_samples: int, clip_samples: int, count: int) -> np.ndarray:
    """First sample of each of ``count`` equally spaced subclips of ``clip_samples`` in a recording
    of ``num_samples`` (the first starts at 0, the last ends at the end; one subclip is centred)."""
    if count < 1:
        raise InputError(f"need at least one subclip, got {count}")
    span = max(0, num_samples - clip_samples)
    if count == 1:
        return np.array([span // 2], dtype=np.int64)
    return np.round(np.linspace(0, span, count)).astype(np.int64)


def cut_subclips(audio: np.ndarray, clip_samples: int, count: int) -> np.ndarray:
    """``(count, clip_samples)`` equally spaced subclips of ``audio``; audio shorter than one clip is
    padded with silence at the end first."""
    if len(audio) < clip_samples:
        audio = np.pad(audio, (0, clip_samples - len(audio)))
    starts = subclip_starts(len(audio), clip_samples, count)
    return np.stack([audio[s : s + clip_samples] for s in starts])


# ------------------------------------------------------------------------------------------------
# the classifier and the averaging of subclip scores
# ------------------------------------------------------------------------------------------------
def make_svm(C: float | str = DEFAULT_C) -> ClassifierMixin:
    """z-scoring (fitted on the training data only) + one-vs-all linear SVM.

    ``C="auto"`` picks C from :data:`C_GRID` by 3-fold cross-validation inside the training data,
    each recording's subclips kept in one fold (pass ``groups`` to ``fit``).
    """
    svm = make_pipeline(StandardScaler(), LinearSVM(C=DEFAULT_C))
    if C != "auto":
        svm.set_params(linearsvm__C=float(C))
        return svm
    return GridSearchCV(svm, {"linearsvm__C": list(C_GRID)}, cv=GroupKFold(n_splits=3))


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
    make_classifier: Callable[[], Any] = make_svm,
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
        # A grid search must keep each recording's subclips in one inner fold.
        fit_params = {"groups": subclip_recording[train_sub]} if isinstance(classifier, GridSearchCV) else {}
        work = len(train_sub) * features.shape[1] * n_classes
        with warnings.catch_warnings(record=True) as caught, threadpool_limits(blas_threads(work), user_api="blas"):
            warnings.simplefilter("always", ConvergenceWarning)
            classifier.fit(features[train_sub], labels[subclip_recording[train_sub]], **fit_params)
        notes = list(split.notes)
        chosen = float(classifier.best_params_["linearsvm__C"]) if isinstance(classifier, GridSearchCV) else None
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


# ------------------------------------------------------------------------------------------------
# decoding and features
# ------------------------------------------------------------------------------------------------
@dataclass
class SubclipFeatures:
    """Features of every subclip of the usable recordings of a dataset."""

    dataset: LabelledFiles  # without the recordings that failed to decode
    recording: np.ndarray  # (S,) index of each subclip's recording in dataset.examples
    features: dict[str, np.ndarray] = field(default_factory=dict)  # "l3", "mfcc" -> (S, D)
    seconds: float = 0.0


def _prefetch(function: Callable[[Any], Any], items: Iterable[Any], ahead: int) -> Iterator[concurrent.futures.Future]:
    """``function(item)`` for each item, computed up to ``ahead`` items early in a thread; yields futures
    in order (bounded, unlike ``Executor.map``, so memory stays flat on long datasets)."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        queue: collections.deque[concurrent.futures.Future] = collections.deque()
        for item in items:
            queue.append(pool.submit(function, item))
            if len(queue) > ahead:
                yield queue.popleft()
        while queue:
            yield queue.popleft()


def extract_subclip_features(
    dataset: LabelledFiles,
    model: L3Net | None,
    feature_sets: Sequence[str] = FEATURE_SETS,
    *,
    clip_samples: int | None = None,
    batch_size: int = 32,
    device: str | None = None,
    precision: str = "fp32",
    progress: bool = True,
) -> SubclipFeatures:
    """Decode every recording once, cut its subclips and compute the requested feature sets.

    Recordings that cannot be decoded are dropped with their reason (``dataset.without``).
    ``clip_samples`` defaults to the model's clip length (1 s at :data:`SAMPLE_RATE`).
    """
    unknown = sorted(set(feature_sets) - set(FEATURE_SETS))
    if unknown or not feature_sets:
        raise InputError(f"feature sets must be among {FEATURE_SETS}, got {list(feature_sets)}")
    if "l3" in feature_sets and model is None:
        raise InputError("L3 features need a model")
    if clip_samples is None:
        clip_samples = (model.config if model is not None else PRESETS["paper"]).clip_samples
    failures: dict[int, str] = {}
    recording: list[np.ndarray] = []
    mfcc_parts: list[np.ndarray] = []
    start = time.perf_counter()

    def decode(index: int) -> np.ndarray:
        audio = load_audio(dataset.examples[index].path, SAMPLE_RATE)
        return cut_subclips(audio, clip_samples, subclip_count(len(audio), clip_samples, dataset.subclips))

    def subclips() -> Iterator[np.ndarray]:
        bar = tqdm(total=len(dataset.examples), desc="recordings", unit="rec", disable=not progress, dynamic_ncols=True)
        with bar:
            for index, future in enumerate(_prefetch(decode, range(len(dataset.examples)), DECODE_AHEAD)):
                bar.update(1)
                try:
                    clips = future.result()
                except MediaError as exc:
                    failures[index] = exc.reason
                    continue
                recording.append(np.full(len(clips), index, dtype=np.int64))
                if "mfcc" in feature_sets:
                    mfcc_parts.append(mfcc_summary(clips))
                yield from clips

    features: dict[str, np.ndarray] = {}
    if "l3" in feature_sets:
        try:
            features["l3"] = audio_features(
                model, subclips(), batch_size=batch_size, device=device, precision=precision, progress=False
            )
        except InputError:
            if recording:
                raise  # otherwise every recording failed: said below, with the reasons
    else:
        for _ in subclips():
            pass
    if not recording:
        failed = [(str(dataset.examples[i].path), r) for i, r in sorted(failures.items())]
        raise DatasetError(f"{dataset.root}: no recording could be decoded:\n{format_skipped(failed)}")
    if "mfcc" in feature_sets:
        features["mfcc"] = np.concatenate(mfcc_parts)
    rec = np.concatenate(recording)
    # Renumber recordings to the kept dataset's examples.
    kept = np.array(sorted(set(range(len(dataset.examples))) - set(failures)))
    rec = np.searchsorted(kept, rec)
    return SubclipFeatures(dataset.without(failures), rec, features, time.perf_counter() - start)


# ------------------------------------------------------------------------------------------------
# the whole protocol
# ------------------------------------------------------------------------------------------------
@dataclass
class SoundResult:
    dataset: LabelledFiles
    splits: list[Split]
    results: dict[str, FeatureResult]  # "l3", "mfcc"
    n_subclips: int
    extract_seconds: float
    classify_seconds: float


def evaluate_sound(
    dataset: LabelledFiles,
    model: L3Net | None,
    feature_sets: Sequence[str] = FEATURE_SETS,
    *,
    C: float | str = DEFAULT_C,
    n_splits: int = 5,
    seed: int = 0,
    batch_size: int = 32,
    device: str | None = None,
    precision: str = "fp32",
    progress: bool = True,
) -> SoundResult:
    """Run Table 2's protocol on ``dataset`` for the requested feature sets ("l3", "mfcc")."""
    extracted = extract_subclip_features(
        dataset, model, feature_sets, batch_size=batch_size, device=device, precision=precision, progress=progress
    )
    dataset = extracted.dataset
    splits = dataset.splits(n_splits=n_splits, seed=seed)
    labels = dataset.labels()
    start = time.perf_counter()
    results = {
        name: classify_recordings(
            extracted.features[name], extracted.recording, labels, splits, len(dataset.classes),
            make_classifier=lambda: make_svm(C), progress=progress, desc=f"SVM on {name.upper()}",
        )
        for name in feature_sets
    }
    return SoundResult(dataset, splits, results, len(extracted.recording), extracted.seconds, time.perf_counter() - start)


def is_untrained(model_spec: str) -> bool:
    """Whether a ``--model`` value means random weights ('random', 'random:X' or a preset name)."""
    return model_spec == "random" or model_spec.startswith("random:") or (
        model_spec in PRESETS and not Path(model_spec).exists()
    )


# ------------------------------------------------------------------------------------------------
# results
# ------------------------------------------------------------------------------------------------
L3_ROW = {True: "L3 random weights", False: "L3-Net"}
MFCC_ROW = "SVM-MFCC"


def result_tables(result: SoundResult, untrained: bool) -> list[dict[str, Any]]:
    """The paper's Table 2 beside ours, and the per-split accuracies."""
    kind = result.dataset.kind
    reference = paper.SOUND.get(kind, paper.SOUND["esc50"])
    ours = {}
    if "l3" in result.results:
        ours[L3_ROW[untrained]] = result.results["l3"].accuracy
    if "mfcc" in result.results:
        ours[MFCC_ROW] = result.results["mfcc"].accuracy
    rows = [[method, ours.pop(method, None), value] for method, value in reference.items()]
    rows += [[method, value, None] for method, value in ours.items()]  # ours with no paper row
    paper_column = "paper" if kind in paper.SOUND else "paper (ESC-50, for reference)"
    name = {"esc50": "ESC-50", "dcase2013": "DCASE 2013 scenes"}.get(kind, str(result.dataset.root))
    per_split = []
    for i, split in enumerate(result.splits):
        row: list[Any] = [split.name, len(split.train), len(split.test)]
        row += [result.results[n].splits[i].accuracy for n in FEATURE_SETS if n in result.results]
        per_split.append(row)
    mean_row: list[Any] = ["mean", None, None] + [result.results[n].accuracy for n in FEATURE_SETS if n in result.results]
    return [
        {"title": f"Sound classification accuracy, {name} (Table 2)", "columns": ["method", "ours", paper_column], "rows": rows},
        {
            "title": "Accuracy per split (recordings)",
            "columns": ["split", "train recordings", "test recordings"]
            + [f"{n.upper()} accuracy" for n in FEATURE_SETS if n in result.results],
            "rows": per_split + [mean_row],
        },
    ]


def confusion_figure(panels: Sequence[tuple[str, np.ndarray]], classes: Sequence[str]) -> Any:
    """Row-normalised confusion matrices side by side: ``panels`` of (title, counts (K, K)),
    rows the true class and columns the predicted one."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = len(classes)
    size = min(12.0, max(4.0, 0.22 * k + 2.5))
    fig, axes = plt.subplots(1, len(panels), figsize=(size * len(panels), size), squeeze=False)
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


def result_metrics(result: SoundResult, C: float | str) -> dict[str, Any]:
    dataset = result.dataset
    metrics: dict[str, Any] = {
        "dataset": {
            "kind": dataset.kind,
            "root": str(dataset.root),
            "classes": list(dataset.classes),
            "recordings": len(dataset.examples),
            "subclips": result.n_subclips,
            "subclips_per_recording": dataset.subclips or f"{SUBCLIPS_PER_SECOND} per second",
            "split_rule": describe_split_rule(dataset, result.splits),
            "skipped": [{"path": p, "reason": r} for p, r in dataset.skipped],
        },
        "classifier": {"name": "linear SVM (squared hinge, L2), one-vs-rest, on z-scored features", "C": C,
                       "averaging": "mean of subclip scores"},
        "timing": {
            "extract_seconds": round(result.extract_seconds, 2),
            "classify_seconds": round(result.classify_seconds, 2),
            "subclips_per_second": round(result.n_subclips / max(result.extract_seconds, 1e-9), 1),
        },
    }
    for name, feature in result.results.items():
        metrics[name] = {
            "accuracy": feature.accuracy,
            "accuracy_std": feature.std,
            "feature_dim": feature.dim,
            "splits": [
                {"name": s.name, "train": s.n_train, "test": s.n_test, "accuracy": s.accuracy,
                 "subclip_accuracy": s.subclip_accuracy, "notes": list(s.notes),
                 **({"C": s.C} if s.C is not None else {})}
                for s in feature.splits
            ],
            "confusion": feature.confusion.tolist(),
        }
    return metrics


# ------------------------------------------------------------------------------------------------
# command line
# ------------------------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", required=True, metavar="KIND:DIR",
                        help="esc50:DIR, dcase2013:DIR or folder:DIR|CSV (a bare DIR: the layout is detected)")
    add_common_arguments(parser)
    parser.add_argument("--features", default="both", choices=("both", *FEATURE_SETS),
                        help="which rows to compute: the L3 features, the MFCC baseline, or both (default)")
    parser.add_argument("--svm-c", type=_svm_c, default=DEFAULT_C,
                        help=f"the SVMs' regularisation C, or 'auto' to choose it by cross-validation inside "
                        f"each training split from {', '.join(f'{c:g}' for c in C_GRID)} (default: {DEFAULT_C:g})")
    parser.add_argument("--folds", type=int, default=5,
                        help="cross-validation splits for datasets without predefined folds (default: 5)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def _svm_c(text: str) -> float | str:
    if text == "auto":
        return text
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number or 'auto', got {text!r}") from None
    if not value > 0 or not np.isfinite(value):
        raise argparse.ArgumentTypeError(f"C must be a positive number, got {text!r}")
    return value


def run(args: argparse.Namespace) -> int:
    if args.folds < 2:
        raise InputError(f"--folds must be at least 2, got {args.folds}")
    feature_sets = FEATURE_SETS if args.features == "both" else (args.features,)
    dataset = load_audio_dataset(args.dataset)
    if dataset.skipped:
        print(f"skipping {len(dataset.skipped)} file(s):\n{format_skipped(dataset.skipped)}", file=sys.stderr)
    model, label = (None, "none (MFCC only)")
    if "l3" in feature_sets:
        model, label = load_eval_model(args.model, device=args.device, seed=args.seed)
    out = eval_dir(args.model, args.out)  # before hours of work: is there somewhere to write?
    result = evaluate_sound(
        dataset, model, feature_sets, C=args.svm_c, n_splits=args.folds, seed=args.seed,
        batch_size=args.batch_size, precision=args.precision, progress=not args.no_progress,
    )
    newly = result.dataset.skipped[len(dataset.skipped):]
    if newly:
        print(f"could not decode {len(newly)} file(s), skipped:\n{format_skipped(newly)}", file=sys.stderr)
    untrained = is_untrained(args.model)
    panels = [(f"{n.upper()} features: accuracy {r.accuracy:.1%}", r.confusion) for n, r in result.results.items()]
    figure_path = save_figure(confusion_figure(panels, result.dataset.classes), out / "sound_confusion.png")
    payload = {
        "title": "Sound classification (Table 2)",
        "model": label,
        "dataset": result.dataset.name,
        "tables": result_tables(result, untrained),
        "figures": [{"path": figure_path.name, "caption": "Confusion matrices over all test recordings "
                     "(rows: true class, normalised), L3 features and the MFCC baseline"}],
        "metrics": result_metrics(result, args.svm_c),
    }
    notes = sorted({n for r in result.results.values() for s in r.splits for n in s.notes})
    if notes:
        payload["notes"] = notes
    path = write_result(out, "sound", payload)
    for name, feature in result.results.items():
        row = L3_ROW[untrained] if name == "l3" else MFCC_ROW
        print(f"{row:>18}: {feature.accuracy:.1%} (+- {feature.std:.1%} over {len(feature.splits)} splits)")
    print(f"{result.n_subclips} subclips of {len(result.dataset.examples)} recordings, "
          f"{describe_split_rule(result.dataset, result.splits)}")
    print(f"wrote {path} and {figure_path}")
    return 0
