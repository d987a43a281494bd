"""A synthetic audio-visual world: real MP4 videos whose sounding object is known (``l3net synth``).

No real video dataset can be downloaded on every machine, and tests need data with known answers,
so l3net makes its own. Each *class* pairs a visual object (shape, colour, texture, motion) with a
sound (timbre, pitch, rhythm); the object's size pulses with its sound's loudness. A *video* shows
one sounding object of a class at a random place and scale over a random background, for
``seconds`` seconds, encoded as H.264 + AAC in MP4 (so the real decoding path is exercised).

Class attributes are combined so that no single cue names a class: with 10 classes two share a
shape and two share a colour, and timbre, rhythm and pitch are assigned independently. Class
looks and sounds depend only on the class index, never on the seed, so two worlds made with
different seeds (say a training and a test world) share their classes.

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

SHAPES = ("circle", "square", "triangle", "diamond", "star", "ring", "cross", "hexagon")
#: Eight well separated, saturated colours (RGB, 0-255).
COLOURS = (
    (230, 40, 40), (245, 150, 20), (240, 225, 30), (40, 190, 60),
    (30, 200, 220), (40, 80, 235), (150, 60, 220), (235, 60, 170),
)
TEXTURES = ("solid", "stripes", "checks", "dots")
TIMBRES = ("sine", "square", "saw", "bell", "noise", "pluck")
#: (kind, rate in Hz): how the sound's loudness moves in time.
RHYTHMS = (("steady", 0.5), ("pulse", 2.0), ("pulse", 4.0), ("decay", 1.5), ("decay", 3.0), ("random", 3.0))
MOTIONS = ("drift", "bounce", "orbit", "hover")
#: Fundamental frequencies (Hz) spread log-uniformly; classes take them in a scrambled order.
PITCHES = tuple(float(f) for f in np.geomspace(180.0, 2200.0, MAX_CLASSES).round(1))


@dataclass(frozen=True)
class ClassSpec:
    """What one class looks and sounds like (fixed by the class index)."""

    index: int
    name: str
    shape: str
    colour: tuple[int, int, int]
    texture: str
    motion: str
    timbre: str
    pitch: float  # Hz, fundamental
    rhythm: tuple[str, float]


def class_table(num_classes: int) -> list[ClassSpec]:
    """The first ``num_classes`` classes. Attributes are spread so that no single one names a class."""
    if not 2 <= num_classes <= MAX_CLASSES:
        raise InputError(f"--classes must be between 2 and {MAX_CLASSES}, got {num_classes}")
    specs = []
    for c in range(num_classes):
        q = c // 8
        specs.append(
            ClassSpec(
                index=c,
                name=CLASS_NAMES[c],
                shape=SHAPES[c % 8],
                colour=COLOURS[(3 * c + q) % 8],  # (shape, colour) is unique for all 34 classes
                texture=TEXTURES[(c + c // 4) % 4],
                motion=MOTIONS[(c * 3 + 1) % 4],
                timbre=TIMBRES[c % 6],
                pitch=PITCHES[(c * 13) % MAX_CLASSES],  # 13 is prime to 34: a permutation
                rhythm=RHYTHMS[(c + c // 6) % 6],
            )
        )
    return specs


@dataclass(frozen=True)
class WorldConfig:
    """Parameters of a synthetic world. Probabilities are per video; times in seconds."""

    videos: int = 200
    classes: int = 10
    seconds: float = 10.0
    size: int = 256  # frame width and height (px)
    fps: float = 12.0  # video frame rate
    seed: int = 0
    noise: float = 0.05  # background noise amplitude (the sounding object peaks at 0.3-0.7)
    distractors: float = 0.3  # probability of 1-2 silent objects of other classes in view
    unrelated: float = 0.0  # probability that the soundtrack is another class's (object silent)
    offscreen: float = 0.0  # probability of a second, invisible sound source of another class
    pitch_jitter: float = 0.06  # a video's fundamental is the class's times U(1 - j, 1 + j)
    object_scale: tuple[float, float] = (0.3, 0.5)  # object side / frame side

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
        for name in ("distractors", "unrelated", "offscreen"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise InputError(f"--{name} is a probability in [0, 1], got {value}")
        if not 0.0 <= self.pitch_jitter <= 0.9:
            raise InputError(f"--pitch-jitter must be in [0, 0.9], got {self.pitch_jitter}")
        if not 0.0 <= self.noise <= 1.0:
            raise InputError(f"--noise must be in [0, 1], got {self.noise}")
        lo, hi = self.object_scale
        if not 0.05 <= lo <= hi <= 0.9:
            raise InputError(f"object_scale must satisfy 0.05 <= lo <= hi <= 0.9, got {self.object_scale}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class VideoPlan:
    """Everything random about one video, drawn from ``(seed, index)`` alone."""

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
def _envelope(rhythm: tuple[str, float], t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Loudness over time in [0, 1] (``t`` in seconds)."""
    kind, rate = rhythm
    phase = rng.random()
    if kind == "steady":
        return 0.8 + 0.2 * np.sin(2 * np.pi * (rate * t + phase))
    if kind == "pulse":
        x = (rate * t + phase) % 1.0
        # 50 % duty with 10 ms ramps, so onsets do not click
        ramp = 0.01 * rate
        return np.clip(np.minimum(x / ramp, (0.5 - x) / ramp), 0.0, 1.0)
    if kind == "decay":
        x = (rate * t + phase) % 1.0
        return np.exp(-x / (0.25 / rate * 2)) * np.clip(x / (0.005 * rate), 0, 1)
    # random onsets (a Poisson process), each a fast attack and an exponential decay (0.12 s)
    rate_hz = len(t) / (float(t[-1]) + 1e-9) if len(t) > 1 else AUDIO_RATE
    duration = len(t) / rate_hz
    onsets = np.sort(rng.uniform(-0.3, duration, size=max(1, rng.poisson(rate * (duration + 0.3)))))
    env = np.zeros_like(t)
    tail = np.exp(-np.arange(int(rate_hz)) / rate_hz / 0.12)  # 1 s of decay: e^-8 at its end
    for onset in onsets:
        start = int(np.ceil(onset * rate_hz))
        lo, hi = max(0, start), min(len(t), start + len(tail))
        if hi > lo:
            np.maximum(env[lo:hi], tail[lo - start : hi - start], out=env[lo:hi])
    return env


def _tone(spec: ClassSpec, t: np.ndarray, f0: float, rng: np.random.Generator) -> np.ndarray:
    """The class's timbre at fundamental ``f0`` (Hz), peak about 1, energy below 8 kHz."""
    nyquist = min(8000.0, AUDIO_RATE / 2 - 500)
    phase = 2 * np.pi * f0 * t + rng.uniform(0, 2 * np.pi)
    if spec.timbre == "sine":
        x = np.sin(phase) + 0.15 * np.sin(2 * phase)
    elif spec.timbre in ("square", "saw", "pluck"):
        ks = range(1, int(nyquist // f0) + 1)
        if spec.timbre == "square":
            ks = [k for k in ks if k % 2]
        power = {"square": 1.0, "saw": 1.0, "pluck": 1.6}[spec.timbre]
        x = sum(np.sin(k * phase) / k**power for k in list(ks)[:12])
    elif spec.timbre == "bell":
        x = np.sin(phase + 2.0 * np.sin(1.41 * phase))  # inharmonic FM
    else:  # band of noise around f0
        spectrum = np.fft.rfft(rng.standard_normal(len(t)))
        freqs = np.fft.rfftfreq(len(t), 1.0 / AUDIO_RATE)
        spectrum *= np.exp(-0.5 * ((freqs - 2 * f0) / (0.5 * f0)) ** 2)
        x = np.fft.irfft(spectrum, len(t))
    x = np.asarray(x, dtype=np.float64)
    return x / (np.abs(x).max() + 1e-9)


def _class_sound(
    spec: ClassSpec, t: np.ndarray, rng: np.random.Generator, pitch_jitter: float
) -> tuple[np.ndarray, np.ndarray]:
    """(signal, loudness envelope) of one source of the class; the pitch varies by +-``pitch_jitter``."""
    f0 = spec.pitch * rng.uniform(1.0 - pitch_jitter, 1.0 + pitch_jitter)
    env = _envelope(spec.rhythm, t, rng)
    return _tone(spec, t, f0, rng) * env, env


def _background_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """Brownish-pink noise (a one-pole low-pass of white noise), unit peak."""
    from scipy.signal import lfilter

    x = lfilter([1.0], [1.0, -0.97], rng.standard_normal(n))
    x = x - x.mean()
    return x / (np.abs(x).max() + 1e-9)


# ------------------------------------------------------------------------------------------------
# pictures
# ------------------------------------------------------------------------------------------------
def _shape_mask(shape: str, n: int) -> np.ndarray:
    """An n x n boolean mask of the shape, filling the square."""
    c = (np.arange(n) + 0.5) / n * 2 - 1
    v, u = np.meshgrid(c, c, indexing="ij")
    r = np.hypot(u, v)
    if shape == "circle":
        return r <= 1.0
    if shape == "square":
        return np.maximum(abs(u), abs(v)) <= 0.85
    if shape == "triangle":
        return (v <= 0.8) & (abs(u) <= (v + 0.95) * 0.58)
    if shape == "diamond":
        return abs(u) + abs(v) <= 1.0
    if shape == "star":
        theta = np.arctan2(v, u)
        return r <= 0.5 + 0.45 * np.cos(5 * theta + np.pi / 2) ** 2
    if shape == "ring":
        return (r <= 1.0) & (r >= 0.55)
    if shape == "cross":
        return ((abs(u) <= 0.3) & (abs(v) <= 0.95)) | ((abs(v) <= 0.3) & (abs(u) <= 0.95))
    if shape == "hexagon":
        return np.maximum(abs(u) * 0.866 + abs(v) * 0.5, abs(v)) <= 0.9
    raise ValueError(shape)


def _sprite(spec: ClassSpec, n: int, shade: float) -> tuple[np.ndarray, np.ndarray]:
    """(n x n x 3 uint8 colours, n x n mask) of the class's object at side ``n`` px."""
    mask = _shape_mask(spec.shape, n)
    colour = np.clip(np.array(spec.colour, np.float32) * shade, 0, 255)
    dark = colour * 0.35
    i = np.arange(n)
    period = max(4, n // 5)
    if spec.texture == "stripes":
        pattern = ((i[:, None] + i[None, :]) // (period // 2)) % 2 == 0
    elif spec.texture == "checks":
        pattern = ((i[:, None] // (period // 2)) + (i[None, :] // (period // 2))) % 2 == 0
    elif spec.texture == "dots":
        cy = (i % period) - period / 2
        pattern = (cy[:, None] ** 2 + cy[None, :] ** 2) > (period * 0.3) ** 2
    else:
        pattern = np.ones((n, n), bool)
    rgb = np.where(pattern[:, :, None], colour, dark).astype(np.uint8)
    return rgb, mask


def _background(size: int, rng: np.random.Generator) -> np.ndarray:
    """A random muted gradient with soft blotches (size x size x 3 uint8)."""
    a, b = rng.uniform(40, 200, size=(2, 3))
    grey = rng.uniform(60, 170)
    a, b = 0.45 * a + 0.55 * grey, 0.45 * b + 0.55 * grey  # muted: objects stay the colourful thing
    angle = rng.uniform(0, 2 * np.pi)
    c = np.linspace(-1, 1, size)
    y, x = np.meshgrid(c, c, indexing="ij")
    g = (np.cos(angle) * x + np.sin(angle) * y + 1.4) / 2.8
    img = a * (1 - g[:, :, None]) + b * g[:, :, None]
    # soft blotches: a 6 x 6 grid of random offsets, bilinearly upscaled
    blotch = rng.normal(0, 18, size=(6, 6)).astype(np.float32)
    img += np.asarray(Image.fromarray(blotch, mode="F").resize((size, size), Image.Resampling.BILINEAR))[:, :, None]
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
    n_samples = int(round(config.seconds * AUDIO_RATE))
    t_audio = np.arange(n_samples) / AUDIO_RATE
    main, env = _class_sound(specs[plan.audio_class], t_audio, rng, config.pitch_jitter)
    loudness = rng.uniform(0.3, 0.7)
    audio = loudness * main
    if plan.offscreen_class is not None:
        other, _ = _class_sound(specs[plan.offscreen_class], t_audio, rng, config.pitch_jitter)
        audio += loudness * rng.uniform(0.4, 0.8) * other
    if config.noise > 0:
        audio += config.noise * rng.uniform(0.5, 1.5) * _background_noise(n_samples, rng)
    peak = np.abs(audio).max()
    if peak > 0.95:
        audio *= 0.95 / peak
    audio = audio.astype(np.float32)

    size = config.size
    background = _background(size, rng)
    lo, hi = config.object_scale
    objects = []  # (spec, side, mover, shade, pulses_with_sound)
    spec = specs[plan.visual_class]
    side = rng.uniform(lo, hi) * size
    objects.append((spec, side, _Mover(spec.motion, size, side * 1.15, rng), rng.uniform(0.85, 1.1), True))
    for d in plan.distractor_classes:
        dspec = specs[d]
        dside = rng.uniform(lo, hi) * size * 0.8
        objects.append((dspec, dside, _Mover(dspec.motion, size, dside, rng), rng.uniform(0.85, 1.1), False))
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
        for spec_o, side_o, mover, shade, sounding in objects:
            scale = 1.0 + 0.15 * (env_at[i] - 0.5) * 2 if sounding else 1.0
            n = max(4, int(round(side_o * scale)))
            per_frame.append((spec_o, n, mover.centre(float(t)), shade, sounding))
        geometry.append(per_frame)

    def frames() -> Iterator[np.ndarray]:
        for per_frame in geometry:
            frame = background.copy()
            for spec_o, n, centre, shade, _ in per_frame:
                key = (spec_o.index, n)
                if key not in sprite_cache:
                    sprite_cache[key] = _sprite(spec_o, n, shade)
                rgb, mask = sprite_cache[key]
                _paste(frame, rgb, mask, centre)
            yield frame

    # boxes need only geometry (the mask's bounding box, clipped to the frame), not the pixels
    for per_frame in geometry:
        box = None
        for spec_o, n, centre, _, sounding in per_frame:
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
        "version": 1,
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
