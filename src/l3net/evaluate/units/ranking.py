"""The unit analysis's measures (Section 3.5.3): each unit's top inputs, their classes, and the
classes that have a high-preference unit; pure functions of activations and labels."""

from __future__ import annotations

from collections import Counter
from typing import Any, Sequence

import numpy as np

from ...errors import InputError
from ...models import MODALITIES
from .. import paper

Ranking = dict[str, tuple[np.ndarray, np.ndarray]]  # per tower: (top inputs (U, k), alive (U,)) of top_inputs


def top_inputs(
    activations: np.ndarray,
    k: int = paper.UNIT_TOP_K,
    *,
    seed: int = 0,
    groups: Sequence[Any] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` inputs each unit responds to most.

    ``activations``: ``(N inputs, U units)``. ``groups`` (optional, one per input, e.g. the video
    each frame comes from): at most one input per group enters a unit's top ``k`` (its best one),
    so near-identical frames of one video cannot fill a unit's top 5. Returns ``(top, alive)``:
    ``top`` ``(U, k)`` input indices, highest activation first (ties in a seeded random order);
    ``alive`` ``(U,)`` False for units whose activation is the same for every input.
    """
    acts = np.asarray(activations, dtype=np.float64)
    if acts.ndim != 2:
        raise InputError(f"activations must be (inputs, units), got shape {acts.shape}")
    n, units = acts.shape
    group_ids = None if groups is None else np.unique(np.asarray(groups, dtype=object).astype(str), return_inverse=True)[1]
    distinct = n if group_ids is None else int(group_ids.max()) + 1
    if distinct < k:
        what = "inputs" if group_ids is None else "distinct videos"
        raise InputError(f"ranking the top {k} inputs of a unit needs at least {k} {what}, got {distinct}")
    if not np.isfinite(acts).all():
        raise InputError("activations contain NaN or infinite values")
    tiebreak = np.random.default_rng(seed).permutation(n)
    top = np.empty((units, k), dtype=np.int64)
    for u in range(units):
        # lexsort: the last key is the primary one (descending activation), the random rank breaks ties.
        order = np.lexsort((tiebreak, -acts[:, u]))
        if group_ids is not None:
            _, first = np.unique(group_ids[order], return_index=True)  # each group's best position
            order = order[np.sort(first)]
        top[u] = order[:k]
    alive = acts.max(axis=0) > acts.min(axis=0)
    return top, alive


def unit_preferences(top: np.ndarray, labels: Sequence[Any], alive: np.ndarray | None = None) -> list[tuple[Any, int] | None]:
    """Per unit, its top inputs' most common class and how many of them have it (None: dead unit).

    Ties between classes go to the class of the higher-ranked input.
    """
    labels = np.asarray(labels, dtype=object)
    prefs: list[tuple[Any, int] | None] = []
    for u, row in enumerate(top):
        if alive is not None and not alive[u]:
            prefs.append(None)
            continue
        counts = Counter(labels[row])
        best = max(counts.values())
        winner = next(c for c in labels[row] if counts[c] == best)
        prefs.append((winner, best))
    return prefs


def classes_with_unit(
    top: np.ndarray, labels: Sequence[Any], threshold: int, alive: np.ndarray | None = None
) -> list[Any]:
    """Sorted classes that have a unit with at least ``threshold`` of its top inputs of that class."""
    if threshold < 1 or threshold > top.shape[1]:
        raise InputError(f"threshold must be between 1 and {top.shape[1]}, got {threshold}")
    labels = np.asarray(labels, dtype=object)
    found = set()
    for u, row in enumerate(top):
        if alive is not None and not alive[u]:
            continue
        for cls, count in Counter(labels[row]).items():
            if count >= threshold:
                found.add(cls)
    return sorted(found)


def select_units(
    top: np.ndarray, labels: Sequence[Any] | None, alive: np.ndarray, activations: np.ndarray, count: int
) -> list[int]:
    """``count`` units to draw: the purest top 5 first, preferring distinct classes, then by activation.

    Without ``labels`` (unlabelled shards): the living units whose best input fires them hardest,
    one per best input first."""
    strength = np.asarray(activations)[top[:, 0], np.arange(top.shape[0])]
    if labels is None:  # distinct best inputs first, so the grid does not show one picture many times
        living = sorted((u for u in range(top.shape[0]) if alive[u]), key=lambda u: (-strength[u], u))
        chosen, shown = [], set()
        for u in living:
            if int(top[u, 0]) not in shown and len(chosen) < count:
                chosen.append(u)
                shown.add(int(top[u, 0]))
        return chosen + [u for u in living if u not in chosen][: count - len(chosen)]
    prefs = unit_preferences(top, labels, alive)
    candidates = [u for u, p in enumerate(prefs) if p is not None]
    candidates.sort(key=lambda u: (-prefs[u][1], -strength[u], u))
    chosen, seen = [], set()
    for u in candidates:  # one unit per class first, so the grid shows several classes
        if prefs[u][0] not in seen:
            chosen.append(u)
            seen.add(prefs[u][0])
        if len(chosen) == count:
            return chosen
    chosen += [u for u in candidates if u not in chosen][: count - len(chosen)]
    return chosen


def class_counts(
    ranking: dict[str, Ranking], labels: np.ndarray,
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Per threshold, network and tower: classes with a high-preference unit (count, names) and
    units that qualify."""
    counts: dict[str, dict[str, dict[str, int]]] = {}
    unit_counts: dict[str, dict[str, dict[str, int]]] = {}
    found: dict[str, dict[str, dict[str, list[str]]]] = {}
    for threshold in paper.UNIT_CLASSES:
        key = str(threshold)
        counts[key], found[key], unit_counts[key] = {}, {}, {}
        for network in ranking:
            counts[key][network], found[key][network], unit_counts[key][network] = {}, {}, {}
            for modality in MODALITIES:
                top, alive = ranking[network][modality]
                names = classes_with_unit(top, labels, threshold, alive)
                counts[key][network][modality] = len(names)
                found[key][network][modality] = [str(c) for c in names]
                prefs = unit_preferences(top, labels, alive)
                unit_counts[key][network][modality] = sum(1 for p in prefs if p is not None and p[1] >= threshold)
    return counts, found, unit_counts
