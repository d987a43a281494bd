"""The log-spectrogram front end as an ``nn.Module``, so it runs on the device with the network.

Paper 3.1: 48 kHz mono, 480-sample Hann windows with a hop of 240, each frame zero-padded to a
512-point FFT, magnitude, then a log with a floor -> 257 x 199 for one second.

The 198-frame pitfall: ``torch.stft(n_fft=512, win_length=480, center=False)`` frames the signal
in 512-sample chunks (the window is padded to n_fft inside the frame), giving 198 frames, and
``center=True`` gives 201. We frame with the 480-sample window itself and zero-pad each frame at
the FFT, which is what the paper (and ``scipy.signal.stft(nperseg=480, nfft=512)``) does.

The same module computes OpenL3's front ends (``scale="db"``, ``mel_bands``, ``pad_end``: see
:class:`~l3net.config.SpectrogramConfig`), matching kapre 0.3.7 as openl3 0.4.2 builds it. With ``tensorflow_stft`` (the openl3-* presets)
the STFT is TensorFlow's bit for bit on the CPU: TensorFlow's float32 Hann window, shipped as
package data (``data_files/openl3_hann.npz``, written by ``tools/openl3_windows.py``), and
pocketfft's rfft through ``scipy.fft`` (TensorFlow's CPU FFT is pocketfft too). That matters
because the bottom of the 80 dB range is FFT round-off, which a network's BatchNorm amplifies:
openl3's embeddings are matched to ~3e-6 of their largest value this way, to 1e-3..1e-2 with
torch's window and FFT. On other devices torch.fft runs (no host round trip), so parity there is
the looser figure (not measured on a GPU). The SciPy FFT returns no gradient; the front end has no parameters, and a
waveform that requires a gradient takes torch.fft instead.
"""

from __future__ import annotations

import functools
import zipfile
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .config import SAMPLE_RATE, SpectrogramConfig
from .errors import ModelFileError


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney's mel scale (the Auditory Toolbox): linear below 1 kHz, logarithmic above."""
    hz = np.asarray(hz, dtype=np.float64)
    linear = hz * 3.0 / 200.0
    log_part = 15.0 + np.log(np.maximum(hz, 1e-12) / 1000.0) / (np.log(6.4) / 27.0)
    return np.where(hz >= 1000.0, log_part, linear)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    linear = mel * 200.0 / 3.0
    log_part = 1000.0 * np.exp((np.log(6.4) / 27.0) * (mel - 15.0))
    return np.where(mel >= 15.0, log_part, linear)


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int) -> np.ndarray:
    """Triangular mel filters ``(n_fft // 2 + 1, n_mels)``, float32, 0 Hz to Nyquist.

    Slaney's mel scale with area normalisation (each triangle scaled by 2 / its width in Hz):
    the filters librosa (``htk=False, norm="slaney"``) and kapre (``mel_norm="slaney"``) build.
    """
    fft_hz = np.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1)
    edges_hz = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(sample_rate / 2.0), n_mels + 2))
    widths = np.diff(edges_hz)
    rising = (fft_hz[None, :] - edges_hz[:-2, None]) / widths[:-1, None]
    falling = (edges_hz[2:, None] - fft_hz[None, :]) / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights *= (2.0 / (edges_hz[2:] - edges_hz[:-2]))[:, None]
    return np.ascontiguousarray(weights.T, dtype=np.float32)


#: TensorFlow's float32 periodic Hann windows (``hann_512``, ``hann_2048``), see the module docstring.
TENSORFLOW_WINDOWS = "data_files/openl3_hann.npz"


@functools.lru_cache(maxsize=None)
def tensorflow_hann_window(length: int, path: Path | None = None) -> np.ndarray:
    """``tf.signal.hann_window(length)`` (periodic, float32, unitless) from the shipped package data.

    ``path``: another ``.npz`` of the same layout (``hann_<length>`` arrays) instead of the package's.
    Checked against a float64 periodic Hann window (within 3e-7, float32 round-off), so a damaged
    or wrong file fails loudly, naming itself, instead of moving every feature.
    """
    source = resources.files("l3net").joinpath(TENSORFLOW_WINDOWS) if path is None else Path(path)
    key = f"hann_{length}"
    try:
        with source.open("rb") as f, np.load(f) as stored:
            window = np.array(stored[key])
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise ModelFileError(f"cannot read {key} from {source}: {exc}") from exc
    reference = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(length) / length)
    if (
        window.shape != (length,)
        or window.dtype != np.float32
        or not np.abs(window.astype(np.float64) - reference).max() <= 3e-7
    ):
        raise ModelFileError(
            f"{key} in {source} is not a float32 periodic Hann window of "
            f"{length} points (shape {window.shape}, dtype {window.dtype}); reinstall l3net or rerun "
            "tools/openl3_windows.py"
        )
    window.setflags(write=False)
    return window


def _rfft(frames: torch.Tensor, n: int, tensorflow: bool) -> torch.Tensor:
    """``rfft`` of the last axis zero-padded to ``n``; pocketfft's (SciPy) when ``tensorflow`` on the CPU."""
    if tensorflow and frames.device.type == "cpu" and not frames.requires_grad:
        from scipy import fft as scipy_fft  # here, not at import: `l3net --help` needs no SciPy

        spectrum = scipy_fft.rfft(frames.detach().numpy(), n=n, axis=-1)  # float32 in, complex64 out
        return torch.from_numpy(spectrum)
    return torch.fft.rfft(frames, n=n)


def _decimation_filter(factor: int) -> np.ndarray:
    """Low-pass FIR for integer decimation (the Kaiser design scipy's resample_poly uses)."""
    from scipy import signal  # here, not at import: `l3net --help` and the 48 kHz presets need no SciPy

    half_len = 10 * factor
    taps = signal.firwin(2 * half_len + 1, 1.0 / factor, window=("kaiser", 5.0))
    return taps.astype(np.float32)


class LogSpectrogram(nn.Module):
    """Waveforms ``(N, samples)`` at :data:`~l3net.config.SAMPLE_RATE` -> ``(N, 1, bins, frames)``.

    Frequency runs along the height and time along the width, as in the paper's Figure 2. The
    computation is always float32 (FFTs have no bf16 kernels), also under autocast.
    """

    def __init__(self, config: SpectrogramConfig | None = None) -> None:
        super().__init__()
        self.config = config or SpectrogramConfig()
        self.config.validate()
        if self.config.tensorflow_stft:
            window = torch.from_numpy(tensorflow_hann_window(self.config.win_length).copy())
        else:
            window_fn = {"hann": torch.hann_window, "hamming": torch.hamming_window}[self.config.window]
            window = window_fn(self.config.win_length)
        # Derived from the config, so not part of the state dict (nothing to save or mismatch).
        self.register_buffer("window", window, persistent=False)
        factor = self.config.decimation
        fir = torch.from_numpy(_decimation_filter(factor)).view(1, 1, -1) if factor > 1 else torch.empty(0)
        self.register_buffer("decimation_fir", fir, persistent=False)
        c = self.config
        mel = torch.from_numpy(mel_filterbank(c.sample_rate, c.n_fft, c.mel_bands)) if c.mel_bands else torch.empty(0)
        self.register_buffer("mel_filters", mel, persistent=False)
        # The dB floor (relative to each clip's peak) as a buffer: it moves to the device with the module,
        # instead of a tensor made from a host number and copied over in every forward.
        floor = torch.tensor(-c.db_range, dtype=torch.float32) if c.scale == "db" else torch.empty(0)
        self.register_buffer("db_floor", floor, persistent=False)

    def decimate(self, waveforms: torch.Tensor) -> torch.Tensor:
        """Low-pass and subsample ``(N, samples)`` from SAMPLE_RATE to the config's rate."""
        factor = self.config.decimation
        if factor == 1:
            return waveforms
        if waveforms.shape[0] == 1:
            # oneDNN runs a single row with another kernel whose last bits differ, and the log floor
            # can magnify those in near-silent bins; as a pair it gets the kernel of every other
            # batch size, so features do not depend on the batch size.
            return self.decimate(waveforms.expand(2, -1))[:1]
        pad = (self.decimation_fir.shape[-1] - 1) // 2
        out = F.conv1d(waveforms.unsqueeze(1), self.decimation_fir, stride=factor, padding=pad)
        return out.squeeze(1)

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        if waveforms.dim() != 2:
            raise ValueError(f"expected waveforms of shape (N, samples), got {tuple(waveforms.shape)}")
        cfg = self.config
        with torch.autocast(device_type=waveforms.device.type, enabled=False):
            x = self.decimate(waveforms.float())
            if x.shape[-1] < cfg.win_length:
                raise ValueError(
                    f"audio of {waveforms.shape[-1]} samples is shorter than one window "
                    f"({cfg.win_length * cfg.decimation} samples at {SAMPLE_RATE} Hz)"
                )
            if cfg.pad_end:  # zeros after the clip, so that the last frame starts before its end
                frames_needed = -(-x.shape[-1] // cfg.hop_length)
                x = F.pad(x, (0, (frames_needed - 1) * cfg.hop_length + cfg.win_length - x.shape[-1]))
            frames = x.unfold(-1, cfg.win_length, cfg.hop_length)  # (N, frames, win): no centre padding
            spectrum = _rfft(frames * self.window, cfg.n_fft, cfg.tensorflow_stft)  # each frame zero-padded to n_fft
            magnitude = spectrum.abs()
            if cfg.power == 2.0:
                magnitude = magnitude.square()
            if cfg.mel_bands:
                magnitude = magnitude @ self.mel_filters  # (N, frames, mels)
            if cfg.scale == "db":
                decibels = 10.0 * torch.log10(magnitude.clamp(min=cfg.db_amin))
                peak = decibels.amax(dim=(1, 2), keepdim=True)  # each clip's own maximum
                logspec = torch.maximum(decibels - peak, self.db_floor)
            else:
                logspec = torch.log(magnitude + cfg.log_floor)
        return logspec.transpose(1, 2).unsqueeze(1).contiguous()  # (N, 1, bins, frames)

    def extra_repr(self) -> str:
        c = self.config
        return (
            f"sample_rate={c.sample_rate}, win_length={c.win_length}, hop_length={c.hop_length}, "
            f"n_fft={c.n_fft}, window={c.window}, power={c.power}, "
            + (f"mel_bands={c.mel_bands}, " if c.mel_bands else "")
            + (f"pad_end=True, " if c.pad_end else "")
            + ("tensorflow_stft=True, " if c.tensorflow_stft else "")
            + (f"scale=db, db_range={c.db_range}" if c.scale == "db" else f"log_floor={c.log_floor}")
        )
