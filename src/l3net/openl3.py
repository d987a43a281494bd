"""OpenL3's published models in l3net: read Keras weight files, convert, find and cache them.

OpenL3 (Cramer et al., ICASSP 2019; https://github.com/marl/openl3, weights CC BY 4.0) published
twelve weight files: ``openl3_{audio,image}_{linear,mel128,mel256}_{env,music}.h5``, Keras
``save_weights`` HDF5 files (no model graph). This module reads them with h5py, no TensorFlow:

- :func:`inspect_keras_file` reads one file, tells its modality (the input BatchNorm and first conv
  have 1 channel for audio, 3 for images) and, for audio, its front end (from the published file
  name, or from kapre 0.1 front-end weights where an older file holds them; the conv towers of the
  three audio networks have identical shapes);
- :func:`convert` matches the weighted layers by order and shape (Keras' layer names change between
  versions and sessions) onto an ``openl3-*`` preset and writes an l3net model directory;
- :func:`openl3_model_dir` resolves ``"openl3:mel256-env"``: it looks for the published files in
  ``$L3NET_OPENL3_DIR`` and in an installed ``openl3`` package's folder, converts them once into
  ``$L3NET_CACHE/openl3/`` (default ``~/.cache/l3net``) and reuses the result.

A converted model has no AVC fusion head (OpenL3 never published it): see ``L3Net.absent``.
"""

from __future__ import annotations

import contextlib
import gzip
import importlib.util
import os
import re
import shutil
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch

from .config import get_preset
from .errors import InputError, ModelFileError
from .fileio import read_json
from .models import CONFIG_FILE, OPENL3_PREFIX, WEIGHTS_FILE, L3Net, VGGTower, build_model

PathLike = str | os.PathLike[str]

#: OpenL3's audio front ends (its ``input_repr``) and the l3net preset of each.
FRONT_ENDS = ("linear", "mel128", "mel256")
PRESET_OF = {front_end: f"openl3-{front_end}" for front_end in FRONT_ENDS}
#: The content types OpenL3 published models for.
CONTENT_TYPES = ("env", "music")
#: Environment variables: a folder (or several, joined by os.pathsep) holding OpenL3's .h5 files,
#: and the cache root for converted models.
OPENL3_DIR_ENV = "L3NET_OPENL3_DIR"
CACHE_ENV = "L3NET_CACHE"
#: Where OpenL3's weight files are published (gzipped, named <name>-v0_4_0.h5.gz).
PUBLISHED_AT = "https://github.com/marl/openl3/tree/models"

# openl3_audio_mel256_env.h5, openl3_image_linear_music-v0_4_0.h5(.gz), ...
_NAME = re.compile(r"openl3_(audio|image)_([a-z0-9]+)_([a-z0-9]+)", re.IGNORECASE)
_BN_WEIGHTS = ("gamma", "beta", "moving_mean", "moving_variance")


@dataclass
class KerasLayer:
    """One layer group of a Keras weights file: its name and its arrays, in the file's order."""

    name: str
    weight_names: list[str]
    arrays: list[np.ndarray]


@dataclass
class OpenL3File:
    """What :func:`inspect_keras_file` learned about one weights file."""

    path: Path
    modality: str  # "audio" or "vision"
    front_end: str | None  # linear, mel128, mel256; None for an image file without a kind in its name
    content_type: str | None  # from the file name, when it follows OpenL3's naming
    tower_layers: list[KerasLayer] = field(repr=False)  # the weighted layers of the conv tower, in order

    @property
    def kind(self) -> str:
        return f"{self.front_end or '?'}-{self.content_type or '?'}"


# ------------------------------------------------------------------------------------------------
# reading Keras HDF5 weight files
# ------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def _opened_h5(path: Path) -> Iterator[Any]:
    """An h5py File for a .h5 (or gzipped .h5.gz, as published) file; errors name the file."""
    import h5py

    if not path.is_file():
        raise ModelFileError(f"{path}: no such file")
    with contextlib.ExitStack() as stack:
        source = path
        if path.suffix == ".gz":
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="l3net-openl3-"))
            source = Path(tmp) / path.stem
            try:
                with gzip.open(path, "rb") as packed, open(source, "wb") as plain:
                    shutil.copyfileobj(packed, plain)
            except (OSError, EOFError) as exc:
                raise ModelFileError(f"{path}: not a readable gzip file ({exc})") from exc
        try:
            handle = stack.enter_context(h5py.File(source, "r"))
        except OSError as exc:
            raise ModelFileError(f"{path}: not a readable HDF5 file, or truncated ({exc})") from exc
        yield handle


def read_keras_weights(path: PathLike) -> list[KerasLayer]:
    """Every layer of a Keras ``save_weights`` HDF5 file, in the file's order (with or without
    the ``model_weights`` group older Keras wrote), weightless layers included."""
    path = Path(path)
    with _opened_h5(path) as handle:
        try:
            root = handle["model_weights"] if "model_weights" in handle else handle
            if "layer_names" not in root.attrs:
                raise ModelFileError(
                    f"{path}: not a Keras weights file (no 'layer_names' attribute at its root or in 'model_weights')"
                )
            layers = []
            for raw_name in root.attrs["layer_names"]:
                name = raw_name.decode() if isinstance(raw_name, bytes) else str(raw_name)
                if name not in root:
                    raise ModelFileError(f"{path}: layer '{name}' is listed but has no group (a damaged file?)")
                group = root[name]
                weight_names = [w.decode() if isinstance(w, bytes) else str(w) for w in group.attrs.get("weight_names", [])]
                arrays = []
                for weight in weight_names:
                    if weight not in group:
                        raise ModelFileError(f"{path}: weight '{weight}' of layer '{name}' is missing (a damaged file?)")
                    arrays.append(np.asarray(group[weight][()], dtype=np.float32))
                layers.append(KerasLayer(name, weight_names, arrays))
        except ModelFileError:
            raise
        except (OSError, KeyError, ValueError, TypeError, RuntimeError) as exc:
            raise ModelFileError(f"{path}: unreadable Keras weights ({type(exc).__name__}: {exc}); truncated?") from exc
    if not layers:
        raise ModelFileError(f"{path}: a Keras weights file without layers")
    return layers


def _is_batchnorm(layer: KerasLayer) -> bool:
    return len(layer.arrays) == 4 and all(a.ndim == 1 and a.shape == layer.arrays[0].shape for a in layer.arrays)


def _is_conv(layer: KerasLayer) -> bool:
    return len(layer.arrays) == 2 and layer.arrays[0].ndim == 4 and layer.arrays[1].ndim == 1


def _front_end_evidence(layers: Sequence[KerasLayer]) -> tuple[str | None, str]:
    """(front end or "mel" or None, why) from the layers before the tower's first BatchNorm."""
    for layer in layers:
        if _is_batchnorm(layer) or _is_conv(layer):
            break
        lowered = layer.name.lower()
        # kapre 0.1 stored its (constant) DFT kernels (n_fft, 1, 1, bins) and mel matrix (bins, mels).
        mels = [a.shape[1] for a in layer.arrays if a.ndim == 2]
        ffts = [a.shape[0] for a in layer.arrays if a.ndim == 4]
        if mels:
            return f"mel{mels[0]}", f"its front-end layer '{layer.name}' maps to {mels[0]} mel bands"
        if ffts and "mel" not in lowered:
            return ("linear" if ffts[0] == 512 else f"stft{ffts[0]}"), f"its front-end layer '{layer.name}' has a {ffts[0]}-point DFT"
        if "mel" in lowered:
            return "mel", f"it has a mel front-end layer '{layer.name}'"
        if "stft" in lowered or "spectrogram" in lowered:
            return "linear", f"it has a linear STFT front-end layer '{layer.name}'"
    return None, "no front-end layer"


def _expected_tower_shapes(tower: VGGTower) -> list[tuple[str, list[tuple[int, ...]]]]:
    """(l3net layer, Keras array shapes) of every weighted Keras layer, in OpenL3's order."""
    shapes: list[tuple[str, list[tuple[int, ...]]]] = []
    if tower.input_bn is not None:
        shapes.append(("input_bn", [(tower.in_channels,)] * 4))
    for name in tower.layer_names:
        module = tower.layers[name]
        if not hasattr(module, "conv"):
            continue
        w = module.conv.weight
        shapes.append((f"{name}.conv", [(w.shape[2], w.shape[3], w.shape[1], w.shape[0]), (w.shape[0],)]))
        if module.bn is not None:
            shapes.append((f"{name}.bn", [(w.shape[0],)] * 4))
    return shapes


def inspect_keras_file(path: PathLike, front_end: str | None = None) -> OpenL3File:
    """Read one OpenL3 weights file and tell what it is (see the module docstring).

    ``front_end`` (linear, mel128, mel256) says which front end an audio file was trained with
    when neither its name nor its layers tell (mel128 and mel256 towers have the same shapes).
    Raises :class:`ModelFileError` naming the file and what does not fit.
    """
    path = Path(path)
    if front_end is not None and front_end not in FRONT_ENDS:
        raise InputError(f"unknown OpenL3 front end {front_end!r}; choose one of {', '.join(FRONT_ENDS)}")
    layers = read_keras_weights(path)
    weighted = [layer for layer in layers if layer.arrays]
    first_bn = next((layer for layer in weighted if _is_batchnorm(layer)), None)
    if first_bn is None or first_bn.arrays[0].shape[0] not in (1, 3):
        raise ModelFileError(
            f"{path}: not an OpenL3 network: OpenL3's audio and image networks start with a BatchNorm "
            "on their 1- or 3-channel input, and this file has none"
        )
    modality = "audio" if first_bn.arrays[0].shape[0] == 1 else "vision"
    tower_layers = weighted[weighted.index(first_bn):]
    front_layers = weighted[: weighted.index(first_bn)]

    named = _NAME.search(path.name)
    name_modality = name_front_end = content_type = None
    if named:
        name_modality = "audio" if named.group(1).lower() == "audio" else "vision"
        name_front_end, content_type = named.group(2).lower(), named.group(3).lower()
        if name_modality != modality:
            raise ModelFileError(
                f"{path}: named as an {named.group(1).lower()} network, but its layers are those of an "
                f"{'audio' if modality == 'audio' else 'image'} network ({first_bn.arrays[0].shape[0]}-channel input)"
            )
        if name_front_end not in FRONT_ENDS:
            raise ModelFileError(
                f"{path}: unknown OpenL3 front end '{name_front_end}' in the file name; OpenL3's are {', '.join(FRONT_ENDS)}"
            )
    evidence, why = _front_end_evidence(layers if modality == "audio" else [])
    if evidence is not None and evidence not in FRONT_ENDS and evidence != "mel":
        raise ModelFileError(f"{path}: unknown OpenL3 front end: {why}; OpenL3's are {', '.join(FRONT_ENDS)}")
    chosen = front_end or name_front_end
    if modality == "audio":
        for claim, source in ((front_end, "--front-end"), (name_front_end, "the file name")):
            if claim and evidence and not (claim == evidence or (evidence == "mel" and claim.startswith("mel"))):
                raise ModelFileError(f"{path}: {source} says '{claim}' but {why}")
        if chosen is None:
            chosen = evidence if evidence in FRONT_ENDS else None
        if chosen is None:
            options = "mel128 or mel256" if evidence == "mel" else ", ".join(FRONT_ENDS)
            raise ModelFileError(
                f"{path}: cannot tell which front end this audio network was trained with ({options}; the towers "
                "have the same shapes): use OpenL3's file name (openl3_audio_mel256_env.h5) or pass --front-end"
            )
    if front_layers and modality == "vision":
        raise ModelFileError(f"{path}: an image network with weighted layers before its input BatchNorm: not OpenL3's")

    # The tower alone (not a whole model): its layer shapes are what the file must hold.
    expected = _expected_tower_shapes(VGGTower.from_config(get_preset(PRESET_OF[chosen or "mel256"]), modality))
    what = "audio" if modality == "audio" else "image"
    if len(tower_layers) != len(expected):
        raise ModelFileError(
            f"{path}: not an OpenL3 {what} network: it has {len(tower_layers)} weighted layers after its input, "
            f"OpenL3's has {len(expected)} (1 input BatchNorm, 8 convolutions, 7 BatchNorms)"
        )
    for index, (layer, (target, shapes)) in enumerate(zip(tower_layers, expected)):
        got = [tuple(a.shape) for a in layer.arrays]
        if got != shapes:
            raise ModelFileError(
                f"{path}: not an OpenL3 {what} network: weighted layer {index + 1} ('{layer.name}') has arrays "
                f"{got}, OpenL3's {target} has {shapes}"
            )
    return OpenL3File(path, modality, chosen, content_type, tower_layers)


# ------------------------------------------------------------------------------------------------
# conversion
# ------------------------------------------------------------------------------------------------
def _ordered_batchnorm(layer: KerasLayer) -> list[np.ndarray]:
    """gamma, beta, moving mean, moving variance: by weight name where named, else in file order."""
    found = {}
    for weight, array in zip(layer.weight_names, layer.arrays):
        leaf = weight.rsplit("/", 1)[-1].split(":", 1)[0]
        if leaf in _BN_WEIGHTS:
            found[leaf] = array
    return [found[k] for k in _BN_WEIGHTS] if len(found) == 4 else list(layer.arrays)


def _ordered_conv(layer: KerasLayer) -> tuple[np.ndarray, np.ndarray]:
    kernel = next(a for a in layer.arrays if a.ndim == 4)
    bias = next(a for a in layer.arrays if a.ndim == 1)
    return kernel, bias


def load_tower_weights(tower: VGGTower, layers: Sequence[KerasLayer]) -> None:
    """Copy OpenL3's weighted layers (in order, shapes already checked) into an l3net tower."""
    targets = [name for name, _ in _expected_tower_shapes(tower)]
    with torch.no_grad():
        for target, layer in zip(targets, layers):
            if target.endswith(".conv"):
                module = tower.layers[target.removesuffix(".conv")].conv
                kernel, bias = _ordered_conv(layer)
                # Keras (kh, kw, in, out) -> PyTorch (out, in, kh, kw); both cross-correlate.
                module.weight.copy_(torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1))))
                module.bias.copy_(torch.from_numpy(bias))
                continue
            bn = tower.input_bn if target == "input_bn" else tower.layers[target.removesuffix(".bn")].bn
            gamma, beta, mean, var = _ordered_batchnorm(layer)
            bn.weight.copy_(torch.from_numpy(gamma))
            bn.bias.copy_(torch.from_numpy(beta))
            bn.running_mean.copy_(torch.from_numpy(mean))
            bn.running_var.copy_(torch.from_numpy(var))


def _pair_files(files: Sequence[OpenL3File]) -> tuple[OpenL3File | None, OpenL3File | None]:
    audio = [f for f in files if f.modality == "audio"]
    vision = [f for f in files if f.modality == "vision"]
    if len(audio) > 1 or len(vision) > 1:
        raise InputError(
            "give at most one audio and one image file (one model: " + ", ".join(str(f.path) for f in files) + ")"
        )
    a, v = (audio or [None])[0], (vision or [None])[0]
    if a is not None and v is not None:
        for attr, what in (("front_end", "front end"), ("content_type", "content type")):
            if getattr(a, attr) and getattr(v, attr) and getattr(a, attr) != getattr(v, attr):
                raise InputError(
                    f"{a.path} and {v.path} are not of the same kind ({what} {getattr(a, attr)} vs "
                    f"{getattr(v, attr)}): OpenL3's image networks were trained beside one audio network each"
                )
    return a, v


def build_converted_model(
    paths: Sequence[PathLike], front_end: str | None = None
) -> tuple[L3Net, dict[str, Any]]:
    """An L3Net holding the weights of one audio and/or one image file, and what to record of them.

    The preset is the audio file's front end (an image file alone: its name's, else mel256,
    OpenL3's default). The model lacks the fusion head and any tower no file gave.
    """
    if not paths:
        raise InputError("no OpenL3 weight files given")
    files = [inspect_keras_file(p, front_end) for p in paths]
    audio, vision = _pair_files(files)
    chosen = (audio.front_end if audio else None) or (vision.front_end if vision else None) or front_end or "mel256"
    model = build_model(PRESET_OF[chosen], seed=0)
    absent = {"head"}
    for modality, source in (("audio", audio), ("vision", vision)):
        if source is None:
            absent.add(modality)
        else:
            load_tower_weights(model.tower(modality), source.tower_layers)
    model.absent = frozenset(absent)
    content = (audio.content_type if audio else None) or (vision.content_type if vision else None)
    record = {
        "converted_from": {
            "format": "openl3 (Keras weights HDF5)",
            "front_end": chosen,
            "content_type": content,
            "files": [_file_record(f.path, f.modality) for f in files],
            "license": "OpenL3's weights: CC BY 4.0 (Cramer et al., ICASSP 2019)",
        }
    }
    return model.eval(), record


def _file_record(path: Path, modality: str) -> dict[str, Any]:
    stat = path.stat()
    return {"path": str(path.resolve()), "modality": modality, "bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def convert(paths: Sequence[PathLike], out_dir: PathLike, front_end: str | None = None, overwrite: bool = False) -> Path:
    """Convert OpenL3 weight files into an l3net model directory ``out_dir`` (config.json +
    model.safetensors); returns it.

    Everything is read and checked before anything is written; the directory appears complete
    or not at all (written under a temporary name, then renamed). An existing non-empty
    ``out_dir`` is an error unless ``overwrite`` (then it is replaced only if it is an l3net model).
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a directory")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise InputError(f"{out}: exists and is not empty (pass --overwrite to replace a converted model there)")
        if not (out / CONFIG_FILE).is_file():
            raise InputError(f"{out}: not an l3net model directory; refusing to replace it")
    model, record = build_converted_model(paths, front_end)
    _write_model_dir(model, record, out)
    return out


def _write_model_dir(model: L3Net, record: dict[str, Any], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    # mkdir (not mkdtemp) so that the directory gets the usual permissions (the umask's).
    tmp = out.parent / f".{out.name}.{uuid.uuid4().hex[:8]}.tmp"
    tmp.mkdir()
    try:
        model.save(tmp, extra_config=record)
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


# ------------------------------------------------------------------------------------------------
# "openl3:mel256-env": discovery and cache
# ------------------------------------------------------------------------------------------------
def parse_spec(spec: str) -> tuple[str, str]:
    """``"openl3:mel256-env"`` -> ``("mel256", "env")``."""
    match = re.fullmatch(re.escape(OPENL3_PREFIX) + r"([a-z0-9]+)-([a-z]+)", spec)
    if not match or match.group(1) not in FRONT_ENDS or match.group(2) not in CONTENT_TYPES:
        raise ModelFileError(
            f"'{spec}': an OpenL3 model is named {OPENL3_PREFIX}<front end>-<content>, with front end one of "
            f"{', '.join(FRONT_ENDS)} and content one of {', '.join(CONTENT_TYPES)} (e.g. {OPENL3_PREFIX}mel256-env)"
        )
    return match.group(1), match.group(2)


def cache_root() -> Path:
    """``$L3NET_CACHE`` or ``~/.cache/l3net``."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "l3net").expanduser()


def search_dirs() -> list[tuple[Path, str]]:
    """(folder, why) where published OpenL3 files are looked for, in order."""
    dirs = [(Path(p).expanduser(), f"${OPENL3_DIR_ENV}") for p in os.environ.get(OPENL3_DIR_ENV, "").split(os.pathsep) if p]
    # The openl3 package ships its weights in its own folder; find it without importing it
    # (importing openl3 imports TensorFlow).
    try:
        spec = importlib.util.find_spec("openl3")
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.submodule_search_locations:
        dirs += [(Path(p), "the installed openl3 package") for p in spec.submodule_search_locations]
    return dirs


def find_published(front_end: str, content: str) -> dict[str, Path]:
    """The published files of one OpenL3 model found in :func:`search_dirs`: ``{"audio": path,
    "vision": path}`` (either may be missing)."""
    found: dict[str, Path] = {}
    for folder, _ in search_dirs():
        for modality, word in (("audio", "audio"), ("vision", "image")):
            if modality in found:
                continue
            stem = f"openl3_{word}_{front_end}_{content}"
            for candidate in (f"{stem}.h5", f"{stem}-v0_4_0.h5", f"{stem}-v0_4_0.h5.gz", f"{stem}.h5.gz"):
                if (folder / candidate).is_file():
                    found[modality] = folder / candidate
                    break
    return found


def _cache_is_current(directory: Path, files: dict[str, Path]) -> bool:
    try:
        record = read_json(directory / CONFIG_FILE)["converted_from"]["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    if not (directory / WEIGHTS_FILE).is_file():
        return False
    wanted = sorted((_file_record(p, m) for m, p in files.items()), key=lambda r: r["path"])
    return sorted(record, key=lambda r: r.get("path", "")) == wanted


def openl3_model_dir(spec: str) -> Path:
    """The l3net model directory of ``"openl3:<front end>-<content>"``, converted on first use.

    Raises :class:`ModelFileError` saying where to get the files when none is found.
    """
    front_end, content = parse_spec(spec)
    files = find_published(front_end, content)
    if "audio" not in files:
        looked = search_dirs()
        where = "; ".join(f"{folder} ({why})" for folder, why in looked) or (
            f"nowhere: ${OPENL3_DIR_ENV} is not set and no openl3 package is installed"
        )
        raise ModelFileError(
            f"OpenL3's model '{front_end}-{content}' was not found: looked for openl3_audio_{front_end}_{content}.h5 "
            f"(and openl3_image_{front_end}_{content}.h5) in {where}. OpenL3 publishes them at {PUBLISHED_AT} "
            f"(openl3_audio_{front_end}_{content}-v0_4_0.h5.gz, ...; installing openl3 also fetches them). Put them "
            f"in a folder and set {OPENL3_DIR_ENV}=that folder, or convert them yourself: "
            f"l3net convert openl3 FILE.h5 [IMAGE.h5] --out DIR"
        )
    directory = cache_root() / "openl3" / f"{front_end}-{content}"
    if not _cache_is_current(directory, files):
        model, record = build_converted_model([files[m] for m in ("audio", "vision") if m in files], front_end)
        try:
            _write_model_dir(model, record, directory)
        except OSError as exc:
            raise ModelFileError(f"cannot write the converted model to the cache {directory} ({exc}); set ${CACHE_ENV}") from exc
    return directory
