"""The shard format: the only interface between ``l3net prepare`` and the pair sampler.

A shard directory (see docs/DESIGN.md, "Shards")::

    dataset.json                      settings shared by all shards (fps, seconds, sizes, splits, classes)
    train-00000-00000.tar             WebDataset tar: KEY.json, KEY.wav, KEY.000.jpg, KEY.001.jpg, ...
    train-00000-00000.tar.json        sidecar, written after the tar: counts, outcomes and an index
    manifest-00000.jsonl              one line per input of slice 00000: kept or skipped, and why

The sidecar is an index of its tar: for every sample, the metadata of ``KEY.json`` and the byte
offset and size of every member, so that readers fetch one frame or one second of audio with a
seek instead of scanning the tar. A shard counts as finished only when both files exist; the tar's
size is recorded in the sidecar so a truncated tar is recognised and skipped.

This module writes shards (:class:`ShardWriter`) and reads them (:class:`ShardSet`,
:class:`VideoRecord`); it knows nothing about decoding videos or sampling pairs.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tarfile
import threading
import warnings
import wave
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Iterable, Iterator, Mapping, Sequence

import numpy as np
from PIL import Image

from ..config import SAMPLE_RATE
from ..errors import DatasetError
from ..fileio import read_json

FORMAT = "l3net-shards"
VERSION = 1
SPLITS = ("train", "val", "test")
DATASET_FILE = "dataset.json"
SIDECAR_SUFFIX = ".json"  # X.tar -> X.tar.json
#: Bytes of the canonical PCM WAV header that :func:`wav_bytes` writes (the samples follow it).
WAV_HEADER_BYTES = 44
_SHARD_RE = re.compile(r"^(train|val|test)-(\d{5})-(\d{5})\.tar$")
#: A fixed member time, so that preparing the same videos twice gives the same bytes.
_MTIME = 0


def shard_name(split: str, slice_index: int, number: int) -> str:
    """File name of shard ``number`` of ``split`` written by slice ``slice_index``."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}")
    return f"{split}-{slice_index:05d}-{number:05d}.tar"


def parse_shard_name(name: str) -> tuple[str, int, int] | None:
    """(split, slice, number) of a shard file name, or None when it is not one."""
    match = _SHARD_RE.match(name)
    if not match:
        return None
    return match.group(1), int(match.group(2)), int(match.group(3))


def manifest_name(slice_index: int) -> str:
    return f"manifest-{slice_index:05d}.jsonl"


def sidecar_path(shard: Path) -> Path:
    return shard.with_name(shard.name + SIDECAR_SUFFIX)


def frame_member(key: str, index: int) -> str:
    return f"{key}.{index:03d}.jpg"


def wav_bytes(samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> bytes:
    """Mono float audio in [-1, 1] -> a 16-bit PCM WAV file's bytes (44-byte header)."""
    pcm = np.clip(np.rint(np.asarray(samples, dtype=np.float32) * 32767.0), -32768, 32767).astype("<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(sample_rate)
        handle.writeframes(pcm.tobytes())
    data = buffer.getvalue()
    assert len(data) == WAV_HEADER_BYTES + pcm.nbytes
    return data


# ------------------------------------------------------------------------------------------------
# writing
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SampleBlock:
    """One sample's tar members as one run of bytes (headers, data, padding).

    Built by :func:`sample_block` in the process that decoded the video, so that the process
    writing the shard only appends bytes. ``members`` holds ``[offset, size]`` within ``data``.
    """

    key: str
    meta: dict[str, Any]
    data: bytes
    members: dict[str, Any]


def sample_block(key: str, meta: Mapping[str, Any], wav: bytes, frames: Sequence[bytes]) -> SampleBlock:
    """The members ``KEY.json``, ``KEY.wav``, ``KEY.NNN.jpg`` (in that order, so WebDataset groups
    them into one sample) of one video as a :class:`SampleBlock`."""
    if "." in key or "/" in key:
        raise ValueError(f"a sample key must not contain dots or slashes: {key!r}")
    parts: list[bytes] = []
    size = 0

    def member(name: str, payload: bytes) -> list[int]:
        nonlocal size
        info = tarfile.TarInfo(name)
        info.size = len(payload)
        info.mtime = _MTIME
        info.mode = 0o644
        header = info.tobuf(tarfile.USTAR_FORMAT, tarfile.ENCODING, "surrogateescape")
        padding = -len(payload) % tarfile.BLOCKSIZE
        parts.extend((header, payload, b"\0" * padding))
        start = size + len(header)
        size = start + len(payload) + padding
        return [start, len(payload)]

    members: dict[str, Any] = {"json": member(f"{key}.json", json.dumps(meta, sort_keys=True).encode("utf-8"))}
    members["wav"] = member(f"{key}.wav", wav)
    members["pcm"] = [members["wav"][0] + WAV_HEADER_BYTES, members["wav"][1] - WAV_HEADER_BYTES]
    members["frames"] = [member(frame_member(key, i), data) for i, data in enumerate(frames)]
    return SampleBlock(key, dict(meta), b"".join(parts), members)


class ShardWriter:
    """Write samples into one tar (an already temporary path) and build the sidecar's index.

    The tar is plain USTAR, as :mod:`tarfile` writes it: each sample's members (headers from
    :class:`tarfile.TarInfo`) as :func:`sample_block` lays them out, then the end-of-archive blocks.
    """

    def __init__(self, fileobj: IO[bytes]) -> None:
        self._file = fileobj
        self._offset = 0
        self.index: list[dict[str, Any]] = []

    def add(self, key: str, meta: Mapping[str, Any], wav: bytes, frames: Sequence[bytes]) -> None:
        """Add one video: its metadata (KEY.json), audio (WAV bytes) and JPEG frames."""
        self.add_block(sample_block(key, meta, wav, frames))

    def add_block(self, block: SampleBlock) -> None:
        """Append a sample built by :func:`sample_block` (possibly in another process)."""
        base = self._offset
        self._file.write(block.data)
        self._offset += len(block.data)
        m = block.members
        members = {name: [m[name][0] + base, m[name][1]] for name in ("json", "wav", "pcm")}
        members["frames"] = [[offset + base, size] for offset, size in m["frames"]]
        self.index.append({"key": block.key, "meta": block.meta, "members": members})

    def close(self) -> None:
        # End of archive: two zero blocks, padded to a whole record (as tarfile.TarFile.close does).
        end = 2 * tarfile.BLOCKSIZE
        end += -(self._offset + end) % tarfile.RECORDSIZE
        self._file.write(b"\0" * end)
        self._offset += end


# ------------------------------------------------------------------------------------------------
# reading
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class VideoRecord:
    """One prepared video, as the sidecar indexes it. Times in seconds, sizes in bytes."""

    key: str
    shard: Path
    meta: Mapping[str, Any] = field(repr=False)  # the sample's KEY.json
    frames: tuple[tuple[int, int], ...] = field(repr=False)  # (offset, size) of each JPEG
    pcm: tuple[int, int] = field(repr=False)  # (offset, size) of the 16-bit samples

    @property
    def label(self) -> str | None:
        return self.meta.get("label")

    @property
    def frame_times(self) -> list[float]:
        return self.meta["frame_times"]

    @property
    def num_frames(self) -> int:
        return len(self.frames)

    @property
    def num_samples(self) -> int:
        """Audio samples at SAMPLE_RATE."""
        return self.pcm[1] // 2

    @property
    def duration(self) -> float:
        """Length of the stored audio (s)."""
        return self.num_samples / SAMPLE_RATE

    @property
    def boxes(self) -> list | None:
        """Ground-truth boxes of the sound source per frame (stored-frame pixels), if known."""
        return self.meta.get("boxes")


def _bad_shard(path: Path, reason: str) -> None:
    warnings.warn(f"skipping shard {path}: {reason}", stacklevel=3)


def read_sidecar(shard: Path) -> dict[str, Any] | None:
    """The sidecar of a finished shard, or None (with a warning) when the shard is unusable."""
    side = sidecar_path(shard)
    if not side.exists():
        _bad_shard(shard, "unfinished (no sidecar: was 'l3net prepare' interrupted? re-run it to finish)")
        return None
    try:
        data = read_json(side)
    except (OSError, ValueError) as exc:
        _bad_shard(shard, f"its sidecar {side.name} is unreadable ({exc})")
        return None
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("index"), list):
        _bad_shard(shard, f"its sidecar {side.name} is not an l3net shard index")
        return None
    try:
        size = shard.stat().st_size
    except OSError as exc:
        _bad_shard(shard, f"cannot be read ({exc.strerror or exc})")
        return None
    if size != data.get("tar_bytes"):
        _bad_shard(shard, f"truncated or corrupt ({size} bytes, the index expects {data.get('tar_bytes')})")
        return None
    if size >= 512:
        with open(shard, "rb") as handle:
            header = handle.read(512)
        if data["index"] and header[257:262] != b"ustar":
            _bad_shard(shard, "corrupt (no tar header at its start)")
            return None
    return data


def records_from_sidecar(shard: Path, data: Mapping[str, Any]) -> list[VideoRecord]:
    records = []
    for entry in data["index"]:
        members = entry["members"]
        records.append(
            VideoRecord(
                key=entry["key"],
                shard=shard,
                meta=entry["meta"],
                frames=tuple((int(o), int(s)) for o, s in members["frames"]),
                pcm=(int(members["pcm"][0]), int(members["pcm"][1])),
            )
        )
    return records


class _Handles:
    """A small LRU of open shard files, reopened after pickling (DataLoader workers)."""

    def __init__(self, capacity: int = 32) -> None:
        self.capacity = capacity
        self._open: OrderedDict[Path, IO[bytes]] = OrderedDict()
        self._lock = threading.Lock()

    def read(self, path: Path, offset: int, size: int) -> bytes:
        with self._lock:
            handle = self._open.get(path)
            if handle is None:
                handle = open(path, "rb")
                self._open[path] = handle
                while len(self._open) > self.capacity:
                    self._open.popitem(last=False)[1].close()
            else:
                self._open.move_to_end(path)
            handle.seek(offset)
            data = handle.read(size)
        if len(data) != size:
            raise DatasetError(f"{path}: truncated (wanted {size} bytes at offset {offset}, got {len(data)})")
        return data

    def close(self) -> None:
        with self._lock:
            for handle in self._open.values():
                handle.close()
            self._open.clear()

    def __getstate__(self) -> dict[str, Any]:
        return {"capacity": self.capacity}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["capacity"])


class ShardSet:
    """A prepared shard directory: its settings, its videos per split, and random access to them.

    >>> shards = ShardSet("shards/")
    >>> videos = shards.videos("test")
    >>> frame = shards.read_frame(videos[0], 0)          # H x W x 3 uint8
    >>> audio = shards.read_audio(videos[0], 0, 48_000)  # float32, 1 s at 48 kHz

    Unfinished, truncated or corrupt shards are skipped with a warning naming them.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise DatasetError(f"{self.root}: no such shard directory (make one with 'l3net prepare')")
        info_path = self.root / DATASET_FILE
        if not info_path.is_file():
            raise DatasetError(f"{self.root}: not a shard directory (no {DATASET_FILE}; make one with 'l3net prepare')")
        try:
            self.info: dict[str, Any] = read_json(info_path)
        except (OSError, ValueError) as exc:
            raise DatasetError(f"{info_path}: unreadable ({exc})") from exc
        if not isinstance(self.info, dict) or self.info.get("format") != FORMAT:
            raise DatasetError(f"{info_path}: not an l3net shard directory description")
        if self.info.get("version") != VERSION:
            raise DatasetError(f"{info_path}: shard format version {self.info.get('version')}, this l3net reads {VERSION}")
        self._handles = _Handles()
        self._videos: dict[str, list[VideoRecord]] = {}

    @property
    def classes(self) -> list[str] | None:
        """Sorted class names when the shards were prepared with labels, else None."""
        return self.info.get("classes")

    @property
    def frame_smaller_side(self) -> int:
        return int(self.info["frame_smaller_side"])

    def shard_paths(self, split: str) -> list[Path]:
        """Every ``split`` shard file (finished or not), sorted by name."""
        if split not in SPLITS:
            raise DatasetError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
        return sorted(p for p in self.root.glob(f"{split}-*.tar") if parse_shard_name(p.name))

    def fingerprint(self) -> str:
        """Identity of the directory: its settings and its finished train and val shards (16 hex digits).

        Training (and the baselines) resume only on equal fingerprints: other data, or more shards,
        would not continue the same pair stream.
        """
        digest = hashlib.sha256(json.dumps(self.info, sort_keys=True).encode())
        for split in ("train", "val"):
            for path in self.shard_paths(split):
                if sidecar_path(path).is_file():  # finished shards only (the sidecar comes last)
                    digest.update(path.name.encode())
        return digest.hexdigest()[:16]

    def load_shard(self, shard: Path) -> list[VideoRecord]:
        """The videos of one shard ([] with a warning when it is unusable)."""
        data = read_sidecar(shard)
        if data is None:
            return []
        try:
            return records_from_sidecar(shard, data)
        except (KeyError, TypeError, ValueError) as exc:
            _bad_shard(shard, f"its sidecar index is malformed ({exc!r})")
            return []

    def videos(self, split: str) -> list[VideoRecord]:
        """All usable videos of a split, in shard order (cached)."""
        if split not in self._videos:
            records: list[VideoRecord] = []
            for shard in self.shard_paths(split):
                records.extend(self.load_shard(shard))
            self._videos[split] = records
        return self._videos[split]

    def iter_videos(self, split: str) -> Iterator[VideoRecord]:
        return iter(self.videos(split))

    # -- random access ------------------------------------------------------------------------
    def read_frame_bytes(self, video: VideoRecord, index: int) -> bytes:
        offset, size = video.frames[index]
        return self._handles.read(video.shard, offset, size)

    def read_frame(self, video: VideoRecord, index: int, *, min_side: int | None = None) -> np.ndarray:
        """Frame ``index`` as H x W x 3 uint8. ``min_side``: decode JPEG at a reduced scale (faster)
        as long as the smaller side stays >= ``min_side`` px."""
        return decode_jpeg(self.read_frame_bytes(video, index), min_side=min_side, name=f"{video.shard}:{video.key}")

    def read_pcm(self, video: VideoRecord, start: int = 0, length: int | None = None) -> np.ndarray:
        """16-bit samples ``[start, start + length)`` (at SAMPLE_RATE) of a video's audio."""
        total = video.num_samples
        if length is None:
            length = total - start
        if start < 0 or length < 0 or start + length > total:
            raise ValueError(f"samples [{start}, {start + length}) outside the {total} of {video.key}")
        data = self._handles.read(video.shard, video.pcm[0] + 2 * start, 2 * length)
        return np.frombuffer(data, dtype="<i2")

    def read_audio(self, video: VideoRecord, start: int = 0, length: int | None = None) -> np.ndarray:
        """Audio samples ``[start, start + length)`` as float32 in [-1, 1] at SAMPLE_RATE (48 kHz)."""
        return self.read_pcm(video, start, length).astype(np.float32) / 32768.0

    def close(self) -> None:
        self._handles.close()


def decode_jpeg(data: bytes, *, min_side: int | None = None, name: str = "frame") -> np.ndarray:
    """JPEG bytes -> H x W x 3 uint8; with ``min_side``, decoded at the smallest JPEG scale (1/2,
    1/4, 1/8) whose smaller side is still >= ``min_side`` (Pillow's draft mode: far less work)."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            if min_side is not None:
                w, h = image.size
                scale = max(1, min(w, h) // max(1, min_side))
                if scale >= 2:
                    image.draft("RGB", (-(-w // scale), -(-h // scale)))
            return np.asarray(image.convert("RGB"))
    except (OSError, SyntaxError, ValueError) as exc:
        raise DatasetError(f"{name}: corrupt JPEG frame ({exc})") from exc


def iter_tar_samples(paths: Iterable[Path]) -> Iterator[dict[str, bytes]]:
    """Plain sequential reading of shards (no sidecar needed): one ``{field: bytes}`` per sample,
    with ``__key__``. A tool for checks and conversions; training uses :class:`ShardSet`."""
    for path in paths:
        with tarfile.open(path, "r") as tar:
            current: dict[str, bytes] = {}
            for member in tar:
                if not member.isfile():
                    continue
                key, _, field_name = member.name.partition(".")
                if current and current["__key__"] != key.encode():
                    yield current
                    current = {}
                handle = tar.extractfile(member)
                assert handle is not None
                current.setdefault("__key__", key.encode())
                current[field_name] = handle.read()
            if current:
                yield current
