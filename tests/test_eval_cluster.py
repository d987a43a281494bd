"""Table 4 / Figure 10: NMI, the random-assignment row, k handling, and the command end to end."""

from __future__ import annotations

import math

import numpy as np
import pytest

from l3net.errors import InputError
from l3net.evaluate.cluster import kmeans_nmi, nmi, random_assignment_nmi, resolve_k


def test_nmi_hand_computed():
    labels, clusters = ["a", "a", "b", "b"], [0, 0, 0, 1]
    # H(Y) = ln 2; H(C) of (3/4, 1/4); I(Y; C) from the joint (a,0)=1/2, (b,0)=1/4, (b,1)=1/4.
    h_y = math.log(2)
    h_c = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    mi = 0.5 * math.log(0.5 / (0.5 * 0.75)) + 0.25 * math.log(0.25 / (0.5 * 0.75)) + 0.25 * math.log(0.25 / (0.5 * 0.25))
    assert nmi(labels, clusters) == pytest.approx(mi / ((h_y + h_c) / 2), abs=1e-9)
    assert nmi(labels, [5, 5, 7, 7]) == pytest.approx(1.0)  # cluster names do not matter
    assert nmi(labels, [0, 1, 0, 1]) == pytest.approx(0.0, abs=1e-12)


def test_random_assignment_nmi_is_the_finite_sample_floor():
    rng = np.random.default_rng(12345)  # not seed 0: the assignments draw from a seed-0 stream
    many = rng.integers(0, 10, size=3000)
    assert random_assignment_nmi(many, 2, repeats=5) < 0.01  # few clusters, many inputs: ~0
    few = rng.integers(0, 10, size=100)
    biased = random_assignment_nmi(few, 64, repeats=5)
    assert 0.4 < biased < 1.0  # many clusters, few inputs: far above 0, the paper's 0.165 effect
    assert random_assignment_nmi(few, 64, repeats=5, seed=1) == pytest.approx(biased, abs=0.05)


def test_resolve_k_clamps_with_a_note_and_rejects_nonsense():
    assert resolve_k(64, 1000) == (64, None)
    k, note = resolve_k(64, 20)
    assert k == 20 and "exceeds the 20 test inputs" in note
    with pytest.raises(InputError, match="at least 2"):
        resolve_k(1, 100)
    with pytest.raises(InputError, match="at least 2 inputs"):
        resolve_k(4, 1)


def test_kmeans_nmi_separated_blobs_vs_noise():
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(4, 16)) * 20
    labels = np.repeat(np.arange(4), 25)
    blobs = centres[labels] + rng.normal(size=(100, 16))
    assert kmeans_nmi(blobs, labels, 4) == pytest.approx(1.0)
    noise = rng.normal(size=(100, 16))
    assert kmeans_nmi(noise, labels, 4) < 0.2
    with pytest.raises(InputError, match="NaN"):
        kmeans_nmi(np.full((10, 3), np.nan), labels[:10], 2)
