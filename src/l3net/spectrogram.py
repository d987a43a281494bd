"""The log-spectrogram front end as an ``nn.Module``, so it runs on the device with the network.

Paper 3.1: 48 kHz mono, 480-sample Hann windows with a hop of 240, each frame zero-padded to a
512-point FFT, magnitude, then a log with a floor -> 257 x 199 for one second.

The 198-frame pitfall: ``torch.stft(n_fft=512, win_length=480, center=False)`` frames the signal
in 512-sample chunks (the window is padded to n_fft inside the frame), giving 198 frames, and
``center=True`` gives 201. We frame with the 480-sample window itself and zero-pad each frame at
the FFT, which is what the paper (and ``scipy.signal.stft(nperseg=480, nfft=512)``) does.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import signal
from torch import nn
from torch.nn import functional as F

from .config import SAMPLE_RATE, SpectrogramConfig


def _decimation_filter(factor: int) -> np.ndarray:
    """Low-pass FIR for integer decimation (the Kaiser design scipy's resample_poly uses)."""
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
            frames = x.unfold(-1, cfg.win_length, cfg.hop_length)  # (N, frames, win): no centre padding
            spectrum = torch.fft.rfft(frames * self.window, n=cfg.n_fft)  # zero-pads each frame to n_fft
            magnitude = spectrum.abs()
            if cfg.power == 2.0:
                magnitude = magnitude.square()
            logspec = torch.log(magnitude + cfg.log_floor)
        return logspec.transpose(1, 2).unsqueeze(1).contiguous()  # (N, 1, bins, frames)

    def extra_repr(self) -> str:
        c = self.config
        return (
            f"sample_rate={c.sample_rate}, win_length={c.win_length}, hop_length={c.hop_length}, "
            f"n_fft={c.n_fft}, window={c.window}, power={c.power}, log_floor={c.log_floor}"
        )
