"""A synthetic audio-visual world: real MP4 videos whose sounding object is known (``l3net synth``).

No real video dataset can be downloaded on every machine, and tests need data with known answers,
so l3net makes its own. A *video* shows one sounding object at a random place and scale over a
random background, for ``seconds`` seconds, encoded as H.264 + AAC in MP4 (so the real decoding
path is exercised); the object's size pulses with its sound's loudness.

What defines a class is what an untrained network does not capture for free:

- *vision*: the object's outline (12 shapes) and a part drawn inside it (a band, a rim, a half);
- *audio*: the timbre (6 kinds: sine, odd or all harmonics, inharmonic bell, noise band, vibrato)
  and the temporal pattern (steady, pulses at 2 or 4 Hz, decays at 1.5 or 3 Hz, random onsets).

Everything a random network's features do respond to is drawn per video and shared by all
classes: the object's colours, texture and scale, the background's colours, blotches and clutter,
distractor objects; the sound's pitch (a new one at every note, from one range for every class),
loudness and background noise (level and colour; level and noise drift within the video, so that
a small training set cannot be memorised as "this video's colours go with this video's pitch"). A random network therefore groups videos by colour, brightness, pitch and
level, which say nothing of the class, while audio-visual correspondence can only be learnt
through the class: the picture's shape goes with the sound's timbre and rhythm, and with
nothing else. Class looks and sounds depend only on the class index, never on the seed, so two
worlds made with different seeds (say a training and a test world) share their classes.

The paper's difficulties (PAPER_SPEC section 2) are knobs of :class:`WorldConfig`:
background ``noise``, silent ``distractors``, ``unrelated`` soundtracks (the picture's object is
silent and the sound is another class's) and ``offscreen`` sounds (a second, invisible source).

Output layout (``OUT/``)::

    world.json              the WorldConfig and the class table (for reproducibility)
    labels.csv              video,class   (video path relative to OUT; class = the visible object's)
    videos/v00000.mp4       H.264 (yuv420p, size x size, ``fps``) + AAC mono
    videos/v00000.boxes.json  ground truth: the sounding object's box per video frame (below)

A ``NAME.boxes.json`` sidecar (the format ``l3net prepare`` reads beside any ``NAME.<ext>`` video)::

    {"format": "l3net-boxes", "version": 1, "width": W, "height": H, "fps": F,
     "boxes": [[x0, y0, x1, y1] or null, ...],   # video frame i, shown from time i / F (seconds);
                                                 # pixel coordinates, x1/y1 exclusive; null: the
                                                 # sound source is not visible in that frame
     "class": str, "audio_class": str, "offscreen_class": str|null, "distractors": [str, ...]}
"""

from __future__ import annotations

import colorsys
import csv
import dataclasses
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
from PIL import Image

from ..errors import InputError
from ..fileio import atomic_open, ensure_dir, read_json, write_json
from ..media import VideoWriter

#: The 34 Kinetics-Sounds classes (PAPER_SPEC 2.3), used as the names of the synthetic classes.
CLASS_NAMES: tuple[str, ...] = (
    "blowing nose", "bowling", "chopping wood", "ripping paper", "shuffling cards", "singing",
    "tapping pen", "typing", "blowing out candles", "dribbling ball", "laughing", "mowing the lawn",
    "shovelling snow", "stomping", "tap dancing", "tapping guitar", "tickling", "fingerpicking",
    "patting", "playing accordion", "bagpipes", "bass guitar", "clarinet", "drums", "guitar",
    "harmonica", "keyboard", "organ", "piano", "saxophone", "trombone", "trumpet", "violin",
    "xylophone",
)
MAX_CLASSES = len(CLASS_NAMES)

#: Audio is synthesised and encoded at 24 kHz: every synthetic sound lies below 8 kHz (the small
#: preset's band) and AAC at 24 kHz encodes twice as fast as at 48 kHz. ``prepare`` resamples.
AUDIO_RATE = 24_000
BOXES_SUFFIX = ".boxes.json"
BOXES_FORMAT = "l3net-boxes"
#: Version of world.json; 2 = class by shape/part and timbre/rhythm, surface drawn per video.
WORLD_VERSION = 2

#: Object outlines; a class's outline is SHAPES[index % 12].
SHAPES = (
    "circle", "square", "triangle", "diamond", "star", "ring",
    "cross", "hexagon", "crescent", "arrow", "tee", "house",
)
#: What is drawn inside the outline in a second (per-video) colour: nothing, a horizontal band
#: across the middle, a thick rim along the edge, the left half.
PARTS = ("plain", "band", "rim", "half")
#: Per-video surface patterns of the object (never a class cue).
TEXTURES = ("solid", "stripes", "checks", "dots")
TIMBRES = ("sine", "square", "saw", "bell", "noise", "vibrato")
#: (kind, rate in Hz): how the sound's loudness moves in time.
RHYTHMS = (("steady", 0.5), ("pulse", 2.0), ("pulse", 4.0), ("decay", 1.5), ("decay", 3.0), ("random", 3.0))
MOTIONS = ("drift", "bounce", "orbit", "hover")


@dataclass(frozen=True)
class ClassSpec:
    """What defines one class (fixed by the class index): its look and its sound."""

    index: int
    name: str
    shape: str  # outline, one of SHAPES
    part: str  # drawn inside the outline, one of PARTS
    timbre: str
    rhythm: tuple[str, float]


def class_table(num_classes: int) -> list[ClassSpec]:
    """The first ``num_classes`` classes; (shape, part) and (timbre, rhythm) are unique for all 34.

    With up to 12 classes every class has its own outline and its own (timbre, rhythm); with more,
    classes share outlines (told apart by the part) and timbres (told apart by the rhythm).
    """
    if not 2 <= num_classes <= MAX_CLASSES:
        raise InputError(f"--classes must be between 2 and {MAX_CLASSES}, got {num_classes}")
    return [
        ClassSpec(
            index=c,
            name=CLASS_NAMES[c],
            shape=SHAPES[c % len(SHAPES)],
            part=PARTS[(c + c // len(SHAPES)) % len(PARTS)],  # c and c + 12, c + 24 differ in part
            timbre=TIMBRES[c % 6],
            rhythm=RHYTHMS[(c + c // 6) % 6],  # (timbre, rhythm) unique for c < 36
        )
        for c in range(num_classes)
    ]


@dataclass(frozen=True)
class WorldConfig:
    """Parameters of a synthetic world. Probabilities are per video; times in seconds."""

    videos: int = 200
    classes: int = 10
    seconds: float = 10.0
    size: int = 256  # frame width and height (px)
    fps: float = 12.0  # video frame rate
    seed: int = 0
    noise: float = 0.1  # largest background noise amplitude (a video's is U(0.1, 1) x noise)
    distractors: float = 0.3  # probability of 1-2 silent objects of other classes in view
    unrelated: float = 0.0  # probability that the soundtrack is another class's (object silent)
    offscreen: float = 0.0  # probability of a second, invisible sound source of another class
    pitch_range: tuple[float, float] = (150.0, 1500.0)  # Hz; a video's fundamental, log-uniform, any class
    loudness_db: float = 20.0  # a video's level is U(0, loudness_db) dB below the loudest (peak 0.6)
    object_scale: tuple[float, float] = (0.25, 0.55)  # object side / frame side
    clutter: int = 4  # at most this many irregular coloured blobs in the background
    # probability that a video's object wears its class's own hue and its sound keeps its class's
    # own pitch: cues an untrained network sees (0 in the demo: only shape and timbre/rhythm tell)
    class_surface: float = 0.0

    def validate(self) -> None:
        if self.seed < 0:
            raise InputError(f"--seed must be a non-negative integer, got {self.seed}")
        if self.videos < 1:
            raise InputError(f"--videos must be at least 1, got {self.videos}")
        class_table(self.classes)
        if not 1.0 <= self.seconds <= 600:
            raise InputError(f"--seconds must be in [1, 600], got {self.seconds}")
        if not 32 <= self.size <= 2048 or self.size % 2:
            raise InputError(f"--size must be an even number of pixels in [32, 2048], got {self.size}")
        if not 1 <= self.fps <= 60:
            raise InputError(f"--fps must be in [1, 60], got {self.fps}")
        for name in ("distractors", "unrelated", "offscreen", "class_surface"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise InputError(f"--{name} is a probability in [0, 1], got {value}")
        if not 0.0 <= self.noise <= 1.0:
            raise InputError(f"--noise must be in [0, 1], got {self.noise}")
        lo, hi = self.pitch_range
        if not 50.0 <= lo <= hi <= 4000.0:
            raise InputError(f"--pitch-range must satisfy 50 <= LO <= HI <= 4000 Hz, got {lo:g} {hi:g}")
        if not 0.0 <= self.loudness_db <= 40.0:
            raise InputError(f"--loudness-db must be in [0, 40], got {self.loudness_db}")
        lo, hi = self.object_scale
        if not 0.05 <= lo <= hi <= 0.9:
            raise InputError(f"--scale must satisfy 0.05 <= LO <= HI <= 0.9, got {lo:g} {hi:g}")
        if not 0 <= self.clutter <= 20:
            raise InputError(f"--clutter must be in [0, 20], got {self.clutter}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class VideoPlan:
    """The classes of one video and its difficulties, drawn from ``(seed, index)`` alone."""

    index: int
    name: str  # file stem, e.g. v00012
    visual_class: int
    audio_class: int  # == visual_class unless the soundtrack is unrelated
    offscreen_class: int | None
    distractor_classes: tuple[int, ...]


def plan_videos(config: WorldConfig) -> list[VideoPlan]:
    """The class of every video (balanced, shuffled by the seed) and its difficulties."""
    config.validate()
    k = config.classes
    classes = np.arange(config.videos) % k
    np.random.default_rng([config.seed, 0x5EED]).shuffle(classes)
    plans = []
    for i, c in enumerate(classes.tolist()):
        rng = np.random.default_rng([config.seed, i, 1])
        others = [x for x in range(k) if x != c]
        audio_class = int(rng.choice(others)) if rng.random() < config.unrelated else c
        offscreen = int(rng.choice(others)) if rng.random() < config.offscreen else None
        distractors: tuple[int, ...] = ()
        if rng.random() < config.distractors:
            n = int(rng.integers(1, 3))
            distractors = tuple(int(x) for x in rng.choice(others, size=min(n, len(others)), replace=False))
        plans.append(VideoPlan(i, f"v{i:05d}", c, audio_class, offscreen, distractors))
    return plans


# ------------------------------------------------------------------------------------------------
# sound
# ------------------------------------------------------------------------------------------------
def _envelope(rhythm: tuple[str, float], t: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(loudness over time in [0, 1], note number of every sample) for ``t`` in seconds; random phase.

    A new note starts where the envelope starts a period (pulse, decay), at every onset (random),
    or every second (steady), so a change of pitch falls where it is least heard.
    """
    kind, rate = rhythm
    phase = rng.random()
    if kind == "steady":
        return 0.8 + 0.2 * np.sin(2 * np.pi * (rate * t + phase)), np.floor(t + phase).astype(np.int64)
    if kind in ("pulse", "decay"):
        cycles = rate * t + phase
        x = cycles % 1.0
        note = np.floor(cycles).astype(np.int64)
        if kind == "pulse":  # 50 % duty with 10 ms ramps, so onsets do not click
            ramp = 0.01 * rate
            return np.clip(np.minimum(x / ramp, (0.5 - x) / ramp), 0.0, 1.0), note
        return np.exp(-x / (0.25 / rate * 2)) * np.clip(x / (0.005 * rate), 0, 1), note
    # random onsets (a Poisson process), each a fast attack and an exponential decay (0.12 s)
    rate_hz = len(t) / (float(t[-1]) + 1e-9) if len(t) > 1 else AUDIO_RATE
    duration = len(t) / rate_hz
    onsets = np.sort(rng.uniform(-0.3, duration, size=max(1, rng.poisson(rate * (duration + 0.3)))))
    env = np.zeros_like(t)
    tail = np.exp(-np.arange(int(rate_hz)) / rate_hz / 0.12)  # 1 s of decay: e^-8 at its end
    starts = np.ceil(onsets * rate_hz).astype(np.int64)
    for start in starts:
        lo, hi = max(0, start), min(len(t), start + len(tail))
        if hi > lo:
            np.maximum(env[lo:hi], tail[lo - start : hi - start], out=env[lo:hi])
    return env, np.searchsorted(starts, np.arange(len(t)), side="right")


def _tone(timbre: str, t: np.ndarray, f0: np.ndarray, note: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A timbre whose fundamental is ``f0`` (Hz, per sample; constant within a note), peak about 1, below 8 kHz."""
    nyquist = min(8000.0, AUDIO_RATE / 2 - 500)
    phase = 2 * np.pi * np.cumsum(f0) / AUDIO_RATE + rng.uniform(0, 2 * np.pi)  # continuous across notes
    if timbre == "sine":
        x = np.sin(phase) + 0.15 * np.sin(2 * phase)
    elif timbre in ("square", "saw"):
        ks = [k for k in range(1, 13) if timbre == "saw" or k % 2]
        x = sum(np.sin(k * phase) / k * (k * f0 < nyquist) for k in ks)
    elif timbre == "bell":
        x = np.sin(phase + 2.0 * np.sin(1.41 * phase))  # inharmonic FM
    elif timbre == "vibrato":  # +-6 % at 6 Hz: wavy harmonics
        phase = phase + 2 * np.pi * 0.06 * f0 / 6.0 * np.sin(2 * np.pi * 6.0 * t + rng.uniform(0, 2 * np.pi))
        x = np.sin(phase) + 0.5 * np.sin(2 * phase) + 0.25 * np.sin(3 * phase)
    else:  # a band of noise around 2 f0, note by note
        x = np.zeros(len(t))
        bounds = np.flatnonzero(np.diff(note)) + 1
        for lo, hi in zip(np.r_[0, bounds], np.r_[bounds, len(t)]):
            spectrum = np.fft.rfft(rng.standard_normal(hi - lo))
            freqs = np.fft.rfftfreq(hi - lo, 1.0 / AUDIO_RATE)
            spectrum *= np.exp(-0.5 * ((freqs - 2 * f0[lo]) / (0.5 * f0[lo])) ** 2)
            x[lo:hi] = np.fft.irfft(spectrum, hi - lo)
            x[lo:hi] /= np.abs(x[lo:hi]).max() + 1e-9
    x = np.asarray(x, dtype=np.float64)
    return x / (np.abs(x).max() + 1e-9)


def class_pitch(index: int, pitch_range: tuple[float, float]) -> float:
    """A class's own pitch (Hz) inside ``pitch_range``, used only for ``class_surface`` videos."""
    lo, hi = pitch_range
    return float(lo * (hi / lo) ** ((index * 0.618034 + 0.1) % 1.0))


def class_hue(index: int) -> float:
    """A class's own hue in [0, 1), used only for ``class_surface`` videos (golden-angle spacing)."""
    return (index * 0.381966 + 0.05) % 1.0


def _class_sound(
    spec: ClassSpec, t: np.ndarray, rng: np.random.Generator, pitch_range: tuple[float, float],
    own_pitch: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """(signal, loudness envelope) of one source of the class; every note's pitch is drawn from
    ``pitch_range`` (log-uniform), so pitch tells neither the class nor the video, unless
    ``own_pitch``: then every note is at the class's own pitch (+-3 %)."""
    env, note = _envelope(spec.rhythm, t, rng)
    note = note - note.min()
    lo, hi = pitch_range
    if own_pitch:
        pitches = class_pitch(spec.index, pitch_range) * rng.uniform(0.97, 1.03, size=int(note.max()) + 1)
    else:
        pitches = np.exp(rng.uniform(np.log(lo), np.log(hi), size=int(note.max()) + 1))
    f0 = pitches[note]
    return _tone(spec.timbre, t, f0, note, rng) * env, env


def _drift(n: int, low: float, high: float, rng: np.random.Generator) -> np.ndarray:
    """A slow random curve over ``n`` samples: a value U(low, high) every second, linear in between."""
    knots = rng.uniform(low, high, size=int(np.ceil(n / AUDIO_RATE)) + 2)
    return np.interp(np.arange(n) / AUDIO_RATE, np.arange(len(knots)) - rng.random(), knots)


def _background_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """Noise of a random colour (a one-pole low-pass of white noise, white to brown), unit peak."""
    from scipy.signal import lfilter

    pole = rng.uniform(0.0, 0.98)
    x = lfilter([1.0], [1.0, -pole], rng.standard_normal(n))
    x = x - x.mean()
    return x / (np.abs(x).max() + 1e-9)


def render_audio(
    config: WorldConfig, plan: VideoPlan, rng: np.random.Generator, own_surface: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """(float32 soundtrack at AUDIO_RATE, loudness envelope of the visible object's sound)."""
    specs = class_table(config.classes)
    n_samples = int(round(config.seconds * AUDIO_RATE))
    t_audio = np.arange(n_samples) / AUDIO_RATE
    main, env = _class_sound(specs[plan.audio_class], t_audio, rng, config.pitch_range, own_pitch=own_surface)
    # the level and the noise drift within the video too, so that neither names the video
    level = 0.6 * 10 ** (-_drift(n_samples, 0.0, config.loudness_db, rng) / 20)
    audio = level * main
    if plan.offscreen_class is not None:
        other, _ = _class_sound(specs[plan.offscreen_class], t_audio, rng, config.pitch_range)
        audio += level * rng.uniform(0.4, 0.8) * other
    if config.noise > 0:
        audio += config.noise * _drift(n_samples, 0.1, 1.0, rng) * _background_noise(n_samples, rng)
    peak = np.abs(audio).max()
    if peak > 0.95:
        audio *= 0.95 / peak
    return audio.astype(np.float32), env


# ------------------------------------------------------------------------------------------------
# pictures
# ------------------------------------------------------------------------------------------------
def _shape_mask(shape: str, n: int) -> np.ndarray:
    """An n x n boolean mask of the outline, filling the square (u: right, v: down, both in [-1, 1])."""
    c = (np.arange(n) + 0.5) / n * 2 - 1
    v, u = np.meshgrid(c, c, indexing="ij")
    r = np.hypot(u, v)
    if shape == "circle":
        return r <= 0.95
    if shape == "square":
        return np.maximum(abs(u), abs(v)) <= 0.8
    if shape == "triangle":
        return (v <= 0.8) & (abs(u) <= (v + 0.95) * 0.55)
    if shape == "diamond":
        return abs(u) + abs(v) <= 0.98
    if shape == "star":
        theta = np.arctan2(v, u)
        return r <= 0.45 + 0.5 * np.cos(2.5 * theta + np.pi / 4) ** 8
    if shape == "ring":
        return (r <= 0.95) & (r >= 0.55)
    if shape == "cross":
        return ((abs(u) <= 0.3) & (abs(v) <= 0.95)) | ((abs(v) <= 0.3) & (abs(u) <= 0.95))
    if shape == "hexagon":
        return np.maximum(abs(u) * 0.866 + abs(v) * 0.5, abs(v)) <= 0.9
    if shape == "crescent":
        return (r <= 0.95) & (np.hypot(u - 0.45, v + 0.15) > 0.7)
    if shape == "arrow":
        return ((abs(v) <= 0.22) & (u >= -0.95) & (u <= 0.1)) | ((u >= 0.0) & (abs(v) <= (0.95 - u) * 0.95))
    if shape == "tee":
        return ((abs(u) <= 0.95) & (v >= -0.9) & (v <= -0.45)) | ((abs(u) <= 0.25) & (v >= -0.9) & (v <= 0.95))
    if shape == "house":
        return ((abs(u) <= 0.7) & (v >= 0.0) & (v <= 0.9)) | ((v >= -0.95) & (v < 0.0) & (abs(u) <= (v + 0.95) * 0.95))
    raise ValueError(shape)


def _part_mask(part: str, mask: np.ndarray) -> np.ndarray:
    """The pixels of the outline drawn in the part's colour (a subset of ``mask``)."""
    n = mask.shape[0]
    c = (np.arange(n) + 0.5) / n * 2 - 1
    if part == "plain":
        return np.zeros_like(mask)
    if part == "band":
        return mask & (abs(c)[:, None] <= 0.2)
    if part == "half":
        return mask & (c[None, :] < 0)
    if part == "rim":
        from scipy.ndimage import binary_erosion

        return mask & ~binary_erosion(mask, iterations=max(1, n // 9))
    raise ValueError(part)


@dataclass(frozen=True)
class _Look:
    """An object's surface in one video (never a class cue): colours and texture."""

    colour: tuple[float, float, float]  # RGB 0-255
    shade: tuple[float, float, float]  # the texture's second colour
    accent: tuple[float, float, float]  # the part's colour
    texture: str
    period: float  # texture period / object side
    angle: int  # stripes: 0 vertical, 1 horizontal, 2 and 3 diagonal


def _hsv(h: float, s: float, v: float) -> tuple[float, float, float]:
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, s, v)
    return (255 * r, 255 * g, 255 * b)


def _random_look(rng: np.random.Generator, hue: float | None = None) -> _Look:
    """A random surface; ``hue`` (in [0, 1)) fixes the body's hue."""
    hue, sat, val = rng.random() if hue is None else hue, rng.uniform(0.5, 1.0), rng.uniform(0.55, 1.0)
    dark = rng.random() < 0.5  # the accent is much darker or much lighter than the body
    return _Look(
        colour=_hsv(hue, sat, val),
        shade=_hsv(hue, sat, val * rng.uniform(0.35, 0.6)),
        accent=_hsv(rng.random(), rng.uniform(0.0, 1.0), rng.uniform(0.05, 0.25) if dark else rng.uniform(0.9, 1.0)),
        texture=TEXTURES[int(rng.integers(len(TEXTURES)))],
        period=rng.uniform(0.15, 0.35),
        angle=int(rng.integers(4)),
    )


def _sprite(spec: ClassSpec, n: int, look: _Look) -> tuple[np.ndarray, np.ndarray]:
    """(n x n x 3 uint8 colours, n x n mask) of the class's object at side ``n`` px."""
    mask = _shape_mask(spec.shape, n)
    i = np.arange(n)
    period = max(4, int(round(n * look.period)))
    half = max(2, period // 2)
    if look.texture == "stripes":
        coord = [i[None, :] + 0 * i[:, None], i[:, None] + 0 * i[None, :], i[:, None] + i[None, :], i[:, None] - i[None, :] + n][look.angle]
        pattern = (coord // half) % 2 == 0
    elif look.texture == "checks":
        pattern = ((i[:, None] // half) + (i[None, :] // half)) % 2 == 0
    elif look.texture == "dots":
        cy = (i % period) - period / 2
        pattern = (cy[:, None] ** 2 + cy[None, :] ** 2) > (period * 0.3) ** 2
    else:
        pattern = np.ones((n, n), bool)
    rgb = np.where(pattern[:, :, None], np.array(look.colour, np.float32), np.array(look.shade, np.float32))
    rgb[_part_mask(spec.part, mask)] = look.accent
    return rgb.astype(np.uint8), mask


def _background(size: int, clutter: int, rng: np.random.Generator) -> np.ndarray:
    """A random gradient with soft blotches and up to ``clutter`` irregular blobs (size x size x 3 uint8)."""
    a, b = rng.uniform(20, 235, size=(2, 3))
    angle = rng.uniform(0, 2 * np.pi)
    c = np.linspace(-1, 1, size)
    y, x = np.meshgrid(c, c, indexing="ij")
    g = (np.cos(angle) * x + np.sin(angle) * y + 1.4) / 2.8
    img = a * (1 - g[:, :, None]) + b * g[:, :, None]
    # soft blotches: a 6 x 6 grid of random offsets, bilinearly upscaled
    blotch = rng.normal(0, rng.uniform(5, 30), size=(6, 6)).astype(np.float32)
    img += np.asarray(Image.fromarray(blotch, mode="F").resize((size, size), Image.Resampling.BILINEAR))[:, :, None]
    # clutter: blobs with no class's outline (thresholded smooth noise), in random colours
    for _ in range(int(rng.integers(0, clutter + 1))):
        side = max(4, int(rng.uniform(0.1, 0.3) * size))
        field = rng.normal(0.8, 1.0, size=(5, 5)).astype(np.float32)
        field[0, :] = field[-1, :] = field[:, 0] = field[:, -1] = -1.0  # closed: no cut edges
        blob = np.asarray(Image.fromarray(field, mode="F").resize((side, side), Image.Resampling.BILINEAR)) > 0.0
        x0, y0 = rng.integers(0, size - side + 1, size=2)
        region = img[y0 : y0 + side, x0 : x0 + side]
        region[blob] = rng.uniform(0, 255, size=3)
    return np.clip(img, 0, 255).astype(np.uint8)


class _Mover:
    """A moving object: centre (px) and side (px) at a given time."""

    def __init__(self, motion: str, size: int, side: float, rng: np.random.Generator) -> None:
        self.motion, self.size, self.side = motion, size, side
        half = side / 2
        self.lo, self.hi = half, size - half
        self.start = rng.uniform(self.lo, self.hi, size=2)
        speed = rng.uniform(0.05, 0.15) * size  # px/s
        direction = rng.uniform(0, 2 * np.pi)
        self.velocity = speed * np.array([np.cos(direction), np.sin(direction)])
        self.radius = rng.uniform(0.05, 0.15) * size
        self.omega = rng.uniform(0.3, 0.8) * 2 * np.pi * rng.choice([-1, 1])

    def centre(self, t: float) -> np.ndarray:
        if self.motion in ("drift", "bounce"):
            pos = self.start + self.velocity * t
            span = self.hi - self.lo
            if span <= 0:
                return np.full(2, self.size / 2)
            # reflect off the walls (a triangle wave), so the object never leaves the frame
            x = (pos - self.lo) % (2 * span)
            pos = self.lo + np.where(x > span, 2 * span - x, x)
            if self.motion == "bounce":
                pos[1] = self.hi - abs(np.sin(1.5 * t + self.start[0])) * (self.hi - self.lo) * 0.6
            return pos
        if self.motion == "orbit":
            c = np.clip(self.start, self.lo + self.radius, self.hi - self.radius)
            return c + self.radius * np.array([np.cos(self.omega * t), np.sin(self.omega * t)])
        return self.start + np.array([0.0, 0.04 * self.size * np.sin(2 * t)])


_BOUNDS_CACHE: dict[tuple[str, int], tuple[int, int, int, int]] = {}


def _mask_bounds(shape: str, n: int) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) of a shape's mask inside its n x n square (x1, y1 exclusive)."""
    key = (shape, n)
    if key not in _BOUNDS_CACHE:
        ys, xs = np.nonzero(_shape_mask(shape, n))
        _BOUNDS_CACHE[key] = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
    return _BOUNDS_CACHE[key]


def _box(bounds: tuple[int, int, int, int], n: int, centre: np.ndarray, size: int) -> list[int] | None:
    """The visible box [x0, y0, x1, y1] of a sprite centred at ``centre`` in a size x size frame."""
    x0, y0 = int(round(centre[0] - n / 2)), int(round(centre[1] - n / 2))
    box = [max(0, x0 + bounds[0]), max(0, y0 + bounds[1]), min(size, x0 + bounds[2]), min(size, y0 + bounds[3])]
    return box if box[2] > box[0] and box[3] > box[1] else None


def _paste(frame: np.ndarray, rgb: np.ndarray, mask: np.ndarray, centre: np.ndarray) -> None:
    """Draw a sprite centred at ``centre`` (x, y, px), clipped to the frame."""
    n = rgb.shape[0]
    h, w = frame.shape[:2]
    x0, y0 = int(round(centre[0] - n / 2)), int(round(centre[1] - n / 2))
    fx0, fy0, fx1, fy1 = max(0, x0), max(0, y0), min(w, x0 + n), min(h, y0 + n)
    if fx1 <= fx0 or fy1 <= fy0:
        return
    sub = (slice(fy0 - y0, fy1 - y0), slice(fx0 - x0, fx1 - x0))
    m = mask[sub]
    region = frame[fy0:fy1, fx0:fx1]
    np.copyto(region, rgb[sub], where=m[:, :, None])


# ------------------------------------------------------------------------------------------------
# one video
# ------------------------------------------------------------------------------------------------
def render_video(config: WorldConfig, plan: VideoPlan) -> tuple[Callable[[], Iterator[np.ndarray]], np.ndarray, list]:
    """Render one video: (a generator factory of RGB frames, audio float32 at AUDIO_RATE, boxes).

    Frames are produced lazily (one at a time) so a long video never sits in memory.
    """
    specs = class_table(config.classes)
    rng = np.random.default_rng([config.seed, plan.index, 2])
    # (no draw when class_surface is 0, so that knob leaves other worlds unchanged)
    own_surface = config.class_surface > 0 and bool(rng.random() < config.class_surface)
    audio, env = render_audio(config, plan, rng, own_surface)
    n_samples = len(audio)

    size = config.size
    background = _background(size, config.clutter, rng)
    lo, hi = config.object_scale
    objects = []  # (spec, side, mover, look, pulses_with_sound)
    spec = specs[plan.visual_class]
    side = rng.uniform(lo, hi) * size
    motion = MOTIONS[int(rng.integers(len(MOTIONS)))]
    objects.append((spec, side, _Mover(motion, size, side * 1.15, rng),
                    _random_look(rng, class_hue(spec.index) if own_surface else None), True))
    for d in plan.distractor_classes:
        dside = rng.uniform(lo, hi) * size * 0.8
        dmotion = MOTIONS[int(rng.integers(len(MOTIONS)))]
        objects.append((specs[d], dside, _Mover(dmotion, size, dside, rng), _random_look(rng), False))
    # draw the sounding object last (on top) only half of the time: occlusion is allowed
    if len(objects) > 1 and rng.random() < 0.5:
        objects = objects[1:] + objects[:1]
    sounding_visible = plan.audio_class == plan.visual_class

    num_frames = max(1, int(math.floor(config.seconds * config.fps + 1e-9)))
    times = np.arange(num_frames) / config.fps
    # the sounding object's side follows its sound's loudness (+-15 %), a cue of synchrony
    env_at = env[np.minimum((times * AUDIO_RATE).astype(int), n_samples - 1)]
    sprite_cache: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
    boxes: list[list[int] | None] = []
    geometry = []
    for i, t in enumerate(times):
        per_frame = []
        for j, (spec_o, side_o, mover, look, sounding) in enumerate(objects):
            scale = 1.0 + 0.15 * (env_at[i] - 0.5) * 2 if sounding else 1.0
            n = max(4, int(round(side_o * scale)))
            per_frame.append((j, spec_o, n, mover.centre(float(t)), look, sounding))
        geometry.append(per_frame)

    def frames() -> Iterator[np.ndarray]:
        for per_frame in geometry:
            frame = background.copy()
            for j, spec_o, n, centre, look, _ in per_frame:
                key = (j, n)
                if key not in sprite_cache:
                    sprite_cache[key] = _sprite(spec_o, n, look)
                rgb, mask = sprite_cache[key]
                _paste(frame, rgb, mask, centre)
            yield frame

    # boxes need only geometry (the mask's bounding box, clipped to the frame), not the pixels
    for per_frame in geometry:
        box = None
        for _, spec_o, n, centre, _, sounding in per_frame:
            if sounding and sounding_visible:
                box = _box(_mask_bounds(spec_o.shape, n), n, centre, size)
        boxes.append(box)
    return frames, audio, boxes


def write_video(
    path: Path, frames: Iterator[np.ndarray], audio: np.ndarray, *, fps: float, threads: int = 1
) -> None:
    """Encode RGB frames (H.264, ultrafast) and mono audio at AUDIO_RATE (AAC) into an MP4, atomically
    (:class:`l3net.media.VideoWriter`, the one MP4 writer)."""
    with VideoWriter(path, fps, audio, audio_rate=AUDIO_RATE, options={"preset": "ultrafast", "crf": "20"},
                     threads=threads) as writer:
        for rgb in frames:
            writer.write(rgb)


def make_video(out_dir: Path, config: WorldConfig, plan: VideoPlan, threads: int = 1) -> Path:
    """Render and write one video and its boxes sidecar; return the video's path."""
    specs = class_table(config.classes)
    frames, audio, boxes = render_video(config, plan)
    path = out_dir / "videos" / f"{plan.name}.mp4"
    write_video(path, frames(), audio, fps=config.fps, threads=threads)
    write_json(
        path.with_name(plan.name + BOXES_SUFFIX),
        {
            "format": BOXES_FORMAT,
            "version": 1,
            "width": config.size,
            "height": config.size,
            "fps": config.fps,
            "boxes": boxes,
            "class": specs[plan.visual_class].name,
            "audio_class": specs[plan.audio_class].name,
            "offscreen_class": None if plan.offscreen_class is None else specs[plan.offscreen_class].name,
            "distractors": [specs[d].name for d in plan.distractor_classes],
        },
    )
    return path


def _make_video_task(args: tuple[str, WorldConfig, VideoPlan]) -> str:
    out_dir, config, plan = args
    return str(make_video(Path(out_dir), config, plan))


def _is_done(out_dir: Path, plan: VideoPlan) -> bool:
    video = out_dir / "videos" / f"{plan.name}.mp4"
    return video.exists() and video.with_name(plan.name + BOXES_SUFFIX).exists()


def make_world(
    out_dir: str | os.PathLike[str],
    config: WorldConfig = WorldConfig(),
    *,
    workers: int = 1,
    progress: bool = False,
) -> Path:
    """Write a synthetic world into ``out_dir`` (see the module docstring for the layout).

    Deterministic for ``config.seed``. Videos already written by an earlier, interrupted run with
    the same config are kept (each file is written atomically, its boxes sidecar last).
    Returns ``out_dir``.
    """
    config.validate()
    out = ensure_dir(out_dir)
    ensure_dir(out / "videos")
    world_file = out / "world.json"
    description = {
        "format": "l3net-synth",
        "version": WORLD_VERSION,
        "config": config.to_dict(),
        "classes": [dataclasses.asdict(s) for s in class_table(config.classes)],
    }
    if world_file.exists():
        try:
            previous = read_json(world_file)
        except (OSError, ValueError):
            previous = None
        if previous != json_roundtrip(description):
            raise InputError(
                f"{out} already holds a different synthetic world (world.json differs); "
                "choose another output directory or delete it"
            )
    else:
        write_json(world_file, description)

    plans = plan_videos(config)
    todo = [p for p in plans if not _is_done(out, p)]
    from tqdm import tqdm

    bar = tqdm(total=len(plans), initial=len(plans) - len(todo), unit="video", desc="synth", disable=not progress)
    try:
        if workers > 1 and len(todo) > 1:
            from ..runtime import worker_pool

            with worker_pool(workers) as pool:
                for _ in pool.imap_unordered(_make_video_task, [(str(out), config, p) for p in todo]):
                    bar.update()
        else:
            for plan in todo:
                make_video(out, config, plan)
                bar.update()
    finally:
        bar.close()

    specs = class_table(config.classes)
    with atomic_open(out / "labels.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["video", "class"])
        for plan in plans:
            writer.writerow([f"videos/{plan.name}.mp4", specs[plan.visual_class].name])
    return out


def json_roundtrip(data: Any) -> Any:
    """``data`` as it reads back from JSON (tuples become lists)."""
    return json.loads(json.dumps(data))


def read_boxes(video_path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The ``NAME.boxes.json`` sidecar of a video, or None when there is none (or it is unusable)."""
    path = Path(video_path)
    sidecar = path.with_name(path.stem + BOXES_SUFFIX)
    if not sidecar.is_file():
        return None
    try:
        data = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("format") != BOXES_FORMAT or not isinstance(data.get("boxes"), list):
        return None
    return data


__all__ = [
    "AUDIO_RATE",
    "CLASS_NAMES",
    "ClassSpec",
    "VideoPlan",
    "WorldConfig",
    "class_table",
    "make_video",
    "make_world",
    "plan_videos",
    "read_boxes",
    "render_video",
]
