"""The L3-Net: two VGG-style towers, the fusion head, one feature contract, and model files.

- :class:`VGGTower` is built from a channel list (timm's ``cfgs`` habit): block ``b`` is
  ``conv{b}_1 ... conv{b}_k`` (3x3, padding 1, BatchNorm, ReLU) then ``pool{b}`` (2x2 max, stride 2);
  the last pool is a max over all positions, giving the embedding.
- The feature contract: ``tower.forward_features(x, layers)`` returns any named intermediate:
  ``convB_K`` (after ReLU), ``convB_K_prerelu`` (after BatchNorm, before ReLU) or ``poolB``. The
  embedding API, the evaluations and the heatmaps all ask through it.
- :class:`L3Net` holds the front end, both towers and the head; ``save`` writes ``config.json`` and
  ``model.safetensors``, :func:`load_model` reads them (or builds a preset). Nothing is unpickled.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from .config import PRESETS, SAMPLE_RATE, ModelConfig, get_preset
from .errors import ModelFileError
from .fileio import atomic_path, ensure_dir, read_json, write_json
from .spectrogram import LogSpectrogram

MODALITIES = ("vision", "audio")
PRERELU = "_prerelu"
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
FORMAT_VERSION = 1


def tower_layer_names(num_blocks: int, convs_per_block: int) -> list[str]:
    """Names of a tower's layers in order: conv1_1, conv1_2, pool1, ..., convN_K, poolN."""
    names = []
    for block in range(1, num_blocks + 1):
        names += [f"conv{block}_{i}" for i in range(1, convs_per_block + 1)]
        names.append(f"pool{block}")
    return names


class ConvBNReLU(nn.Module):
    """3x3 convolution (size kept) -> BatchNorm -> ReLU."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        # No conv bias: the BatchNorm shift that follows makes it redundant.
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)

    def forward_prerelu(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.forward_prerelu(x))


class GlobalMaxPool(nn.Module):
    """Max over all spatial positions: ``(N, C, H, W) -> (N, C)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.amax(x, dim=(2, 3))


class VGGTower(nn.Module):
    """The vision (3 channels) or audio (1 channel) subnetwork of the paper's Figure 2."""

    def __init__(self, in_channels: int, channels: Sequence[int], convs_per_block: int = 2) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.channels = tuple(channels)
        self.convs_per_block = convs_per_block
        self.layers = nn.ModuleDict()
        self.feature_info: list[dict[str, Any]] = []
        c_in, reduction = in_channels, 1
        for block, c_out in enumerate(self.channels, start=1):
            for i in range(1, convs_per_block + 1):
                name = f"conv{block}_{i}"
                self.layers[name] = ConvBNReLU(c_in, c_out)
                self.feature_info.append({"name": name, "channels": c_out, "reduction": reduction})
                c_in = c_out
            last = block == len(self.channels)
            self.layers[f"pool{block}"] = GlobalMaxPool() if last else nn.MaxPool2d(2, 2)
            reduction = None if last else reduction * 2
            self.feature_info.append({"name": f"pool{block}", "channels": c_out, "reduction": reduction})
        self.layer_names = list(self.layers.keys())
        self.embedding_layer = self.layer_names[-1]
        self.last_conv = self.layer_names[-2]
        self._init_weights()

    def _init_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    @property
    def feature_names(self) -> list[str]:
        """Every name :meth:`forward_features` accepts."""
        names = []
        for name in self.layer_names:
            names.append(name)
            if name.startswith("conv"):
                names.append(name + PRERELU)
        return names

    def forward_features(self, x: torch.Tensor, layers: Iterable[str]) -> dict[str, torch.Tensor]:
        """Run the tower up to the deepest requested layer; return ``{name: output}``.

        Conv outputs are ``(N, C, H, W)``; the last pool (the embedding) is ``(N, C)``.
        """
        wanted = list(dict.fromkeys(layers))
        unknown = [name for name in wanted if name not in self.feature_names]
        if unknown:
            raise KeyError(f"unknown layer(s) {unknown}; known: {', '.join(self.feature_names)}")
        if not wanted:
            return {}
        last = max(self.layer_names.index(name.removesuffix(PRERELU)) for name in wanted)
        out: dict[str, torch.Tensor] = {}
        for name in self.layer_names[: last + 1]:
            module = self.layers[name]
            if isinstance(module, ConvBNReLU):
                pre = module.forward_prerelu(x)
                if name + PRERELU in wanted:
                    out[name + PRERELU] = pre
                x = F.relu(pre)
            else:
                x = module(x)
            if name in wanted:
                out[name] = x
        return {name: out[name] for name in wanted}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The embedding: ``(N, C)`` from the global max pool."""
        for module in self.layers.values():
            x = module(x)
        return x

    def output_shapes(self, height: int, width: int) -> dict[str, tuple[int, ...]]:
        """Output shape (C, H, W), or (C,) for the embedding, of every layer for an input size."""
        shapes: dict[str, tuple[int, ...]] = {}
        for info in self.feature_info:
            name = info["name"]
            if name.startswith("pool"):
                if info["reduction"] is None:
                    shapes[name] = (info["channels"],)
                    continue
                height, width = height // 2, width // 2
            shapes[name] = (info["channels"], height, width)
        return shapes


class FusionHead(nn.Module):
    """concat(vision, audio) -> fc1 -> ReLU -> fc2 -> 2 logits (corresponds / does not)."""

    def __init__(self, embedding_dim: int, hidden: int = 128) -> None:
        super().__init__()
        self.fc1 = nn.Linear(2 * embedding_dim, hidden)
        self.fc2 = nn.Linear(hidden, 2)

    def forward(self, fused: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.relu(self.fc1(fused)))


class L3Net(nn.Module):
    """Front end + vision tower + audio tower + fusion head, built from a :class:`ModelConfig`.

    Inputs: images ``(N, 3, H, W)``, uint8 in [0, 255] or float in [0, 1] (normalised here), and
    waveforms ``(N, samples)`` float at :data:`~l3net.config.SAMPLE_RATE`. Index 1 of the logits
    is "corresponds".
    """

    sample_rate = SAMPLE_RATE

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        config.validate()
        self.config = config
        self.frontend = LogSpectrogram(config.spectrogram)
        self.vision = VGGTower(3, config.channels, config.convs_per_block)
        self.audio = VGGTower(1, config.channels, config.convs_per_block)
        self.head = FusionHead(config.embedding_dim, config.head_hidden)
        nn.init.normal_(self.head.fc1.weight, 0, 0.01)
        nn.init.zeros_(self.head.fc1.bias)
        nn.init.normal_(self.head.fc2.weight, 0, 0.01)
        nn.init.zeros_(self.head.fc2.bias)
        self.register_buffer("image_mean", torch.tensor(config.image_mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("image_std", torch.tensor(config.image_std).view(1, 3, 1, 1), persistent=False)

    # -- inputs ------------------------------------------------------------------------------
    def preprocess_images(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 [0, 255] or float [0, 1] ``(N, 3, H, W)`` -> normalised float."""
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"expected images of shape (N, 3, H, W), got {tuple(images.shape)}")
        x = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
        return (x - self.image_mean) / self.image_std

    def tower(self, modality: str) -> VGGTower:
        if modality not in MODALITIES:
            raise ValueError(f"modality must be one of {MODALITIES}, got {modality!r}")
        return self.vision if modality == "vision" else self.audio

    def tower_input(self, modality: str, x: torch.Tensor) -> torch.Tensor:
        """What the tower sees: normalised images, or the log-spectrogram of waveforms."""
        return self.preprocess_images(x) if modality == "vision" else self.frontend(x)

    # -- the feature contract ----------------------------------------------------------------
    def forward_features(self, modality: str, x: torch.Tensor, layers: Iterable[str]) -> dict[str, torch.Tensor]:
        """Named intermediates of one tower for raw inputs (images or waveforms)."""
        return self.tower(modality).forward_features(self.tower_input(modality, x), layers)

    def embed(self, modality: str, x: torch.Tensor) -> torch.Tensor:
        """The pool4 embedding ``(N, C)`` of images or waveforms."""
        return self.tower(modality)(self.tower_input(modality, x))

    def transfer_layer(self, modality: str) -> str:
        """The transfer feature's layer: audio conv4_2 before ReLU, vision conv4_2 after (paper 5.2-5.3)."""
        last_conv = self.tower(modality).last_conv
        return last_conv + PRERELU if modality == "audio" else last_conv

    def pool_transfer(self, modality: str, feature_map: torch.Tensor) -> torch.Tensor:
        """Max-pool a last-conv map to the transfer grid (4x3 audio, 4x4 vision) and flatten."""
        grid = self.config.audio_transfer_grid if modality == "audio" else self.config.image_transfer_grid
        # For a 32x32 map (256 px input) adaptive pooling is exactly kernel = stride = 8.
        return F.adaptive_max_pool2d(feature_map, grid).flatten(1)

    def transfer_features(self, modality: str, x: torch.Tensor) -> torch.Tensor:
        """The transfer feature of the paper: 6144-D audio, 8192-D vision (paper preset)."""
        layer = self.transfer_layer(modality)
        return self.pool_transfer(modality, self.forward_features(modality, x, [layer])[layer])

    # -- AVC -----------------------------------------------------------------------------------
    def fuse(self, vision_embedding: torch.Tensor, audio_embedding: torch.Tensor) -> torch.Tensor:
        """Correspondence logits from the two embeddings (``(..., C)`` each)."""
        return self.head(torch.cat([vision_embedding, audio_embedding], dim=-1))

    def forward(self, images: torch.Tensor, waveforms: torch.Tensor) -> torch.Tensor:
        return self.fuse(self.embed("vision", images), self.embed("audio", waveforms))

    # -- facts ---------------------------------------------------------------------------------
    def num_parameters(self, part: str | None = None) -> int:
        module = self if part is None else getattr(self, part)
        return sum(p.numel() for p in module.parameters())

    def output_shapes(self) -> dict[str, dict[str, tuple[int, ...]]]:
        """Layer output sizes at the config's input sizes (AVC image, transfer image, 1 s audio)."""
        c = self.config
        return {
            f"vision {c.image_size}x{c.image_size}": self.vision.output_shapes(c.image_size, c.image_size),
            f"vision {c.transfer_image_size}x{c.transfer_image_size}": self.vision.output_shapes(
                c.transfer_image_size, c.transfer_image_size
            ),
            "audio {}x{}".format(*c.spectrogram_shape): self.audio.output_shapes(*c.spectrogram_shape),
        }

    def flops_per_pair(self) -> dict[str, int]:
        """Exact forward FLOPs (multiply-add = 2) per AVC pair at the config's sizes."""
        c = self.config
        vision = _tower_flops(self.vision, c.image_size, c.image_size)
        audio = _tower_flops(self.audio, *c.spectrogram_shape)
        head = 2 * (self.head.fc1.in_features * self.head.fc1.out_features + self.head.fc2.in_features * 2)
        return {"vision": vision, "audio": audio, "head": head, "total": vision + audio + head}

    # -- files ---------------------------------------------------------------------------------
    def save(self, directory: str | os.PathLike[str], extra_config: Mapping[str, Any] | None = None) -> Path:
        """Write ``config.json`` and ``model.safetensors`` into ``directory`` (atomically)."""
        from safetensors.torch import save_file

        directory = ensure_dir(directory)
        tensors = {name: t.detach().to("cpu").contiguous() for name, t in self.state_dict().items()}
        with atomic_path(directory / WEIGHTS_FILE) as tmp:
            save_file(tensors, str(tmp), metadata={"l3net_format": str(FORMAT_VERSION), "preset": self.config.name})
        config = {"l3net_format": FORMAT_VERSION, "architecture": "L3Net", "model": self.config.to_dict()}
        config.update(extra_config or {})
        write_json(directory / CONFIG_FILE, config)
        return directory


def _tower_flops(tower: VGGTower, height: int, width: int) -> int:
    shapes = tower.output_shapes(height, width)
    flops, c_in, h, w = 0, tower.in_channels, height, width
    for name in tower.layer_names:
        if name.startswith("conv"):
            c_out, h, w = shapes[name]
            flops += 2 * 9 * c_in * c_out * h * w
            c_in = c_out
    return flops


def build_model(config: ModelConfig | str, seed: int | None = 0) -> L3Net:
    """A new model with random weights; ``seed`` makes them reproducible (None: global RNG)."""
    if isinstance(config, str):
        config = get_preset(config)
    if seed is None:
        return L3Net(config)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return L3Net(config)


def _read_config(directory: Path) -> ModelConfig:
    path = directory / CONFIG_FILE
    if not path.is_file():
        raise ModelFileError(
            f"{directory} is not a model directory: it has no {CONFIG_FILE} "
            f"(a model directory holds {CONFIG_FILE} and {WEIGHTS_FILE}, as written by model.save)"
        )
    try:
        data = read_json(path)
    except (OSError, ValueError) as exc:
        raise ModelFileError(f"{path}: not readable JSON ({exc})") from exc
    if not isinstance(data, dict) or data.get("architecture") != "L3Net" or "model" not in data:
        raise ModelFileError(f"{path}: not an l3net model config (expected 'architecture': 'L3Net' and a 'model' entry)")
    if not isinstance(data.get("l3net_format", 0), int):
        raise ModelFileError(f"{path}: 'l3net_format' must be an integer, got {data['l3net_format']!r}")
    if data.get("l3net_format", 0) > FORMAT_VERSION:
        raise ModelFileError(f"{path}: written by a newer l3net (format {data['l3net_format']}); upgrade l3net")
    try:
        return ModelConfig.from_dict(data["model"])
    except (TypeError, ValueError) as exc:
        raise ModelFileError(f"{path}: invalid model config ({exc})") from exc


def _check_state_dict(model: L3Net, tensors: Mapping[str, torch.Tensor], path: Path) -> None:
    expected = model.state_dict()
    missing = [k for k in expected if k not in tensors]
    unexpected = [k for k in tensors if k not in expected]
    mismatched = [
        f"{k} (file {tuple(tensors[k].shape)}, model {tuple(v.shape)})"
        for k, v in expected.items()
        if k in tensors and tuple(tensors[k].shape) != tuple(v.shape)
    ]
    problems = []
    for label, names in (("missing tensors", missing), ("unexpected tensors", unexpected), ("shape mismatches", mismatched)):
        if names:
            shown = ", ".join(names[:8]) + (f", ... ({len(names)} in all)" if len(names) > 8 else "")
            problems.append(f"{label}: {shown}")
    if problems:
        raise ModelFileError(
            f"{path} does not fit the '{model.config.name}' architecture of its {CONFIG_FILE}: " + "; ".join(problems)
        )


def load_model(
    name_or_path: str | os.PathLike[str] | L3Net = "paper",
    *,
    device: str | torch.device | None = None,
    seed: int = 0,
) -> L3Net:
    """A model in eval mode: a preset name (random weights from ``seed``) or a saved model directory.

    A directory is one written by :meth:`L3Net.save` or by ``l3net train`` (its run directory);
    a path to its ``model.safetensors`` works too.
    """
    if isinstance(name_or_path, L3Net):
        model = name_or_path
    else:
        path = Path(name_or_path)
        if not path.exists() and str(name_or_path) in PRESETS:
            model = build_model(str(name_or_path), seed=seed)
        elif not path.exists():
            raise ModelFileError(
                f"'{name_or_path}' is neither a preset ({', '.join(sorted(PRESETS))}) nor an existing model directory"
            )
        else:
            model = _load_directory(path)
    if device is not None:
        model = model.to(device)
    return model.eval()


def _load_directory(path: Path) -> L3Net:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    directory = path.parent if path.is_file() else path
    config = _read_config(directory)
    weights = directory / WEIGHTS_FILE
    if not weights.is_file():
        raise ModelFileError(f"{directory} has {CONFIG_FILE} but no {WEIGHTS_FILE}")
    try:
        tensors = load_file(str(weights))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise ModelFileError(f"{weights}: corrupt or not a safetensors file ({exc})") from exc
    model = build_model(config, seed=0)
    _check_state_dict(model, tensors, weights)
    expected = model.state_dict()
    model.load_state_dict({k: v.to(expected[k].dtype) for k, v in tensors.items()})
    return model
