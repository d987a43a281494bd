"""Embedding a corpus: many files, decoded in worker processes while the model runs in this one.

::

    settings = CorpusSettings.for_model(model, hop_size=0.1, ...)
    for result in embed_corpus(items, model, settings, workers=2):   # in the items' order
        ...                                                            # FileResult: outputs or error
    results = process_files(["a.wav", "b.mp4", "c.jpg"], "out/", model="runs/my_run")   # the list form

Each file is probed and decoded by :func:`decode` (audio to 48 kHz mono, images and video frames
prepared for the tower, as :mod:`l3net.embed_files` does), in up to ``workers`` processes
(a process pool; a crashed decoder fails only its file) at most ``workers + 2`` files ahead; the main process embeds and
writes them in order with the same functions :func:`~l3net.embed_files.process_audio_file` and its
siblings run (:func:`~l3net.embed_core.embed_audio_stream`, :func:`~l3net.embed_core.embed_images`,
the same framer and batches), so the files are the same bit for bit whatever ``workers`` is
(``workers=0`` decodes in this process; tested against ``process_*_file``). A file whose duration
would decode to more than :data:`DECODE_BUDGET_BYTES` is not decoded whole: it is streamed through
``process_*_file`` in the main process, so memory stays bounded.

A corpus is split into parts without coordination (:func:`in_part`): file ``key`` (its path
relative to the folder it was found in) belongs to part ``1 + sha1(key) mod N``, whatever else the
corpus holds, on every machine that sees the same folder layout.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import json
import time
import warnings
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from .config import SAMPLE_RATE, ModelConfig
from .embed_core import check_batch_size, embed_audio_stream, embed_images, embedding_model
from .embed_files import (
    _decode_side,
    _metadata,
    output_path,
    process_audio_file,
    process_image_file,
    process_video_file,
    save_embedding,
    silent_video_stamps,
    video_inputs,
)
from .errors import InputError, L3NetError, MediaError
from .framing import check_hop, window_count, window_timestamps
from .inference import InferenceModel, inference_model
from .inputs import prepare_image
from .layers import resolve_layer, transfer_input
from .media import MEDIA_EXTENSIONS, AudioReader, MediaInfo, VideoReader, load_image, probe
from .runtime import default_workers

#: A file whose decoded form (48 kHz float32 audio, prepared frames) would pass this many bytes is
#: streamed in the main process instead of decoded whole in a worker: about 20 min of audio, or 2.5
#: min of video at a hop of 0.1 s and 224 px crops. With at most ``workers + 2`` files decoded ahead,
#: memory stays below ``(workers + 2) * DECODE_BUDGET_BYTES``.
DECODE_BUDGET_BYTES = 256 * 2**20


@dataclass(frozen=True)
class CorpusItem:
    """One input: its path, the folder its outputs go to (None: beside it), and whether it was found
    by scanning a folder (then a file that is not media is skipped, not an error)."""

    path: Path
    out_dir: Path | None
    scanned: bool = False
    key: str = ""  # the path relative to the folder it was found in: what --part hashes

    def part_key(self) -> str:
        return self.key or self.path.as_posix()


@dataclass(frozen=True)
class CorpusSettings:
    """Everything a worker needs to decode a file as the model will see it (picklable, no weights)."""

    config: ModelConfig
    hop_size: float
    center: bool
    batch_size: int
    audio_layer: str
    image_layer: str | None  # None: the layer has no image counterpart (image and video files fail)
    precision: str = "fp32"
    suffix: str = ""
    audio_stream: int | None = None
    skip_existing: bool = False
    image_transfer: bool = False
    decode_side: int | None = None

    @classmethod
    def for_model(cls, model: Any, *, audio_layer: str, image_layer: str | None, **options: Any) -> "CorpusSettings":
        """Settings for ``model`` (an L3Net or InferenceModel) with its layers already resolved."""
        if image_layer is None:
            return cls(config=model.config, audio_layer=audio_layer, image_layer=None, **options)
        return cls(
            config=model.config, audio_layer=audio_layer, image_layer=image_layer,
            image_transfer=transfer_input(model.vision, image_layer), decode_side=_decode_side(model, image_layer),
            **options,
        )


@dataclass
class Decoded:
    """What a worker hands back for one file (or why it could not)."""

    kind: str | None = None
    planned: list[Path] = field(default_factory=list)
    audio: np.ndarray | None = None  # mono float32 at 48 kHz
    frames: np.ndarray | None = None  # prepared uint8 (N, S, S, 3)
    stamps: np.ndarray | None = None  # a video's timestamps (s)
    timing: dict[str, Any] | None = None
    stream: bool = False  # too long to decode whole: the main process streams it
    skipped: str | None = None  # "existing" or "not media"
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0  # decoding time (s), in the worker


@dataclass(frozen=True)
class FileResult:
    """One file done: the written outputs, or why not; its windows (audio) or images embedded."""

    path: Path
    kind: str | None
    outputs: list[Path]
    windows: int = 0
    skipped: str | None = None
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    decode_seconds: float = 0.0
    compute_seconds: float = 0.0


def in_part(key: str, part: int, parts: int) -> bool:
    """Whether the file named ``key`` belongs to part ``part`` (1-based) of ``parts``: by a stable
    hash of the name, so the split needs no list of the whole corpus and no coordination."""
    digest = hashlib.sha1(key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % parts == part - 1


def failure_reason(path: Path, exc: BaseException) -> str:
    """What to tell the user about a file that failed: the reason alone when it names the file."""
    if isinstance(exc, MediaError) and exc.path == path:
        return exc.reason
    if isinstance(exc, L3NetError):
        return str(exc)
    return f"unexpected error: {type(exc).__name__}: {exc}"


def planned_outputs(info: MediaInfo, path: Path, out_dir: Path | None, suffix: str) -> list[Path]:
    """The .npz files embedding ``path`` writes (a video: ``_audio`` if it has sound, ``_image``)."""
    if info.kind == "video":
        sound = [output_path(path, out_dir, f"{suffix}_audio")] if info.has_audio else []
        return sound + [output_path(path, out_dir, f"{suffix}_image")]
    return [output_path(path, out_dir, suffix)]


def decoded_bytes(info: MediaInfo, s: CorpusSettings) -> float:
    """About how many bytes a file decodes to: its sound as 48 kHz float32, and for a video one
    prepared RGB crop per audio window. Unknown durations count as over the budget."""
    if not info.duration:
        return float("inf")
    size = info.duration * SAMPLE_RATE * 4 if info.has_audio else 0.0
    if info.kind == "video":
        crop = s.config.transfer_image_size if s.image_transfer else s.config.image_size
        size += (info.duration / s.hop_size + 1) * crop * crop * 3
    return size


def decode(item: CorpusItem, settings: CorpusSettings) -> Decoded:
    """Probe and decode one file (the workers' task; also run in-process with ``workers=0``)."""
    start = time.perf_counter()
    result = Decoded()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            _decode_into(result, item, settings)
        except Exception as exc:  # noqa: BLE001 - one bad file must not stop the others; reported by name
            result.error = failure_reason(item.path, exc)
    result.warnings = [str(w.message) for w in caught]
    result.seconds = time.perf_counter() - start
    return result


def _decode_into(result: Decoded, item: CorpusItem, s: CorpusSettings) -> None:
    path = item.path
    try:
        info = probe(path)
    except MediaError:
        if item.scanned and path.suffix.lower() not in MEDIA_EXTENSIONS:
            result.skipped = "not media"  # an unrelated file in a scanned folder (CSV, notes...)
            return
        raise
    result.kind = info.kind
    result.planned = planned_outputs(info, path, item.out_dir, s.suffix)
    if s.skip_existing and all(p.exists() for p in result.planned):
        result.skipped = "existing"
        return
    if info.kind != "audio" and s.image_layer is None:
        raise InputError(f"layer {s.audio_layer!r} has no counterpart in the image network")
    if info.kind != "image" and decoded_bytes(info, s) > DECODE_BUDGET_BYTES:
        result.stream = True
        return
    if info.kind == "image":
        transfer = s.image_transfer
        result.frames = prepare_image(load_image(path), s.config, transfer=transfer, name=str(path))[None]
        return
    reader = AudioReader(path, SAMPLE_RATE, stream=s.audio_stream if info.kind == "video" else None)
    if info.has_audio:
        chunks = list(reader)
        result.audio = np.concatenate(chunks) if len(chunks) != 1 else chunks[0]
    if info.kind == "audio":
        return
    if info.has_audio:
        count = window_count(result.audio.size, s.hop_size, s.center, s.config.clip_samples, framing=s.config.framing)
        result.stamps = window_timestamps(count, s.hop_size)
    else:
        result.stamps = silent_video_stamps(path, info, s.config, s.hop_size, s.center)
        count = len(result.stamps)
    pictures = VideoReader(path, times=result.stamps, smaller_side=s.decode_side)
    result.frames = np.stack(list(video_inputs(s.config, path, count, s.image_transfer, pictures)))
    result.timing = {**(reader.report.to_dict() if info.has_audio else {}), **pictures.report.to_dict()}


def _embed(model: InferenceModel, item: CorpusItem, d: Decoded, s: CorpusSettings) -> tuple[list[Path], int]:
    """Embed and write one decoded file; ``(outputs, windows or images embedded)``."""
    if d.stream:  # a long file: decoded in chunks while it is embedded, as process_*_file do
        return _stream(model, item, d, s)
    results: list[tuple[Path, np.ndarray, np.ndarray, str]] = []
    if d.audio is not None:
        emb, stamps = embed_audio_stream(
            model, [d.audio], hop_size=s.hop_size, center=s.center, batch_size=s.batch_size, layer=s.audio_layer,
            precision=s.precision, total=None, verbose=False, desc=item.path.name,
        )
        results.append((d.planned[0], emb, stamps, s.audio_layer))
    if d.frames is not None:
        layer = s.image_layer
        emb = embed_images(model, iter(d.frames), layer, s.batch_size, s.precision, len(d.frames), False)
        stamps = d.stamps if d.stamps is not None else np.zeros(1)
        results.append((d.planned[-1], emb, stamps, layer))
    extra = {"timing": np.array(json.dumps(d.timing, sort_keys=True))} if d.timing is not None else {}
    outputs = [save_embedding(out, emb, ts, **_metadata(model, layer), **extra) for out, emb, ts, layer in results]
    return outputs, sum(len(emb) for _, emb, _, _ in results)


def _stream(model: InferenceModel, item: CorpusItem, d: Decoded, s: CorpusSettings) -> tuple[list[Path], int]:
    common = dict(model=model, batch_size=s.batch_size, suffix=s.suffix, precision=s.precision)
    if d.kind == "audio":
        outputs = [process_audio_file(item.path, item.out_dir, hop_size=s.hop_size, center=s.center, layer=s.audio_layer, **common)]
    else:
        outputs = process_video_file(
            item.path, item.out_dir, hop_size=s.hop_size, center=s.center, layer=s.audio_layer,
            image_layer=s.image_layer, audio_stream=s.audio_stream, **common,
        )
    with np.load(outputs[0]) as first:
        return outputs, len(first["timestamps"])


def embed_corpus(
    items: Iterable[CorpusItem], model: InferenceModel, settings: CorpusSettings, *, workers: int = 0
) -> Iterator[FileResult]:
    """Embed ``items`` in order, decoding in ``workers`` processes (0: here); one result per item.

    A file whose outputs would overwrite an earlier file's is an error for that file (rename it or
    use a suffix). Failures are results with ``error`` set: the other files go on.
    """
    written: dict[Path, Path] = {}
    for item, decoded in _decoded(items, settings, workers):
        if decoded.error is not None or decoded.skipped is not None:
            yield FileResult(item.path, decoded.kind, [], skipped=decoded.skipped, error=decoded.error,
                             warnings=decoded.warnings, decode_seconds=decoded.seconds)
            continue
        start = time.perf_counter()
        clash = [p for p in decoded.planned if p in written]
        try:
            if clash:
                raise MediaError(item.path, f"its output {clash[0]} would overwrite that of {written[clash[0]]}; use --suffix or rename")
            with warnings.catch_warnings(record=True) as caught:  # a streamed file's warnings, with the rest
                warnings.simplefilter("always")
                outputs, count = _embed(model, item, decoded, settings)
            decoded.warnings += [str(w.message) for w in caught]
        except Exception as exc:  # noqa: BLE001 - one bad file must not stop the others
            yield FileResult(item.path, decoded.kind, [], error=failure_reason(item.path, exc), warnings=decoded.warnings,
                             decode_seconds=decoded.seconds, compute_seconds=time.perf_counter() - start)
            continue
        written.update((out, item.path) for out in outputs)
        yield FileResult(item.path, decoded.kind, outputs, windows=count, warnings=decoded.warnings,
                         decode_seconds=decoded.seconds, compute_seconds=time.perf_counter() - start)


def process_files(
    paths: Iterable[str | Path],
    output_dir: str | Path | None = None,
    model: Any = None,
    hop_size: float = 0.1,
    center: bool = True,
    batch_size: int = 32,
    layer: str = "pool4",
    *,
    workers: int | None = None,
    suffix: str = "",
    skip_existing: bool = False,
    device: str | None = None,
    precision: str = "fp32",
) -> list[FileResult]:
    """``process_audio_file`` / ``process_image_file`` / ``process_video_file`` on a list of files
    (each by its content), decoded in ``workers`` processes (None: :func:`l3net.runtime.default_workers`
    for the model's device; 0: here) while the model runs here. The same files as the one-file
    functions write; one :class:`FileResult` per path, in order (failures have ``error`` set)."""
    net = inference_model(embedding_model(model, device), precision=precision)
    audio_layer = resolve_layer(net.audio, layer)
    try:
        image_layer: str | None = resolve_layer(net.vision, layer)
    except InputError:  # an audio-only layer: image and video files fail, each with the reason
        image_layer = None
    settings = CorpusSettings.for_model(
        net, audio_layer=audio_layer, image_layer=image_layer, hop_size=check_hop(hop_size), center=center,
        batch_size=check_batch_size(batch_size), precision=precision, suffix=suffix, skip_existing=skip_existing,
    )
    out = None if output_dir is None else Path(output_dir)
    items = [CorpusItem(Path(p), out, key=Path(p).name) for p in paths]
    workers = default_workers(net.device) if workers is None else workers
    return list(embed_corpus(items, net, settings, workers=workers))


class _Decoders:
    """Decoding processes. FFmpeg can crash on a damaged file and take its process with it: then the
    pool is restarted, that file is decoded again alone in a fresh process (a second crash is its
    own, reported as its failure) and the files queued after it are submitted again."""

    def __init__(self, workers: int, settings: CorpusSettings) -> None:
        self.workers, self.settings = workers, settings
        self.executor = self._start(workers)

    @staticmethod
    def _start(workers: int) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context())

    def submit(self, item: CorpusItem) -> Future[Decoded]:
        return self.executor.submit(decode, item, self.settings)

    def result(self, item: CorpusItem, future: Future[Decoded], queued: deque[tuple[CorpusItem, Future[Decoded]]]) -> Decoded:
        try:
            return future.result()
        except BrokenProcessPool:
            pass
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.executor = self._start(self.workers)
        for i, (other, pending) in enumerate(queued):
            if not (pending.done() and pending.exception() is None):
                queued[i] = (other, self.submit(other))
        with self._start(1) as alone:
            try:
                return alone.submit(decode, item, self.settings).result()
            except BrokenProcessPool:
                return Decoded(error="the decoder crashed: its process died while decoding this file")

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)


def _decoded(items: Iterable[CorpusItem], settings: CorpusSettings, workers: int) -> Iterator[tuple[CorpusItem, Decoded]]:
    """``(item, decoded)`` in the items' order; with workers, at most ``workers + 2`` files decoded ahead
    (memory stays bounded whatever the corpus size)."""
    if workers <= 0:
        for item in items:
            yield item, decode(item, settings)
        return
    decoders = _Decoders(workers, settings)
    try:
        queued: deque[tuple[CorpusItem, Future[Decoded]]] = deque()
        for item in items:
            queued.append((item, decoders.submit(item)))
            if len(queued) >= workers + 2:
                first, pending = queued.popleft()
                yield first, decoders.result(first, pending, queued)
        while queued:
            first, pending = queued.popleft()
            yield first, decoders.result(first, pending, queued)
    finally:
        decoders.close()
