"""The audio front end of an exported l3net model in NumPy and SciPy, without PyTorch or l3net.

``l3net export`` copies this file, unchanged, into every export directory as ``frontend.py``, beside
``frontend.npz`` (its constants: the STFT window, mel filters, decimation filter) and
``contract.json`` (the input contract). The exported audio graph takes what this computes::

    import numpy as np, onnxruntime as ort
    from frontend import Frontend                      # run from the export directory, or add it to sys.path

    frontend = Frontend.load("export_dir")             # reads frontend.npz and contract.json
    spectrograms = frontend(windows)                   # (N, 48000) float32 at 48 kHz -> (N, 1, bins, frames)
    session = ort.InferenceSession("export_dir/audio.onnx")
    embeddings = session.run(None, {"spectrogram": spectrograms})[0]   # (N, 512)

Input: windows of mono float32 audio at 48 kHz, ``window_samples`` long (1 s), values in [-1, 1];
cutting a sound into windows (window ``k`` at ``k * hop`` s, centred or not) is described in
``contract.json`` and in l3net's ``framing`` module.

What it computes (l3net's ``LogSpectrogram``, step by step): decimation to the STFT's rate when it
is below 48 kHz (a Kaiser low-pass FIR, stride ``decimation``); frames of ``win_length`` every
``hop_length`` samples without centre padding (with ``pad_end``, zeros after the clip so the last
frame starts before its end); each frame times the window and zero-padded to ``n_fft``; pocketfft's
real FFT (``scipy.fft``); magnitude (squared if ``power`` is 2); mel filters if any; then either
``log(magnitude + log_floor)`` or decibels ``10 log10(max(magnitude, db_amin))`` relative to each
clip's maximum and floored at ``-db_range``.

Exactness: for the OpenL3 presets (``tensorflow_stft``) l3net itself runs this FFT (pocketfft via
SciPy) with this window, so the spectrograms agree up to the last bit of float rounding, and the
embeddings through onnxruntime agree with l3net's within 1e-5 of their largest value (tested).
For the other presets l3net runs torch.fft (MKL on x86 CPUs), whose round-off differs from
pocketfft's by ~1e-5 of a frame's peak; the log floor magnifies that in near-silent bins, so
embeddings of quiet or silent passages differ by up to ~1e-2 of their largest value (loud,
broadband audio: ~1e-6). That is the same difference as between l3net on two FFT libraries (or on
a CPU and a GPU); no implementation outside PyTorch's CPU FFT can remove it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

#: The files this front end reads from an export directory.
PARAMS_FILE = "frontend.npz"
CONTRACT_FILE = "contract.json"


class Frontend:
    """Waveforms ``(N, samples)`` float32 at 48 kHz -> spectrograms ``(N, 1, bins, frames)`` float32.

    ``config``: the ``audio.frontend`` entry of ``contract.json``; ``window``: the STFT window
    (``win_length``); ``mel_filters``: ``(n_fft // 2 + 1, mel_bands)`` or empty; ``decimation_fir``:
    the low-pass taps (empty when the STFT runs at 48 kHz).
    """

    def __init__(self, config: dict[str, Any], window: np.ndarray, mel_filters: np.ndarray, decimation_fir: np.ndarray) -> None:
        self.config = dict(config)
        self.window = np.asarray(window, np.float32)
        self.mel_filters = np.asarray(mel_filters, np.float32)
        self.decimation_fir = np.asarray(decimation_fir, np.float32)

    @classmethod
    def load(cls, directory: str | Path) -> "Frontend":
        """The front end saved in an export directory (``contract.json`` and ``frontend.npz``)."""
        directory = Path(directory)
        contract = json.loads((directory / CONTRACT_FILE).read_text())
        with np.load(directory / PARAMS_FILE) as params:
            return cls(contract["audio"]["frontend"], params["window"], params["mel_filters"], params["decimation_fir"])

    def decimate(self, waveforms: np.ndarray) -> np.ndarray:
        """Low-pass and keep every ``decimation``-th sample (48 kHz -> the STFT's rate)."""
        factor = int(self.config["decimation"])
        if factor == 1:
            return waveforms
        taps = self.decimation_fir
        pad = (taps.size - 1) // 2
        x = np.pad(waveforms, ((0, 0), (pad, pad)))
        count = (x.shape[1] - taps.size) // factor + 1
        windows = np.lib.stride_tricks.sliding_window_view(x, taps.size, axis=1)[:, : count * factor : factor]
        return (windows @ taps).astype(np.float32)  # correlation, as conv1d computes

    def __call__(self, waveforms: np.ndarray) -> np.ndarray:
        """Spectrograms of ``waveforms`` (``(N, samples)`` or one ``(samples,)``), as the module docstring says."""
        from scipy import fft  # pocketfft, the FFT l3net runs for the OpenL3 presets

        c = self.config
        x = np.asarray(waveforms, np.float32)
        if x.ndim == 1:
            x = x[None]
        if x.ndim != 2:
            raise ValueError(f"expected waveforms of shape (N, samples), got {x.shape}")
        x = self.decimate(x)
        win, hop = int(c["win_length"]), int(c["hop_length"])
        if x.shape[1] < win:
            raise ValueError(f"audio of {x.shape[1]} samples (after decimation) is shorter than one window ({win})")
        if c["pad_end"]:
            frames_needed = -(-x.shape[1] // hop)
            x = np.pad(x, ((0, 0), (0, (frames_needed - 1) * hop + win - x.shape[1])))
        frames = np.lib.stride_tricks.sliding_window_view(x, win, axis=1)[:, ::hop]  # (N, frames, win)
        spectrum = fft.rfft(frames * self.window, n=int(c["n_fft"]), axis=-1)
        magnitude = np.abs(spectrum).astype(np.float32)
        if float(c["power"]) == 2.0:
            magnitude = np.square(magnitude)
        if int(c["mel_bands"]):
            magnitude = magnitude @ self.mel_filters
        if c["scale"] == "db":
            decibels = np.float32(10.0) * np.log10(np.maximum(magnitude, np.float32(c["db_amin"])))
            peak = decibels.max(axis=(1, 2), keepdims=True)  # each clip's own maximum
            logspec = np.maximum(decibels - peak, np.float32(-c["db_range"]))
        else:
            logspec = np.log(magnitude + np.float32(c["log_floor"]))
        return np.ascontiguousarray(logspec.transpose(0, 2, 1)[:, None], dtype=np.float32)
