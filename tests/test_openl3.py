"""OpenL3's networks in l3net: the presets and front ends, the converter, discovery and the cache.

The parity with openl3 0.4.2's own outputs is in test_openl3_parity.py; the converted models in
the commands in test_openl3_commands.py. Fixtures: ../shared/data/openl3 (random weights in the
published layout, see its README).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from l3net import load_model
from l3net.cli import main as cli_main
from l3net.config import PRESETS, SpectrogramConfig
from l3net.errors import InputError, ModelFileError
from l3net.models import CONFIG_FILE, WEIGHTS_FILE, build_model
from l3net.openl3 import CACHE_ENV, OPENL3_DIR_ENV, convert, inspect_keras_file, openl3_model_dir, read_keras_weights
from l3net.spectrogram import LogSpectrogram, _hz_to_mel, _mel_to_hz, mel_filterbank, tensorflow_hann_window

FIXTURES = ("linear", "mel128", "mel256")


@pytest.fixture(scope="module")
def openl3_dir(data_dir: Path) -> Path:
    return data_dir / "openl3"


@pytest.fixture(scope="module")
def mel256_dir(openl3_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """openl3_audio_mel256_random.h5 + openl3_image_random.h5 converted once for this module."""
    out = tmp_path_factory.mktemp("openl3") / "mel256"
    return convert([openl3_dir / "openl3_audio_mel256_random.h5", openl3_dir / "openl3_image_random.h5"], out)


# ------------------------------------------------------------------------------------------------
# presets and front ends
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name,shape", [("openl3-linear", (257, 197)), ("openl3-mel128", (128, 199)), ("openl3-mel256", (256, 199))]
)
def test_openl3_presets_have_openl3s_sizes(name, shape):
    config = PRESETS[name]
    assert config.spectrogram_shape == shape  # kapre: 257 x 197 (no end padding), mel: ceil(48000 / 242)
    assert config.embedding_dim == 512 and config.transfer_dim("audio") == 6144 and config.transfer_dim("vision") == 8192
    model = build_model(name)
    shapes = model.output_shapes()
    audio = shapes["audio {}x{}".format(*shape)]
    # OpenL3's last audio conv map: 32 x 24 (linear, mel256) or 16 x 24 (mel128), pooled to 4 x 3.
    assert audio["conv4_2"] == (512, 16 if name == "openl3-mel128" else 32, 24)
    assert shapes["vision 224x224"]["conv4_2"] == (512, 28, 28)
    assert "conv4_2_prerelu" not in model.audio.feature_names  # conv4_2 has no ReLU
    assert model.transfer_layer("audio") == "conv4_2" == model.transfer_layer("vision")
    assert model.audio.input_bn is not None and model.vision.layers["conv4_2"].bn is None
    assert model.vision.layers["conv1_2"].relu_before_bn and not model.audio.layers["conv1_2"].relu_before_bn
    assert model.audio.layers["conv1_1"].conv.bias is not None and model.audio.layers["conv1_1"].bn.eps == 1e-3


def test_paper_preset_unchanged_by_the_openl3_options():
    model = build_model("paper")
    assert model.audio.input_bn is None and model.audio.layers["conv1_1"].conv.bias is None
    assert model.transfer_layer("audio") == "conv4_2_prerelu"
    assert not any(k.startswith("audio.input_bn") for k in model.state_dict())


def test_decibel_front_end_is_per_clip_and_gain_free():
    front = LogSpectrogram(PRESETS["openl3-mel256"].spectrogram)
    torch.manual_seed(0)
    x = torch.randn(2, 48_000) * torch.tensor([[1.0], [0.01]])
    out = front(x)
    assert out.shape == (2, 1, 256, 199)
    # referenced to each clip's own maximum: 0 dB at the peak, nothing under -80 dB
    assert torch.allclose(out.amax(dim=(1, 2, 3)), torch.zeros(2)) and out.min() >= -80.0
    # so a gain on one clip changes nothing (10 log10 of magnitudes: a constant per clip)
    assert torch.allclose(front(x * 7.0), out, atol=1e-3)
    quiet = torch.zeros(1, 48_000)
    quiet[0, 1000] = 1.0  # one click: most of the clip is 80 dB below it, clipped
    assert (front(quiet) == -80.0).float().mean() > 0.5


def test_linear_front_end_frames_whole_windows_and_mel_pads_the_end():
    linear = SpectrogramConfig(win_length=512, n_fft=512, hop_length=242, scale="db")
    assert linear.num_frames(48_000) == 197 and linear.num_bins == 257
    mel = SpectrogramConfig(win_length=2048, n_fft=2048, hop_length=242, scale="db", mel_bands=128, pad_end=True)
    assert mel.num_frames(48_000) == 199 and mel.num_frames(48_400) == 200 and mel.num_bins == 128
    # pad_end: a sine's last frames run into zeros, so they hold less energy than the middle ones
    sine = torch.sin(torch.arange(48_000) * 2 * torch.pi * 1000 / 48_000).unsqueeze(0)
    out = LogSpectrogram(mel)(sine)[0, 0]
    assert out[:, -1].max() < out[:, 100].max()


@pytest.mark.parametrize("length", [512, 2048])
def test_shipped_windows_are_float32_periodic_hann(length):
    window = tensorflow_hann_window(length)
    assert window.dtype == np.float32 and window.shape == (length,)
    hann64 = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(length) / length)  # periodic: length, not length - 1
    # TensorFlow computes the cosine in float32: a few float32 steps (1.2e-7 near 1) from the exact one
    assert np.abs(window - hann64).max() <= 3e-7
    # the openl3 presets use them (the paper's keeps torch's 480-point window)
    for name in ("openl3-linear", "openl3-mel128", "openl3-mel256"):
        front = LogSpectrogram(PRESETS[name].spectrogram)
        if front.config.win_length == length:
            assert np.array_equal(front.window.numpy(), window)
    assert torch.equal(LogSpectrogram(PRESETS["paper"].spectrogram).window, torch.hann_window(480))


def test_a_damaged_window_file_is_refused_by_name(tmp_path):
    torch_window = tmp_path / "float64.npz"
    np.savez(torch_window, hann_512=torch.hann_window(512, dtype=torch.float64).numpy())
    symmetric = tmp_path / "symmetric.npz"
    np.savez(symmetric, hann_512=np.hanning(512).astype(np.float32))
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip file")
    for path in (torch_window, symmetric, garbage):
        with pytest.raises(ModelFileError, match=path.name):
            tensorflow_hann_window(512, path)
    with pytest.raises(ModelFileError, match="hann_2048"):
        tensorflow_hann_window(2048, symmetric)
    with pytest.raises(ValueError, match="tensorflow_stft"):
        SpectrogramConfig(tensorflow_stft=True).validate()  # 480-point window: none shipped


def test_configs_written_before_tensorflow_stft_get_it_for_the_db_scale():
    from l3net.config import ModelConfig

    for name, expected in (("openl3-mel256", True), ("openl3-linear", True), ("paper", False), ("small", False)):
        data = PRESETS[name].to_dict()
        del data["spectrogram"]["tensorflow_stft"]  # a config.json from before the field
        assert ModelConfig.from_dict(data).spectrogram.tensorflow_stft is expected, name


def test_openl3_front_end_computes_pocketfft_spectra_on_the_cpu():
    """The CPU STFT is SciPy's pocketfft on TensorFlow's window (bit-identical to tf.signal.stft):
    the same values batched or alone, under no_grad, inference_mode and with autograd on."""
    import scipy.fft

    config = PRESETS["openl3-linear"].spectrogram
    front = LogSpectrogram(config)
    torch.manual_seed(0)
    x = torch.randn(3, 24_000)
    frames = x.unfold(-1, 512, 242) * torch.tensor(tensorflow_hann_window(512))
    magnitude = torch.from_numpy(scipy.fft.rfft(frames.numpy(), n=512)).abs()
    decibels = 10.0 * torch.log10(magnitude.clamp(min=config.db_amin))
    expected = torch.maximum(decibels - decibels.amax(dim=(1, 2), keepdim=True), torch.tensor(-80.0))
    expected = expected.transpose(1, 2).unsqueeze(1)
    out = front(x)
    assert torch.equal(out, expected)
    with torch.no_grad():
        assert torch.equal(front(x), expected)
        assert torch.equal(front(x[1:2]), expected[1:2])
    with torch.inference_mode():
        assert torch.equal(front(x), expected)
    # a waveform that needs a gradient takes torch.fft (differentiable): the same up to round-off
    leaf = x.clone().requires_grad_(True)
    with_grad = front(leaf)
    loud = expected > -60.0  # away from the round-off floor
    assert torch.allclose(with_grad[loud], expected[loud], atol=1e-3)
    with_grad.sum().backward()
    assert leaf.grad is not None and torch.isfinite(leaf.grad).all()


def test_mel_filterbank_is_slaney_normalised():
    filters = mel_filterbank(48_000, 2048, 128)
    assert filters.shape == (1025, 128) and filters.min() >= 0
    bin_hz = 48_000 / 2048
    areas = filters.sum(axis=0) * bin_hz  # each triangle is scaled to unit area (in Hz)
    assert np.allclose(areas[64:], 1.0, rtol=0.01)  # wide triangles: the sampled area is exact
    peaks = filters.argmax(axis=0)
    assert np.all(np.diff(peaks) >= 0) and peaks[-1] > 900  # increasing centres up to near Nyquist
    # Slaney's scale: linear below 1 kHz (15 mels), 27 mels per factor 6.4 above; invertible
    assert np.isclose(_hz_to_mel(1000.0), 15.0) and np.isclose(_hz_to_mel(6400.0), 42.0)
    assert np.isclose(_hz_to_mel(500.0), 7.5)
    hz = np.array([0.0, 300.0, 999.0, 1000.0, 5000.0, 24_000.0])
    assert np.allclose(_mel_to_hz(_hz_to_mel(hz)), hz)


# ------------------------------------------------------------------------------------------------
# reading and converting
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("front_end", FIXTURES)
def test_inspect_recognises_audio_files(openl3_dir, front_end):
    info = inspect_keras_file(openl3_dir / f"openl3_audio_{front_end}_random.h5")
    assert (info.modality, info.front_end, info.content_type) == ("audio", front_end, "random")
    assert len(info.tower_layers) == 16  # input BatchNorm, 8 convs, 7 BatchNorms


def test_inspect_recognises_the_image_file(openl3_dir):
    info = inspect_keras_file(openl3_dir / "openl3_image_random.h5")
    assert info.modality == "vision" and info.front_end is None and len(info.tower_layers) == 16


def test_converted_weights_are_the_files_weights(openl3_dir, mel256_dir):
    model = load_model(mel256_dir)
    assert model.absent == frozenset({"head"}) and model.config.name == "openl3-mel256"
    layers = [l for l in read_keras_weights(openl3_dir / "openl3_image_random.h5") if l.arrays]
    gamma, beta, mean, var = layers[0].arrays
    assert np.array_equal(model.vision.input_bn.running_var.numpy(), var)
    kernel, bias = layers[-1].arrays  # vision_embedding_layer
    assert np.array_equal(model.vision.layers["conv4_2"].conv.weight.detach().numpy(), kernel.transpose(3, 2, 0, 1))
    assert np.array_equal(model.vision.layers["conv4_2"].conv.bias.detach().numpy(), bias)
    # the quirk block: conv1_2's BatchNorm is the one after its ReLU, 4th weighted layer of the file
    assert np.array_equal(model.vision.layers["conv1_2"].bn.weight.detach().numpy(), layers[4].arrays[0])
    saved = (mel256_dir / WEIGHTS_FILE).read_bytes()
    assert b"head.fc1" not in saved  # no made-up head in the file


def test_nested_model_weights_layout_converts_the_same(openl3_dir, tmp_path):
    source = openl3_dir / "openl3_audio_linear_random.h5"
    nested = tmp_path / "openl3_audio_linear_env.h5"
    with h5py.File(source, "r") as src, h5py.File(nested, "w") as dst:
        group = dst.create_group("model_weights")
        for key, value in src.attrs.items():
            group.attrs[key] = value
        for name in src:
            src.copy(src[name], group, name=name)
    a = load_model(convert([source], tmp_path / "flat"))
    b = load_model(convert([nested], tmp_path / "nested"))
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)


def _assert_nothing_written(out: Path) -> None:
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")]


@pytest.mark.parametrize("bad", ["corrupt_header.wav", "empty.wav", "not_media.mp4", "truncated.mp4"])
def test_files_that_are_not_hdf5_are_refused(data_dir, tmp_path, bad):
    out = tmp_path / "model"
    with pytest.raises(ModelFileError, match=bad.replace(".", r"\.") + ".*(HDF5|truncated)"):
        convert([data_dir / "bad" / bad], out)
    _assert_nothing_written(out)


def test_a_truncated_fixture_is_refused(openl3_dir, tmp_path):
    data = (openl3_dir / "openl3_audio_mel128_random.h5").read_bytes()
    truncated = tmp_path / "openl3_audio_mel128_env.h5"
    truncated.write_bytes(data[: len(data) // 2])
    out = tmp_path / "model"
    with pytest.raises(ModelFileError, match="openl3_audio_mel128_env.h5.*truncated"):
        convert([truncated], out)
    _assert_nothing_written(out)


def test_another_keras_network_is_refused(tmp_path):
    other = tmp_path / "openl3_audio_mel256_env.h5"
    with h5py.File(other, "w") as f:
        f.attrs["layer_names"] = [b"batch_normalization", b"conv2d"]
        for name, arrays in (("batch_normalization", [(1,)] * 4), ("conv2d", [(3, 3, 1, 32), (32,)])):
            g = f.create_group(name)
            names = [f"{name}/w{i}:0".encode() for i in range(len(arrays))]
            g.attrs["weight_names"] = names
            for n, shape in zip(names, arrays):
                g[n.decode()] = np.zeros(shape, np.float32)
    out = tmp_path / "model"
    with pytest.raises(ModelFileError, match="not an OpenL3 audio network: it has 2 weighted layers"):
        convert([other], out)
    _assert_nothing_written(out)


def test_front_end_from_name_flag_or_error(openl3_dir, tmp_path):
    renamed = tmp_path / "my_model.h5"
    os.symlink(openl3_dir / "openl3_audio_mel128_random.h5", renamed)
    with pytest.raises(ModelFileError, match="cannot tell which front end.*--front-end"):
        convert([renamed], tmp_path / "a")
    _assert_nothing_written(tmp_path / "a")
    assert load_model(convert([renamed], tmp_path / "b", front_end="mel128")).config.name == "openl3-mel128"
    unknown = tmp_path / "openl3_audio_mel64_env.h5"
    os.symlink(openl3_dir / "openl3_audio_mel128_random.h5", unknown)
    with pytest.raises(ModelFileError, match="unknown OpenL3 front end 'mel64'"):
        convert([unknown], tmp_path / "c")
    wrong = tmp_path / "openl3_image_mel256_env.h5"
    os.symlink(openl3_dir / "openl3_audio_mel128_random.h5", wrong)
    with pytest.raises(ModelFileError, match="named as an image network, but its layers are those of an audio"):
        convert([wrong], tmp_path / "d")


def test_pairing_rules(openl3_dir, tmp_path):
    audio = [openl3_dir / f"openl3_audio_{f}_random.h5" for f in ("linear", "mel256")]
    with pytest.raises(InputError, match="at most one audio and one image"):
        convert(audio, tmp_path / "a")
    image = tmp_path / "openl3_image_linear_env.h5"
    os.symlink(openl3_dir / "openl3_image_random.h5", image)
    with pytest.raises(InputError, match="not of the same kind"):
        convert([audio[1], image], tmp_path / "b")
    _assert_nothing_written(tmp_path / "b")


def test_existing_output_is_kept_unless_overwrite(openl3_dir, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="not empty"):
        convert([openl3_dir / "openl3_image_random.h5"], out)
    with pytest.raises(InputError, match="not an l3net model directory"):
        convert([openl3_dir / "openl3_image_random.h5"], out, overwrite=True)
    assert (out / "notes.txt").read_text() == "mine"


def test_image_only_model_refuses_audio(openl3_dir, tmp_path):
    model = load_model(convert([openl3_dir / "openl3_image_random.h5"], tmp_path / "img"))
    assert model.absent == frozenset({"head", "audio"})
    assert model.embed("vision", torch.zeros(1, 3, 224, 224, dtype=torch.uint8)).shape == (1, 512)
    with pytest.raises(ModelFileError, match="has no audio network.*convert the audio file"):
        model.embed("audio", torch.zeros(1, 48_000))


def test_converted_model_has_no_head_and_says_so(mel256_dir):
    model = load_model(mel256_dir)
    with pytest.raises(ModelFileError, match="no AVC fusion head.*openl3 issue #58.*--init-from"):
        model(torch.zeros(1, 3, 224, 224, dtype=torch.uint8), torch.zeros(1, 48_000))


def test_cli_convert(openl3_dir, tmp_path, capsys):
    out = tmp_path / "cli"
    assert cli_main(["convert", "openl3", str(openl3_dir / "openl3_audio_linear_random.h5"), "--out", str(out)]) == 0
    assert "openl3-linear" in capsys.readouterr().out and (out / CONFIG_FILE).is_file()
    assert cli_main(["convert", "openl3", str(tmp_path / "missing.h5"), "--out", str(tmp_path / "x")]) == 2
    assert "missing.h5: no such file" in capsys.readouterr().err
    _assert_nothing_written(tmp_path / "x")


# ------------------------------------------------------------------------------------------------
# "openl3:NAME": discovery and the cache
# ------------------------------------------------------------------------------------------------
@pytest.fixture
def published(openl3_dir, tmp_path, monkeypatch) -> Path:
    """A folder with two fixtures under OpenL3's published names, and a cache in tmp_path."""
    folder = tmp_path / "weights"
    folder.mkdir()
    os.symlink(openl3_dir / "openl3_audio_mel128_random.h5", folder / "openl3_audio_mel128_env.h5")
    os.symlink(openl3_dir / "openl3_image_random.h5", folder / "openl3_image_mel128_env.h5")
    monkeypatch.setenv(OPENL3_DIR_ENV, str(folder))
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    return folder


def test_openl3_spec_converts_once_into_the_cache(published, tmp_path):
    model = load_model("openl3:mel128-env")
    assert model.config.name == "openl3-mel128" and model.absent == frozenset({"head"})
    directory = tmp_path / "cache" / "openl3" / "mel128-env"
    assert model.directory == directory.resolve()
    stamp = (directory / WEIGHTS_FILE).stat().st_mtime_ns
    load_model("openl3:mel128-env")
    assert (directory / WEIGHTS_FILE).stat().st_mtime_ns == stamp  # reused, not converted again
    # a changed source file is converted again
    target = published / "openl3_audio_mel128_env.h5"
    real = Path(os.readlink(target))
    target.unlink()
    shutil.copy(real, target)
    assert openl3_model_dir("openl3:mel128-env") == directory
    assert (directory / WEIGHTS_FILE).stat().st_mtime_ns != stamp


def test_openl3_spec_not_found_says_where_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv(OPENL3_DIR_ENV, str(tmp_path / "nowhere"))
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    with pytest.raises(ModelFileError, match=r"openl3_audio_mel256_music\.h5.*github\.com/marl/openl3.*L3NET_OPENL3_DIR"):
        load_model("openl3:mel256-music")
    with pytest.raises(ModelFileError, match="front end one of linear, mel128, mel256"):
        load_model("openl3:mel512-env")
    assert not (tmp_path / "cache").exists()
