"""The log-spectrogram front end as an ``nn.Module``, so it runs on the device with the network.

Paper 3.1: 48 kHz mono, 480-sample Hann windows with a hop of 240, each frame zero-padded to a
512-point FFT, magnitude, then a log with a floor -> 257 x 199 for one second.

The 198-frame pitfall: ``torch.stft(n_fft=512, win_length=480, center=False)`` frames the signal
in 512-sample chunks (the window is padded to n_fft inside the frame), giving 198 frames, and
``center=True`` gives 201. We frame with the 480-sample window itself and zero-pad each frame at
the FFT, which is what the paper (and ``scipy.signal.stft(nperseg=480, nfft=512)``) does.

The same module computes OpenL3's front ends (``scale="db"``, ``mel_bands``, ``pad_end``: see
:class:`~l3net.config.SpectrogramConfig`), matching kapre 0.3.7 as openl3 0.4.2 builds it.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .config import SAMPLE_RATE, SpectrogramConfig


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
        window_fn = {"hann": torch.hann_window, "hamming": torch.hamming_window}[self.config.window]
        # Derived from the config, so not part of the state dict (nothing to save or mismatch).
        self.register_buffer("window", window_fn(self.config.win_length), persistent=False)
        factor = self.config.decimation
        fir = torch.from_numpy(_decimation_filter(factor)).view(1, 1, -1) if factor > 1 else torch.empty(0)
        self.register_buffer("decimation_fir", fir, persistent=False)
        c = self.config
        mel = torch.from_numpy(mel_filterbank(c.sample_rate, c.n_fft, c.mel_bands)) if c.mel_bands else torch.empty(0)
        self.register_buffer("mel_filters", mel, persistent=False)

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
            spectrum = torch.fft.rfft(frames * self.window, n=cfg.n_fft)  # zero-pads each frame to n_fft
            magnitude = spectrum.abs()
            if cfg.power == 2.0:
                magnitude = magnitude.square()
            if cfg.mel_bands:
                magnitude = magnitude @ self.mel_filters  # (N, frames, mels)
            if cfg.scale == "db":
                decibels = 10.0 * torch.log10(magnitude.clamp(min=cfg.db_amin))
                peak = decibels.amax(dim=(1, 2), keepdim=True)  # each clip's own maximum
                logspec = torch.maximum(decibels - peak, decibels.new_tensor(-cfg.db_range))
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
            + (f"scale=db, db_range={c.db_range}" if c.scale == "db" else f"log_floor={c.log_floor}")
        )
