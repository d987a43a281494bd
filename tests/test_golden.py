"""Golden regression of every preset but the small one (that one is ``test_embed.test_golden_regression``):
a fixed-seed model's pool4 and conv4_2 features, image and audio, and its spectrogram, of a fixed
code-generated input, against the files in tests/golden/ (see tests/golden/make_golden.py).

Tolerance: 2e-4 absolute plus 1e-3 relative, on features whose median magnitude is 0.1-0.3 (at most
~5). Re-running on 1 or 2 threads gives identical numbers; the small preset's golden file, made on
another machine, differs from this machine's features by at most 5e-6. A changed front end, framing, resampler, preprocessing or layer moves
them by much more (the mutation check, tools/mutants.py, applies such changes).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import golden.make_golden as make_golden

LARGE_PRESETS = [p for p in make_golden.PRESETS if p != "small"]


@pytest.mark.parametrize("preset", LARGE_PRESETS)
def test_golden_regression_of_preset(preset: str) -> None:
    path: Path = make_golden.output_path(preset)
    assert path.is_file(), f"{path} is missing: run python tests/golden/make_golden.py {preset}"
    stored = np.load(path)
    current = make_golden.compute(preset)
    assert set(stored.files) == set(current)
    for key in stored.files:
        assert stored[key].shape == current[key].shape, key
        np.testing.assert_allclose(current[key], stored[key], atol=2e-4, rtol=1e-3, err_msg=f"{preset}: {key}")
