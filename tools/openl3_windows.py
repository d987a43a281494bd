"""Write TensorFlow's float32 periodic Hann windows (512 and 2048 points) as l3net package data.

Why they are shipped: openl3 0.4.2's audio front end is kapre 0.3.7, whose STFT layer calls
``tf.signal.stft(..., window_fn=tf.signal.hann_window)`` with ``frame_length = n_fft`` (512 for
``linear``, 2048 for ``mel128``/``mel256``). TensorFlow computes that periodic Hann window in
float32, and its values differ from ``torch.hann_window``'s in the last bit (60 of 512 and 234 of
2048 values, by at most 6e-8). Those last bits matter: the bottom of kapre's 80 dB range is FFT
round-off, which a network's BatchNorm amplifies, so l3net reaches openl3's embeddings to ~3e-6
(relative to the largest value) only with TensorFlow's exact window and the same FFT (pocketfft,
which ``scipy.fft.rfft`` also runs); with torch's window and FFT, 1e-3 to 1e-2. l3net cannot depend
on TensorFlow, so the two windows are stored once, here, and
:mod:`l3net.spectrogram` loads them (checking them against a float64 Hann window).

How they were obtained: ``tf.signal.hann_window(n, periodic=True, dtype=tf.float32)`` for
n = 512 and 2048 (kapre's default window function), TensorFlow 2.15.1 on the CPU. Run with a
Python that has TensorFlow (l3net's tests do not run this script)::

    /work/peers/openl3/bin/python tools/openl3_windows.py

It writes ``src/l3net/data_files/openl3_hann.npz`` with arrays ``hann_512`` and ``hann_2048``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf

SIZES = (512, 2048)  # n_fft of openl3's linear and mel front ends
OUTPUT = Path(__file__).resolve().parents[1] / "src" / "l3net" / "data_files" / "openl3_hann.npz"


def main() -> None:
    windows = {}
    for n in SIZES:
        window = tf.signal.hann_window(n, periodic=True, dtype=tf.float32).numpy()
        reference = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)  # float64 periodic Hann
        deviation = np.abs(window.astype(np.float64) - reference).max()
        assert window.dtype == np.float32 and deviation < 3e-7, (n, window.dtype, deviation)
        windows[f"hann_{n}"] = window
        print(f"hann_{n}: max |tf - float64 Hann| = {deviation:.2e}")
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    tmp = OUTPUT.with_suffix(".tmp.npz")
    np.savez(tmp, **windows)
    tmp.replace(OUTPUT)
    print(f"wrote {OUTPUT} (TensorFlow {tf.__version__})")


if __name__ == "__main__":
    main()
