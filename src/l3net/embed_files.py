"""Embedding files: an audio, image or video file in, ``.npz`` file(s) out (``process_*_file``, the
file half of the embedding API; see :mod:`l3net.embed` for framing and layers, :mod:`l3net.embed_core`
for what both halves share). Files are decoded in chunks (memory stays bounded) and written atomically.
"""

from __future__ import annotations

import contextlib
import json
import os
import warnings
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np
import torch

from .config import SAMPLE_RATE, ModelConfig
from .embed_core import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_HOP_SIZE,
    check_batch_size,
    embed_audio_stream,
    embed_images,
    embedding_model,
)
from .errors import MediaError
from .fileio import atomic_path, ensure_dir
from .framing import check_hop, window_count, window_timestamps
from .inputs import image_sizes, prepare_image
from .layers import resolve_layer, transfer_input
from .media import AudioReader, MediaInfo, VideoReader, iter_audio, iter_video_frames, load_image, probe
from .modelspec import ModelSpec
from .models import L3Net, choose_layer

PathLike = str | os.PathLike[str]


def output_path(path: PathLike, output_dir: PathLike | None, suffix: str = "") -> Path:
    """``<output_dir or the input's folder>/<stem><suffix>.npz``."""
    path = Path(path)
    folder = Path(output_dir) if output_dir is not None else path.parent
    return folder / f"{path.stem}{suffix}.npz"


def save_embedding(path: PathLike, embedding: np.ndarray, stamps: np.ndarray, **extra: Any) -> Path:
    """Write ``embedding`` and ``timestamps`` (plus ``extra`` arrays) to an .npz, atomically."""
    path = Path(path)
    ensure_dir(path.parent)
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez(tmp, embedding=embedding, timestamps=stamps, **extra)
    return path


def _metadata(model: L3Net, layer: str) -> dict[str, np.ndarray]:
    return {"layer": np.array(layer), "model": np.array(model.config.name)}


def _embed_audio_file(
    model: L3Net, path: Path, hop_size: float, center: bool, batch_size: int, layer: str, precision: str,
    verbose: bool, reader: AudioReader | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    total = None
    if verbose:
        with contextlib.suppress(MediaError):
            duration = probe(path).duration
            if duration:
                total = window_count(
                    round(duration * SAMPLE_RATE), hop_size, center, model.config.clip_samples, framing=model.config.framing
                )
    return embed_audio_stream(
        model, iter_audio(path, SAMPLE_RATE) if reader is None else reader, hop_size=hop_size, center=center, batch_size=batch_size,
        layer=layer, precision=precision, total=total, verbose=verbose, desc=path.name,
    )


def process_audio_file(
    path: PathLike,
    output_dir: PathLike | None = None,
    model: ModelSpec | None = None,
    hop_size: float = DEFAULT_HOP_SIZE,
    center: bool = True,
    batch_size: int = DEFAULT_BATCH_SIZE,
    layer: str = "pool4",
    *,
    embedding_size: int | None = None,
    suffix: str | None = None,
    device: str | torch.device | None = None,
    precision: str = "fp32",
    verbose: bool = False,
) -> Path:
    """Embed the audio of a file (any format FFmpeg reads; the audio track of a video too).

    Writes ``<output_dir>/<stem><suffix>.npz`` (default: beside the input, no suffix) holding
    ``embedding`` (float32 ``[T, D]``), ``timestamps`` (float64 ``[T]``, seconds), ``layer`` and
    ``model``; returns its path. The file is decoded in chunks: memory stays bounded.
    """
    path = Path(path)
    hop_size = check_hop(hop_size)
    batch_size = check_batch_size(batch_size)
    net = embedding_model(model, device)
    layer = resolve_layer(net.audio, choose_layer(net, "audio", layer, embedding_size))
    out = output_path(path, output_dir, suffix or "")
    if output_dir is not None:
        ensure_dir(output_dir)
    embedding, stamps = _embed_audio_file(net, path, hop_size, center, batch_size, layer, precision, verbose)
    return save_embedding(out, embedding, stamps, **_metadata(net, layer))


def process_image_file(
    path: PathLike,
    output_dir: PathLike | None = None,
    model: ModelSpec | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    layer: str = "pool4",
    *,
    embedding_size: int | None = None,
    suffix: str | None = None,
    device: str | torch.device | None = None,
    precision: str = "fp32",
) -> Path:
    """Embed an image file: writes ``<stem><suffix>.npz`` with ``embedding`` ``(1, D)`` and
    ``timestamps`` ``[0.0]``; returns its path."""
    path = Path(path)
    net = embedding_model(model, device)
    layer = resolve_layer(net.vision, choose_layer(net, "vision", layer, embedding_size))
    out = output_path(path, output_dir, suffix or "")
    if output_dir is not None:
        ensure_dir(output_dir)
    image = prepare_image(load_image(path), net.config, transfer=transfer_input(net.vision, layer), name=str(path))
    embedding = embed_images(net, [image], layer, check_batch_size(batch_size), precision, 1, False)
    return save_embedding(out, embedding, np.zeros(1), **_metadata(net, layer))


def process_video_file(
    path: PathLike,
    output_dir: PathLike | None = None,
    model: ModelSpec | None = None,
    hop_size: float = DEFAULT_HOP_SIZE,
    center: bool = True,
    batch_size: int = DEFAULT_BATCH_SIZE,
    layer: str = "pool4",
    *,
    image_layer: str | None = None,
    embedding_size: int | None = None,
    image_embedding_size: int | None = None,
    suffix: str | None = None,
    device: str | torch.device | None = None,
    precision: str = "fp32",
    verbose: bool = False,
    audio_stream: int | None = None,
) -> list[Path]:
    """Embed a video's sound and pictures on the same timestamps; returns the written paths.

    Writes ``<stem><suffix>_audio.npz`` (audio windows, framed as :func:`get_audio_embedding`)
    and ``<stem><suffix>_image.npz``: for each audio timestamp, the embedding of the frame on
    screen at that time (the last frame for times past the end of the picture). The two
    ``timestamps`` arrays are equal. ``layer`` applies to both towers unless ``image_layer`` is
    given (``embedding_size`` / ``image_embedding_size``: OpenL3's names for them, e.g. 6144 / 8192). A video without sound gets only the image file (timestamps
    framed over the video's duration), with a warning naming the file; a file without pictures is
    a :class:`MediaError` (use :func:`process_audio_file`). Both files are written only when both
    embeddings are computed. Sound and pictures are read on the file's one clock
    (:class:`~l3net.media.Timeline`); ``audio_stream`` picks an audio stream (None: the default
    one, else the first), and both files hold ``timing``, a JSON string saying what was done to
    the sound (silence before, in gaps, after; the stream used) and the pictures (rotation,
    aspect, deinterlacing).
    """
    path = Path(path)
    hop_size = check_hop(hop_size)
    batch_size = check_batch_size(batch_size)
    net = embedding_model(model, device)
    audio_layer = resolve_layer(net.audio, choose_layer(net, "audio", layer, embedding_size))
    image_layer = resolve_layer(net.vision, choose_layer(net, "vision", image_layer or layer, image_embedding_size))
    suffix = suffix or ""
    if output_dir is not None:
        ensure_dir(output_dir)
    info = probe(path)
    if not info.has_video or info.kind == "image":
        what = "an image" if info.kind == "image" else "audio only"
        raise MediaError(path, f"has no video stream ({what}); use process_audio_file / process_image_file")
    results: list[tuple[Path, np.ndarray, np.ndarray, str]] = []
    reader = AudioReader(path, SAMPLE_RATE, stream=audio_stream)
    if info.has_audio:
        audio_emb, stamps = _embed_audio_file(net, path, hop_size, center, batch_size, audio_layer, precision, verbose, reader)
        results.append((output_path(path, output_dir, f"{suffix}_audio"), audio_emb, stamps, audio_layer))
    else:
        stamps = silent_video_stamps(path, info, net.config, hop_size, center)
    pictures = VideoReader(path, times=stamps, smaller_side=_decode_side(net, image_layer))
    image_emb = _embed_video_frames(net, path, stamps, image_layer, batch_size, precision, verbose, pictures)
    results.append((output_path(path, output_dir, f"{suffix}_image"), image_emb, stamps, image_layer))
    timing = {**(reader.report.to_dict() if info.has_audio else {}), **pictures.report.to_dict()}
    extra = {"timing": np.array(json.dumps(timing, sort_keys=True))}
    return [save_embedding(out, emb, ts, **_metadata(net, layer), **extra) for out, emb, ts, layer in results]


def silent_video_stamps(path: Path, info: MediaInfo, config: ModelConfig, hop_size: float, center: bool) -> np.ndarray:
    """Window timestamps (s) of a video without sound: its image embeddings are placed as the windows
    of a sound as long as the container says the file is (a warning says so)."""
    warnings.warn(f"{path}: the video has no audio stream; writing image embeddings only", stacklevel=3)
    if not info.duration:
        raise MediaError(path, "has no audio and an unknown duration: cannot place timestamps")
    count = window_count(round(info.duration * SAMPLE_RATE), hop_size, center, config.clip_samples, framing=config.framing)
    return window_timestamps(count, hop_size)


def _decode_side(model: L3Net, layer: str) -> int | None:
    """The smaller side (px) video frames are scaled to while decoding (cheap: during colour
    conversion, so :func:`~l3net.inputs.prepare_image`'s scaling is then a no-op); None (decode at the
    video's own size) under OpenL3's ``image_upscale=False``, where the frame's size decides."""
    return image_sizes(model.config, transfer=transfer_input(model.vision, layer))[0] if model.config.image_upscale else None


def video_inputs(
    config: ModelConfig, path: Path, count: int, transfer: bool, pictures: Iterable[tuple[float, np.ndarray]]
) -> Iterator[np.ndarray]:
    """The ``count`` prepared images (:func:`~l3net.inputs.prepare_image`) of a video's frames at its
    timestamps: each decoded frame, then, for times past the last frame (audio can outlast the
    picture), the frame left on screen. Used in the main process and in corpus workers alike."""
    found = 0
    last = None
    for _, frame in pictures:
        found += 1
        last = frame
        yield prepare_image(frame, config, transfer=transfer, name=str(path))
    for _ in range(count - found):
        if last is None:
            raise MediaError(path, "no video frame could be decoded")
        yield prepare_image(last, config, transfer=transfer, name=str(path))


def _embed_video_frames(
    model: L3Net, path: Path, stamps: np.ndarray, layer: str, batch_size: int, precision: str, verbose: bool,
    pictures: Iterable[tuple[float, np.ndarray]] | None = None,
) -> np.ndarray:
    transfer = transfer_input(model.vision, layer)
    count = len(stamps)
    source = iter_video_frames(path, times=stamps, smaller_side=_decode_side(model, layer)) if pictures is None else pictures
    frames = video_inputs(model.config, path, count, transfer, source)
    return embed_images(model, frames, layer, batch_size, precision, count, verbose)
