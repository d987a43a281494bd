"""The inference copy of a model: what every embedding, feature and heatmap is computed with.

::

    fast = inference_model(model, precision="auto")       # built once per (model, device, precision)
    emb = fast.embed("audio", waveforms)                  # the same methods as L3Net's
    maps = fast.forward_features("vision", images, ["conv4_2"])

:class:`InferenceModel` is a copy of an :class:`~l3net.models.L3Net` made for inference:

- **BatchNorm folded into the convolution before it** (:func:`~l3net.folding.fold_batchnorm`): only a BatchNorm2d
  whose input is exactly one Conv2d's output, found in the forward graph (``torch.fx``), never one
  that precedes a conv (OpenL3's input BatchNorm) or follows a ReLU (OpenL3's image conv1_2);
- **channels_last** weights and inputs (oneDNN's and cuDNN's fast layout);
- **torch.compile** (inductor with ``freezing``: weights become constants) when ``compile`` says so.
  Graphs are made for a few fixed batch sizes, the *buckets* (:func:`batch_buckets`: ``pad_batch``
  = :data:`PAD_BATCH` doubled up to ``max_batch`` = :data:`MAX_BATCH`, i.e. 32, 64, 128, 256): each
  batch is zero-padded to the smallest bucket that holds it and the outputs cut back, so the last,
  short batch of every clip and clips of every length reuse a graph, and a batch that once grew to
  256 does not make every later small batch pay for 256. Larger batches run in pieces of ``max_batch``.
  Every graph gets its own code object, so torch's recompile limit (per code object) is never reached
  by twins or many shapes: no silent uncompiled fallback. An instance compiles at most ``max_graphs``
  graphs (:data:`MAX_GRAPHS`, each costs seconds to minutes); past that, and when compilation fails,
  one warning naming the reason and eager runs for what has no graph.
- the ``precision``'s autocast and inference mode around every call, so callers need neither; in fp32 on
  a GPU, TF32 is switched off for the call (and the caller's setting restored after it): PyTorch lets
  cuDNN convolutions use TF32 by default, whose ~1e-3 rounding would break the promise that fp32
  embeddings are the same on every machine. (The switch is process-wide while a call runs: another
  thread's fp32 GPU work at that moment also runs without TF32.)

Outputs equal the model's own eager fp32 outputs up to float rounding (fp32: max error / max value
<= 4e-6 measured on every preset, 1e-4 tested in ``tests/test_inference.py``); bf16 differs as bf16 does (see BENCHMARKS.md). The model it was made
from is never modified: the copy owns its own weights, made with :func:`copy.deepcopy`.

Where copies live (no process-wide registry that keeps models alive): :func:`inference_model`
keeps each model's copies in a :class:`weakref.WeakKeyDictionary` keyed by the model object, so
a copy lives exactly as long as the model it was made from, and is rebuilt when that model's
weights change (every parameter and buffer's storage and version counter are compared at each
call: an optimizer step or ``load_state_dict`` makes a new copy). Hold an :class:`InferenceModel`
yourself to manage its lifetime explicitly.

Defaults (environment variable :data:`COMPILE_ENV`, ``L3NET_COMPILE``):

- ``compile=None`` reads ``L3NET_COMPILE`` (``1``/``0``/``auto``; unset = ``auto``). ``auto``
  compiles where it is expected to pay for itself: on a GPU (not measured yet: ``benchmarks/gpu.sh``),
  and in bf16 on a CPU with bf16 instructions (2.3x eager bf16 on a 2-core AMX Xeon, issue #12).
  Elsewhere (fp32 on a CPU) inductor gains nothing over the folded channels_last copy (measured: 2.02
  against 2.24 windows per CPU-second, paper preset, 2 AVX2 cores; 1.01x eager on 2 AMX Xeon cores, as
  were frozen TorchScript and oneDNN tensors: ``benchmarks/cpu_fp32_paths.py``) and its first call costs minutes
  (254 s against 45 s eager on that machine, shared with other jobs: BENCHMARKS.md).
- ``precision="auto"``: bf16 on a GPU that supports it or a CPU with AMX/AVX512-BF16, else fp32
  (:func:`resolve_precision`). The embedding API's default stays fp32 (see docs/DESIGN.md).
"""

from __future__ import annotations

import contextlib
import copy
import os
import threading
import types
import warnings
import weakref
from typing import Any, Callable, Iterable, Iterator

import torch
from torch import nn

from .errors import InputError
from .folding import fold_batchnorm
from .models import L3Net, VGGTower
from .runtime import PRECISIONS, autocast, check_precision, cpu_has_native_bf16

#: Environment variable read when ``compile=None``: ``1`` (always), ``0`` (never) or ``auto``.
COMPILE_ENV = "L3NET_COMPILE"
#: The smallest batch a compiled graph is made for (the embedding API's default batch size): smaller
#: batches (the last one of a clip, a short clip, one image) are zero-padded to it, so they reuse its graph.
PAD_BATCH = 32
#: The largest batch a compiled graph is made for; larger batches run in pieces of this size.
MAX_BATCH = 256
#: Compiled graphs one InferenceModel makes at most (one per input kind, input shape and batch bucket).
MAX_GRAPHS = 16
#: What ``precision=`` accepts everywhere a model runs for inference.
PRECISION_CHOICES = ("auto", *PRECISIONS)

Outputs = torch.Tensor | dict[str, torch.Tensor]


def resolve_precision(precision: str, device: torch.device | str) -> str:
    """``"auto"`` -> ``"bf16"`` on a CUDA GPU with bf16 or a CPU with AMX/AVX512-BF16, else ``"fp32"``.

    Other values are returned unchanged (validated by :func:`~l3net.runtime.check_precision`).
    """
    if precision != "auto":
        return precision
    device = torch.device(device)
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    if device.type == "cpu" and cpu_has_native_bf16():
        return "bf16"
    return "fp32"


def resolve_compile(compile: bool | None, device: torch.device | str, precision: str) -> bool:
    """Whether to torch.compile: ``compile`` if a bool, else ``$L3NET_COMPILE`` (default ``auto``).

    ``auto``: yes on a GPU, and for bf16 on a CPU with bf16 instructions (where compiled bf16 is
    2-5x eager); no for fp32 on a CPU, where the first call would cost more than it saves.
    """
    if compile is not None:
        return bool(compile)
    value = os.environ.get(COMPILE_ENV, "auto").strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    if value not in ("", "auto"):
        raise InputError(f"{COMPILE_ENV}={value!r}: expected 1, 0 or auto")
    device = torch.device(device)
    if device.type == "cuda":
        return True
    return device.type == "cpu" and precision == "bf16" and bool(cpu_has_native_bf16())


# ------------------------------------------------------------------------------------------------
# the inference copy
# ------------------------------------------------------------------------------------------------
def batch_buckets(pad_batch: int = PAD_BATCH, max_batch: int = MAX_BATCH) -> tuple[int, ...]:
    """The batch sizes compiled graphs are made for: ``pad_batch`` doubled while below ``max_batch``,
    then ``max_batch`` (32, 64, 128, 256 by default). Few, so few graphs; each at most twice the batch
    it serves, so padding at most doubles the work."""
    if pad_batch < 1 or max_batch < 1:
        raise InputError(f"pad_batch and max_batch must be positive, got {pad_batch} and {max_batch}")
    buckets = [pad_batch]
    while buckets[-1] < max_batch:
        buckets.append(min(2 * buckets[-1], max_batch))
    return tuple(buckets)


def bucket_for(n: int, buckets: tuple[int, ...]) -> int:
    """The smallest bucket that holds a batch of ``n`` (``n`` at most the largest bucket)."""
    for bucket in buckets:
        if n <= bucket:
            return bucket
    raise ValueError(f"a batch of {n} is larger than the largest bucket, {buckets[-1]}")


def _own_code(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` with a code object of its own. torch.compile keeps its graphs, and counts recompiles
    against ``torch._dynamo.config.recompile_limit``, per code object: the closures made for every
    model instance, layer set and input shape share one, and past the limit dynamo runs them
    uncompiled without a word. A code object per graph keeps each one's entries to its buckets."""
    if not isinstance(fn, types.FunctionType):
        raise TypeError(f"expected a Python function, got {type(fn).__name__}")
    return types.FunctionType(fn.__code__.replace(), fn.__globals__, fn.__name__, fn.__defaults__, fn.__closure__)


@contextlib.contextmanager
def full_fp32(precision: str, device: torch.device) -> Iterator[None]:
    """No TF32 inside (cuDNN convolutions and CUDA matmuls) when ``precision`` is fp32 on a GPU; the
    caller's settings restored on the way out. Elsewhere nothing changes (CPUs have no TF32)."""
    if precision != "fp32" or device.type != "cuda":
        yield
        return
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


class InferenceModel(nn.Module):
    """An inference-only copy of an :class:`L3Net` with the same feature methods (see the module docstring).

    ``precision``: "fp32", "bf16", "fp16" (GPU) or "auto" (:func:`resolve_precision`) on the
    model's device. ``compile``: True, False or None (``$L3NET_COMPILE``, :func:`resolve_compile`).
    ``pad_batch``, ``max_batch``: the smallest and largest batch a compiled graph is made for
    (:func:`batch_buckets`); ``max_graphs``: the most graphs this copy compiles. The copy stays in
    eval mode (``train()`` does nothing) and has no gradients. :attr:`graphs` counts its compiled graphs.
    """

    def __init__(
        self, model: L3Net, *, precision: str = "fp32", compile: bool | None = None, pad_batch: int = PAD_BATCH,
        max_batch: int = MAX_BATCH, max_graphs: int = MAX_GRAPHS,
    ) -> None:
        super().__init__()
        self.pad_batch = pad_batch
        self.buckets = batch_buckets(pad_batch, max(max_batch, pad_batch))
        dynamo = torch._dynamo.config  # recompile_limit from torch 2.7, cache_size_limit before (l3net needs >= 2.3)
        limit = dynamo.recompile_limit if hasattr(dynamo, "recompile_limit") else dynamo.cache_size_limit
        if len(self.buckets) > limit:
            raise InputError(
                f"batch sizes {pad_batch} to {max_batch} make {len(self.buckets)} graph sizes, more than torch's "
                f"recompile limit ({limit}, torch._dynamo.config.recompile_limit): give a larger pad_batch or a "
                "smaller max_batch"
            )
        self.max_graphs = max_graphs
        device = next(model.parameters()).device
        if precision not in PRECISION_CHOICES:
            raise InputError(f"precision must be one of {', '.join(PRECISION_CHOICES)}, got {precision!r}")
        self.precision = resolve_precision(precision, device)
        check_precision(self.precision, device)
        self.device = device
        self.use_compile = resolve_compile(compile, device, self.precision)
        net = copy.deepcopy(model).eval().requires_grad_(False)
        self.folded = fold_batchnorm(net)
        self.net = net.to(memory_format=torch.channels_last)
        self.config = model.config
        # (kind, modality[, layers], input shape, dtype, bucket) -> compiled function; None: runs eagerly
        self._graphs: dict[tuple[Any, ...], Callable[[torch.Tensor], Outputs] | None] = {}
        self._lock = threading.Lock()
        self._warned_full = False  # the max_graphs warning is given once

    @property
    def graphs(self) -> int:
        """How many graphs this copy has compiled (each input kind, input shape and batch bucket one)."""
        return sum(fn is not None for fn in self._graphs.values())

    # -- what callers read, as on L3Net ---------------------------------------------------------
    @property
    def vision(self) -> VGGTower:
        return self.net.vision

    @property
    def audio(self) -> VGGTower:
        return self.net.audio

    def tower(self, modality: str) -> VGGTower:
        return self.net.tower(modality)

    def transfer_layer(self, modality: str) -> str:
        return self.net.transfer_layer(modality)

    def pool_transfer(self, modality: str, feature_map: torch.Tensor) -> torch.Tensor:
        return self.net.pool_transfer(modality, feature_map)

    def require(self, *parts: str) -> None:
        self.net.require(*parts)

    def train(self, mode: bool = True) -> "InferenceModel":
        """Does nothing: the copy is for inference only (its BatchNorms are folded)."""
        return self

    # -- the feature contract, fast --------------------------------------------------------------
    def forward_features(self, modality: str, x: torch.Tensor, layers: Iterable[str]) -> dict[str, torch.Tensor]:
        """As :meth:`L3Net.forward_features`: ``{name: output}`` for raw inputs."""
        layers = tuple(dict.fromkeys(layers))
        net = self.net

        def run(x: torch.Tensor) -> dict[str, torch.Tensor]:
            return net.tower(modality).forward_features(x, layers)

        return self._run(("features", modality, layers), run, x)

    def embed(self, modality: str, x: torch.Tensor) -> torch.Tensor:
        """As :meth:`L3Net.embed`: the ``(N, C)`` embedding of images or waveforms."""
        net = self.net

        def run(x: torch.Tensor) -> torch.Tensor:
            return net.tower(modality)(x)

        return self._run(("embed", modality), run, x)

    def transfer_features(self, modality: str, x: torch.Tensor) -> torch.Tensor:
        """As :meth:`L3Net.transfer_features`: the last conv max-pooled to the transfer grid."""
        net, layer = self.net, self.net.transfer_layer(modality)

        def run(x: torch.Tensor) -> torch.Tensor:
            maps = net.tower(modality).forward_features(x, [layer])
            return net.pool_transfer(modality, maps[layer])

        return self._run(("transfer", modality), run, x)

    def fuse(self, vision_embedding: torch.Tensor, audio_embedding: torch.Tensor) -> torch.Tensor:
        """As :meth:`L3Net.fuse` (small: never compiled)."""
        with torch.inference_mode(), autocast(self.precision, self.device), full_fp32(self.precision, self.device):
            return self.net.fuse(vision_embedding, audio_embedding)

    def forward(self, images: torch.Tensor, waveforms: torch.Tensor) -> torch.Tensor:
        """Correspondence logits, as :meth:`L3Net.forward`."""
        return self.fuse(self.embed("vision", images), self.embed("audio", waveforms))

    # -- running ---------------------------------------------------------------------------------
    def _run(self, key: tuple[Any, ...], tower_part: Callable[[torch.Tensor], Outputs], x: torch.Tensor) -> Outputs:
        """``tower_part(tower input)`` for raw inputs ``x``; the front end (normalisation or the
        log-spectrogram, whose complex STFT inductor does not generate code for) always runs eagerly."""
        modality = key[1]
        with torch.inference_mode(), autocast(self.precision, self.device), full_fp32(self.precision, self.device):
            if not self.use_compile or x.shape[0] == 0:
                return tower_part(self._tower_input(modality, x))
            top = self.buckets[-1]
            pieces = []
            for start in range(0, x.shape[0], top):
                pieces.append(self._run_bucketed(key, tower_part, x[start : start + top]))
        if len(pieces) == 1:
            return pieces[0]
        if isinstance(pieces[0], dict):
            return {name: torch.cat([p[name] for p in pieces]) for name in pieces[0]}
        return torch.cat(pieces)

    def _run_bucketed(self, key: tuple[Any, ...], tower_part: Callable[[torch.Tensor], Outputs], x: torch.Tensor) -> Outputs:
        """One piece of at most the largest bucket: padded to its bucket, run by that bucket's graph."""
        n = x.shape[0]
        bucket = bucket_for(n, self.buckets)
        if n < bucket:  # zeros after the batch; the outputs are cut back below
            x = torch.cat([x, x.new_zeros((bucket - n, *x.shape[1:]))])
        inputs = self._tower_input(key[1], x)
        with self._lock:
            graph = self._graph(key + (tuple(x.shape[1:]), x.dtype, bucket), tower_part)
            if graph is None:
                out = tower_part(inputs)
            else:
                try:
                    out = graph(inputs)
                except Exception as exc:  # noqa: BLE001 - any compiler failure: run eagerly instead
                    self.use_compile = False
                    first_line = (str(exc).strip().splitlines() or [""])[0][:200]
                    warnings.warn(
                        f"torch.compile failed ({type(exc).__name__}: {first_line}); embedding without "
                        f"compilation from now on (compile=False or {COMPILE_ENV}=0 skips the attempt)",
                        RuntimeWarning,
                        stacklevel=4,
                    )
                    out = tower_part(inputs)
        if isinstance(out, dict):
            return {name: value[:n] for name, value in out.items()}
        return out[:n]

    def _graph(self, graph_key: tuple[Any, ...], tower_part: Callable[[torch.Tensor], Outputs]) -> Callable[[torch.Tensor], Outputs] | None:
        """The compiled function for ``graph_key``, made at first use; None (eager) past ``max_graphs``."""
        if graph_key in self._graphs:
            return self._graphs[graph_key]
        if self.graphs >= self.max_graphs:
            self._graphs[graph_key] = None
            if not self._warned_full:
                self._warned_full = True
                warnings.warn(
                    f"this inference copy has compiled {self.graphs} graphs, its limit (max_graphs; one per input "
                    f"kind, input shape and batch size in {self.buckets}): new shapes run uncompiled. Fewer layer "
                    "sets or input sizes, or one InferenceModel per kind of input, keep every call compiled",
                    RuntimeWarning,
                    stacklevel=5,
                )
            return None
        fn = torch.compile(_own_code(tower_part), dynamic=False, options={"freezing": True})
        self._graphs[graph_key] = fn
        return fn

    def _tower_input(self, modality: str, x: torch.Tensor) -> torch.Tensor:
        return self.net.tower_input(modality, x).contiguous(memory_format=torch.channels_last)


# ------------------------------------------------------------------------------------------------
# one copy per (model, device, precision, compile), living as long as the model
# ------------------------------------------------------------------------------------------------
_COPIES: "weakref.WeakKeyDictionary[nn.Module, dict[tuple[Any, ...], tuple[tuple[Any, ...], InferenceModel]]]" = (
    weakref.WeakKeyDictionary()
)
_COPIES_LOCK = threading.Lock()


def _weights_stamp(model: nn.Module) -> tuple[Any, ...]:
    """Changes whenever a parameter or buffer is replaced, moved or modified in place."""
    return tuple((t.data_ptr(), t._version) for t in (*model.parameters(), *model.buffers()))


def inference_model(
    model: L3Net | InferenceModel, *, precision: str = "fp32", compile: bool | None = None
) -> InferenceModel:
    """The :class:`InferenceModel` of ``model`` on its device: made at the first call, then reused.

    An InferenceModel passed in is returned as is. Copies are kept per (device, precision, compile)
    beside the model (weakly: they go when the model goes) and rebuilt when its weights change.
    """
    if isinstance(model, InferenceModel):
        return model
    if not isinstance(model, L3Net):
        raise InputError(f"expected an L3Net, got {type(model).__name__}")
    device = next(model.parameters()).device
    if precision not in PRECISION_CHOICES:
        raise InputError(f"precision must be one of {', '.join(PRECISION_CHOICES)}, got {precision!r}")
    resolved = resolve_precision(precision, device)
    key = (str(device), resolved, resolve_compile(compile, device, resolved))
    stamp = _weights_stamp(model)
    with _COPIES_LOCK:
        copies = _COPIES.setdefault(model, {})
        cached = copies.get(key)
        if cached is not None and cached[0] == stamp:
            return cached[1]
    fast = InferenceModel(model, precision=resolved, compile=key[2])
    with _COPIES_LOCK:
        _COPIES.setdefault(model, {})[key] = (stamp, fast)
    return fast
