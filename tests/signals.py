"""Synthetic signals and media files for tests: tones, chirps, noise, silence; wav/flac/mp3/mp4.

Everything is generated from code at test time (nothing is committed). Files are written with
PyAV, the library l3net reads them with, so the tests exercise real containers and codecs.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image


def tone(freq: float = 440.0, seconds: float = 1.0, sr: int = 48_000, amp: float = 0.5) -> np.ndarray:
    """A sine of ``freq`` Hz, ``seconds`` long at ``sr`` Hz, float32 mono."""
    t = np.arange(round(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def chirp(f0: float = 100.0, f1: float = 8000.0, seconds: float = 1.0, sr: int = 48_000, amp: float = 0.5) -> np.ndarray:
    """A linear sweep from ``f0`` to ``f1`` Hz, float32 mono."""
    t = np.arange(round(seconds * sr)) / sr
    phase = 2 * np.pi * (f0 * t + (f1 - f0) * t**2 / (2 * seconds))
    return (amp * np.sin(phase)).astype(np.float32)


def noise(seconds: float = 1.0, sr: int = 48_000, amp: float = 0.3, seed: int = 0) -> np.ndarray:
    """White Gaussian noise, float32 mono, reproducible from ``seed``."""
    return (amp * np.random.default_rng(seed).standard_normal(round(seconds * sr))).astype(np.float32)


def silence(seconds: float = 1.0, sr: int = 48_000) -> np.ndarray:
    """Digital silence (all zeros), float32 mono."""
    return np.zeros(round(seconds * sr), np.float32)


def stereo(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Two mono signals -> ``(samples, 2)``."""
    return np.stack([left, right], axis=1)


def pattern_image(height: int = 120, width: int = 160, seed: int = 0) -> np.ndarray:
    """A deterministic RGB uint8 image (gradients plus a few coloured blocks)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    image = np.stack([x * 255 // max(width - 1, 1), y * 255 // max(height - 1, 1), (x + y) % 256], axis=2)
    for _ in range(4):
        top, left = rng.integers(0, max(height - 8, 1)), rng.integers(0, max(width - 8, 1))
        image[top : top + height // 4, left : left + width // 4] = rng.integers(0, 256, 3)
    return image.astype(np.uint8)


def _audio_codec(path: Path) -> tuple[str, str, dict[str, str]]:
    """(container format, codec, options) by extension."""
    ext = path.suffix.lower()
    return {
        ".wav": ("wav", "pcm_s16le", {}),
        ".flac": ("flac", "flac", {}),
        ".mp3": ("mp3", "libmp3lame", {}),
        ".m4a": ("mp4", "aac", {}),
        ".ogg": ("ogg", "libopus", {}),
    }[ext]


def _add_audio_stream(container: av.container.OutputContainer, codec: str, sr: int, channels: int) -> av.AudioStream:
    rate = 48_000 if codec == "libopus" else sr
    stream = container.add_stream(codec, rate=rate)
    stream.layout = "stereo" if channels == 2 else "mono"
    return stream


def _encode_audio(container: av.container.OutputContainer, stream: av.AudioStream, samples: np.ndarray, sr: int) -> None:
    """Encode float samples ``(n,)`` or ``(n, channels)`` at ``sr`` Hz through a resampler to the codec's format."""
    data = samples if samples.ndim == 2 else samples[:, None]
    layout = "stereo" if data.shape[1] == 2 else "mono"
    # Encoders such as AAC and MP3 need frames of exactly frame_size samples.
    resampler = av.AudioResampler(
        format=stream.codec_context.format,
        layout=layout,
        rate=stream.codec_context.sample_rate,
        frame_size=stream.codec_context.frame_size or None,
    )
    block = 1024
    for start in range(0, len(data), block):
        chunk = np.ascontiguousarray(data[start : start + block].T, dtype=np.float32)
        frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=layout)
        frame.sample_rate = sr
        for out in resampler.resample(frame):
            container.mux(stream.encode(out))
    for out in resampler.resample(None):
        container.mux(stream.encode(out))
    container.mux(stream.encode(None))


def write_audio(path: str | Path, samples: np.ndarray, sr: int = 48_000) -> Path:
    """Write float samples in [-1, 1], ``(n,)`` or ``(n, 2)``, to .wav/.flac/.mp3/.m4a/.ogg."""
    path = Path(path)
    fmt, codec, _ = _audio_codec(path)
    channels = 1 if samples.ndim == 1 else samples.shape[1]
    with av.open(str(path), "w", format=fmt) as container:
        stream = _add_audio_stream(container, codec, sr, channels)
        _encode_audio(container, stream, samples, sr)
    return path


def frame_color(index: int) -> tuple[int, int, int]:
    """The flat colour of frame ``index`` of :func:`write_video`, distinct for the first 60 frames."""
    return (40 + (index * 37) % 180, 200 - (index * 23) % 160, 30 + (index * 53) % 200)


def write_video(
    path: str | Path,
    seconds: float = 2.0,
    fps: int = 10,
    size: tuple[int, int] = (96, 64),
    audio: np.ndarray | None = None,
    sr: int = 48_000,
) -> Path:
    """An H.264 .mp4 (or .mkv) whose frame ``i`` is a flat :func:`frame_color` (i), with an AAC track of
    ``audio`` (float, ``(n,)`` or ``(n, 2)`` at ``sr`` Hz) when given. ``size`` is (width, height)."""
    path = Path(path)
    width, height = size
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.options = {"preset": "ultrafast", "crf": "18"}
        video.codec_context.time_base = Fraction(1, fps)
        audio_stream = None
        if audio is not None:
            audio_stream = _add_audio_stream(container, "aac", sr, 1 if audio.ndim == 1 else audio.shape[1])
        for i in range(round(seconds * fps)):
            image = np.empty((height, width, 3), np.uint8)
            image[:] = frame_color(i)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = i
            frame.time_base = Fraction(1, fps)
            for packet in video.encode(frame):
                container.mux(packet)
        for packet in video.encode(None):
            container.mux(packet)
        if audio_stream is not None:
            _encode_audio(container, audio_stream, audio, sr)
    return path


def write_image(path: str | Path, image: np.ndarray) -> Path:
    """Write an image array with Pillow (format from the extension)."""
    path = Path(path)
    Image.fromarray(image).save(path)
    return path


def tiny_config():
    """A model config far cheaper than any preset (4-16 channels), for tests of plumbing
    (framing, batching, files, CLI) where the network's size does not matter."""
    from l3net.config import ModelConfig, SpectrogramConfig

    return ModelConfig(
        name="tiny",
        channels=(4, 8, 8, 16),
        image_resize=64,
        image_size=56,
        transfer_image_size=64,
        spectrogram=SpectrogramConfig(sample_rate=16_000, win_length=320, hop_length=320, n_fft=320),
    )
