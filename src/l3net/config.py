"""Model configurations and the table of named presets.

A preset is data, not code (timm's ``cfgs`` table): every network l3net builds comes from a
:class:`ModelConfig`, and the config is saved beside the weights in ``config.json``. The paper's
numbers live here once; every other module reads them from a config.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping

#: Rate (Hz) of the audio every model takes as input, and of the audio stored in shards (paper 3.1).
#: A preset whose spectrogram runs at a lower rate decimates on the device (see spectrogram.py).
SAMPLE_RATE = 48_000

#: Length (s) of the audio clip paired with one frame (paper section 1).
CLIP_SECONDS = 1.0

#: The paper's training (PAPER_SPEC 4): Adam with this learning rate and L2 weight decay, on batches of
#: this many pairs, for this many pairs in all. ``l3net train``'s defaults (``train.TrainConfig``); the
#: supervised baselines train "in the same manner".
PAPER_LR = 1e-4
PAPER_WEIGHT_DECAY = 1e-5
PAPER_BATCH_SIZE = 256
PAPER_PAIRS = 60_000_000


def _check_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


@dataclass(frozen=True)
class SpectrogramConfig:
    """Log-spectrogram front end (paper 3.1; the decisions of PAPER_SPEC section 6.2 are fields).

    ``sample_rate`` is the rate the STFT runs at; input audio is always :data:`SAMPLE_RATE` and is
    decimated by ``SAMPLE_RATE // sample_rate`` first when the two differ.

    Two scales: ``"log"`` is the paper's ``log(x + log_floor)``; ``"db"`` is OpenL3's (kapre 0.1.4
    as openl3 0.4.2 applies it): ``10 * log10(max(x, db_amin))`` minus its maximum over the whole
    clip, clipped at ``db_range`` dB below that maximum. ``mel_bands > 0`` maps the ``n_fft // 2 + 1``
    bins to that many mel bands (Slaney's mel scale and area normalisation, 0 Hz to Nyquist: the
    filters of librosa and kapre) before scaling. ``pad_end`` zero-pads the end of the clip so that
    ``ceil(samples / hop_length)`` frames cover all of it (``tf.signal.stft(pad_end=True)``).
    ``tensorflow_stft`` computes the STFT as ``tf.signal.stft`` does (the openl3-* presets): with
    TensorFlow's float32 Hann window (shipped as package data, for 512 and 2048 points) and, on the
    CPU, pocketfft's rfft (through SciPy), so that it is bit-identical to openl3's kapre front end.
    """

    sample_rate: int = SAMPLE_RATE
    win_length: int = 480  # 10 ms at 48 kHz
    hop_length: int = 240  # half-window overlap
    n_fft: int = 512  # each 480-sample frame zero-padded to 512 points -> 257 bins
    window: str = "hann"  # the paper names none; Hann is the usual choice
    power: float = 1.0  # 1: magnitude, 2: power (the paper says only "spectrogram")
    log_floor: float = 1e-5  # log(x + floor): silence stays finite
    scale: str = "log"  # "log" (the paper) or "db" (OpenL3), see the class docstring
    db_amin: float = 1e-10  # "db": smallest value before the logarithm
    db_range: float = 80.0  # "db": clip this many dB below the clip's maximum
    mel_bands: int = 0  # 0: linear-frequency bins; > 0: mel bands
    pad_end: bool = False  # zero-pad the end: ceil(samples / hop) frames instead of whole windows only
    tensorflow_stft: bool = False  # TensorFlow's Hann window and FFT, bit for bit on the CPU (OpenL3)

    def num_frames(self, num_samples: int) -> int:
        """Frames for ``num_samples`` input samples (at SAMPLE_RATE), no centre padding."""
        n = num_samples // self.decimation
        if n < self.win_length:
            raise ValueError(f"{num_samples} samples is shorter than one window")
        if self.pad_end:
            return -(-n // self.hop_length)
        return (n - self.win_length) // self.hop_length + 1

    @property
    def num_bins(self) -> int:
        """Rows of the spectrogram: mel bands, or the FFT's ``n_fft // 2 + 1`` bins."""
        return self.mel_bands or self.n_fft // 2 + 1

    @property
    def decimation(self) -> int:
        return SAMPLE_RATE // self.sample_rate

    def validate(self) -> None:
        for name in ("sample_rate", "win_length", "hop_length", "n_fft"):
            _check_int(name, getattr(self, name))
        if not isinstance(self.log_floor, (int, float)) or not self.log_floor > 0:
            raise ValueError(f"log_floor must be a positive number, got {self.log_floor!r}")
        if SAMPLE_RATE % self.sample_rate:
            raise ValueError(f"spectrogram sample_rate {self.sample_rate} must divide {SAMPLE_RATE}")
        if not 0 < self.win_length <= self.n_fft:
            raise ValueError("win_length must be in (0, n_fft]")
        if self.hop_length <= 0:
            raise ValueError("hop_length must be positive")
        if self.power not in (1.0, 2.0):
            raise ValueError("power must be 1 (magnitude) or 2 (power)")
        if self.window not in ("hann", "hamming"):
            raise ValueError(f"unknown window {self.window!r}")
        if self.scale not in ("log", "db"):
            raise ValueError(f"scale must be 'log' or 'db', got {self.scale!r}")
        for name in ("db_amin", "db_range"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"{name} must be a positive number, got {value!r}")
        if isinstance(self.mel_bands, bool) or not isinstance(self.mel_bands, int) or self.mel_bands < 0:
            raise ValueError(f"mel_bands must be 0 (linear frequency) or a positive integer, got {self.mel_bands!r}")
        if not isinstance(self.pad_end, bool):
            raise ValueError(f"pad_end must be true or false, got {self.pad_end!r}")
        if not isinstance(self.tensorflow_stft, bool):
            raise ValueError(f"tensorflow_stft must be true or false, got {self.tensorflow_stft!r}")
        if self.tensorflow_stft and not (self.window == "hann" and self.win_length == self.n_fft in (512, 2048)):
            raise ValueError(
                "tensorflow_stft needs window 'hann' with win_length == n_fft of 512 or 2048 "
                f"(the shipped TensorFlow windows), got {self.window!r}, {self.win_length}, {self.n_fft}"
            )


@dataclass(frozen=True)
class ModelConfig:
    """Everything that defines an L3-Net: towers, head, input sizes and the audio front end."""

    name: str
    channels: tuple[int, ...] = (64, 128, 256, 512)  # one entry per block (conv x2 + pool)
    convs_per_block: int = 2
    head_hidden: int = 128  # fc1: 2*C -> head_hidden -> ReLU -> fc2: 2
    image_resize: int = 256  # smaller side of a frame before cropping (paper 2.2)
    image_size: int = 224  # crop fed to the vision tower for AVC and pool4 embeddings
    transfer_image_size: int = 256  # input of the image transfer feature (paper 5.3)
    image_transfer_grid: tuple[int, int] = (4, 4)  # conv4_2 max-pooled to 4x4x512 = 8192-D
    audio_transfer_grid: tuple[int, int] = (4, 3)  # conv4_2 max-pooled to 4x3x512 = 6144-D
    image_mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    image_std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    clip_seconds: float = CLIP_SECONDS
    spectrogram: SpectrogramConfig = field(default_factory=SpectrogramConfig)
    # -- tower details: the paper's defaults; the openl3-* presets set OpenL3's -----------------
    conv_bias: bool = False  # biases on the convolutions (redundant before BatchNorm; OpenL3 has them)
    batchnorm_eps: float = 1e-5  # PyTorch's default; Keras' (OpenL3) is 1e-3
    batchnorm_momentum: float = 0.1  # PyTorch convention (weight of the new batch); Keras 0.99 = 0.01 here
    input_batchnorm: bool = False  # a BatchNorm on each tower's input (OpenL3)
    last_conv_plain: bool = False  # the last conv has no BatchNorm or ReLU (OpenL3: it pools raw conv4_2)
    vision_relu_before_bn: tuple[str, ...] = ()  # vision convs whose ReLU comes before their BatchNorm
    same_pools: tuple[str, ...] = ()  # towers whose 2x2 pools keep a partial last window (Keras 'same')
    feature_order: str = "chw"  # flattening of pooled feature maps: "chw" (PyTorch) or "hwc" (Keras)
    framing: str = "l3net"  # centred audio windows: "l3net" (to the last timestamp) or "openl3"
    image_upscale: bool = True  # False (OpenL3): a smaller side in [image_size, image_resize] is cropped, not scaled

    # -- derived facts -----------------------------------------------------------------------
    @property
    def embedding_dim(self) -> int:
        """Size of the pool4 embedding of either tower."""
        return self.channels[-1]

    @property
    def clip_samples(self) -> int:
        """Samples (at SAMPLE_RATE) in one audio clip."""
        return round(self.clip_seconds * SAMPLE_RATE)

    @property
    def spectrogram_shape(self) -> tuple[int, int]:
        """(frequency bins, frames) of one clip's spectrogram: 257 x 199 for the paper."""
        return self.spectrogram.num_bins, self.spectrogram.num_frames(self.clip_samples)

    def transfer_dim(self, modality: str) -> int:
        grid = self.image_transfer_grid if modality == "vision" else self.audio_transfer_grid
        return self.channels[-1] * grid[0] * grid[1]

    # -- (de)serialisation -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ModelConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown model config fields: {', '.join(unknown)}")
        kwargs = dict(data)
        if "spectrogram" in kwargs and isinstance(kwargs["spectrogram"], Mapping):
            spec_known = {f.name for f in dataclasses.fields(SpectrogramConfig)}
            bad = sorted(set(kwargs["spectrogram"]) - spec_known)
            if bad:
                raise ValueError(f"unknown spectrogram config fields: {', '.join(bad)}")
            spec = dict(kwargs["spectrogram"])
            if "tensorflow_stft" not in spec and spec.get("scale") == "db":
                # written before the field existed (converted OpenL3 models in caches, checkpoints):
                # the "db" scale was only ever OpenL3's front end, whose STFT is TensorFlow's
                spec["tensorflow_stft"] = True
            kwargs["spectrogram"] = SpectrogramConfig(**spec)
        for key in (
            "channels", "image_transfer_grid", "audio_transfer_grid", "image_mean", "image_std",
            "vision_relu_before_bn", "same_pools",
        ):
            if key in kwargs:
                kwargs[key] = tuple(kwargs[key])
        config = cls(**kwargs)
        config.validate()
        return config

    def replace(self, **changes: Any) -> "ModelConfig":
        return dataclasses.replace(self, **changes)

    def validate(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"name must be a non-empty string, got {self.name!r}")
        if len(self.channels) < 1:
            raise ValueError("channels must list at least one block")
        for c in self.channels:
            _check_int("channels", c)
        for name in ("convs_per_block", "head_hidden", "image_resize", "image_size", "transfer_image_size"):
            _check_int(name, getattr(self, name))
        for name in ("image_transfer_grid", "audio_transfer_grid"):
            grid = getattr(self, name)
            if len(grid) != 2:
                raise ValueError(f"{name} must be (height, width), got {grid}")
            for g in grid:
                _check_int(name, g)
        for name in ("image_mean", "image_std"):
            values = getattr(self, name)
            if len(values) != 3 or not all(isinstance(v, (int, float)) for v in values):
                raise ValueError(f"{name} must be 3 numbers (R, G, B), got {values}")
        if not all(v > 0 for v in self.image_std):
            raise ValueError(f"image_std must be positive, got {self.image_std}")
        if not isinstance(self.clip_seconds, (int, float)) or not self.clip_seconds > 0:
            raise ValueError(f"clip_seconds must be positive, got {self.clip_seconds!r}")
        if not isinstance(self.spectrogram, SpectrogramConfig):
            raise ValueError("spectrogram must be a SpectrogramConfig")
        if self.image_size > self.image_resize:
            raise ValueError("image_size (crop) must not exceed image_resize")
        for name in ("conv_bias", "input_batchnorm", "last_conv_plain", "image_upscale"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false, got {getattr(self, name)!r}")
        for name in ("batchnorm_eps", "batchnorm_momentum"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
                raise ValueError(f"{name} must be a number in (0, 1), got {value!r}")
        conv_names = {f"conv{b}_{i}" for b in range(1, len(self.channels) + 1) for i in range(1, self.convs_per_block + 1)}
        bad = [n for n in self.vision_relu_before_bn if n not in conv_names]
        if bad:
            raise ValueError(f"vision_relu_before_bn names unknown conv layers: {bad}")
        bad = [m for m in self.same_pools if m not in ("vision", "audio")]
        if bad:
            raise ValueError(f"same_pools must list 'vision' and/or 'audio', got {bad}")
        if self.feature_order not in ("chw", "hwc"):
            raise ValueError(f"feature_order must be 'chw' or 'hwc', got {self.feature_order!r}")
        if self.framing not in ("l3net", "openl3"):
            raise ValueError(f"framing must be 'l3net' or 'openl3', got {self.framing!r}")
        self.spectrogram.validate()
        self.spectrogram.num_frames(self.clip_samples)


#: What OpenL3's networks (openl3 0.4.2, models.py) share beyond the paper's layout: conv biases,
#: Keras' BatchNorm (eps 1e-3, momentum 0.99), a BatchNorm on each input, conv4_2 without BatchNorm
#: or ReLU, the image network's ReLU-then-BatchNorm after conv1_2 and its 'same' pools, pixels
#: scaled to [-1, 1] ((x / 255 - 0.5) / 0.5), 224 px for both image features (images only shrunk to
#: 256 px, never enlarged, before the centre crop), Keras' (h, w, c) flattening of the 6144/8192-D
#: features, and openl3's count of centred windows.
_OPENL3_TOWERS: dict[str, Any] = dict(
    image_resize=256,
    image_size=224,
    transfer_image_size=224,
    image_mean=(0.5, 0.5, 0.5),
    image_std=(0.5, 0.5, 0.5),
    conv_bias=True,
    batchnorm_eps=1e-3,
    batchnorm_momentum=0.01,
    input_batchnorm=True,
    last_conv_plain=True,
    vision_relu_before_bn=("conv1_2",),
    same_pools=("vision",),
    feature_order="hwc",
    framing="openl3",
    image_upscale=False,
)
#: OpenL3's kapre front ends at 48 kHz: periodic Hann windows of n_fft samples, hop 242, magnitude,
#: decibels per clip. linear: 512-point STFT, whole windows only (257 x 197); mel: 2048-point STFT,
#: end padded (tf pad_end), 128 or 256 mel bands (x 199). TensorFlow's window and (on the CPU) FFT.
_OPENL3_DB = dict(sample_rate=SAMPLE_RATE, hop_length=242, window="hann", power=1.0, scale="db", tensorflow_stft=True)

#: The preset table. ``paper`` is exactly the paper. ``small`` is the CPU preset: a quarter of the
#: width, 112/96 px frames, and a 16 kHz spectrogram of 20 ms windows without overlap (161 x 50);
#: it trains at ~45 pairs/s on a 2-core laptop CPU (see BENCHMARKS.md). ``openl3-*`` are OpenL3's
#: networks (Cramer et al., ICASSP 2019), exactly as openl3 0.4.2 runs them: ``l3net convert
#: openl3`` fills them with OpenL3's published weights, ``l3net train`` trains them.
PRESETS: dict[str, ModelConfig] = {
    "paper": ModelConfig(name="paper"),
    "small": ModelConfig(
        name="small",
        channels=(16, 32, 64, 128),
        image_resize=112,
        image_size=96,
        transfer_image_size=112,
        spectrogram=SpectrogramConfig(sample_rate=16_000, win_length=320, hop_length=320, n_fft=320),
    ),
    "openl3-linear": ModelConfig(
        name="openl3-linear",
        spectrogram=SpectrogramConfig(win_length=512, n_fft=512, **_OPENL3_DB),
        **_OPENL3_TOWERS,
    ),
    "openl3-mel128": ModelConfig(
        name="openl3-mel128",
        spectrogram=SpectrogramConfig(win_length=2048, n_fft=2048, mel_bands=128, pad_end=True, **_OPENL3_DB),
        **_OPENL3_TOWERS,
    ),
    "openl3-mel256": ModelConfig(
        name="openl3-mel256",
        spectrogram=SpectrogramConfig(win_length=2048, n_fft=2048, mel_bands=256, pad_end=True, **_OPENL3_DB),
        **_OPENL3_TOWERS,
    ),
}


def get_preset(name: str) -> ModelConfig:
    """The config of a named preset (see :data:`PRESETS`)."""
    try:
        return PRESETS[name]
    except KeyError:
        raise KeyError(f"unknown preset {name!r}; available: {', '.join(sorted(PRESETS))}") from None
