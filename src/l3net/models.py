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
from .errors import InputError, ModelFileError
from .fileio import atomic_path, ensure_dir, read_json, write_json
from .spectrogram import LogSpectrogram

MODALITIES = ("vision", "audio")
#: The parts of an L3Net that hold weights of their own (the front end has none).
PARTS = ("vision", "audio", "head")
PRERELU = "_prerelu"
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
FORMAT_VERSION = 1
#: Model specs naming one of OpenL3's published models: "openl3:mel256-env" (see l3net.openl3).
OPENL3_PREFIX = "openl3:"


def tower_layer_names(num_blocks: int, convs_per_block: int) -> list[str]:
    """Names of a tower's layers in order: conv1_1, conv1_2, pool1, ..., convN_K, poolN."""
    names = []
    for block in range(1, num_blocks + 1):
        names += [f"conv{block}_{i}" for i in range(1, convs_per_block + 1)]
        names.append(f"pool{block}")
    return names


class ConvBNReLU(nn.Module):
    """3x3 convolution (size kept) -> BatchNorm -> ReLU, or one of OpenL3's variants.

    ``bn`` is an ``nn.BatchNorm2d`` or ``None`` (OpenL3's last conv has neither BatchNorm nor
    ReLU: ``relu=False``); ``relu_before_bn`` swaps the two (OpenL3's image conv1_2). The output
    "before ReLU" is the BatchNorm output, or the conv output when the ReLU comes first.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        bias: bool = False,
        batchnorm: bool = True,
        relu: bool = True,
        relu_before_bn: bool = False,
        eps: float = 1e-5,
        momentum: float = 0.1,
    ) -> None:
        super().__init__()
        # The paper's convs have no bias: the BatchNorm shift that follows makes it redundant.
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=bias)
        self.bn = nn.BatchNorm2d(out_channels, eps=eps, momentum=momentum) if batchnorm else None
        self.relu = relu
        self.relu_before_bn = relu_before_bn and relu and batchnorm

    def forward_pair(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(output before the ReLU, output) of the layer."""
        y = self.conv(x)
        if self.relu_before_bn:
            return y, self.bn(F.relu(y))
        pre = self.bn(y) if self.bn is not None else y
        return pre, F.relu(pre) if self.relu else pre

    def forward_prerelu(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_pair(x)[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_pair(x)[1]


class GlobalMaxPool(nn.Module):
    """Max over all spatial positions: ``(N, C, H, W) -> (N, C)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.amax(x, dim=(2, 3))


class VGGTower(nn.Module):
    """The vision (3 channels) or audio (1 channel) subnetwork of the paper's Figure 2.

    The keyword arguments are the :class:`~l3net.config.ModelConfig` tower details (defaults: the
    paper); :meth:`from_config` reads them. ``input_bn`` is an ``nn.BatchNorm2d`` on the input
    or ``None``.
    """

    def __init__(
        self,
        in_channels: int,
        channels: Sequence[int],
        convs_per_block: int = 2,
        *,
        conv_bias: bool = False,
        batchnorm_eps: float = 1e-5,
        batchnorm_momentum: float = 0.1,
        input_batchnorm: bool = False,
        last_conv_plain: bool = False,
        relu_before_bn: Sequence[str] = (),
        same_pools: bool = False,
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.channels = tuple(channels)
        self.convs_per_block = convs_per_block
        self.same_pools = same_pools
        bn = dict(eps=batchnorm_eps, momentum=batchnorm_momentum)
        self.input_bn = nn.BatchNorm2d(in_channels, **bn) if input_batchnorm else None
        self.layers = nn.ModuleDict()
        self.feature_info: list[dict[str, Any]] = []
        c_in, reduction = in_channels, 1
        for block, c_out in enumerate(self.channels, start=1):
            for i in range(1, convs_per_block + 1):
                name = f"conv{block}_{i}"
                plain = last_conv_plain and block == len(self.channels) and i == convs_per_block
                self.layers[name] = ConvBNReLU(
                    c_in, c_out, bias=conv_bias, batchnorm=not plain, relu=not plain,
                    relu_before_bn=name in relu_before_bn, **bn,
                )
                self.feature_info.append({"name": name, "channels": c_out, "reduction": reduction})
                c_in = c_out
            last = block == len(self.channels)
            # Keras 'same' 2x2/2 pooling keeps a partial last window: ceil_mode (equal for even sizes).
            self.layers[f"pool{block}"] = GlobalMaxPool() if last else nn.MaxPool2d(2, 2, ceil_mode=same_pools)
            reduction = None if last else reduction * 2
            self.feature_info.append({"name": f"pool{block}", "channels": c_out, "reduction": reduction})
        self.layer_names = list(self.layers.keys())
        self.embedding_layer = self.layer_names[-1]
        self.last_conv = self.layer_names[-2]
        self._init_weights()

    @classmethod
    def from_config(cls, config: ModelConfig, modality: str) -> "VGGTower":
        """The vision or audio tower a config describes."""
        return cls(
            3 if modality == "vision" else 1,
            config.channels,
            config.convs_per_block,
            conv_bias=config.conv_bias,
            batchnorm_eps=config.batchnorm_eps,
            batchnorm_momentum=config.batchnorm_momentum,
            input_batchnorm=config.input_batchnorm,
            last_conv_plain=config.last_conv_plain,
            relu_before_bn=config.vision_relu_before_bn if modality == "vision" else (),
            same_pools=modality in config.same_pools,
        )

    def _init_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    @property
    def feature_names(self) -> list[str]:
        """Every name :meth:`forward_features` accepts."""
        names = []
        for name in self.layer_names:
            names.append(name)
            module = self.layers[name]
            if isinstance(module, ConvBNReLU) and module.relu:
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
        if self.input_bn is not None:
            x = self.input_bn(x)
        for name in self.layer_names[: last + 1]:
            module = self.layers[name]
            if isinstance(module, ConvBNReLU):
                pre, x = module.forward_pair(x)
                if name + PRERELU in wanted:
                    out[name + PRERELU] = pre
            else:
                x = module(x)
            if name in wanted:
                out[name] = x
        return {name: out[name] for name in wanted}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The embedding: ``(N, C)`` from the global max pool."""
        if self.input_bn is not None:
            x = self.input_bn(x)
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
                rounding = 1 if self.same_pools else 0
                height, width = (height + rounding) // 2, (width + rounding) // 2
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
        self.vision = VGGTower.from_config(config, "vision")
        self.audio = VGGTower.from_config(config, "audio")
        self.head = FusionHead(config.embedding_dim, config.head_hidden)
        nn.init.normal_(self.head.fc1.weight, 0, 0.01)
        nn.init.zeros_(self.head.fc1.bias)
        nn.init.normal_(self.head.fc2.weight, 0, 0.01)
        nn.init.zeros_(self.head.fc2.bias)
        self.register_buffer("image_mean", torch.tensor(config.image_mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("image_std", torch.tensor(config.image_std).view(1, 3, 1, 1), persistent=False)
        #: Parts (of :data:`PARTS`) without trained weights, which the model refuses to run: a model
        #: converted from OpenL3 has no fusion head (OpenL3 never published one), and one
        #: converted from a single file has only that file's tower.
        self.absent: frozenset[str] = frozenset()
        #: The directory the model was loaded from (None: built in memory).
        self.directory: Path | None = None

    def require(self, *parts: str) -> None:
        """Raise :class:`ModelFileError` naming the first of ``parts`` this model lacks."""
        for part in parts:
            if part in self.absent:
                raise ModelFileError(self._absent_message(part))

    def _absent_message(self, part: str) -> str:
        where = f" ({self.directory})" if self.directory is not None else ""
        if part == "head":
            return (
                f"model '{self.config.name}'{where} has no AVC fusion head: OpenL3 published only its audio "
                "and image networks (openl3 issue #58), so correspondence scores, AVC evaluation and "
                f"localization need a head trained first: l3net train --preset {self.config.name} "
                f"--init-from {self.directory or 'MODEL_DIR'} ..."
            )
        other = "image" if part == "audio" else "audio"
        return (
            f"model '{self.config.name}'{where} has no {'image' if part == 'vision' else 'audio'} network: it was "
            f"converted from an {other} file only; convert the {'image' if part == 'vision' else 'audio'} "
            f"file with it (l3net convert openl3 AUDIO.h5 IMAGE.h5 --out DIR)"
        )

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
        self.require(modality)
        return self.preprocess_images(x) if modality == "vision" else self.frontend(x)

    # -- the feature contract ----------------------------------------------------------------
    def forward_features(self, modality: str, x: torch.Tensor, layers: Iterable[str]) -> dict[str, torch.Tensor]:
        """Named intermediates of one tower for raw inputs (images or waveforms)."""
        return self.tower(modality).forward_features(self.tower_input(modality, x), layers)

    def embed(self, modality: str, x: torch.Tensor) -> torch.Tensor:
        """The pool4 embedding ``(N, C)`` of images or waveforms."""
        return self.tower(modality)(self.tower_input(modality, x))

    def transfer_layer(self, modality: str) -> str:
        """The transfer feature's layer: audio conv4_2 before ReLU, vision conv4_2 after (paper 5.2-5.3).

        Where the last conv has no ReLU (OpenL3), its plain output, for both towers.
        """
        tower = self.tower(modality)
        prerelu = tower.last_conv + PRERELU
        return prerelu if modality == "audio" and prerelu in tower.feature_names else tower.last_conv

    def pool_transfer(self, modality: str, feature_map: torch.Tensor) -> torch.Tensor:
        """Max-pool a last-conv map to the transfer grid (4x3 audio, 4x4 vision) and flatten.

        Flattened (channel, row, column) or, with ``feature_order="hwc"``, Keras' (row, column,
        channel), as OpenL3's 6144/8192-D embeddings are.
        """
        grid = self.config.audio_transfer_grid if modality == "audio" else self.config.image_transfer_grid
        # For a 32x32 map (256 px input) adaptive pooling is exactly kernel = stride = 8; for
        # OpenL3's maps (32x24, 16x24 audio, 28x28 image) it is exactly OpenL3's 'same' pools.
        pooled = F.adaptive_max_pool2d(feature_map, grid)
        if self.config.feature_order == "hwc":
            pooled = pooled.permute(0, 2, 3, 1)
        return pooled.flatten(1)

    def transfer_features(self, modality: str, x: torch.Tensor) -> torch.Tensor:
        """The transfer feature of the paper: 6144-D audio, 8192-D vision (paper preset)."""
        layer = self.transfer_layer(modality)
        return self.pool_transfer(modality, self.forward_features(modality, x, [layer])[layer])

    def layer_for_embedding_size(self, modality: str, size: int) -> str:
        """The layer whose features have ``size`` dimensions: OpenL3's ``embedding_size``.

        The embedding size (512) is the last pool; the transfer size (6144 audio, 8192 images
        for the paper and OpenL3's networks) is the last conv, max-pooled.
        """
        tower = self.tower(modality)
        sizes = {self.config.embedding_dim: tower.embedding_layer, self.config.transfer_dim(modality): tower.last_conv}
        if isinstance(size, bool) or not isinstance(size, int) or size not in sizes:
            what = "audio" if modality == "audio" else "image"
            raise InputError(
                f"embedding_size={size!r} is not one of this model's {what} embedding sizes: "
                + ", ".join(f"{d} ({layer})" for d, layer in sizes.items())
            )
        return sizes[size]

    # -- AVC -----------------------------------------------------------------------------------
    def fuse(self, vision_embedding: torch.Tensor, audio_embedding: torch.Tensor) -> torch.Tensor:
        """Correspondence logits from the two embeddings (``(..., C)`` each)."""
        self.require("head")
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
        tensors = {
            name: t.detach().to("cpu").contiguous()
            for name, t in self.state_dict().items()
            if name.split(".", 1)[0] not in self.absent
        }
        with atomic_path(directory / WEIGHTS_FILE) as tmp:
            save_file(tensors, str(tmp), metadata={"l3net_format": str(FORMAT_VERSION), "preset": self.config.name})
        config: dict[str, Any] = {"l3net_format": FORMAT_VERSION, "architecture": "L3Net", "model": self.config.to_dict()}
        if self.absent:
            config["absent"] = sorted(self.absent)
        config.update(extra_config or {})
        write_json(directory / CONFIG_FILE, config)
        return directory


def choose_layer(model: L3Net, modality: str, layer: str, embedding_size: int | None) -> str:
    """``layer``, or the layer OpenL3's ``embedding_size`` names (see
    :meth:`L3Net.layer_for_embedding_size`); an error when both are given and disagree."""
    if embedding_size is None:
        return layer
    chosen = model.layer_for_embedding_size(modality, embedding_size)
    if layer not in ("pool4", chosen):  # "pool4" is the default layer: embedding_size overrides it
        raise InputError(
            f"layer={layer!r} and embedding_size={embedding_size} disagree ({embedding_size} is {chosen}); give one"
        )
    return chosen


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
    return _read_model_file_config(directory)[0]


def _read_model_file_config(directory: Path) -> tuple[ModelConfig, frozenset[str]]:
    """The config of a model directory and its absent parts (see :attr:`L3Net.absent`)."""
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
    absent = data.get("absent", [])
    if not isinstance(absent, list) or not set(absent) <= set(PARTS) or set(absent) >= {"vision", "audio"}:
        raise ModelFileError(f"{path}: 'absent' must list some of {PARTS} (not both towers), got {absent!r}")
    try:
        return ModelConfig.from_dict(data["model"]), frozenset(absent)
    except (TypeError, ValueError) as exc:
        raise ModelFileError(f"{path}: invalid model config ({exc})") from exc


def _check_state_dict(model: L3Net, tensors: Mapping[str, torch.Tensor], path: Path) -> None:
    expected = {k: v for k, v in model.state_dict().items() if k.split(".", 1)[0] not in model.absent}
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
    a path to its ``model.safetensors`` works too. Every other spec (``openl3:NAME``, ``random:X``)
    is :func:`l3net.modelspec.load_model`'s, which is ``l3net.load_model``.
    """
    if isinstance(name_or_path, L3Net):
        model = name_or_path
    else:
        path = Path(name_or_path)
        if not path.exists() and str(name_or_path) in PRESETS:
            model = build_model(str(name_or_path), seed=seed)
        elif not path.exists():
            raise ModelFileError(
                f"'{name_or_path}' is neither a preset ({', '.join(sorted(PRESETS))}), an OpenL3 model "
                f"({OPENL3_PREFIX}mel256-env, ...: l3net.load_model) nor an existing model directory"
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
    config, absent = _read_model_file_config(directory)
    weights = directory / WEIGHTS_FILE
    if not weights.is_file():
        raise ModelFileError(f"{directory} has {CONFIG_FILE} but no {WEIGHTS_FILE}")
    try:
        tensors = load_file(str(weights))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise ModelFileError(f"{weights}: corrupt or not a safetensors file ({exc})") from exc
    model = build_model(config, seed=0)
    model.absent = absent
    _check_state_dict(model, tensors, weights)
    expected = model.state_dict()
    model.load_state_dict({k: v.to(expected[k].dtype) for k, v in tensors.items()}, strict=not absent)
    model.directory = directory.resolve()
    return model
