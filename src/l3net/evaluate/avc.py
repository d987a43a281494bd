"""``l3net eval avc``: audio-visual correspondence accuracy on a split's fixed pairs (Table 1).

Protocol (PAPER_SPEC 1, 2.2, 5.1): the split's fixed, seeded, balanced evaluation pairs
(:class:`~l3net.data.sampler.AVCPairs` with ``train=False``: centre crop, no augmentation; half
positives, half negatives whose audio comes from another video), scored by the network's own
forward pass (towers, then the fusion head). A pair is called corresponding when the softmax
probability of "corresponds" exceeds 0.5 (the arg-max of the two logits). Chance is 50 %.

Per class (when the shards carry labels): a pair is counted under the class of its *image*;
positives therefore have that class on both sides, negatives have an image of that class and
audio of another video (of any class, occasionally the same one). Accuracy on positives, on
negatives, and on the negatives whose audio is of the same class (the hard ones: both videos
show the same kind of event) is reported too.
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from ..data.shards import ShardSet
from ..errors import DatasetError, InputError
from ..fileio import read_json
from ..inference import inference_model
from ..models import L3Net
from ..runtime import autocast, resolve_device
from . import paper
from .inputs import check_split, open_shards
from .result import FigureSpec, Result, new_figure

PROTOCOL = "avc"
TITLE = "Audio-visual correspondence (Table 1)"
#: Pairs per video of the evaluation list (half positives, half negatives).
PAIRS_PER_VIDEO = 10


@dataclass(frozen=True)
class AVCConfig:
    """Settings of :func:`evaluate_avc` (defaults: the paper's evaluation pairs)."""

    #: Split whose fixed pairs are scored ("train", "val" or "test").
    split: str = "test"
    #: Evaluation pairs per video, alternately positive and negative.
    pairs_per_video: int = PAIRS_PER_VIDEO
    #: Pairs per forward pass.
    batch_size: int = 32
    #: DataLoader worker processes decoding pairs (0: in this process).
    num_workers: int = 0
    #: "cpu", "cuda", "cuda:N", "auto", or None for the model's own device.
    device: str | None = None
    #: Numeric precision of the forward pass (runtime.PRECISIONS).
    precision: str = "fp32"
    #: Seed of the pair list (the same seed gives the same pairs).
    seed: int = 0
    #: Show tqdm progress bars.
    progress: bool = True

    def __post_init__(self) -> None:
        for name, low in (("pairs_per_video", 1), ("batch_size", 1), ("num_workers", 0)):
            if getattr(self, name) < low:
                raise InputError(f"{name} must be at least {low}, got {getattr(self, name)}")

#: ``scorer(images, waveforms) -> (B,)`` correspondence scores; a pair corresponds when score > threshold.
Scorer = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


# ------------------------------------------------------------------------------------------------
# metrics
# ------------------------------------------------------------------------------------------------
def accuracy(predicted: Sequence[bool] | np.ndarray, labels: Sequence[int] | np.ndarray) -> float:
    """Fraction of pairs whose prediction (True = corresponds) matches the label (1 = corresponds)."""
    predicted, labels = np.asarray(predicted, bool), np.asarray(labels).astype(bool)
    if predicted.shape != labels.shape or predicted.size == 0:
        raise InputError(f"need as many predictions as labels, at least one (got {predicted.shape} and {labels.shape})")
    return float(np.mean(predicted == labels))


def per_class_accuracy(
    predicted: Sequence[bool] | np.ndarray,
    labels: Sequence[int] | np.ndarray,
    image_class: Sequence[str | None],
    audio_class: Sequence[str | None],
) -> dict[str, dict[str, Any]]:
    """AVC accuracy per class of the *image* of each pair (unlabelled images are left out).

    For each class: ``pairs``, ``accuracy``; ``positives``/``positive_accuracy`` (the image and
    audio of the same video); ``negatives``/``negative_accuracy`` (the image of this class, audio
    of another video); ``same_class_negatives``/``same_class_negative_accuracy`` (that audio also
    of this class). An accuracy over no pairs is None.
    """
    predicted, labels = np.asarray(predicted, bool), np.asarray(labels).astype(bool)
    correct = predicted == labels
    groups: dict[str, list[int]] = defaultdict(list)
    for i, cls in enumerate(image_class):
        if cls is not None:
            groups[cls].append(i)

    def mean(mask: np.ndarray) -> float | None:
        return float(correct[mask].mean()) if mask.any() else None

    out = {}
    for cls in sorted(groups):
        idx = np.zeros(len(correct), bool)
        idx[groups[cls]] = True
        same = idx & ~labels & np.array([a == cls for a in audio_class])
        out[cls] = {
            "pairs": int(idx.sum()),
            "accuracy": mean(idx),
            "positives": int((idx & labels).sum()),
            "positive_accuracy": mean(idx & labels),
            "negatives": int((idx & ~labels).sum()),
            "negative_accuracy": mean(idx & ~labels),
            "same_class_negatives": int(same.sum()),
            "same_class_negative_accuracy": mean(same),
        }
    return out


# ------------------------------------------------------------------------------------------------
# scoring pairs
# ------------------------------------------------------------------------------------------------
def l3_scorer(model: L3Net) -> Scorer:
    """The network's own probability that a frame and a clip correspond."""

    def score(images: torch.Tensor, waveforms: torch.Tensor) -> torch.Tensor:
        # The inference copy (l3net.inference), looked up per call: the model may move between calls.
        return torch.softmax(inference_model(model)(images, waveforms).float(), dim=-1)[:, 1]

    return score


def eval_pairs(
    shards_dir: str | os.PathLike[str] | ShardSet,
    split: str,
    model_config: Any,
    *,
    batch_size: int = 32,
    seed: int = 0,
    pairs_per_video: int = PAIRS_PER_VIDEO,
) -> Any:
    """The split's fixed evaluation pairs (:class:`~l3net.data.sampler.AVCPairs`, ``train=False``)."""
    from ..data.sampler import AVCPairs

    root = shards_dir.root if isinstance(shards_dir, ShardSet) else shards_dir
    check_split(open_shards(shards_dir), split)
    return AVCPairs(root, split, config=model_config, batch_size=batch_size, train=False, seed=seed,
                    eval_pairs_per_video=pairs_per_video)


def score_pairs(
    scorer: Scorer,
    batches: Iterable[dict[str, Any]],
    *,
    device: torch.device,
    precision: str = "fp32",
    progress: bool = True,
    total: int | None = None,
    desc: str = "AVC pairs",
) -> dict[str, Any]:
    """Run ``scorer`` over AVC batches; returns ``score`` (float, (N,)), ``label`` (int, (N,)),
    ``image_class`` / ``audio_class`` / ``image_key`` / ``audio_key`` (lists)."""
    autocast(precision, device)  # a bad precision fails before any work
    out: dict[str, list] = defaultdict(list)
    with tqdm(total=total, desc=desc, unit="pair", disable=not progress, dynamic_ncols=True, leave=False) as bar, \
            torch.inference_mode():
        for batch in batches:
            images = batch["image"].to(device, non_blocking=True)
            audio = batch["audio"].to(device, non_blocking=True)
            with autocast(precision, device):
                scores = scorer(images, audio)
            out["score"].append(scores.float().cpu().numpy())
            out["label"].append(batch["label"].numpy())
            for key in ("image_class", "audio_class", "image_key", "audio_key"):
                out[key].extend(batch[key])
            bar.update(len(batch["label"]))
    if not out["score"]:
        raise DatasetError("no evaluation pairs were produced")
    return {
        "score": np.concatenate(out["score"]),
        "label": np.concatenate(out["label"]).astype(np.int64),
        **{key: list(out[key]) for key in ("image_class", "audio_class", "image_key", "audio_key")},
    }


def summarise(scored: dict[str, Any], threshold: float = 0.5) -> dict[str, Any]:
    """Accuracy (overall, on positives, on negatives, per class) of scored pairs."""
    predicted = scored["score"] > threshold
    labels = scored["label"]
    pos = labels == 1
    metrics: dict[str, Any] = {
        "accuracy": accuracy(predicted, labels),
        "pairs": int(len(labels)),
        "positives": int(pos.sum()),
        "negatives": int((~pos).sum()),
        "positive_accuracy": float((predicted[pos]).mean()) if pos.any() else None,
        "negative_accuracy": float((~predicted[~pos]).mean()) if (~pos).any() else None,
        "threshold": float(threshold),
    }
    if any(c is not None for c in scored["image_class"]):
        metrics["per_class"] = per_class_accuracy(predicted, labels, scored["image_class"], scored["audio_class"])
        same = (~pos) & np.array([a is not None and a == i for a, i in zip(scored["audio_class"], scored["image_class"])])
        metrics["same_class_negatives"] = int(same.sum())
        metrics["same_class_negative_accuracy"] = float((~predicted[same]).mean()) if same.any() else None
    return metrics


# ------------------------------------------------------------------------------------------------
# the protocol
# ------------------------------------------------------------------------------------------------
@dataclass
class AVCResult(Result):
    """Table 1's AVC accuracy; ``metrics["accuracy"]`` is the headline number (chance 0.5),
    ``metrics["per_class"]`` the per-class one. ``scored`` keeps every pair's score for the pictures."""

    protocol = PROTOCOL
    scored: dict[str, Any] = field(default_factory=dict, repr=False)

    def figures(self) -> list[FigureSpec]:
        specs = [FigureSpec("avc_scores.png", "Probability of 'corresponds' for positive and negative test pairs",
                            lambda: scores_figure(self.scored))]
        if "per_class" in self.metrics:
            specs.append(FigureSpec("avc_per_class.png", "AVC accuracy per class of the image (positives, negatives)",
                                    lambda: per_class_figure(self.metrics["per_class"])))
        return specs


def evaluate_avc(
    model: L3Net,
    shards_dir: str | os.PathLike[str] | ShardSet,
    config: AVCConfig | None = None,
    *,
    model_name: str = "L3-Net (ours)",
    supervised: dict[str, float] | None = None,
) -> AVCResult:
    """AVC accuracy of ``model`` on the fixed, balanced pairs of ``config.split`` (Table 1).

    ``model_name`` labels the model's row. ``supervised``: the supervised baselines' accuracies on the same pairs (``{"Supervised direct":
    ..., "Supervised pretraining": ...}``, see :func:`read_supervised_rows`), shown in the table.
    """
    config = config or AVCConfig()
    split, pairs_per_video, batch_size, seed = config.split, config.pairs_per_video, config.batch_size, config.seed
    device, precision, progress = config.device, config.precision, config.progress
    shards = open_shards(shards_dir)
    target = resolve_device(device) if device is not None else next(model.parameters()).device
    model = model.to(target).eval()
    dataset = eval_pairs(shards, split, model.config, batch_size=batch_size, seed=seed, pairs_per_video=pairs_per_video)
    loader = torch.utils.data.DataLoader(dataset, batch_size=None, num_workers=config.num_workers)
    scored = score_pairs(l3_scorer(model), loader, device=target, precision=precision, progress=progress,
                         total=dataset.num_pairs, desc=f"AVC {split} pairs")
    metrics = summarise(scored)
    metrics.update({"split": split, "seed": seed, "pairs_per_video": pairs_per_video, "chance": paper.AVC_CHANCE})

    supervised = supervised or {}
    flickr, kinetics = paper.AVC["flickr_soundnet"], paper.AVC["kinetics_sounds"]
    rows = [
        ["chance", paper.AVC_CHANCE, paper.AVC_CHANCE, paper.AVC_CHANCE],
        ["Supervised direct", supervised.get("Supervised direct"), flickr.get("Supervised direct"), kinetics["Supervised direct"]],
        ["Supervised pretraining", supervised.get("Supervised pretraining"), flickr.get("Supervised pretraining"),
         kinetics["Supervised pretraining"]],
        [model_name, round(metrics["accuracy"], 4), flickr["L3-Net"], kinetics["L3-Net"]],
    ]
    tables = [{
        "title": f"AVC accuracy on the {split} split's balanced pairs (chance 0.5)",
        "columns": ["method", "ours", "paper Flickr-SoundNet", "paper Kinetics-Sounds"],
        "rows": rows,
    }]
    notes = [
        f"{metrics['pairs']} pairs ({metrics['positives']} positive, {metrics['negatives']} negative; "
        f"{pairs_per_video} per video, seed {seed}); accuracy on positives "
        f"{_pct(metrics['positive_accuracy'])}, on negatives {_pct(metrics['negative_accuracy'])}.",
    ]
    if not supervised:
        notes.append("The supervised rows need labels and are computed by 'l3net eval baselines' "
                     "(shown here when its result, on the same pairs, is in the same eval folder).")
    if "per_class" in metrics:
        tables.append({
            "title": "AVC accuracy per class (a pair counts under the class of its image)",
            "columns": ["class", "pairs", "accuracy", "on positives", "on negatives", "on same-class negatives"],
            "rows": [
                [c, m["pairs"], _r(m["accuracy"]), _r(m["positive_accuracy"]), _r(m["negative_accuracy"]),
                 _r(m["same_class_negative_accuracy"])]
                for c, m in metrics["per_class"].items()
            ],
        })
        notes.append(
            "Negatives pair a frame with another video's audio; 'same-class negatives' are those whose audio "
            f"is of the image's class too (accuracy {_pct(metrics['same_class_negative_accuracy'])} over "
            f"{metrics['same_class_negatives']} pairs): they can only be told apart by the exact sound."
        )
    return AVCResult(title=TITLE, model=model_name, dataset=str(shards.root), tables=tables, metrics=metrics,
                     notes=notes, config=config, scored=scored)


def _r(x: float | None) -> float | None:
    return None if x is None else round(float(x), 4)


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f} %"


def read_supervised_rows(
    eval_dir: str | os.PathLike[str], shards: ShardSet, split: str, pairs_per_video: int, seed: int
) -> dict[str, float]:
    """The supervised rows from ``baselines.json`` of an eval folder, if it scored the same pairs
    (same shards, split, pairs per video and seed); else empty."""
    path = Path(eval_dir) / "baselines.json"
    try:
        data = read_json(path)
        metrics = data["metrics"]
        settings = metrics["settings"]
        same_pairs = (
            Path(data["dataset"]).resolve() == shards.root.resolve()
            and metrics.get("split") == split
            and settings.get("pairs_per_video") == pairs_per_video
            and settings.get("seed") == seed
        )
        if not same_pairs:
            return {}
        return {name: float(metrics["avc"][name]) for name in ("Supervised direct", "Supervised pretraining")}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


# ------------------------------------------------------------------------------------------------
# pictures
# ------------------------------------------------------------------------------------------------
def scores_figure(scored: dict[str, Any]) -> Any:
    """Histogram of P(corresponds) for positive and negative pairs."""
    fig = new_figure(6, 3.5)
    ax = fig.subplots()
    bins = np.linspace(0, 1, 26)
    pos = scored["label"] == 1
    ax.hist(scored["score"][pos], bins=bins, alpha=0.6, label=f"corresponding ({pos.sum()})")
    ax.hist(scored["score"][~pos], bins=bins, alpha=0.6, label=f"not corresponding ({(~pos).sum()})")
    ax.axvline(0.5, color="k", linestyle=":", linewidth=1)
    ax.set_xlabel("P(corresponds)")
    ax.set_ylabel("pairs")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def per_class_figure(per_class: dict[str, dict[str, Any]]) -> Any:
    """Bars of the AVC accuracy per class: all pairs, positives, negatives."""
    names = list(per_class)
    x = np.arange(len(names))

    def values(key: str) -> list[float]:
        return [np.nan if per_class[c][key] is None else per_class[c][key] for c in names]

    fig = new_figure(max(6, 0.35 * len(names) + 2), 4)
    ax = fig.subplots()
    ax.bar(x - 0.27, values("accuracy"), 0.27, label="all pairs")
    ax.bar(x, values("positive_accuracy"), 0.27, label="positives")
    ax.bar(x + 0.27, values("negative_accuracy"), 0.27, label="negatives")
    ax.axhline(paper.AVC_CHANCE, color="k", linestyle=":", linewidth=1)
    ax.set_xticks(x, names, rotation=60, ha="right", fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel("AVC accuracy")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
