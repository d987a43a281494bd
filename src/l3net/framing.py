"""Framing: audio at 48 kHz cut into windows, the one implementation used by the embedding API
(:mod:`l3net.embed`), HEAR (:mod:`l3net.hear`) and the sound protocol (:mod:`l3net.evaluate.sound`).

Framing (audio at 48 kHz, windows of ``model.config.clip_samples`` = 1 s, hop ``hop_size`` seconds):

- Window ``k`` has timestamp exactly ``k * hop_size`` (computed from the integer ``k``: no drift,
  however long the audio) and starts at sample ``round(k * hop_size * 48000)``, minus half a window
  when ``center=True`` (the window is then centred on its timestamp). Samples outside the audio
  are zeros.
- ``center=True``: one window per timestamp from 0 to the duration, i.e. every ``k >= 0`` with
  ``round(k * hop_size * 48000) <= num_samples`` (``1 + floor(duration / hop_size)`` windows).
- ``center=False``: window ``k`` is added while window ``k - 1`` ended before the end of the audio
  (and window ``k`` starts inside it), so with a hop up to one window every sample is in some window
  and the last one runs past the end by less than a hop: ``1 + ceil((num_samples - window) / hop)``
  windows (hop in samples), one for up to a second of audio.
- Audio shorter than a window is zero-padded, never dropped: there is always at least one window.
- ``framing="openl3"`` (a model config's ``framing``, the ``openl3-*`` presets): centred windows
  follow the non-centred rule on the centred starts, as openl3 0.4.2 counts them: window ``k`` is
  added while window ``k - 1`` ended before the end of the audio (``1 + ceil((num_samples -
  window / 2) / hop)`` windows), so the last timestamps are up to half a window before the end.

Windows are cut lazily, one batch at a time, and files are decoded in chunks through the same
framer, so neither all windows nor (for files) the whole waveform is ever in memory.
"""

from __future__ import annotations

import math
from typing import Iterable, Iterator

import numpy as np
import torch
from torch.nn import functional as F

from .config import SAMPLE_RATE
from .errors import InputError


def check_hop(hop_size: float, sample_rate: int = SAMPLE_RATE) -> float:
    """``hop_size`` (s) as a float; an :class:`InputError` unless it is at least one sample."""
    if isinstance(hop_size, bool) or not isinstance(hop_size, (int, float, np.integer, np.floating)):
        raise InputError(f"hop_size must be a number of seconds, got {hop_size!r}")
    hop_size = float(hop_size)
    if not math.isfinite(hop_size) or hop_size * sample_rate < 1:
        raise InputError(f"hop_size must be at least one sample (1/{sample_rate} s), got {hop_size}")
    return hop_size


def window_start(k: int, hop_size: float, center: bool, window: int, sample_rate: int = SAMPLE_RATE) -> int:
    """First sample of window ``k`` (may be negative when centred: zeros before the audio)."""
    return round(k * hop_size * sample_rate) - (window // 2 if center else 0)


def window_included(
    k: int, num_samples: int, hop_size: float, center: bool, window: int, sample_rate: int = SAMPLE_RATE,
    framing: str = "l3net",
) -> bool:
    """Whether window ``k`` belongs to audio of ``num_samples`` samples (see the module docstring)."""
    if k == 0:
        return True
    if center and framing != "openl3":
        return round(k * hop_size * sample_rate) <= num_samples
    start = window_start(k, hop_size, center, window, sample_rate)
    return start < num_samples and window_start(k - 1, hop_size, center, window, sample_rate) + window < num_samples


def window_count(
    num_samples: int, hop_size: float, center: bool = True, window: int = SAMPLE_RATE, sample_rate: int = SAMPLE_RATE,
    framing: str = "l3net",
) -> int:
    """Number of windows for ``num_samples`` samples (at ``sample_rate`` Hz); always >= 1."""
    hop_size = check_hop(hop_size, sample_rate)
    hop = hop_size * sample_rate
    # A float estimate, then corrected with the exact rule the framer uses.
    if center:
        count = math.floor(num_samples / hop) + 1
    else:
        count = 1 + max(0, min(math.ceil((num_samples - window) / hop), math.ceil(num_samples / hop) - 1))
    count = max(1, count)
    while window_included(count, num_samples, hop_size, center, window, sample_rate, framing):
        count += 1
    while count > 1 and not window_included(count - 1, num_samples, hop_size, center, window, sample_rate, framing):
        count -= 1
    return count


def window_timestamps(count: int, hop_size: float) -> np.ndarray:
    """``k * hop_size`` (seconds, float64) for ``k = 0 .. count - 1``, each from its integer k."""
    return np.arange(count, dtype=np.float64) * float(hop_size)


class WindowCutter:
    """The framer, fed by pushes: cuts mono float32 chunks (48 kHz) into windows of ``window`` samples.

    ``push(chunk)`` returns every window completed by that chunk (in order, 1-D arrays); ``close()``
    returns the rest (windows that run past the end, zero-padded, by the rule of the module
    docstring). Chunks of any size, a single sample included: pushes are only gathered, and joined
    when the next window is complete, so the cost per sample does not grow as chunks shrink. About
    one window plus one chunk is buffered, however long the stream. Returned windows are views of
    buffers that are never written again: they stay valid.
    """

    def __init__(self, hop_size: float, center: bool = True, window: int = SAMPLE_RATE, framing: str = "l3net") -> None:
        self.hop_size = check_hop(hop_size)
        self.center = center
        self.window = window
        self.framing = framing
        self.emitted = 0  # windows returned so far: the index k of the next one
        self._buf = np.zeros(0, np.float32)
        self._buf_start = 0  # absolute index of _buf[0]
        self._pending: list[np.ndarray] = []  # pushed, not yet joined to _buf
        self._end = 0  # absolute index one past the last sample pushed
        self._closed = False

    def _start(self, k: int) -> int:
        return window_start(k, self.hop_size, self.center, self.window)

    def _join(self) -> None:
        """Append the pending chunks to the buffer, dropping what no later window needs (with a hop
        longer than a window, whole stretches)."""
        if not self._pending:
            return
        chunk = self._pending[0] if len(self._pending) == 1 else np.concatenate(self._pending)
        self._pending = []
        end = self._buf_start + self._buf.size
        lo = max(self._start(self.emitted), self._buf_start)
        if lo >= end:
            skip = min(lo - end, chunk.size)
            self._buf, self._buf_start = chunk[skip:], end + skip
        else:
            self._buf = np.concatenate([self._buf[lo - self._buf_start :], chunk])
            self._buf_start = lo

    def _cut(self, start: int, total: int | None) -> np.ndarray:
        lo, hi = start - self._buf_start, start - self._buf_start + self.window
        if start >= 0 and (total is None or start + self.window <= total):
            return self._buf[lo:hi]
        out = np.zeros(self.window, np.float32)  # zeros outside the audio
        src_lo, src_hi = max(lo, 0), min(hi, self._buf.size if total is None else total - self._buf_start)
        if src_hi > src_lo:
            out[src_lo - lo : src_hi - lo] = self._buf[src_lo:src_hi]
        return out

    def push(self, chunk: np.ndarray) -> list[np.ndarray]:
        """Add samples (any 1-D float array, 48 kHz); the windows they complete."""
        if self._closed:
            raise InputError("push() after close(): the stream has ended")
        chunk = np.asarray(chunk, dtype=np.float32).reshape(-1)
        if chunk.size:
            self._pending.append(chunk)
            self._end += chunk.size
        if self._start(self.emitted) + self.window > self._end:
            return []
        self._join()
        out = []
        while (start := self._start(self.emitted)) + self.window <= self._end:
            out.append(self._cut(start, None))
            self.emitted += 1
        return out

    def close(self) -> list[np.ndarray]:
        """End of the audio: the remaining windows (at least one window in all, even for no audio)."""
        if self._closed:
            return []
        self._join()
        self._closed = True
        total, out = self._end, []
        while window_included(self.emitted, total, self.hop_size, self.center, self.window, framing=self.framing):
            out.append(self._cut(self._start(self.emitted), total))
            self.emitted += 1
        return out


def iter_windows(
    chunks: Iterable[np.ndarray], hop_size: float, center: bool = True, window: int = SAMPLE_RATE,
    framing: str = "l3net",
) -> Iterator[np.ndarray]:
    """Cut a stream of mono float32 chunks (48 kHz) into windows of ``window`` samples, lazily.

    Yields window 0, 1, 2 ... (1-D arrays) as each chunk completes them (:class:`WindowCutter`). Only
    about one window plus one chunk of samples is buffered, however long the stream.
    """
    cutter = WindowCutter(hop_size, center, window, framing)
    for chunk in chunks:
        yield from cutter.push(chunk)
    yield from cutter.close()


def batch_windows(windows: Iterator[np.ndarray], batch_size: int, window: int) -> Iterator[np.ndarray]:
    """Group windows into ``(B, window)`` arrays; one buffer is reused (each batch is consumed first)."""
    buffer = np.empty((batch_size, window), np.float32)
    n = 0
    for w in windows:
        buffer[n] = w
        n += 1
        if n == batch_size:
            yield buffer
            n = 0
    if n:
        yield buffer[:n]




def frame_tensor(audio: torch.Tensor, hop_size: float, center: bool, window: int) -> torch.Tensor:
    """All windows of a batch of sounds ``(n, num_samples)`` at 48 kHz at once: ``(n, T, window)``, a
    view (nothing copied until indexed), framed exactly as :func:`iter_windows` frames each sound.

    The hop must be a whole number of samples (HEAR's 50 and 100 ms are)."""
    hop_size = check_hop(hop_size)
    hop = round(hop_size * SAMPLE_RATE)
    if abs(hop - hop_size * SAMPLE_RATE) > 1e-6:
        raise InputError(f"frame_tensor needs a hop of a whole number of samples, got {hop_size} s")
    num_samples = audio.shape[1]
    count = window_count(num_samples, hop_size, center, window)
    left = window // 2 if center else 0
    needed = (count - 1) * hop + window
    padded = F.pad(audio, (left, max(0, needed - left - num_samples)))[:, :needed]
    return padded.unfold(1, window, hop)
