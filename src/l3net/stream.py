"""Live audio: embeddings of a sound as it arrives, chunk by chunk (a microphone, a network stream).

::

    stream = l3net.AudioStream("runs/my_run", sr=44100, hop_size=0.1)
    for chunk in microphone:                      # any size: 1 sample to minutes; (n,) or (n, channels)
        emb, ts = stream.push(chunk)              # the windows this chunk completed: (k, 512), (k,) s
    emb, ts = stream.close()                      # the last windows (they run past the end: zeros)

Pushing a whole signal in chunks of any size gives what :func:`l3net.get_audio_embedding` gives for
the signal at once: the same windows (:class:`l3net.framing.WindowCutter`, the framer the API runs
through), the same timestamps (``k * hop_size``), the same rate conversion (FFmpeg's resampler with
:data:`l3net.media.RESAMPLER_OPTIONS`; fed chunk by chunk it gives the same samples, bit for bit, as
on the whole signal) and the same inference copy (:mod:`l3net.inference`), so embeddings agree up to
float rounding between batch sizes (max abs difference <= 1e-5, ``tests/test_stream.py``).

When an embedding comes out (latency; figures in BENCHMARKS.md, ``benchmarks/stream_latency.py``):
each window is returned by the push that delivers its last sample, so it trails the sound by the
time it takes to fill that chunk, the resampler's delay (about 32 input samples, 0.7 ms at 44.1 kHz;
none at 48 kHz) and the compute of the windows that push completed. A window is ``clip_samples``
long (1 s): the embedding stamped ``t`` is ready ``window / 2`` after ``t`` (``center=True``) or one
window after it (``center=False``), plus those delays. Any sound is inside a returned window at most
one hop (plus those delays) after it arrives, and inside a window that holds a whole window of
context after it at most ``window + hop`` after.

Chunks are ``(samples,)`` or ``(samples, channels)`` (the layout sound cards and ``soundfile`` give;
channels are averaged, as the API does), of any float or integer dtype (integers scaled to [-1, 1]).
The channel count is fixed by the first chunk.
"""

from __future__ import annotations

import math
from typing import Any

import av
import numpy as np
import torch

from .config import SAMPLE_RATE
from .embed_core import DEFAULT_BATCH_SIZE, DEFAULT_HOP_SIZE, check_batch_size, embedding_model
from .errors import InputError
from .framing import WindowCutter, check_hop
from .inference import inference_model
from .layers import layer_features, resolve_layer
from .layers import embedding_size as layer_size
from .media import RESAMPLER_OPTIONS, to_mono
from .modelspec import ModelSpec
from .models import choose_layer
from .modelspec import ModelSpec
from .runtime import evaluation


class StreamResampler:
    """Mono float32 at ``in_rate`` -> ``out_rate`` (Hz), fed chunk by chunk, output as soon as FFmpeg
    has it.

    The same FFmpeg resampler and options (:data:`l3net.media.RESAMPLER_OPTIONS`) as files and arrays
    go through; unlike the file reader's graph, which hands out a second at a time (cheaper per
    sample), this one is pulled after every push, so output trails input only by the filter's delay.
    Fed any chunking of a signal, it returns the samples :func:`l3net.media.resample` returns for
    the whole signal (bit for bit; tested).
    """

    def __init__(self, in_rate: int, out_rate: int = SAMPLE_RATE) -> None:
        if in_rate <= 0 or out_rate <= 0:
            raise InputError(f"sample rates must be positive, got {in_rate} -> {out_rate}")
        self.in_rate, self.out_rate = int(in_rate), int(out_rate)
        self._graph = av.filter.Graph()
        nodes = [
            self._graph.add_abuffer(format="flt", sample_rate=self.in_rate, layout="mono", time_base=f"1/{self.in_rate}"),
            self._graph.add("aresample", f"{self.out_rate}:{RESAMPLER_OPTIONS}"),
            self._graph.add("aformat", f"sample_fmts=flt:channel_layouts=mono:sample_rates={self.out_rate}"),
            self._graph.add("abuffersink"),
        ]
        for a, b in zip(nodes, nodes[1:]):
            a.link_to(b)
        self._graph.configure()

    def _pull(self) -> np.ndarray:
        pieces = []
        while True:
            try:
                pieces.append(self._graph.pull().to_ndarray().reshape(-1))
            except (av.error.BlockingIOError, av.error.EOFError):
                break
        if not pieces:
            return np.zeros(0, np.float32)
        return pieces[0] if len(pieces) == 1 else np.concatenate(pieces)

    def push(self, samples: np.ndarray) -> np.ndarray:
        """Feed mono samples at ``in_rate``; the output samples ready so far (may be none)."""
        if samples.size == 0:
            return np.zeros(0, np.float32)
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(samples, dtype=np.float32).reshape(1, -1), format="flt", layout="mono"
        )
        frame.sample_rate = self.in_rate
        self._graph.push(frame)
        return self._pull()

    def close(self) -> np.ndarray:
        """End of input: the samples still inside the filter."""
        self._graph.push(None)
        return self._pull()


def _mono_chunk(chunk: Any, channels: int | None, name: str) -> tuple[np.ndarray, int]:
    """``(mono float32 copy, channel count)`` of one chunk laid out ``(samples,)`` or ``(samples, channels)``."""
    if isinstance(chunk, torch.Tensor):
        chunk = chunk.detach().cpu().numpy()
    x = np.asarray(chunk)
    if x.ndim not in (1, 2):
        raise InputError(f"{name}: expected (samples,) or (samples, channels), got shape {x.shape}")
    got = 1 if x.ndim == 1 else x.shape[1]
    if channels is not None and got != channels:
        raise InputError(f"{name}: {got} channel(s), but the stream's first chunk had {channels}")
    if x.shape[0] == 0:
        return np.zeros(0, np.float32), got
    if x.ndim == 2 and x.shape[0] < x.shape[1]:
        # to_mono takes the shorter axis as channels; a chunk with fewer samples than channels is
        # padded with rows (each sample's mean is its own row's, so the padding changes nothing).
        pad = np.zeros((x.shape[1] - x.shape[0], x.shape[1]), x.dtype)
        return to_mono(np.concatenate([x, pad]), name)[: x.shape[0]].copy(), got
    # A copy: the caller may refill its buffer (sound cards do), and windows are views of what we keep.
    return np.array(to_mono(x, name), dtype=np.float32, copy=True), got


class AudioStream:
    """Embeddings of live audio, each window as soon as its last sample is pushed (see the module docstring).

    ``model``: as :func:`l3net.get_audio_embedding` (an L3Net, a preset, a model directory; None:
    random weights, with a warning). ``sr``: the chunks' sample rate (Hz, a whole number).
    ``hop_size`` (s), ``center``, ``batch_size``, ``layer`` / ``embedding_size``, ``device`` and
    ``precision``: as :func:`l3net.get_audio_embedding`. Not thread-safe: push from one thread.
    """

    def __init__(
        self,
        model: ModelSpec | None,
        sr: float,
        hop_size: float = DEFAULT_HOP_SIZE,
        center: bool = True,
        batch_size: int = DEFAULT_BATCH_SIZE,
        layer: str = "pool4",
        *,
        embedding_size: int | None = None,
        device: str | torch.device | None = None,
        precision: str = "fp32",
    ) -> None:
        if isinstance(sr, bool) or not isinstance(sr, (int, float, np.integer, np.floating)) or not math.isfinite(sr) or sr <= 0:
            raise InputError(f"sr must be a positive number of Hz, got {sr!r}")
        if int(sr) != sr:
            raise InputError(f"sr must be a whole number of Hz, got {sr}")
        self.sr = int(sr)
        self.hop_size = check_hop(hop_size)
        self.center = bool(center)
        self.batch_size = check_batch_size(batch_size)
        self.model = embedding_model(model, device)
        self.layer = resolve_layer(self.model.audio, choose_layer(self.model, "audio", layer, embedding_size))
        self.dim = layer_size(self.model, self.layer, "audio")
        self._fast = inference_model(self.model, precision=precision)
        self._resampler = StreamResampler(self.sr) if self.sr != SAMPLE_RATE else None
        self._cutter = WindowCutter(self.hop_size, self.center, self.model.config.clip_samples, self.model.config.framing)
        self._channels: int | None = None
        self._pushes = 0
        self.closed = False

    @property
    def window_seconds(self) -> float:
        """Length of one window (s): how much sound each embedding describes."""
        return self.model.config.clip_samples / SAMPLE_RATE

    @property
    def windows(self) -> int:
        """Embeddings returned so far (the next one has timestamp ``windows * hop_size``)."""
        return self._cutter.emitted

    def push(self, chunk: np.ndarray | torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """Add a chunk of audio at ``sr`` Hz; ``(embeddings float32 [k, D], timestamps float64 [k] s)``
        of the ``k >= 0`` windows it completed."""
        if self.closed:
            raise InputError("push() after close(): the stream has ended")
        mono, self._channels = _mono_chunk(chunk, self._channels, f"chunk {self._pushes}")
        self._pushes += 1
        if self._resampler is not None:
            mono = self._resampler.push(mono)
        first = self._cutter.emitted
        return self._embed(self._cutter.push(mono), first)

    def close(self) -> tuple[np.ndarray, np.ndarray]:
        """End of the audio: the remaining windows (those running past the end, zero-padded; at least
        one window over the whole stream). Later calls return nothing."""
        if self.closed:
            return np.zeros((0, self.dim), np.float32), np.zeros(0, np.float64)
        self.closed = True
        first = self._cutter.emitted
        windows = self._cutter.push(self._resampler.close()) if self._resampler is not None else []
        return self._embed(windows + self._cutter.close(), first)

    def _embed(self, windows: list[np.ndarray], first: int) -> tuple[np.ndarray, np.ndarray]:
        stamps = np.arange(first, first + len(windows), dtype=np.float64) * self.hop_size
        if not windows:
            return np.zeros((0, self.dim), np.float32), stamps
        outputs = []
        with evaluation(self.model, self._fast.precision) as device:
            for i in range(0, len(windows), self.batch_size):
                x = torch.from_numpy(np.stack(windows[i : i + self.batch_size])).to(device)
                outputs.append(layer_features(self._fast, "audio", x, self.layer).float().cpu().numpy())
        return np.ascontiguousarray(np.concatenate(outputs), dtype=np.float32), stamps
