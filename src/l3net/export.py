"""Exporting a model's towers to ONNX or TorchScript, for running without l3net (or without Python).

::

    result = export_model(model, "export_dir", format="onnx")   # library; the CLI: l3net export MODEL ...

writes, for each tower the model has (a model converted from one OpenL3 file has one):

- ``audio.onnx`` / ``image.onnx`` (or ``.pt``, TorchScript): BatchNorm folded into the convolutions
  (:func:`l3net.inference.fold_batchnorm`), a dynamic batch axis, one input and one output named in
  the contract; the layer is ``pool4`` (the embedding) unless another is asked for;
- ``contract.json``: what each graph takes and gives (shapes, dtypes, sample rate, window, hop,
  pixel range, resize and crop, layer, embedding size) and the files;
- ``frontend.py`` + ``frontend.npz``: the audio front end in NumPy and SciPy
  (:mod:`l3net.frontend_numpy`, copied verbatim, and its constants).

Why the audio graph takes spectrograms, not waveforms: ONNX has a DFT operator (opset 17) and
torch.onnx exports l3net's STFT to it, but the log (and OpenL3's 80 dB range) magnify the FFT's
round-off in near-silent bins, so onnxruntime's DFT moved embeddings of real recordings by
~1e-3 of their largest value (measured on ``../shared/data/audio``: 0.8e-3 to 2.3e-3 paper, 2.9e-3
to 8.2e-3 small). The graph from the spectrogram on agrees with PyTorch within ~1e-6 for every
preset, and the NumPy front end is the one l3net runs for the OpenL3 presets (pocketfft, TensorFlow's
window), bit for bit up to rounding; see :mod:`l3net.frontend_numpy` for the other presets.

Images are ``uint8`` RGB ``(N, 3, H, W)`` in [0, 255], already scaled (smaller side to
``resize``) and centre-cropped to ``crop`` as :func:`l3net.embed.prepare_image` does; the
normalisation (mean, std) is inside the graph.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib.util
import shutil
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ._version import __version__
from .config import SAMPLE_RATE
from .embed_core import DEFAULT_HOP_SIZE
from .errors import InputError, OutputError
from .fileio import atomic_open, atomic_path, ensure_dir, write_json
from .frontend_numpy import CONTRACT_FILE, PARAMS_FILE
from .inference import fold_batchnorm
from .inputs import image_sizes
from .layers import embedding_size, layer_features, resolve_layer, transfer_input
from .models import L3Net

#: Formats :func:`export_model` writes, and their files' extension.
FORMATS = {"onnx": ".onnx", "torchscript": ".pt"}
#: The NumPy front end's name in an export directory.
FRONTEND_FILE = "frontend.py"
#: ONNX opset: 18 is the lowest the dynamo exporter of torch 2.13 writes without down-conversion.
OPSET = 18
#: File stem, input and output names per tower.
NAMES = {"audio": ("audio", "spectrogram", "embedding"), "vision": ("image", "image", "embedding")}


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_model` wrote: the directory, the files (tower graphs first), the contract."""

    directory: Path
    files: list[Path]
    contract: dict[str, Any]


class TowerGraph(nn.Module):
    """One tower of a model from its exported input (spectrogram or uint8 image) to ``layer``'s features.

    A copy of the model with BatchNorm folded and, for audio, the front end taken out (the graph
    starts at the spectrogram); features through :func:`l3net.layers.layer_features`, the API's
    own layer choice, so the graph computes what ``get_*_embedding`` computes after its front end.
    """

    def __init__(self, model: L3Net, modality: str, layer: str) -> None:
        super().__init__()
        net = copy.deepcopy(model).cpu().float().eval().requires_grad_(False)
        fold_batchnorm(net)
        if modality == "audio":
            net.frontend = nn.Identity()
        self.net, self.modality, self.layer = net, modality, layer
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return layer_features(self.net, self.modality, x, self.layer)


def example_input(model: L3Net, modality: str, layer: str, batch: int = 2) -> torch.Tensor:
    """A batch of what the exported ``modality`` graph takes: spectrograms of noise, or a uint8 image."""
    generator = torch.Generator().manual_seed(0)
    if modality == "audio":
        waves = 0.1 * torch.randn(batch, model.config.clip_samples, generator=generator)
        with torch.inference_mode():  # a CPU copy: the caller's model stays where it is
            return copy.deepcopy(model.frontend).cpu()(waves).clone()
    crop = _image_input(model, layer)[1]
    return torch.randint(0, 256, (batch, 3, crop, crop), generator=generator, dtype=torch.uint8)


def _image_input(model: L3Net, layer: str) -> tuple[int, int]:
    """(smaller side, crop) in px of the images ``layer`` sees, as the embedding API chooses them."""
    return image_sizes(model.config, transfer=transfer_input(model.vision, layer))


def _frontend_contract(model: L3Net) -> dict[str, Any]:
    config = model.config.spectrogram
    return {**dataclasses.asdict(config), "decimation": config.decimation, "function": "frontend.Frontend"}


def tower_contract(model: L3Net, modality: str, layer: str, file: str) -> dict[str, Any]:
    """The ``contract.json`` entry of one tower graph."""
    stem, input_name, output_name = NAMES[modality]
    shape = list(example_input(model, modality, layer, batch=1).shape[1:])
    entry: dict[str, Any] = {
        "file": file,
        "layer": layer,
        "embedding_size": embedding_size(model, layer, modality),
        "output": {"name": output_name, "shape": ["batch", embedding_size(model, layer, modality)], "dtype": "float32"},
    }
    if modality == "audio":
        entry["input"] = {"name": input_name, "shape": ["batch", *shape], "dtype": "float32"}
        entry.update(
            sample_rate=SAMPLE_RATE,
            window_samples=model.config.clip_samples,
            window_seconds=model.config.clip_samples / SAMPLE_RATE,
            default_hop_seconds=DEFAULT_HOP_SIZE,
            framing=model.config.framing,
            frontend=_frontend_contract(model),
        )
    else:
        resize, crop = _image_input(model, layer)
        entry["input"] = {"name": input_name, "shape": ["batch", *shape], "dtype": "uint8", "layout": "NCHW RGB"}
        entry.update(
            pixel_range=[0, 255],
            resize_smaller_side=resize,
            crop=crop,
            upscale_between_crop_and_resize=model.config.image_upscale,
            normalisation={"mean": list(model.config.image_mean), "std": list(model.config.image_std), "inside_graph": True},
        )
    return entry


def _adaptive_max_pool_slices(x: torch.Tensor, output_size: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """``aten.adaptive_max_pool2d`` for a map of known height and width, as slices and maxima:
    cell ``(i, j)`` is the max over rows ``floor(i H / oh) .. ceil((i + 1) H / oh)`` (and columns
    likewise), PyTorch's definition, so the values are equal. ONNX has no adaptive max pool, and the
    exported graphs have fixed map sizes (only the batch varies). The indices output is never read
    (``pool_transfer`` keeps the values), so zeros stand for it."""
    height, width = x.shape[-2:]
    rows = []
    for i in range(output_size[0]):
        r0, r1 = (i * height) // output_size[0], -((-(i + 1) * height) // output_size[0])
        cells = [
            x[..., r0:r1, (j * width) // output_size[1] : -((-(j + 1) * width) // output_size[1])].amax(dim=(-2, -1))
            for j in range(output_size[1])
        ]
        rows.append(torch.stack(cells, -1))
    values = torch.stack(rows, -2)
    return values, torch.zeros(values.shape, dtype=torch.int64, device=x.device)


def _write_graph(graph: TowerGraph, example: torch.Tensor, path: Path, format: str, modality: str) -> None:
    _, input_name, output_name = NAMES[modality]
    with atomic_path(path, suffix=path.suffix) as tmp:
        if format == "torchscript":
            with torch.inference_mode(False), torch.no_grad():
                torch.jit.trace(graph, (example,), check_trace=False).save(str(tmp))
            return
        batch = ({0: torch.export.Dim("batch")},)
        program = torch.export.export(graph, (example,), dynamic_shapes=batch)
        program = program.run_decompositions({torch.ops.aten.adaptive_max_pool2d.default: _adaptive_max_pool_slices})
        with tempfile.TemporaryDirectory(prefix="l3net-export-") as reports:  # failure reports, never in the cwd
            torch.onnx.export(
                program, (example,), str(tmp), dynamo=True, opset_version=OPSET, external_data=False, verbose=False,
                input_names=[input_name], output_names=[output_name], artifacts_dir=reports,
            )


def _present(model: L3Net, modalities: tuple[str, ...] | None) -> tuple[str, ...]:
    wanted = modalities or ("audio", "vision")
    for m in wanted:
        if m not in NAMES:
            raise InputError(f"unknown tower {m!r}; choose audio or vision")
    if modalities is not None:
        model.require(*wanted)  # asked for by name: a missing tower is an error naming the fix
    present = tuple(m for m in wanted if m not in model.absent)
    if not present:
        raise InputError(f"model '{model.config.name}' has none of the towers {', '.join(wanted)}")
    return present


def export_model(
    model: L3Net,
    out_dir: str | Path,
    format: str = "onnx",
    *,
    modalities: tuple[str, ...] | None = None,
    audio_layer: str = "pool4",
    image_layer: str = "pool4",
) -> ExportResult:
    """Write the model's towers in ``format`` ("onnx" or "torchscript") to ``out_dir`` (see the
    module docstring). ``modalities``: ("audio",), ("vision",) or None (every tower the model has).
    Every file is written atomically; existing files of the same names are replaced."""
    if format not in FORMATS:
        raise InputError(f"format must be one of {', '.join(FORMATS)}, got {format!r}")
    missing = [m for m in ("onnx", "onnxscript") if format == "onnx" and importlib.util.find_spec(m) is None]
    if missing:
        raise InputError(f"ONNX export needs {' and '.join(missing)}: pip install 'l3net[export]'")
    layers = {"audio": audio_layer, "vision": image_layer}
    present = _present(model, modalities)
    for modality in present:
        layers[modality] = resolve_layer(model.tower(modality), layers[modality])
    out = ensure_dir(Path(out_dir))
    contract: dict[str, Any] = {"l3net_version": __version__, "model": model.config.name, "format": format}
    files: list[Path] = []
    for modality in present:
        stem = NAMES[modality][0]
        path = out / f"{stem}{FORMATS[format]}"
        graph = TowerGraph(model, modality, layers[modality])
        try:
            _write_graph(graph, example_input(model, modality, layers[modality]), path, format, modality)
        except Exception as exc:  # noqa: BLE001 - the exporters raise many types; name the file and the cause
            first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
            raise OutputError(f"{path}: the {stem} network could not be exported to {format}: {first_line}") from exc
        files.append(path)
        contract[stem] = tower_contract(model, modality, layers[modality], path.name)
    if "audio" in present:
        files += _write_frontend(model, out)
        contract["audio"]["frontend"]["files"] = [FRONTEND_FILE, PARAMS_FILE]
    write_json(out / CONTRACT_FILE, contract)
    files.append(out / CONTRACT_FILE)
    return ExportResult(out, files, contract)


def _write_frontend(model: L3Net, out: Path) -> list[Path]:
    """``frontend.py`` (the NumPy front end's source) and ``frontend.npz`` (its constants)."""
    frontend = model.frontend
    params = {
        "window": frontend.window.detach().cpu().numpy(),
        "mel_filters": frontend.mel_filters.detach().cpu().numpy(),
        "decimation_fir": frontend.decimation_fir.detach().cpu().numpy().reshape(-1),
    }
    with atomic_path(out / PARAMS_FILE, suffix=".npz") as tmp:
        np.savez(tmp, **params)
    source = resources.files("l3net").joinpath("frontend_numpy.py")
    with source.open("rb") as src, atomic_open(out / FRONTEND_FILE, "wb") as dst:
        shutil.copyfileobj(src, dst)
    return [out / FRONTEND_FILE, out / PARAMS_FILE]
