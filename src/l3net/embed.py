"""The embedding API: audio, images and videos -> L3-Net embeddings (OpenL3's shape, not its pains).

Five plain functions::

    emb, ts = l3net.get_audio_embedding(audio, sr, model="runs/my_run")   # (T, 512), (T,) seconds
    emb = l3net.get_image_embedding(image, model="runs/my_run")           # (1, 512)
    l3net.process_audio_file("a.wav")          # -> a.npz
    l3net.process_image_file("photo.jpg")      # -> photo.npz
    l3net.process_video_file("clip.mp4")       # -> clip_audio.npz, clip_image.npz (same timestamps)

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

Windows are cut lazily, one batch at a time, and files are decoded in chunks through the same
framer, so neither all windows nor (for files) the whole waveform is ever in memory.

Layers (``layer=``):

- ``"pool4"`` (the tower's last pool): the embedding, ``model.config.embedding_dim``-D (512).
- ``"conv4_2"`` (the tower's last conv): the paper's transfer feature, audio conv4_2 *before* ReLU
  max-pooled to 4 x 3 (6144-D), images conv4_2 after ReLU max-pooled to 4 x 4 (8192-D).
- any other name of ``tower.feature_names`` (``conv3_1``, ``pool2``, ``conv4_1_prerelu``...): that
  layer's map max-pooled to the same grid as the transfer feature (4 x 3 audio, 4 x 4 images) and
  flattened: ``channels x 12`` (audio) or ``channels x 16`` (images) dimensions.

Images: ``pool4`` sees the centre ``image_size`` crop (224) of the image scaled so its smaller side
is ``image_resize`` (256); every other layer sees the centre ``transfer_image_size`` square (256),
as in the paper's transfer experiment.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import warnings
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from .config import SAMPLE_RATE
from .errors import InputError, MediaError
from .fileio import atomic_path, ensure_dir
from .media import (
    AudioReader,
    VideoReader,
    center_crop,
    iter_audio,
    iter_video_frames,
    load_image,
    prepare_audio_array,
    probe,
    resize_smaller_side,
    to_rgb_uint8,
)
from .inference import InferenceModel, inference_model
from .models import PRERELU, WEIGHTS_FILE, L3Net, VGGTower, load_model
from .runtime import autocast, check_precision, resolve_device

PathLike = str | os.PathLike[str]
ModelSpec = L3Net | InferenceModel | str | os.PathLike[str] | None

#: Hop (s) between audio windows when none is given (as OpenL3).
DEFAULT_HOP_SIZE = 0.1
#: Windows or images per forward pass when none is given.
DEFAULT_BATCH_SIZE = 32
#: The preset used when no model is given (random weights: l3net ships no trained weights).
DEFAULT_PRESET = "paper"


# ------------------------------------------------------------------------------------------------
# models and layers
# ------------------------------------------------------------------------------------------------
_MODEL_CACHE: dict[tuple[str, str, float], L3Net] = {}


def resolve_model(model: ModelSpec = None, device: str | torch.device | None = None) -> L3Net:
    """An :class:`L3Net` from ``model``: an L3Net (used as is), a preset name, or a model directory.

    ``None`` means the :data:`DEFAULT_PRESET` architecture with random weights (with a warning).
    Presets and directories are loaded once and cached per device. An L3Net is moved to ``device``
    when one is given, else used where it is.
    """
    if isinstance(model, L3Net):
        return model if device is None else model.to(resolve_device(device))
    if isinstance(model, InferenceModel):  # l3net.inference: runs on its device, precision and compile setting
        return model  # type: ignore[return-value]
    if model is None:
        warnings.warn(
            f"no model given: using the '{DEFAULT_PRESET}' architecture with random weights; "
            "pass model= a trained model directory for meaningful embeddings",
            stacklevel=3,
        )
        spec = DEFAULT_PRESET
    elif isinstance(model, (str, os.PathLike)):
        spec = os.fspath(model)
    else:
        raise InputError(f"model must be an L3Net, a preset name or a model directory, got {type(model).__name__}")
    target = resolve_device(device)
    path = Path(spec)
    stamp = 0.0
    if path.exists():
        spec = str(path.resolve())
        weights = path / WEIGHTS_FILE if path.is_dir() else path
        stamp = weights.stat().st_mtime if weights.exists() else 0.0
    key = (spec, str(target), stamp)
    if key not in _MODEL_CACHE:
        loaded = load_model(spec, device=target)
        if len(_MODEL_CACHE) >= 4:  # a few models at most: they are large
            _MODEL_CACHE.pop(next(iter(_MODEL_CACHE)))
        _MODEL_CACHE[key] = loaded
    return _MODEL_CACHE[key]


def _model_device(model: L3Net) -> torch.device:
    return next(model.parameters()).device


@contextlib.contextmanager
def _inference(model: L3Net, precision: str) -> Iterator[torch.device]:
    """Eval mode (restored afterwards), no autograd, and the precision's autocast."""
    device = _model_device(model)
    check_precision(precision, device)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode(), autocast(precision, device):
            yield device
    finally:
        model.train(was_training)


def _check_layer(tower: VGGTower, layer: str) -> None:
    if not isinstance(layer, str) or layer not in tower.feature_names:
        raise InputError(f"unknown layer {layer!r}; choose one of: {', '.join(tower.feature_names)}")


def embedding_size(model: L3Net, layer: str = "pool4", modality: str = "audio") -> int:
    """Dimension of the embeddings :func:`get_audio_embedding` / :func:`get_image_embedding` return."""
    tower = model.tower(modality)
    _check_layer(tower, layer)
    if layer == tower.embedding_layer:
        return model.config.embedding_dim
    channels = {info["name"]: info["channels"] for info in tower.feature_info}[layer.removesuffix(PRERELU)]
    grid = model.config.audio_transfer_grid if modality == "audio" else model.config.image_transfer_grid
    return channels * grid[0] * grid[1]


def layer_features(model: L3Net, modality: str, x: torch.Tensor, layer: str) -> torch.Tensor:
    """``(N, D)`` features of one layer for raw inputs (waveforms or images), as documented above."""
    tower = model.tower(modality)
    _check_layer(tower, layer)
    if layer == tower.embedding_layer:
        return model.embed(modality, x)
    if layer == tower.last_conv:
        return model.transfer_features(modality, x)
    return model.pool_transfer(modality, model.forward_features(modality, x, [layer])[layer])


# ------------------------------------------------------------------------------------------------
# framing
# ------------------------------------------------------------------------------------------------
def _check_hop(hop_size: float, sample_rate: int = SAMPLE_RATE) -> float:
    if isinstance(hop_size, bool) or not isinstance(hop_size, (int, float, np.integer, np.floating)):
        raise InputError(f"hop_size must be a number of seconds, got {hop_size!r}")
    hop_size = float(hop_size)
    if not math.isfinite(hop_size) or hop_size * sample_rate < 1:
        raise InputError(f"hop_size must be at least one sample (1/{sample_rate} s), got {hop_size}")
    return hop_size


def _check_batch_size(batch_size: int) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise InputError(f"batch_size must be a positive integer, got {batch_size!r}")
    return int(batch_size)


def window_start(k: int, hop_size: float, center: bool, window: int, sample_rate: int = SAMPLE_RATE) -> int:
    """First sample of window ``k`` (may be negative when centred: zeros before the audio)."""
    return round(k * hop_size * sample_rate) - (window // 2 if center else 0)


def _window_included(
    k: int, num_samples: int, hop_size: float, center: bool, window: int, sample_rate: int = SAMPLE_RATE
) -> bool:
    """Whether window ``k`` belongs to audio of ``num_samples`` samples (see the module docstring)."""
    if k == 0:
        return True
    if center:
        return round(k * hop_size * sample_rate) <= num_samples
    start = window_start(k, hop_size, False, window, sample_rate)
    return start < num_samples and window_start(k - 1, hop_size, False, window, sample_rate) + window < num_samples


def window_count(
    num_samples: int, hop_size: float, center: bool = True, window: int = SAMPLE_RATE, sample_rate: int = SAMPLE_RATE
) -> int:
    """Number of windows for ``num_samples`` samples (at ``sample_rate`` Hz); always >= 1."""
    hop_size = _check_hop(hop_size, sample_rate)
    hop = hop_size * sample_rate
    # A float estimate, then corrected with the exact rule the framer uses.
    if center:
        count = math.floor(num_samples / hop) + 1
    else:
        count = 1 + max(0, min(math.ceil((num_samples - window) / hop), math.ceil(num_samples / hop) - 1))
    count = max(1, count)
    while _window_included(count, num_samples, hop_size, center, window, sample_rate):
        count += 1
    while count > 1 and not _window_included(count - 1, num_samples, hop_size, center, window, sample_rate):
        count -= 1
    return count


def window_timestamps(count: int, hop_size: float) -> np.ndarray:
    """``k * hop_size`` (seconds, float64) for ``k = 0 .. count - 1``, each from its integer k."""
    return np.arange(count, dtype=np.float64) * float(hop_size)


def iter_windows(
    chunks: Iterable[np.ndarray], hop_size: float, center: bool = True, window: int = SAMPLE_RATE
) -> Iterator[np.ndarray]:
    """Cut a stream of mono float32 chunks (48 kHz) into windows of ``window`` samples, lazily.

    Yields window 0, 1, 2 ... (1-D arrays, valid until the next one is requested). Only about one
    window plus one chunk of samples is buffered, however long the stream.
    """
    hop_size = _check_hop(hop_size)
    buf = np.zeros(0, np.float32)
    buf_start = 0  # absolute index of buf[0]
    k = 0

    def cut(start: int, total: int | None) -> np.ndarray:
        lo, hi = start - buf_start, start - buf_start + window
        if start >= 0 and (total is None or start + window <= total):
            return buf[lo:hi]
        out = np.zeros(window, np.float32)  # zeros outside the audio
        src_lo, src_hi = max(lo, 0), min(hi, buf.size if total is None else total - buf_start)
        if src_hi > src_lo:
            out[src_lo - lo : src_hi - lo] = buf[src_lo:src_hi]
        return out

    for chunk in chunks:
        chunk = np.asarray(chunk, dtype=np.float32).reshape(-1)
        if chunk.size == 0:
            continue
        end = buf_start + buf.size
        # Drop what no later window needs (with a hop longer than a window, whole stretches).
        lo = max(window_start(k, hop_size, center, window), buf_start)
        if lo >= end:
            skip = min(lo - end, chunk.size)
            buf, buf_start = chunk[skip:], end + skip
        else:
            buf = np.concatenate([buf[lo - buf_start :], chunk])
            buf_start = lo
        end = buf_start + buf.size
        while (start := window_start(k, hop_size, center, window)) + window <= end:
            yield cut(start, None)
            k += 1
    total = buf_start + buf.size
    while _window_included(k, total, hop_size, center, window):
        yield cut(window_start(k, hop_size, center, window), total)
        k += 1


def _batches(windows: Iterator[np.ndarray], batch_size: int, window: int) -> Iterator[np.ndarray]:
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


def _embed_audio_stream(
    model: L3Net,
    chunks: Iterable[np.ndarray],
    *,
    hop_size: float,
    center: bool,
    batch_size: int,
    layer: str,
    precision: str,
    total: int | None,
    verbose: bool,
    desc: str,
) -> tuple[np.ndarray, np.ndarray]:
    window = model.config.clip_samples
    dim = embedding_size(model, layer, "audio")
    outputs: list[np.ndarray] = []
    fast = inference_model(model, precision=precision)  # l3net.inference: folded, channels_last, compiled
    with _inference(model, fast.precision) as device, tqdm(
        total=total, unit="win", desc=desc, disable=not verbose, leave=False
    ) as bar:
        for batch in _batches(iter_windows(chunks, hop_size, center, window), batch_size, window):
            x = torch.from_numpy(batch).to(device)
            outputs.append(layer_features(fast, "audio", x, layer).float().cpu().numpy())
            bar.update(len(batch))
    embedding = np.concatenate(outputs) if outputs else np.zeros((0, dim), np.float32)
    return np.ascontiguousarray(embedding, dtype=np.float32), window_timestamps(len(embedding), hop_size)


# ------------------------------------------------------------------------------------------------
# audio
# ------------------------------------------------------------------------------------------------
def _as_array(x: Any) -> Any:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else x


def _is_list_of_signals(audio: Any) -> bool:
    return isinstance(audio, (list, tuple)) and all(
        isinstance(a, (np.ndarray, torch.Tensor, list, tuple)) for a in audio
    ) and len(audio) > 0


def get_audio_embedding(
    audio: np.ndarray | torch.Tensor | Sequence[np.ndarray],
    sr: float | Sequence[float],
    model: ModelSpec = None,
    hop_size: float = DEFAULT_HOP_SIZE,
    center: bool = True,
    batch_size: int = DEFAULT_BATCH_SIZE,
    layer: str = "pool4",
    *,
    device: str | torch.device | None = None,
    precision: str = "fp32",
    verbose: bool = False,
) -> tuple[np.ndarray, np.ndarray] | tuple[list[np.ndarray], list[np.ndarray]]:
    """Embeddings of audio, one per window: ``(embeddings float32 [T, D], timestamps float64 [T] s)``.

    ``audio``: samples at ``sr`` Hz, any dtype (integers are scaled to [-1, 1]), shaped
    ``(samples,)``, ``(samples, channels)`` or ``(channels, samples)``; channels are averaged and
    the rate converted to 48 kHz. A list of arrays (with one ``sr`` or a list of them) gives lists.
    ``model``: an :class:`L3Net`, a preset name or a model directory (``None``: the paper
    architecture with random weights). ``hop_size``: seconds between windows. See the module
    docstring for the exact framing and the ``layer`` choices. ``precision``: "fp32" (the default;
    results do not change between runs) or "bf16" (autocast).
    """
    hop_size = _check_hop(hop_size)
    batch_size = _check_batch_size(batch_size)
    net = resolve_model(model, device)
    _check_layer(net.audio, layer)
    if _is_list_of_signals(audio):
        n = len(audio)
        rates = list(sr) if isinstance(sr, (list, tuple, np.ndarray)) else [sr] * n
        if len(rates) != n:
            raise InputError(f"got {n} audio arrays but {len(rates)} sample rates")
        results = [
            _embed_array(net, _as_array(a), r, f"audio[{i}]", hop_size, center, batch_size, layer, precision, verbose)
            for i, (a, r) in enumerate(zip(audio, rates))
        ]
        return [e for e, _ in results], [t for _, t in results]
    if isinstance(sr, (list, tuple, np.ndarray)):
        raise InputError("a list of sample rates needs a list of audio arrays")
    return _embed_array(net, _as_array(audio), sr, "audio", hop_size, center, batch_size, layer, precision, verbose)


def _embed_array(
    model: L3Net, audio: Any, sr: float, name: str, hop_size: float, center: bool, batch_size: int,
    layer: str, precision: str, verbose: bool,
) -> tuple[np.ndarray, np.ndarray]:
    samples = prepare_audio_array(audio, sr, SAMPLE_RATE, name=name)
    total = window_count(samples.size, hop_size, center, model.config.clip_samples)
    return _embed_audio_stream(
        model, [samples], hop_size=hop_size, center=center, batch_size=batch_size, layer=layer,
        precision=precision, total=total, verbose=verbose, desc=name,
    )


# ------------------------------------------------------------------------------------------------
# images
# ------------------------------------------------------------------------------------------------
def _image_sizes(model: L3Net, layer: str) -> tuple[int, int]:
    """(smaller side after scaling, square crop) for a layer: 256/224 for pool4, 256/256 otherwise."""
    c = model.config
    if layer == model.vision.embedding_layer:
        return c.image_resize, c.image_size
    return c.transfer_image_size, c.transfer_image_size


def prepare_image(image: np.ndarray, resize: int, crop: int, name: str = "image") -> np.ndarray:
    """Any image array -> ``crop x crop x 3`` uint8: smaller side scaled to ``resize``, centre crop."""
    return center_crop(resize_smaller_side(to_rgb_uint8(image, name), resize), crop)


def _split_images(images: Any) -> list[Any]:
    if isinstance(images, (list, tuple)):
        if not images:
            raise InputError("images: empty list")
        return [_as_array(im) for im in images]
    x = np.asarray(_as_array(images))
    if x.ndim == 2 or (x.ndim == 3 and x.shape[2] in (1, 3, 4)):
        return [x]
    if x.ndim == 4:
        if x.shape[0] == 0:
            raise InputError("images: empty batch")
        return list(x)
    raise InputError(
        f"images: expected H x W (x 1/3/4), a batch N x H x W x 3 or a list of images, got shape {x.shape}"
    )


def get_image_embedding(
    images: np.ndarray | torch.Tensor | Sequence[np.ndarray],
    model: ModelSpec = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    layer: str = "pool4",
    *,
    device: str | torch.device | None = None,
    precision: str = "fp32",
    verbose: bool = False,
) -> np.ndarray:
    """Embeddings of images: ``float32 (N, D)`` (``(1, D)`` for one image).

    ``images``: one image (H x W x 3 RGB; greyscale H x W, RGBA, float in [0, 1] or uint8 also
    accepted), a batch ``(N, H, W, 3)``, or a list of images of any sizes. Each is scaled and
    centre-cropped for ``layer`` (see the module docstring) and batched ``batch_size`` at a time.
    """
    batch_size = _check_batch_size(batch_size)
    net = resolve_model(model, device)
    _check_layer(net.vision, layer)
    items = _split_images(images)
    resize, crop = _image_sizes(net, layer)
    names = ["image"] if len(items) == 1 else [f"images[{i}]" for i in range(len(items))]
    prepared = (prepare_image(im, resize, crop, name) for im, name in zip(items, names))
    return _embed_images(net, prepared, layer, batch_size, precision, len(items), verbose)


def _embed_images(
    model: L3Net, frames: Iterable[np.ndarray], layer: str, batch_size: int, precision: str,
    total: int | None, verbose: bool,
) -> np.ndarray:
    outputs: list[np.ndarray] = []
    fast = inference_model(model, precision=precision)  # l3net.inference: folded, channels_last, compiled
    with _inference(model, fast.precision) as device, tqdm(
        total=total, unit="img", desc="images", disable=not verbose, leave=False
    ) as bar:
        batch: list[np.ndarray] = []

        def flush() -> None:
            x = torch.from_numpy(np.stack(batch)).permute(0, 3, 1, 2).to(device)
            outputs.append(layer_features(fast, "vision", x, layer).float().cpu().numpy())
            bar.update(len(batch))
            batch.clear()

        for frame in frames:
            batch.append(frame)
            if len(batch) == batch_size:
                flush()
        if batch:
            flush()
    if not outputs:
        return np.zeros((0, embedding_size(model, layer, "vision")), np.float32)
    return np.ascontiguousarray(np.concatenate(outputs), dtype=np.float32)


# ------------------------------------------------------------------------------------------------
# files
# ------------------------------------------------------------------------------------------------
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
                total = window_count(round(duration * SAMPLE_RATE), hop_size, center, model.config.clip_samples)
    return _embed_audio_stream(
        model, iter_audio(path, SAMPLE_RATE) if reader is None else reader, hop_size=hop_size, center=center, batch_size=batch_size,
        layer=layer, precision=precision, total=total, verbose=verbose, desc=path.name,
    )


def process_audio_file(
    path: PathLike,
    output_dir: PathLike | None = None,
    model: ModelSpec = None,
    hop_size: float = DEFAULT_HOP_SIZE,
    center: bool = True,
    batch_size: int = DEFAULT_BATCH_SIZE,
    layer: str = "pool4",
    *,
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
    hop_size = _check_hop(hop_size)
    batch_size = _check_batch_size(batch_size)
    net = resolve_model(model, device)
    _check_layer(net.audio, layer)
    out = output_path(path, output_dir, suffix or "")
    if output_dir is not None:
        ensure_dir(output_dir)
    embedding, stamps = _embed_audio_file(net, path, hop_size, center, batch_size, layer, precision, verbose)
    return save_embedding(out, embedding, stamps, **_metadata(net, layer))


def process_image_file(
    path: PathLike,
    output_dir: PathLike | None = None,
    model: ModelSpec = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    layer: str = "pool4",
    *,
    suffix: str | None = None,
    device: str | torch.device | None = None,
    precision: str = "fp32",
) -> Path:
    """Embed an image file: writes ``<stem><suffix>.npz`` with ``embedding`` ``(1, D)`` and
    ``timestamps`` ``[0.0]``; returns its path."""
    path = Path(path)
    net = resolve_model(model, device)
    _check_layer(net.vision, layer)
    out = output_path(path, output_dir, suffix or "")
    if output_dir is not None:
        ensure_dir(output_dir)
    image = load_image(path)
    resize, crop = _image_sizes(net, layer)
    embedding = _embed_images(
        net, [prepare_image(image, resize, crop, str(path))], layer, _check_batch_size(batch_size), precision, 1, False
    )
    return save_embedding(out, embedding, np.zeros(1), **_metadata(net, layer))


def process_video_file(
    path: PathLike,
    output_dir: PathLike | None = None,
    model: ModelSpec = None,
    hop_size: float = DEFAULT_HOP_SIZE,
    center: bool = True,
    batch_size: int = DEFAULT_BATCH_SIZE,
    layer: str = "pool4",
    *,
    image_layer: str | None = None,
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
    given. A video without sound gets only the image file (timestamps
    framed over the video's duration), with a warning naming the file; a file without pictures is
    a :class:`MediaError` (use :func:`process_audio_file`). Both files are written only when both
    embeddings are computed. Sound and pictures are read on the file's one clock
    (:class:`~l3net.media.Timeline`); ``audio_stream`` picks an audio stream (None: the default
    one, else the first), and both files hold ``timing``, a JSON string saying what was done to
    the sound (silence before, in gaps, after; the stream used) and the pictures (rotation,
    aspect, deinterlacing).
    """
    path = Path(path)
    hop_size = _check_hop(hop_size)
    batch_size = _check_batch_size(batch_size)
    net = resolve_model(model, device)
    audio_layer, image_layer = layer, image_layer or layer
    _check_layer(net.audio, audio_layer)
    _check_layer(net.vision, image_layer)
    suffix = suffix or ""
    if output_dir is not None:
        ensure_dir(output_dir)
    info = probe(path)
    if not info.has_video or info.kind == "image":
        what = "an image" if info.kind == "image" else "audio only"
        raise MediaError(path, f"has no video stream ({what}); use process_audio_file / process_image_file")
    window = net.config.clip_samples
    results: list[tuple[Path, np.ndarray, np.ndarray, str]] = []
    reader = AudioReader(path, SAMPLE_RATE, stream=audio_stream)
    if info.has_audio:
        audio_emb, stamps = _embed_audio_file(net, path, hop_size, center, batch_size, audio_layer, precision, verbose, reader)
        results.append((output_path(path, output_dir, f"{suffix}_audio"), audio_emb, stamps, audio_layer))
    else:
        warnings.warn(f"{path}: the video has no audio stream; writing image embeddings only", stacklevel=2)
        if not info.duration:
            raise MediaError(path, "has no audio and an unknown duration: cannot place timestamps")
        stamps = window_timestamps(window_count(round(info.duration * SAMPLE_RATE), hop_size, center, window), hop_size)
    pictures = VideoReader(path, times=stamps, smaller_side=_image_sizes(net, image_layer)[0])
    image_emb = _embed_video_frames(net, path, stamps, image_layer, batch_size, precision, verbose, pictures)
    results.append((output_path(path, output_dir, f"{suffix}_image"), image_emb, stamps, image_layer))
    timing = {**(reader.report.to_dict() if info.has_audio else {}), **pictures.report.to_dict()}
    extra = {"timing": np.array(json.dumps(timing, sort_keys=True))}
    return [save_embedding(out, emb, ts, **_metadata(net, layer), **extra) for out, emb, ts, layer in results]


def _embed_video_frames(
    model: L3Net, path: Path, stamps: np.ndarray, layer: str, batch_size: int, precision: str, verbose: bool,
    pictures: Iterable[tuple[float, np.ndarray]] | None = None,
) -> np.ndarray:
    resize, crop = _image_sizes(model, layer)
    count = len(stamps)
    found = 0
    last: list[np.ndarray] = []

    def frames() -> Iterator[np.ndarray]:
        nonlocal found
        # Scaling happens during colour conversion (cheap), so resize_smaller_side is then a no-op.
        source = iter_video_frames(path, times=stamps, smaller_side=resize) if pictures is None else pictures
        for _, frame in source:
            found += 1
            last[:] = [frame]
            yield prepare_image(frame, resize, crop, str(path))
        # Times past the last frame (audio can outlast the picture): the frame left on screen.
        for _ in range(count - found):
            if not last:
                raise MediaError(path, "no video frame could be decoded")
            yield prepare_image(last[0], resize, crop, str(path))

    return _embed_images(model, frames(), layer, batch_size, precision, count, verbose)
