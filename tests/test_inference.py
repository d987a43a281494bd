"""The inference copy (l3net.inference): BatchNorm folding, equality with eager fp32, the training
model left alone, one copy per (model, device, precision), compile with padding and its fallback."""

from __future__ import annotations

import gc
import warnings
import weakref

import numpy as np
import pytest
import torch
from torch import nn

import l3net
from l3net import inference
from l3net.config import PRESETS, SAMPLE_RATE
from l3net.errors import InputError
from l3net.evaluate.features import audio_features, image_features
from l3net.heatmaps import low_res_heatmaps
from l3net.inference import InferenceModel, fold_batchnorm, inference_model, resolve_compile, resolve_precision
from l3net.media import load_audio, load_image
from l3net.models import PRERELU, build_model

# fp32 copy vs the model's own eager fp32: folding and channels_last change float rounding only.
# Measured over the presets and seeds 0-2: max |difference| / max |output| <= 4e-6. Stated tolerance
# (a wrongly folded BatchNorm, or one folded across a ReLU, is off by O(1)):
RELATIVE_TOLERANCE = 1e-4


def _relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).abs().max() / b.float().abs().max().clamp_min(1e-12))


def _with_statistics(model: nn.Module, seed: int) -> nn.Module:
    """Non-trivial BatchNorm statistics and affine terms (fresh ones are the identity map)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.copy_(torch.rand(n, generator=g) - 0.5)
                m.running_var.copy_(0.5 + 1.5 * torch.rand(n, generator=g))
                m.weight.copy_(0.5 + torch.rand(n, generator=g))
                m.bias.copy_(0.4 * torch.rand(n, generator=g) - 0.2)
    return model.eval()


def _tiny_config():
    """A two-block network: compiles in seconds rather than minutes."""
    return PRESETS["small"].replace(
        name="tiny", channels=(4, 8), image_resize=32, image_size=32, transfer_image_size=32,
        audio_transfer_grid=(2, 2), image_transfer_grid=(2, 2),
    )


# ------------------------------------------------------------------------------------------------
# folding
# ------------------------------------------------------------------------------------------------
class _Mixed(nn.Module):
    """Every case of the folding rule: BN before a conv, conv-BN, conv-ReLU-BN, a conv used twice."""

    def __init__(self) -> None:
        super().__init__()
        self.bn_in = nn.BatchNorm2d(3)  # precedes a conv: must stay
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1, bias=True)
        self.bn1 = nn.BatchNorm2d(4)  # directly after conv1: folded
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(4)  # after a ReLU: must stay
        self.conv3 = nn.Conv2d(4, 4, 3, padding=1)
        self.bn3 = nn.BatchNorm2d(4)  # conv3's output is also used elsewhere: must stay
        self.block = nn.Sequential(nn.Conv2d(4, 4, 1), nn.BatchNorm2d(4), nn.ReLU())  # folded

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn1(self.conv1(self.bn_in(x)))
        x = self.bn2(torch.relu(self.conv2(x)))
        y = self.conv3(x)
        return self.block(self.bn3(y) + y)


def test_folding_takes_exactly_the_batchnorms_right_after_a_conv():
    model = _with_statistics(_Mixed(), seed=0)
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        expected = model(x)
    folded = fold_batchnorm(model)
    assert sorted(folded) == [("block.0", "block.1"), ("conv1", "bn1")]
    assert isinstance(model.bn1, nn.Identity) and isinstance(model.block[1], nn.Identity)
    assert all(isinstance(getattr(model, n), nn.BatchNorm2d) for n in ("bn_in", "bn2", "bn3"))
    with torch.no_grad():
        assert _relative_error(model(x), expected) < RELATIVE_TOLERANCE


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_preset_equals_eager_fp32(preset):
    """Every feature name of both towers, for every preset (OpenL3's input BatchNorm, conv biases,
    BatchNorm after a ReLU, a last conv without BatchNorm included)."""
    torch.manual_seed(0)
    config = PRESETS[preset]  # its structure, at a sixteenth of the width (the test stays fast)
    model = _with_statistics(build_model(config.replace(channels=tuple(c // 16 for c in config.channels))), seed=1)
    fast = InferenceModel(model, compile=False)
    kept = [m for m in fast.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(fast.folded) + len(kept) == sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert len(fast.folded) > len(kept)
    inputs = {
        "audio": 0.1 * torch.randn(2, model.config.clip_samples),
        "vision": torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8),
    }
    for modality, x in inputs.items():
        names = model.tower(modality).feature_names
        with torch.inference_mode():
            expected = model.forward_features(modality, x, names)
            got = fast.forward_features(modality, x, names)
            for name in names:
                assert _relative_error(got[name], expected[name]) < RELATIVE_TOLERANCE, (modality, name)
            assert _relative_error(fast.embed(modality, x), model.embed(modality, x)) < RELATIVE_TOLERANCE
            assert _relative_error(
                fast.transfer_features(modality, x), model.transfer_features(modality, x)
            ) < RELATIVE_TOLERANCE


# ------------------------------------------------------------------------------------------------
# the training model is never touched; copies are made once and follow the weights
# ------------------------------------------------------------------------------------------------
def _snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_embedding_leaves_the_training_model_alone(data_dir):
    model = _with_statistics(build_model("small"), seed=2).train()
    before = _snapshot(model)
    flags = [m.training for m in model.modules()]
    audio, sr = load_audio(data_dir / "audio" / "voice_front_center_48k_mono.wav"), SAMPLE_RATE
    image = load_image(next((data_dir / "photos").rglob("*.jpg")))
    l3net.get_audio_embedding(audio, sr, model=model, hop_size=0.5)
    l3net.get_image_embedding(image, model=model)
    audio_features(model, np.zeros((2, model.config.clip_samples), np.float32), progress=False)
    image_features(model, [image], progress=False)
    low_res_heatmaps(model, np.zeros((1, 64, 64, 3), np.uint8), np.zeros((1, model.config.clip_samples), np.float32))
    assert [m.training for m in model.modules()] == flags
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.requires_grad for p in model.parameters())
    assert not any(isinstance(m, nn.Identity) for m in model.modules())


def test_one_copy_per_model_and_precision_rebuilt_when_weights_change():
    model = build_model(_tiny_config()).eval()
    fast = inference_model(model)
    assert inference_model(model) is fast
    assert inference_model(fast) is fast
    x = 0.1 * torch.randn(2, model.config.clip_samples)
    # An optimizer step changes the weights in place: the next call must see the new ones.
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    model.train()
    model.embed("audio", x).sum().backward()
    optimizer.step()
    model.eval()
    fresh = inference_model(model)
    assert fresh is not fast
    with torch.inference_mode():
        assert _relative_error(fresh.embed("audio", x), model.embed("audio", x)) < RELATIVE_TOLERANCE
    # A copy lives as long as its model, no longer (no process-wide registry keeps it).
    ref = weakref.ref(fresh)
    del model, fast, fresh, optimizer
    gc.collect()
    assert ref() is None


def test_an_inference_model_goes_through_the_api(data_dir):
    model = build_model("small").eval()
    audio, sr = load_audio(data_dir / "audio" / "dog_bark_22k_u8.wav"), SAMPLE_RATE
    plain, stamps = l3net.get_audio_embedding(audio, sr, model=model, hop_size=0.25)
    fast, fast_stamps = l3net.get_audio_embedding(audio, sr, model=InferenceModel(model, compile=False), hop_size=0.25)
    np.testing.assert_array_equal(stamps, fast_stamps)
    with torch.inference_mode():
        eager = model.embed("audio", torch.from_numpy(_windows(audio, sr, model)))
    assert _relative_error(torch.from_numpy(plain), eager) < RELATIVE_TOLERANCE
    np.testing.assert_allclose(fast, plain, rtol=0, atol=1e-6 * np.abs(plain).max())


def _windows(audio: np.ndarray, sr: int, model) -> np.ndarray:
    from l3net.embed import iter_windows
    from l3net.media import prepare_audio_array

    samples = prepare_audio_array(audio, sr)
    return np.stack([w.copy() for w in iter_windows([samples], 0.25, True, model.config.clip_samples)])


# ------------------------------------------------------------------------------------------------
# settings
# ------------------------------------------------------------------------------------------------
def test_auto_precision_follows_the_hardware(monkeypatch):
    monkeypatch.setattr(inference, "cpu_has_native_bf16", lambda: True)
    assert resolve_precision("auto", "cpu") == "bf16"
    monkeypatch.setattr(inference, "cpu_has_native_bf16", lambda: False)
    assert resolve_precision("auto", "cpu") == "fp32"
    assert resolve_precision("bf16", "cpu") == "bf16"
    with pytest.raises(InputError, match="precision"):
        inference_model(build_model("small"), precision="fp8")


def test_compile_setting(monkeypatch):
    monkeypatch.setattr(inference, "cpu_has_native_bf16", lambda: True)
    monkeypatch.delenv(inference.COMPILE_ENV, raising=False)
    assert resolve_compile(None, "cpu", "fp32") is False  # costs more than it saves
    assert resolve_compile(None, "cpu", "bf16") is True
    assert resolve_compile(False, "cpu", "bf16") is False
    monkeypatch.setenv(inference.COMPILE_ENV, "1")
    assert resolve_compile(None, "cpu", "fp32") is True
    monkeypatch.setenv(inference.COMPILE_ENV, "0")
    assert resolve_compile(None, "cpu", "bf16") is False
    assert resolve_compile(True, "cpu", "fp32") is True
    monkeypatch.setenv(inference.COMPILE_ENV, "sometimes")
    with pytest.raises(InputError, match="L3NET_COMPILE"):
        resolve_compile(None, "cpu", "fp32")


def test_cli_precision_auto_and_no_compile(tmp_path, data_dir, monkeypatch):
    from l3net.cli import main

    seen = {}
    real = inference.InferenceModel.__init__

    def spy(self, model, *, precision="fp32", compile=None):
        seen.update(precision=precision, compile=compile)
        real(self, model, precision=precision, compile=compile)

    monkeypatch.setattr(inference.InferenceModel, "__init__", spy)
    wav = data_dir / "audio" / "voice_front_center_48k_mono.wav"
    model = build_model("small").eval()
    model.save(tmp_path / "model")  # a fresh directory: no copy of it is cached yet
    assert main(["embed", str(wav), "--model", str(tmp_path / "model"), "-o", str(tmp_path), "--precision", "auto", "--no-compile", "-q"]) == 0
    assert seen == {"precision": resolve_precision("auto", "cpu"), "compile": False}
    out = np.load(tmp_path / "voice_front_center_48k_mono.npz")
    expected, _ = l3net.get_audio_embedding(load_audio(wav), SAMPLE_RATE, model=model, precision=seen["precision"])
    np.testing.assert_allclose(out["embedding"], expected, rtol=0, atol=1e-6 * np.abs(expected).max())


# ------------------------------------------------------------------------------------------------
# compile: padding to one graph, equality, fallback
# ------------------------------------------------------------------------------------------------
def test_failed_compilation_warns_once_and_runs_eagerly(monkeypatch):
    def broken(fn, **kwargs):
        def run(*args):
            raise RuntimeError("no C++ compiler found\nmore detail")

        return run

    monkeypatch.setattr(torch, "compile", broken)
    model = build_model(_tiny_config()).eval()
    fast = InferenceModel(model, compile=True)
    x = 0.1 * torch.randn(3, model.config.clip_samples)
    with pytest.warns(RuntimeWarning, match="no C\\+\\+ compiler found") as caught:
        first = fast.embed("audio", x)
        second = fast.embed("audio", x[:2])
    assert len([w for w in caught if issubclass(w.category, RuntimeWarning)]) == 1
    with torch.inference_mode():
        expected = model.embed("audio", x)
    assert _relative_error(first, expected) < RELATIVE_TOLERANCE
    assert _relative_error(second, expected[:2]) < RELATIVE_TOLERANCE


class _FakeCompile:
    """Stands in for torch.compile (real compilation takes minutes on a CPU): runs the function
    eagerly and records each graph's code object and the batches it was called with."""

    def __init__(self) -> None:
        self.codes: list[object] = []
        self.calls: list[tuple[int, int]] = []  # (graph number, batch)

    def __call__(self, fn, **kwargs):
        number = len(self.codes)
        self.codes.append(fn.__code__)

        def run(x):
            self.calls.append((number, x.shape[0]))
            return fn(x)

        return run


def test_buckets_are_powers_of_two_up_to_the_cap():
    assert inference.batch_buckets(32, 256) == (32, 64, 128, 256)
    assert inference.batch_buckets(24, 100) == (24, 48, 96, 100)
    assert inference.batch_buckets(8, 8) == (8,)
    assert [inference.bucket_for(n, (32, 64, 128, 256)) for n in (1, 7, 32, 33, 200, 256)] == [32, 32, 32, 64, 256, 256]
    with pytest.raises(ValueError, match="larger than the largest bucket"):
        inference.bucket_for(257, (32, 64, 128, 256))
    with pytest.raises(InputError, match="positive"):
        inference.batch_buckets(0, 8)


def test_a_batch_that_grew_does_not_pad_later_small_ones(monkeypatch):
    fake = _FakeCompile()
    monkeypatch.setattr(torch, "compile", fake)
    model = _with_statistics(build_model(_tiny_config()), seed=1)
    fast = InferenceModel(model, compile=True, pad_batch=2, max_batch=8)
    x = 0.1 * torch.randn(19, model.config.clip_samples, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        expected = model.embed("audio", x)
    for n in (2, 8, 3, 1, 19):  # grows to 8, then small again, then larger than the cap
        assert _relative_error(fast.embed("audio", x[:n]), expected[:n]) < RELATIVE_TOLERANCE
    batches = [batch for _, batch in fake.calls]
    # 3 -> 4 and 1 -> 2 after the batch of 8: not padded to 8; 19 runs as 8 + 8 + 3 (padded to 4)
    assert batches == [2, 8, 4, 2, 8, 8, 4]
    assert fast.graphs == 3 == len(fake.codes)  # buckets 2, 4, 8 of one input kind and shape
    assert len({id(code) for code in fake.codes}) == 3  # each graph its own code object (its own recompile count)


def test_twins_and_shapes_get_their_own_code_objects(monkeypatch):
    """Dynamo counts recompiles per code object: twins and layer sets must not share one."""
    fake = _FakeCompile()
    monkeypatch.setattr(torch, "compile", fake)
    x = 0.1 * torch.randn(3, _tiny_config().clip_samples)
    twins = [InferenceModel(build_model(_tiny_config(), seed=seed).eval(), compile=True, pad_batch=4) for seed in range(3)]
    for fast in twins:
        fast.embed("audio", x)
        fast.forward_features("audio", x, ["conv1_1"])
    assert [fast.graphs for fast in twins] == [2, 2, 2]
    assert len({id(code) for code in fake.codes}) == 6


def test_past_max_graphs_one_warning_and_eager(monkeypatch):
    fake = _FakeCompile()
    monkeypatch.setattr(torch, "compile", fake)
    model = _with_statistics(build_model(_tiny_config()), seed=2)
    fast = InferenceModel(model, compile=True, pad_batch=2, max_batch=8, max_graphs=2)
    x = 0.1 * torch.randn(8, model.config.clip_samples)
    with torch.inference_mode():
        expected = model.embed("audio", x)
    with pytest.warns(RuntimeWarning, match="compiled 2 graphs, its limit") as caught:
        outputs = [fast.embed("audio", x[:n]) for n in (2, 4, 8, 7, 1)]
    assert len([w for w in caught if issubclass(w.category, RuntimeWarning)]) == 1
    assert fast.graphs == 2 and len(fake.codes) == 2  # the third bucket (8) ran eagerly, twice
    for n, out in zip((2, 4, 8, 7, 1), outputs):
        assert _relative_error(out, expected[:n]) < RELATIVE_TOLERANCE


def test_more_buckets_than_the_recompile_limit_is_refused():
    model = build_model(_tiny_config()).eval()
    with torch._dynamo.config.patch(recompile_limit=3), pytest.raises(InputError, match="recompile limit"):
        InferenceModel(model, compile=True, pad_batch=1, max_batch=8)  # 1, 2, 4, 8


def test_fp32_on_a_gpu_turns_tf32_off_for_the_call_only(monkeypatch):
    matmul, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn
    saved = matmul.allow_tf32, cudnn.allow_tf32
    try:
        matmul.allow_tf32 = cudnn.allow_tf32 = True
        with inference.full_fp32("fp32", torch.device("cuda")):
            assert (matmul.allow_tf32, cudnn.allow_tf32) == (False, False)
        assert (matmul.allow_tf32, cudnn.allow_tf32) == (True, True)
        with pytest.raises(KeyError), inference.full_fp32("fp32", torch.device("cuda")):
            raise KeyError("restored on errors too")
        assert (matmul.allow_tf32, cudnn.allow_tf32) == (True, True)
        for precision, device in (("bf16", "cuda"), ("fp32", "cpu")):  # mixed precision, or no TF32 there
            with inference.full_fp32(precision, torch.device(device)):
                assert (matmul.allow_tf32, cudnn.allow_tf32) == (True, True)
    finally:
        matmul.allow_tf32, cudnn.allow_tf32 = saved


def test_every_call_runs_inside_full_fp32(monkeypatch):
    entered = []
    real = inference.full_fp32

    def spy(precision, device):
        entered.append((precision, device.type))
        return real(precision, device)

    monkeypatch.setattr(inference, "full_fp32", spy)
    model = build_model(_tiny_config()).eval()
    for compile in (False, True):
        monkeypatch.setattr(torch, "compile", _FakeCompile())
        fast = InferenceModel(model, compile=compile)
        x = 0.1 * torch.randn(2, model.config.clip_samples)
        fast.forward(torch.zeros(2, 3, 32, 32, dtype=torch.uint8), x)
    assert entered == [("fp32", "cpu")] * 6  # vision, audio and fuse, each way


@pytest.mark.slow
def test_compiled_copy_reuses_few_graphs_and_equals_eager():
    """Compiled (inductor, freezing) equals eager fp32; clips of any length reuse the bucket graphs
    and torch compiles no graph beyond them (no recompiles)."""
    from torch._dynamo.utils import counters

    torch.manual_seed(0)
    model = _with_statistics(build_model(_tiny_config()), seed=3)
    fast = InferenceModel(model, compile=True, pad_batch=2, max_batch=4)
    rng = np.random.default_rng(0)
    graphs_before = counters["stats"]["unique_graphs"]
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # a compile failure would only warn: fail instead
        for seconds in (4.0, 1.3, 2.6, 0.5):  # batches of 4 windows, then shorter last batches
            audio = (0.1 * rng.standard_normal(round(seconds * 48_000))).astype(np.float32)
            options = dict(hop_size=0.5, batch_size=4, layer=model.audio.embedding_layer)
            emb, _ = l3net.get_audio_embedding(audio, 48_000, model=fast, **options)
            expected, _ = l3net.get_audio_embedding(audio, 48_000, model=model, **options)
            assert _relative_error(torch.from_numpy(emb), torch.from_numpy(expected)) < RELATIVE_TOLERANCE
    assert fast.use_compile
    assert sorted(key[-1] for key in fast._graphs) == [2, 4]  # two buckets, one graph each
    assert fast.graphs == 2 == counters["stats"]["unique_graphs"] - graphs_before
