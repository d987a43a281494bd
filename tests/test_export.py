"""l3net export: ONNX (through onnxruntime on the CPU) and TorchScript files agree with PyTorch for
every preset, the shipped NumPy front end reproduces l3net's, the contract says what the graphs take."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import l3net
from l3net.cli import main
from l3net.config import PRESETS, SAMPLE_RATE
from l3net.export import export_model
from l3net.framing import iter_windows
from l3net.inputs import image_batch, prepare_image
from l3net.layers import layer_features
from l3net.media import load_audio, load_image
from l3net.models import build_model

HAS_ORT = importlib.util.find_spec("onnxruntime") is not None and importlib.util.find_spec("onnxscript") is not None
needs_ort = pytest.mark.skipif(not HAS_ORT, reason="onnxruntime/onnxscript not installed (pip install -e '.[export]')")

#: The graphs' stated parity with PyTorch: max |difference| / max |PyTorch's output| (measured ~1e-6).
PARITY = 1e-5
#: Presets whose front end l3net runs with pocketfft (tensorflow_stft): the NumPy one is then exact.
POCKETFFT_PRESETS = [name for name, config in PRESETS.items() if config.spectrogram.tensorflow_stft]
#: The others run torch.fft (MKL): the NumPy front end differs by FFT round-off, which the log
#: magnifies in near-silent bins (documented in l3net.frontend_numpy: up to ~1e-2 of the largest value).
TORCH_FFT_TOLERANCE = 3e-2


def relative(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.abs(got - want).max() / np.abs(want).max())


def session(path: Path):
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def real_windows(data_dir: Path, count: int = 3) -> np.ndarray:
    """``count`` one-second windows of real recordings (quiet and loud passages) at 48 kHz."""
    audio = np.concatenate([load_audio(data_dir / "audio" / name, duration=2.0) for name in
                            ("trumpet_44k_stereo.wav", "speech_librispeech_16k_mono.wav")])
    return np.stack([w.copy() for w in iter_windows([audio], 1.3, center=False)][:count])


def real_images(data_dir: Path, config, transfer: bool = False) -> torch.Tensor:
    paths = sorted(p for p in (data_dir / "photos").rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))[:3]
    return image_batch([prepare_image(load_image(p), config, transfer=transfer) for p in paths])


def load_frontend(directory: Path):
    """The exported frontend.py, imported from the export directory as a user would."""
    spec = importlib.util.spec_from_file_location(f"frontend_{directory.name}", directory / "frontend.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.Frontend.load(directory)


# Exporting a full-size preset takes ~10 s (more on a loaded machine): the small one is the quick check.
@pytest.fixture(scope="module", params=[name if name == "small" else pytest.param(name, marks=pytest.mark.slow) for name in PRESETS])
def exported(request, tmp_path_factory):
    """Every preset exported to ONNX once (both towers)."""
    if not HAS_ORT:
        pytest.skip("onnxruntime/onnxscript not installed (pip install -e '.[export]')")
    model = build_model(request.param, seed=0).eval()
    out = tmp_path_factory.mktemp(f"onnx-{request.param}")
    return model, export_model(model, out, "onnx")


# ------------------------------------------------------------------------------------------------
# ONNX, every preset
# ------------------------------------------------------------------------------------------------
@needs_ort
def test_audio_graph_matches_pytorch_for_every_preset_and_batch(exported, data_dir):
    model, result = exported
    windows = torch.from_numpy(real_windows(data_dir))
    with torch.inference_mode():
        spectrograms = model.frontend(windows)
        want = layer_features(model, "audio", windows, "pool4").numpy()
    graph = session(result.directory / "audio.onnx")
    for batch in (1, 3):  # the batch axis is dynamic
        got = graph.run(None, {"spectrogram": spectrograms[:batch].numpy()})[0]
        assert got.shape == want[:batch].shape
        assert relative(got, want[:batch]) <= PARITY


@needs_ort
def test_image_graph_matches_pytorch_for_every_preset_and_batch(exported, data_dir):
    model, result = exported
    images = real_images(data_dir, model.config)
    with torch.inference_mode():
        want = layer_features(model, "vision", images, "pool4").numpy()
    graph = session(result.directory / "image.onnx")
    for batch in (1, 3):
        got = graph.run(None, {"image": images[:batch].numpy()})[0]
        assert relative(got, want[:batch]) <= PARITY


@needs_ort
def test_numpy_frontend_and_onnx_give_l3nets_embeddings(exported, data_dir):
    """Waveform to embedding without torch in the loop: frontend.py, then onnxruntime."""
    model, result = exported
    windows = real_windows(data_dir)
    with torch.inference_mode():
        want = layer_features(model, "audio", torch.from_numpy(windows), "pool4").numpy()
    got = session(result.directory / "audio.onnx").run(None, {"spectrogram": load_frontend(result.directory)(windows)})[0]
    tolerance = PARITY if model.config.name in POCKETFFT_PRESETS else TORCH_FFT_TOLERANCE
    assert relative(got, want) <= tolerance


@needs_ort
def test_contract_describes_the_graphs(exported):
    model, result = exported
    contract = json.loads((result.directory / "contract.json").read_text())
    assert contract == result.contract and contract["model"] == model.config.name
    for stem, graph_input in (("audio", "spectrogram"), ("image", "image")):
        entry = contract[stem]
        graph = session(result.directory / entry["file"])
        (inp,), (out,) = graph.get_inputs(), graph.get_outputs()
        assert inp.name == entry["input"]["name"] == graph_input
        assert list(inp.shape[1:]) == entry["input"]["shape"][1:] and isinstance(inp.shape[0], str)  # dynamic batch
        assert out.shape[1] == entry["embedding_size"] == model.config.embedding_dim
    audio, image = contract["audio"], contract["image"]
    assert audio["sample_rate"] == SAMPLE_RATE and audio["window_samples"] == model.config.clip_samples
    assert audio["frontend"]["n_fft"] == model.config.spectrogram.n_fft and audio["framing"] == model.config.framing
    assert image["pixel_range"] == [0, 255] and image["crop"] == model.config.image_size
    assert image["resize_smaller_side"] == model.config.image_resize


# ------------------------------------------------------------------------------------------------
# the front end, alone
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("preset", POCKETFFT_PRESETS)
def test_numpy_frontend_is_l3nets_for_the_openl3_presets(preset, data_dir, tmp_path):
    from l3net.frontend_numpy import Frontend

    model = build_model(preset, seed=0).eval()
    export_model(model, tmp_path, "torchscript", modalities=("audio",))
    windows = np.concatenate([real_windows(data_dir), np.zeros((1, SAMPLE_RATE), np.float32)])  # silence too
    with torch.inference_mode():
        want = model.frontend(torch.from_numpy(windows)).numpy()
    got = Frontend.load(tmp_path)(windows)
    assert got.shape == want.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=0, atol=4e-5)  # dB in [-80, 0]: a few float32 ulps


def test_numpy_frontend_decimates_as_the_small_preset(data_dir, tmp_path):
    """The small preset's 48 -> 16 kHz FIR (stride 3) in NumPy."""
    model = build_model("small", seed=0).eval()
    export_model(model, tmp_path, "torchscript", modalities=("audio",))
    windows = torch.from_numpy(real_windows(data_dir))
    with torch.inference_mode():
        want = model.frontend.decimate(windows).numpy()
    got = load_frontend(tmp_path).decimate(windows.numpy())
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)


def test_exported_frontend_runs_without_torch_or_l3net(tmp_path):
    model = build_model("openl3-mel128", seed=0).eval()
    export_model(model, tmp_path, "torchscript", modalities=("audio",))
    code = (
        "import sys; sys.modules['torch'] = None; sys.modules['l3net'] = None\n"
        "import numpy as np; from frontend import Frontend\n"
        "x = np.random.default_rng(0).standard_normal((2, 48000)).astype(np.float32) * 0.1\n"
        "print(Frontend.load('.')(x).shape)"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "(2, 1, 128, 199)"


# ------------------------------------------------------------------------------------------------
# TorchScript, layers, models from files, the CLI
# ------------------------------------------------------------------------------------------------
def test_torchscript_matches_pytorch_with_a_dynamic_batch(data_dir, tmp_path):
    model = build_model("small", seed=0).eval()
    result = export_model(model, tmp_path, "torchscript")
    assert {p.name for p in result.files} >= {"audio.pt", "image.pt", "contract.json", "frontend.py", "frontend.npz"}
    windows = torch.from_numpy(real_windows(data_dir))
    images = real_images(data_dir, model.config)
    for modality, stem, x in (("audio", "audio", windows), ("vision", "image", images)):
        with torch.inference_mode():
            want = layer_features(model, modality, x, "pool4").numpy()
            graph = torch.jit.load(str(tmp_path / f"{stem}.pt"))
            tower_input = model.frontend(x) if modality == "audio" else x
            for batch in (1, 3):
                assert relative(graph(tower_input[:batch]).numpy(), want[:batch]) <= PARITY


@needs_ort
def test_another_layer_is_exported_with_its_size_and_input(data_dir, tmp_path):
    model = build_model("small", seed=0).eval()
    result = export_model(model, tmp_path, "onnx", audio_layer="conv4_2", image_layer="conv4_2")
    windows = torch.from_numpy(real_windows(data_dir))
    images = real_images(data_dir, model.config, transfer=True)  # conv4_2 sees the transfer square
    assert result.contract["image"]["crop"] == model.config.transfer_image_size
    with torch.inference_mode():
        want_audio = layer_features(model, "audio", windows, "conv4_2").numpy()
        want_image = layer_features(model, "vision", images, "conv4_2").numpy()
        spectrograms = model.frontend(windows).numpy()
    got_audio = session(tmp_path / "audio.onnx").run(None, {"spectrogram": spectrograms})[0]
    got_image = session(tmp_path / "image.onnx").run(None, {"image": images.numpy()})[0]
    assert result.contract["audio"]["embedding_size"] == want_audio.shape[1] == got_audio.shape[1]
    assert relative(got_audio, want_audio) <= PARITY and relative(got_image, want_image) <= PARITY


def test_cli_exports_a_model_directory(tmp_path, capsys):
    """A saved model (what a training run leaves) resolved through modelspec, one tower asked for."""
    model_dir = build_model("small", seed=3).save(tmp_path / "run")
    out = tmp_path / "exported"
    assert main(["export", str(model_dir), "--format", "torchscript", "--out", str(out), "--towers", "image"]) == 0
    printed = capsys.readouterr().out
    assert "image.pt" in printed and "audio" not in printed.split("contract.json")[0]
    contract = json.loads((out / "contract.json").read_text())
    assert "audio" not in contract and contract["image"]["file"] == "image.pt"
    images = real_images_any(model_dir)
    with torch.inference_mode():
        want = layer_features(l3net.load_model(model_dir), "vision", images, "pool4").numpy()
        got = torch.jit.load(str(out / "image.pt"))(images).numpy()
    assert relative(got, want) <= PARITY


def real_images_any(_model_dir: Path) -> torch.Tensor:
    rng = np.random.default_rng(0)
    return torch.from_numpy(rng.integers(0, 256, (2, 3, 96, 96), dtype=np.uint8))


def test_a_converted_openl3_audio_model_exports_its_one_tower(data_dir, tmp_path, capsys):
    from l3net.openl3 import convert

    model_dir = convert([data_dir / "openl3" / "openl3_audio_mel128_random.h5"], tmp_path / "openl3")
    out = tmp_path / "exported"
    assert main(["export", str(model_dir), "--format", "torchscript", "--out", str(out)]) == 0
    assert (out / "audio.pt").is_file() and not (out / "image.pt").exists()
    contract = json.loads((out / "contract.json").read_text())
    assert "image" not in contract and contract["audio"]["frontend"]["mel_bands"] == 128
    capsys.readouterr()
    # asking for the tower it lacks: a clear error naming the fix, nothing written
    assert main(["export", str(model_dir), "--out", str(tmp_path / "none"), "--towers", "image"]) == 2
    assert "has no image network" in capsys.readouterr().err
    assert not (tmp_path / "none" / "image.onnx").exists()


def test_unknown_format_and_layer_are_refused(tmp_path):
    model = build_model("small", seed=0)
    with pytest.raises(l3net.InputError, match="format must be one of"):
        export_model(model, tmp_path, "tflite")
    with pytest.raises(l3net.InputError, match="unknown layer"):
        export_model(model, tmp_path, "torchscript", audio_layer="conv9")
    assert not list(tmp_path.iterdir())


def test_export_leaves_the_callers_model_as_it_was(tmp_path):
    model = build_model("small", seed=0).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    export_model(model, tmp_path, "torchscript")
    assert model.training and all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_onnx_without_its_packages_names_the_extra(tmp_path, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxscript" else real(name, *a))
    with pytest.raises(l3net.InputError, match=r"needs onnxscript: pip install 'l3net\[export\]'"):
        export_model(build_model("small", seed=0), tmp_path, "onnx")
