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

import collections
import concurrent.futures
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np
from tqdm.auto import tqdm

from ..config import PRESETS, SAMPLE_RATE
from ..errors import DatasetError, InputError, MediaError
from ..framing import window_start
from ..media import load_audio
from ..modelspec import DEFAULT_RANDOM_SEEDS, random_twins
from ..models import L3Net
from . import paper
from .classify import (  # noqa: F401 - part of this protocol, importable from here too
    C_GRID,
    DEFAULT_C,
    INNER_FOLDS,
    describe_inner_groups,
    inner_cv_groups,
    make_svm,
    FeatureResult,
    SplitResult,
    class_scores,
    classify_recordings,
    confusion_figure,
    recording_scores,
)
from .datasets import LabelledFiles, Split, describe_split_rule, format_skipped
from .features import audio_features
from .mfcc import mfcc_summary
from .result import FigureSpec, Result, mean_spread, spread_text

PROTOCOL = "sound"
TITLE = "Sound classification (Table 2)"
#: Subclips per second of audio for recordings of any length: the density of the paper's
#: 10 per 5 s ESC-50 clip and 60 per 30 s DCASE clip.
SUBCLIPS_PER_SECOND = 2
FEATURE_SETS = ("l3", "mfcc")
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
    # The embedding API's uncentred framing with a hop of span / (count - 1) samples (sample_rate=1).
    hop = span / (count - 1)
    return np.array([window_start(k, hop, False, clip_samples, sample_rate=1) for k in range(count)], dtype=np.int64)


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
L3_ROW = {True: "L3 random weights", False: "L3-Net"}
MFCC_ROW = "SVM-MFCC"


@dataclass(frozen=True)
class SoundConfig:
    """Settings of :func:`evaluate_sound` (defaults: the paper's protocol; C, which the paper does not
    give, is chosen inside each training split, see :func:`make_svm`)."""

    #: Which rows to compute: "l3" (the model's features), "mfcc" (the baseline), or both.
    feature_sets: tuple[str, ...] = FEATURE_SETS
    #: The SVMs' C (> 0), or "auto" to choose it from :data:`C_GRID` by grouped cross-validation inside
    #: each training split.
    C: float | str = "auto"
    #: Random networks averaged in the "L3 random weights" row when the model is random itself (weights
    #: from ``seed``, ``seed + 1``, ...); each costs one more decoding and forward pass over the dataset.
    random_seeds: int = DEFAULT_RANDOM_SEEDS
    #: Cross-validation splits for datasets without predefined folds (at least 2).
    n_splits: int = 5
    #: Seed of the cross-validation splits.
    seed: int = 0
    #: Subclips per forward pass.
    batch_size: int = 32
    #: "cpu", "cuda", "cuda:N", "auto", or None for the model's own device.
    device: str | None = None
    #: Numeric precision of the forward pass (runtime.PRECISIONS).
    precision: str = "fp32"
    #: Show tqdm progress bars.
    progress: bool = True

    def __post_init__(self) -> None:
        unknown = sorted(set(self.feature_sets) - set(FEATURE_SETS))
        if unknown or not self.feature_sets:
            raise InputError(f"feature sets must be among {FEATURE_SETS}, got {list(self.feature_sets)}")
        if self.C != "auto" and not (isinstance(self.C, (int, float)) and self.C > 0 and np.isfinite(self.C)):
            raise InputError(f"C must be a positive number or 'auto', got {self.C!r}")
        if self.n_splits < 2:
            raise InputError(f"n_splits must be at least 2, got {self.n_splits}")
        if self.random_seeds < 1:
            raise InputError(f"random_seeds must be at least 1, got {self.random_seeds}")
        if self.batch_size < 1:
            raise InputError(f"batch_size must be at least 1, got {self.batch_size}")


@dataclass
class SoundResult(Result):
    """Table 2: ``results[name]`` per feature set ("l3", "mfcc") on ``splits`` of ``files`` (the
    dataset without the recordings that failed to decode)."""

    protocol = PROTOCOL
    files: LabelledFiles | None = field(default=None, repr=False)
    splits: list[Split] = field(default_factory=list, repr=False)
    results: dict[str, FeatureResult] = field(default_factory=dict, repr=False)
    #: When the model is random: the L3 results of every random network, by weight seed (the first is
    #: ``results["l3"]``).
    random_runs: dict[int, FeatureResult] = field(default_factory=dict, repr=False)
    n_subclips: int = 0
    extract_seconds: float = 0.0  # the model's features (and MFCC)
    random_extract_seconds: float = 0.0  # the other random networks' features
    classify_seconds: float = 0.0

    def figures(self) -> list[FigureSpec]:
        panels = [(f"{n.upper()} features: accuracy {r.accuracy:.1%}", r.confusion) for n, r in self.results.items()]
        return [FigureSpec("sound_confusion.png", "Confusion matrices over all test recordings (rows: true class, "
                           "normalised), L3 features and the MFCC baseline",
                           lambda: confusion_figure(panels, self.files.classes))]


def evaluate_sound(
    dataset: LabelledFiles,
    model: L3Net | None,
    config: SoundConfig | None = None,
    *,
    model_name: str = "L3-Net (ours)",
    untrained: bool = False,
) -> SoundResult:
    """Run Table 2's protocol on ``dataset`` for ``config.feature_sets`` ("l3", "mfcc"; ``model`` may
    be None for "mfcc" alone).

    ``model_name`` labels the model's row; ``untrained``: the model has random weights (from
    ``config.seed``), so the "L3 random weights" row is filled, by the mean and spread over
    ``config.random_seeds`` random networks (weights from ``config.seed``, ``+ 1``, ...; the others
    are built and run here, one at a time).
    """
    config = config or SoundConfig()
    feature_sets, C, n_splits, seed = config.feature_sets, config.C, config.n_splits, config.seed
    batch_size, device, precision, progress = config.batch_size, config.device, config.precision, config.progress
    extracted = extract_subclip_features(
        dataset, model, feature_sets, batch_size=batch_size, device=device, precision=precision, progress=progress
    )
    dataset = extracted.dataset
    splits = dataset.splits(n_splits=n_splits, seed=seed)
    labels = dataset.labels()
    groups = inner_cv_groups(dataset)
    start = time.perf_counter()

    def classify(features: np.ndarray, desc: str) -> FeatureResult:
        return classify_recordings(features, extracted.recording, labels, splits, len(dataset.classes),
                                   make_classifier=lambda: make_svm(C, seed=seed), progress=progress, desc=desc,
                                   groups=groups)

    results = {name: classify(extracted.features[name], f"SVM on {name.upper()}") for name in feature_sets}
    random_runs: dict[int, FeatureResult] = {}
    random_seconds = 0.0
    if untrained and "l3" in feature_sets:
        classify_seconds = time.perf_counter() - start
        for weight_seed, network in random_twins(model, seed, config.random_seeds, untrained=True):
            if network is model:
                random_runs[weight_seed] = results["l3"]
                continue
            again = extract_subclip_features(dataset, network, ("l3",), batch_size=batch_size, device=device,
                                             precision=precision, progress=progress)
            random_seconds += again.seconds
            begin = time.perf_counter()
            random_runs[weight_seed] = classify(again.features["l3"], f"SVM on L3 (random weights, seed {weight_seed})")
            classify_seconds += time.perf_counter() - begin
        start = time.perf_counter() - classify_seconds
    result = SoundResult(title=TITLE, model=model_name if model is not None else "none (MFCC only)",
                         dataset=dataset.name, tables=[], metrics={}, files=dataset, splits=splits, results=results,
                         random_runs=random_runs, n_subclips=len(extracted.recording), extract_seconds=extracted.seconds,
                         random_extract_seconds=random_seconds,
                         classify_seconds=time.perf_counter() - start, config=config)
    result.tables = result_tables(result, untrained)
    result.metrics = result_metrics(result, C)
    every = list(results.values()) + [r for r in random_runs.values() if r is not results.get("l3")]
    result.notes = sorted({n for r in every for s in r.splits for n in s.notes})
    if "mfcc" in results:
        result.notes.append(f"{MFCC_ROW}, ours: l3net's MFCC recipe (52-D MFCC statistics per 1 s subclip, the same "
                            "SVM and splits as the L3 row); the paper's number beside it is a published baseline the "
                            "paper quotes, computed with its authors' recipe (see the table's last column)")
    return result


def random_row(result: SoundResult) -> dict[str, Any] | None:
    """The "L3 random weights" row over its random networks (:func:`l3net.evaluate.result.mean_spread`
    of their accuracies, with their weight seeds), or None when the model is not random."""
    if not result.random_runs:
        return None
    seeds = sorted(result.random_runs)
    return mean_spread([result.random_runs[s].accuracy for s in seeds], seeds)


# ------------------------------------------------------------------------------------------------
# results
# ------------------------------------------------------------------------------------------------
def result_tables(result: SoundResult, untrained: bool) -> list[dict[str, Any]]:
    """The paper's Table 2 beside ours, and the per-split accuracies."""
    kind = result.files.kind
    reference = paper.SOUND.get(kind, paper.SOUND["esc50"])
    ours: dict[str, Any] = {}
    spread = random_row(result)
    if "l3" in result.results:
        ours[L3_ROW[untrained]] = spread_text(spread) if spread else result.results["l3"].accuracy
    if "mfcc" in result.results:
        ours[MFCC_ROW] = result.results["mfcc"].accuracy
    rows = [[method, ours.pop(method, None), value, paper.source(PROTOCOL, method, value)]
            for method, value in reference.items()]
    rows += [[method, value, None, None] for method, value in ours.items()]  # ours with no paper row
    paper_column = "paper" if kind in paper.SOUND else "paper (ESC-50, for reference)"
    name = {"esc50": "ESC-50", "dcase2013": "DCASE 2013 scenes"}.get(kind, str(result.files.root))
    per_split = []
    shown = [n for n in FEATURE_SETS if n in result.results]
    for i, split in enumerate(result.splits):
        row: list[Any] = [split.name, len(split.train), len(split.test)]
        row += [result.results[n].splits[i].accuracy for n in shown]
        row += [result.results[n].splits[i].C for n in shown]
        per_split.append(row)
    mean_row: list[Any] = ["mean", None, None] + [result.results[n].accuracy for n in shown] + [None] * len(shown)
    first_seed = min(result.random_runs) if result.random_runs else None
    heading = {n: n.upper() + (f" (weights seed {first_seed})" if n == "l3" and first_seed is not None else "")
               for n in shown}
    title = f"Sound classification accuracy, {name} (Table 2)"
    if spread:
        title += f"; the random-weights row: mean \u00b1 std over {spread['n']} random networks (seeds " \
                 f"{', '.join(map(str, spread['seeds']))})"
    return [
        {"title": title, "columns": ["method", "ours", paper_column, paper.SOURCE_COLUMN], "rows": rows},
        {
            "title": "Accuracy per split (recordings), and the SVM's C there",
            "columns": ["split", "train recordings", "test recordings"]
            + [f"{heading[n]} accuracy" for n in shown] + [f"{n.upper()} C" for n in shown],
            "rows": per_split + [mean_row],
        },
    ]


def result_metrics(result: SoundResult, C: float | str) -> dict[str, Any]:
    dataset = result.files
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
                       **({"C_grid": list(C_GRID), "inner_folds": INNER_FOLDS,
                           "inner_groups": describe_inner_groups(dataset)} if C == "auto" else {}),
                       "averaging": "mean of subclip scores"},
        "timing": {
            "extract_seconds": round(result.extract_seconds, 2),
            "classify_seconds": round(result.classify_seconds, 2),
            "subclips_per_second": round(result.n_subclips / max(result.extract_seconds, 1e-9), 1),
            **({"random_networks_extract_seconds": round(result.random_extract_seconds, 2)}
               if result.random_extract_seconds else {}),
        },
    }
    for name, feature in result.results.items():
        metrics[name] = {
            "accuracy": feature.accuracy,
            "accuracy_std": feature.std,
            "feature_dim": feature.dim,
            "splits": [s.to_json() for s in feature.splits],
            "convergence_warnings": sum(s.convergence_warnings for s in feature.splits),
            "not_converged_splits": [s.name for s in feature.splits if s.converged is False],
            "confusion": feature.confusion.tolist(),
        }
    spread = random_row(result)
    if spread:
        metrics["l3"]["weights_seed"] = min(result.random_runs)
        metrics["random_weights"] = {
            "row": L3_ROW[True], **spread,
            "per_seed": [{"seed": seed, "accuracy": run.accuracy, "splits": [s.to_json() for s in run.splits],
                          "convergence_warnings": sum(s.convergence_warnings for s in run.splits)}
                         for seed, run in sorted(result.random_runs.items())],
        }
    return metrics
