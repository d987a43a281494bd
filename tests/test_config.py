"""Presets as data: the paper's numbers, the small preset, (de)serialisation and validation."""

from __future__ import annotations

import json

import pytest

from l3net.config import CLIP_SECONDS, PRESETS, SAMPLE_RATE, ModelConfig, SpectrogramConfig, get_preset


def test_paper_preset_is_the_paper():
    c = get_preset("paper")
    assert SAMPLE_RATE == 48_000 and CLIP_SECONDS == 1.0 and c.clip_samples == 48_000
    assert c.channels == (64, 128, 256, 512) and c.convs_per_block == 2 and c.head_hidden == 128
    assert (c.image_resize, c.image_size, c.transfer_image_size) == (256, 224, 256)
    s = c.spectrogram
    assert (s.sample_rate, s.win_length, s.hop_length, s.n_fft, s.window) == (48_000, 480, 240, 512, "hann")
    assert c.spectrogram_shape == (257, 199)
    assert c.embedding_dim == 512 and c.transfer_dim("audio") == 6144 and c.transfer_dim("vision") == 8192


def test_small_preset():
    c = get_preset("small")
    assert c.channels == (16, 32, 64, 128) and c.image_size < c.image_resize
    assert c.spectrogram.decimation == 3 and c.spectrogram_shape == (161, 50)
    assert c.clip_samples == SAMPLE_RATE  # input audio is always 48 kHz; decimated on the device


def test_frame_count_and_pitfall():
    s = SpectrogramConfig()
    assert s.num_frames(48_000) == 199  # not 198 (512-sample frames) nor 201 (centred)
    assert s.num_frames(480) == 1 and s.num_frames(96_000) == 399
    with pytest.raises(ValueError, match="shorter than one window"):
        s.num_frames(479)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_round_trip_through_json(name):
    config = PRESETS[name]
    data = json.loads(json.dumps(config.to_dict()))
    assert ModelConfig.from_dict(data) == config
    assert config.replace(head_hidden=64).head_hidden == 64 and config.head_hidden == 128


@pytest.mark.parametrize(
    "change,match",
    [
        ({"channels": []}, "at least one block"),
        ({"channels": [64, 0]}, "positive integer"),
        ({"channels": [64.5]}, "positive integer"),
        ({"image_size": 300}, "must not exceed image_resize"),
        ({"image_std": [0, 1, 1]}, "positive"),
        ({"image_mean": [0.5, 0.5]}, "3 numbers"),
        ({"audio_transfer_grid": [4]}, r"\(height, width\)"),
        ({"clip_seconds": 0}, "clip_seconds"),
        ({"clip_seconds": 0.005}, "shorter than one window"),
        ({"spectrogram": {"sample_rate": 44_100}}, "must divide"),
        ({"spectrogram": {"win_length": 600}}, "win_length"),
        ({"spectrogram": {"power": 3}}, "power"),
        ({"spectrogram": {"window": "kaiser"}}, "unknown window"),
        ({"spectrogram": {"log_floor": 0}}, "log_floor"),
        ({"spectrogram": {"hop": 1}}, "unknown spectrogram config fields: hop"),
        ({"depth": 3}, "unknown model config fields: depth"),
    ],
)
def test_invalid_configs(change, match):
    data = PRESETS["paper"].to_dict()
    for key, value in change.items():
        if isinstance(value, dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    with pytest.raises(ValueError, match=match):
        ModelConfig.from_dict(data)


def test_unknown_preset():
    with pytest.raises(KeyError, match="available: " + ", ".join(sorted(PRESETS))):
        get_preset("huge")
