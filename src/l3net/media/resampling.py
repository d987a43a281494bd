"""Audio to mono float32 at one rate: FFmpeg's downmix and band-limited resampler, for files and arrays.

Stereo is averaged, 5.1/7.1 take FFmpeg's downmix, then FFmpeg's band-limited sinc resampler (64-tap
filters) converts the rate. Arrays of any rate and layout go through the same resampler, so a file
and its decoded array give the same samples.
"""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import av
import numpy as np

from ..config import SAMPLE_RATE
from ..errors import InputError, MediaError

#: Options of FFmpeg's resampler: longer filters than its default (32) for a flatter passband.
RESAMPLER_OPTIONS = "filter_size=64:phase_shift=10:cutoff=0.97"


def _is_named_layout(layout: av.AudioLayout) -> bool:
    """A layout whose channels FFmpeg knows by position (5.1, 7.1...), not 'N channels' in unknown order."""
    return not layout.name.endswith("channels")


class _AudioGraph:
    """FFmpeg filter graph: downmix -> resample -> mono float32.

    Stereo (and layouts of unknown order) are averaged; layouts FFmpeg knows by position (5.1,
    7.1, quad...) are downmixed with FFmpeg's own matrix (swresample: centre and surrounds at
    -3 dB, LFE dropped), normalised so that the mix cannot clip. Decoders hand over small frames
    (1024 samples for AAC); a pull and an array per frame would cost more Python than the
    resampling itself, so input is pulled about every ``PULL_SECONDS`` and the output comes in
    frames of that length (``asetnsamples``).
    """

    PULL_SECONDS = 1.0

    def __init__(
        self,
        template: av.AudioStream | None,
        *,
        in_rate: int,
        channels: int,
        out_rate: int,
        layout: av.AudioLayout | None = None,
        sample_format: str = "flt",
    ) -> None:
        self.graph = av.filter.Graph()
        if template is not None:
            source = self.graph.add_abuffer(template=template)
        else:
            source = self.graph.add_abuffer(
                format=sample_format, sample_rate=in_rate, layout=layout if layout is not None else "mono",
                channels=channels, time_base=f"1/{in_rate}",
            )
        nodes = [source]
        matrix = channels > 2 and layout is not None and _is_named_layout(layout)
        #: how the channels became one: 'none' (mono), 'mean' or 'ffmpeg matrix'
        self.downmix = "none" if channels == 1 else ("ffmpeg matrix" if matrix else "mean")
        if channels > 1 and not matrix:
            mix = "+".join(f"{1.0 / channels!r}*c{i}" for i in range(channels))
            nodes.append(self.graph.add("pan", f"mono|c0={mix}"))
        options = []
        if in_rate != out_rate:
            options.append(f"{out_rate}:{RESAMPLER_OPTIONS}")
        if matrix:
            options.append("ochl=mono:rematrix_maxval=1.0")
        if options:
            nodes.append(self.graph.add("aresample", ":".join(options)))
        nodes.append(self.graph.add("aformat", f"sample_fmts=flt:channel_layouts=mono:sample_rates={out_rate}"))
        nodes.append(self.graph.add("asetnsamples", f"n={max(1, round(self.PULL_SECONDS * out_rate))}:p=0"))
        nodes.append(self.graph.add("abuffersink"))
        for a, b in zip(nodes, nodes[1:]):
            a.link_to(b)
        self.graph.configure()
        self._pull_every = max(1, round(self.PULL_SECONDS * in_rate))
        self._pushed = 0  # input samples since the last pull

    def push(self, frame: av.AudioFrame | None) -> list[np.ndarray]:
        """Feed one frame (None: end of input, flush everything); return the output ready so far."""
        self.graph.push(frame)
        if frame is not None:
            self._pushed += frame.samples
            if self._pushed < self._pull_every:
                return []
        self._pushed = 0
        out = []
        while True:
            try:
                result = self.graph.pull()
            except (av.error.BlockingIOError, av.error.EOFError):
                return out
            out.append(result.to_ndarray().reshape(-1))




def _describe(signature: tuple[str, str, int]) -> str:
    sample_format, layout, rate = signature
    return f"{sample_format} {layout} {rate} Hz"


class _FollowingGraph:
    """An :class:`_AudioGraph` that follows the frames: rebuilt whenever a frame's sample format,
    channel layout or rate differs from the graph's input (a stream whose parameters change
    mid-file, or a decoder whose output differs from what the stream declares).

    A stream's first graph comes from what it declares (``template``; None: from the first frame);
    until a frame has gone in, a frame unlike it only replaces it. Afterwards each rebuild flushes
    the old graph and makes all output so far exactly as long as all input (``round(seconds *
    out_rate)`` samples: FFmpeg's resampler hands over up to a sample more), so no sample moves on
    the timeline; ``changes`` records it: ``{"t": timeline seconds, "from": ..., "to": ...}``.
    ``start``: timeline seconds of the first input sample. ``path`` names the file in errors.
    """

    def __init__(self, template: av.AudioStream | None, *, out_rate: int, start: float, path: Path) -> None:
        self.out_rate, self.start, self.path = int(out_rate), float(start), path
        self.signature: tuple[str, str, int] | None = None
        self.graph: _AudioGraph | None = None
        self.downmix = "none"  # of the first graph that takes a frame
        if template is not None:
            self.signature = (template.format.name, template.layout.name, int(template.rate))
            self.graph = _AudioGraph(
                template, in_rate=template.rate, channels=len(template.layout.channels), out_rate=out_rate, layout=template.layout
            )
            self.downmix = self.graph.downmix
        self.changes: list[dict[str, Any]] = []
        self._input = Fraction(0)  # seconds pushed so far
        self._output = 0  # samples out so far

    def push(self, frame: av.AudioFrame | None) -> list[np.ndarray]:
        """Feed one frame (None: end of input, flush everything); return the output ready so far."""
        out: list[np.ndarray] = []
        if frame is not None:
            signature = (frame.format.name, frame.layout.name, int(frame.sample_rate))
            if signature != self.signature:
                out = self._switch(frame, signature)
            self._input += Fraction(frame.samples, signature[2])
        if self.graph is None:  # the end, and no frame ever came
            return out
        try:
            out += self.graph.push(frame)
        except (av.error.FFmpegError, ValueError) as exc:
            raise MediaError(self.path, f"audio could not be filtered at {self.start + float(self._input):.3f} s ({exc})") from exc
        self._output += sum(piece.size for piece in out)
        return out

    def _switch(self, frame: av.AudioFrame, signature: tuple[str, str, int]) -> list[np.ndarray]:
        at = self.start + float(self._input)
        out: list[np.ndarray] = []
        if self._input and self.graph is not None and self.signature is not None:
            # a change mid-stream: what went in comes out, to the sample
            out = self.graph.push(None)
            short = round(self._input * self.out_rate) - (self._output + sum(piece.size for piece in out))
            if short > 0:
                out.append(np.zeros(short, np.float32))
            elif short < 0:
                whole = np.concatenate(out) if out else np.zeros(0, np.float32)
                out = [whole[: max(0, whole.size + short)]]
            self.changes.append({"t": round(at, 6), "from": _describe(self.signature), "to": _describe(signature)})
        try:
            self.graph = _AudioGraph(
                None, in_rate=signature[2], channels=len(frame.layout.channels), out_rate=self.out_rate,
                layout=frame.layout, sample_format=signature[0],
            )
        except (av.error.FFmpegError, ValueError) as exc:
            raise MediaError(self.path, f"unsupported audio format {_describe(signature)} at {at:.3f} s ({exc})") from exc
        if not self._input:
            self.downmix = self.graph.downmix
        self.signature = signature
        return out


def to_mono(audio: np.ndarray | Sequence[float], name: str = "audio") -> np.ndarray:
    """Validate an array of audio and return it mono float32, values as given (ints scaled to [-1, 1]).

    Accepts ``(samples,)``, ``(samples, channels)`` and ``(channels, samples)`` (the shorter axis,
    at most 16 long, is taken as channels), any float or integer dtype.
    """
    try:
        x = np.asarray(audio)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{name}: not an array of samples ({exc})") from exc
    if x.dtype == object or x.dtype.kind not in "fiub":
        raise InputError(f"{name}: samples must be numbers, got dtype {x.dtype}")
    if x.dtype.kind == "b":
        raise InputError(f"{name}: boolean arrays are not audio")
    if x.ndim == 2:
        if min(x.shape) == 0:
            raise InputError(f"{name}: zero-length audio (shape {x.shape})")
        if min(x.shape) > 16:
            raise InputError(
                f"{name}: ambiguous 2-D shape {x.shape}; pass (samples,) or (samples, channels) with <= 16 channels"
            )
        channel_axis = 0 if x.shape[0] < x.shape[1] else 1
    elif x.ndim != 1:
        raise InputError(f"{name}: expected 1-D (samples,) or 2-D (samples, channels) audio, got shape {x.shape}")
    if x.size == 0:
        raise InputError(f"{name}: zero-length audio")
    if x.dtype.kind in "iu":
        info = np.iinfo(x.dtype)
        scale = float(max(abs(info.min), info.max + 1))
        offset = (info.max + 1) / 2 if x.dtype.kind == "u" else 0.0  # unsigned PCM is centred at mid-range
        x = (x.astype(np.float64) - offset) / (scale / 2 if x.dtype.kind == "u" else scale)
    if x.ndim == 2:
        x = x.mean(axis=channel_axis)
    x = np.ascontiguousarray(x, dtype=np.float32)
    if not np.isfinite(x).all():
        bad = int((~np.isfinite(x)).sum())
        raise InputError(f"{name}: {bad} samples are NaN or infinite")
    return x


def iter_resample(chunks: Iterable[np.ndarray], in_rate: int, out_rate: int = SAMPLE_RATE) -> Iterator[np.ndarray]:
    """Resample a stream of mono float32 chunks with the same resampler files go through."""
    if in_rate <= 0 or out_rate <= 0:
        raise InputError(f"sample rates must be positive, got {in_rate} -> {out_rate}")
    if in_rate == out_rate:
        yield from (np.asarray(c, dtype=np.float32) for c in chunks)
        return
    graph = _AudioGraph(None, in_rate=int(in_rate), channels=1, out_rate=int(out_rate))
    for chunk in chunks:
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk, dtype=np.float32).reshape(1, -1), format="flt", layout="mono")
        frame.sample_rate = int(in_rate)
        for piece in graph.push(frame):
            yield piece
    for piece in graph.push(None):
        yield piece


def resample(audio: np.ndarray, in_rate: int, out_rate: int = SAMPLE_RATE, *, chunk_samples: int = 1 << 20) -> np.ndarray:
    """Resample mono float32 audio from ``in_rate`` to ``out_rate`` (Hz)."""
    if in_rate == out_rate:
        return np.asarray(audio, dtype=np.float32)
    chunks = (audio[i : i + chunk_samples] for i in range(0, len(audio), chunk_samples))
    pieces = list(iter_resample(chunks, in_rate, out_rate))
    return np.concatenate(pieces) if pieces else np.zeros(0, np.float32)


def prepare_audio_array(audio: np.ndarray, sr: float, sample_rate: int = SAMPLE_RATE, name: str = "audio") -> np.ndarray:
    """An array of audio at ``sr`` Hz -> validated mono float32 at ``sample_rate``."""
    if not isinstance(sr, (int, float, np.integer, np.floating)) or not math.isfinite(sr) or sr <= 0:
        raise InputError(f"{name}: sample rate must be a positive number, got {sr!r}")
    if int(sr) != sr:
        raise InputError(f"{name}: sample rate must be a whole number of Hz, got {sr}")
    return resample(to_mono(audio, name), int(sr), sample_rate)
