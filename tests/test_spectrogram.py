"""The log-spectrogram front end: 257 x 199, equal to scipy.signal.stft on real audio, the pitfall."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from scipy import signal

from l3net.config import PRESETS, SpectrogramConfig
from l3net.media import load_audio
from l3net.spectrogram import LogSpectrogram

import signals as S


def scipy_magnitude(x: np.ndarray, config: SpectrogramConfig) -> np.ndarray:
    """|STFT| as the paper describes it, computed by scipy (which divides by the window's sum)."""
    _, _, z = signal.stft(
        x, fs=config.sample_rate, window=config.window, nperseg=config.win_length,
        noverlap=config.win_length - config.hop_length, nfft=config.n_fft, boundary=None, padded=False,
    )
    return np.abs(z) * signal.get_window(config.window, config.win_length).sum()


@pytest.mark.parametrize("name", ["voice_front_center_48k_mono.wav", "brahms_strings_48k_stereo.opus"])
def test_equals_scipy_stft_on_real_audio(data_dir, name):
    config = SpectrogramConfig()
    x = load_audio(data_dir / "audio" / name, duration=1.0)
    assert x.shape == (48_000,)
    ours = LogSpectrogram(config)(torch.from_numpy(x)[None])[0, 0].numpy()
    assert ours.shape == (257, 199)
    expected = np.log(scipy_magnitude(x.astype(np.float64), config) + config.log_floor)
    assert expected.shape == (257, 199)
    # Our float32 FFT against scipy's float64: magnitudes agree to float32 precision of the loudest
    # bin; in the log domain, exactly (1e-4) wherever the magnitude is well above that precision.
    magnitude, reference = np.exp(ours) - config.log_floor, np.exp(expected) - config.log_floor
    np.testing.assert_allclose(magnitude, reference, atol=1e-5 * reference.max(), rtol=0)
    loud = reference > 1e-2
    assert loud.mean() > 0.3
    np.testing.assert_allclose(ours[loud], expected[loud], atol=1e-4, rtol=0)


def test_the_198_frame_pitfall():
    x = torch.from_numpy(S.noise(1.0))
    window = torch.hann_window(480)
    wrong = torch.stft(x, n_fft=512, hop_length=240, win_length=480, window=window, center=False, return_complex=True)
    centred = torch.stft(x, n_fft=512, hop_length=240, win_length=480, window=window, center=True, return_complex=True)
    assert wrong.shape == (257, 198) and centred.shape == (257, 201)
    assert LogSpectrogram()(x[None]).shape == (1, 1, 257, 199)


def test_longer_audio_and_power():
    spec = LogSpectrogram()(torch.from_numpy(S.chirp(seconds=2.5))[None])
    assert spec.shape == (1, 1, 257, 499)
    power_config = dataclasses.replace(SpectrogramConfig(), power=2.0)
    x = torch.from_numpy(S.tone(1000, 1.0))[None]
    magnitude, power = LogSpectrogram()(x), LogSpectrogram(power_config)(x)
    peak = magnitude[0, 0, :, 100].argmax()
    assert peak == round(1000 / (48_000 / 512))  # the tone's bin
    np.testing.assert_allclose(power[0, 0, peak], 2 * magnitude[0, 0, peak], rtol=1e-3)


def test_silence_is_finite_and_at_the_floor():
    config = SpectrogramConfig()
    spec = LogSpectrogram(config)(torch.zeros(2, 48_000))
    assert torch.isfinite(spec).all()
    assert torch.allclose(spec, torch.full_like(spec, np.log(config.log_floor)))


def test_small_preset_decimates_without_aliasing():
    front = LogSpectrogram(PRESETS["small"].spectrogram)
    inside, outside = (front(torch.from_numpy(S.tone(f, 1.0))[None])[0, 0] for f in (1000, 12_000))
    assert inside.shape == (161, 50)
    assert inside[:, 25].argmax() == 1000 // 50  # 16 kHz / 320-point FFT = 50 Hz per bin
    # A 12 kHz tone is above the 8 kHz Nyquist of the decimated signal: filtered out, not folded to 4 kHz.
    assert inside.exp().sum() > 1000 * outside.exp().sum() / 100  # > 40 dB attenuation
    assert outside[4000 // 50, 25] < inside[1000 // 50, 25] - np.log(100)


def test_batch_independent_and_autocast_safe():
    front = LogSpectrogram(PRESETS["small"].spectrogram)
    x = torch.from_numpy(np.stack([S.chirp(seconds=1.0), S.noise(1.0)]))
    together = front(x)
    assert torch.equal(together[:1], front(x[:1]))  # a single row gets the same kernel as a batch
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert front(x).dtype == torch.float32


def test_bad_inputs():
    with pytest.raises(ValueError, match="shape"):
        LogSpectrogram()(torch.zeros(48_000))
    with pytest.raises(ValueError, match="shorter than one window"):
        LogSpectrogram()(torch.zeros(1, 100))


def test_db_front_end_makes_no_tensor_from_host_numbers():
    """OpenL3's dB floor is a buffer (on the module's device): a tensor made from a host number in
    the forward (``new_tensor``, ``torch.tensor``: aten.lift_fresh) would be a host copy per call on a GPU.
    Checked on the path GPUs take (torch.fft; the CPU's SciPy FFT makes its result on the host by design)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Ops(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.seen: set[str] = set()

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.seen.add(str(func))
            return func(*args, **(kwargs or {}))

    config = dataclasses.replace(PRESETS["openl3-linear"].spectrogram, tensorflow_stft=False)
    assert config.scale == "db"
    spec = LogSpectrogram(config)
    assert spec.db_floor.item() == -config.db_range and "db_floor" not in spec.state_dict()
    x = 0.1 * torch.randn(2, 48_000, generator=torch.Generator().manual_seed(0))
    with Ops() as ops:
        out = spec(x)
    assert "aten.maximum.default" in ops.seen  # the floor is applied ...
    assert not {"aten.lift_fresh.default", "aten._to_copy.default", "aten.scalar_tensor.default"} & ops.seen  # ... from the buffer
    assert float(out.min()) >= -config.db_range and float(out.amax(dim=(1, 2, 3)).max()) == 0.0
