"""The embedding API: framing, timestamps, padding, batch invariance, layers, bad input, files."""

from __future__ import annotations

import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import l3net
from l3net import embed, embed_core
from l3net.config import SAMPLE_RATE
from l3net.embed import embedding_size, get_audio_embedding, get_image_embedding
from l3net.embed_core import embedding_model
from l3net.inputs import prepare_image
from l3net.embed_files import process_audio_file, process_image_file, process_video_file
from l3net.framing import iter_windows, window_count, window_start, window_timestamps
from l3net.errors import InputError, MediaError, OutputError
from l3net.media import load_audio
from l3net.models import build_model

import signals as S

# Batch invariance: a window's embedding may differ by float rounding between batch sizes (oneDNN
# picks kernels by shape). Measured: <= 4e-6 for embeddings of magnitude ~4. Stated tolerance:
BATCH_ATOL = 1e-5

GOLDEN = Path(__file__).parent / "golden" / "small_seed0.npz"


@pytest.fixture(scope="module")
def model():
    """A tiny model: the API's plumbing does not depend on the network's size."""
    return build_model(S.tiny_config(), seed=0).eval()


@pytest.fixture(scope="module")
def small():
    return build_model("small", seed=0).eval()


def reference_windows(x: np.ndarray, hop: float, center: bool, window: int = SAMPLE_RATE) -> np.ndarray:
    """Windows cut independently of the framer: an explicitly zero-padded signal, sliced."""
    n = len(x)
    if center:
        count = int(np.floor(n / (hop * SAMPLE_RATE) + 1e-9)) + 1
    else:
        hop_samples = hop * SAMPLE_RATE
        count = 1 if n <= window else min(int(np.ceil((n - window) / hop_samples - 1e-9)) + 1, int(np.ceil(n / hop_samples - 1e-9)))
    left = window // 2 if center else 0
    padded = np.concatenate([np.zeros(left, np.float32), x, np.zeros(window + int(hop * SAMPLE_RATE) * 2, np.float32)])
    starts = [round(k * hop * SAMPLE_RATE) for k in range(count)]
    return np.stack([padded[s : s + window] for s in starts])


# ------------------------------------------------------------------------------------------------
# framing
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("center", [True, False])
@pytest.mark.parametrize("seconds", [0.001, 0.3, 0.9999, 1.0, 1.0001, 2.05, 3.7])
@pytest.mark.parametrize("hop", [0.1, 0.25, 1.0, 1 / 3, 2.5])
def test_windows_match_reference(center, seconds, hop):
    n = max(1, round(seconds * SAMPLE_RATE))
    x = np.arange(1, n + 1, dtype=np.float32)  # every sample distinct: any misplacement shows
    expected = reference_windows(x, hop, center)
    got = np.stack([w.copy() for w in iter_windows([x], hop, center)])
    assert got.shape == expected.shape
    assert np.array_equal(got, expected)
    assert window_count(n, hop, center) == len(expected)
    # The same windows when the audio arrives in odd-sized chunks (the file path).
    chunks = [x[i : i + 7919] for i in range(0, n, 7919)]
    streamed = np.stack([w.copy() for w in iter_windows(iter(chunks), hop, center)])
    assert np.array_equal(streamed, expected)


def test_window_counts_documented():
    # center=True: timestamps 0 .. duration; center=False: every sample covered.
    assert window_count(SAMPLE_RATE, 0.1, center=True) == 11
    assert window_count(SAMPLE_RATE, 0.1, center=False) == 1
    assert window_count(SAMPLE_RATE + 1, 0.1, center=False) == 2
    assert window_count(5 * SAMPLE_RATE, 4 / 9, center=False) == 10  # ESC-50's 10 subclips of 5 s
    assert window_count(30 * SAMPLE_RATE, 29 / 59, center=False) == 60  # DCASE's 60 subclips of 30 s
    assert window_count(1, 0.1, center=True) == 1  # never zero windows


def test_timestamps_exact_after_an_hour():
    hop = 0.1
    n = 3600 * SAMPLE_RATE
    count = window_count(n, hop, center=True)
    assert count == 36001
    stamps = window_timestamps(count, hop)
    assert stamps.dtype == np.float64
    assert np.array_equal(stamps, np.arange(count) * hop)
    assert stamps[-1] == 3600.0
    # Accumulating the hop drifts; k * hop does not.
    drift = np.cumsum(np.full(count - 1, hop))[-1]
    assert abs(drift - 3600.0) > 1e-9 > abs(stamps[-1] - 3600.0)
    assert window_start(36000, hop, True, SAMPLE_RATE) == 3600 * SAMPLE_RATE - SAMPLE_RATE // 2
    assert window_start(35999, hop, False, SAMPLE_RATE) == 3599.9 * SAMPLE_RATE


def test_hour_of_audio_streams_with_exact_positions():
    """An hour in 10 s chunks, each filled with its chunk number: every window starts where it should."""
    chunk = 10 * SAMPLE_RATE
    hop = 61.3  # a hop that is not a whole number of chunks
    chunks = (np.full(chunk, i, np.float32) for i in range(360))
    starts = []
    for k, w in enumerate(iter_windows(chunks, hop, center=False)):
        start = window_start(k, hop, False, SAMPLE_RATE)
        starts.append(start)
        assert w[0] == start // chunk and w[-1] == (start + SAMPLE_RATE - 1) // chunk
    assert len(starts) == window_count(3600 * SAMPLE_RATE, hop, center=False) == 59  # the last starts at 3555.4 s


# ------------------------------------------------------------------------------------------------
# audio embeddings
# ------------------------------------------------------------------------------------------------
def test_audio_embedding_equals_network_on_reference_windows(model):
    x = np.concatenate([S.chirp(seconds=1.5), S.noise(0.8, seed=1)])
    emb, stamps = get_audio_embedding(x, SAMPLE_RATE, model, hop_size=0.25)
    windows = reference_windows(x, 0.25, center=True)
    with torch.inference_mode():
        expected = model.embed("audio", torch.from_numpy(windows)).numpy()
    assert emb.dtype == np.float32 and emb.shape == (len(windows), model.config.embedding_dim)
    assert np.array_equal(stamps, np.arange(len(windows)) * 0.25)
    np.testing.assert_allclose(emb, expected, atol=BATCH_ATOL, rtol=0)


def test_batch_invariance(small):
    x = np.concatenate([S.chirp(seconds=1.0), S.noise(0.8)])
    reference, _ = get_audio_embedding(x, SAMPLE_RATE, small, hop_size=0.5, batch_size=1)
    for batch_size in (3, 64):
        emb, _ = get_audio_embedding(x, SAMPLE_RATE, small, hop_size=0.5, batch_size=batch_size)
        np.testing.assert_allclose(emb, reference, atol=BATCH_ATOL, rtol=0)


def test_fp32_is_deterministic_and_bf16_close(model):
    x = S.noise(1.5, seed=3) + S.tone(660, 1.5)
    a, _ = get_audio_embedding(x, SAMPLE_RATE, model, hop_size=0.5)
    b, _ = get_audio_embedding(x, SAMPLE_RATE, model, hop_size=0.5)
    assert np.array_equal(a, b)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "no bf16 instructions" on CPUs without them
        c, _ = get_audio_embedding(x, SAMPLE_RATE, model, hop_size=0.5, precision="bf16")
    assert c.dtype == np.float32 and c.shape == a.shape
    cosine = (a * c).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(c, axis=1)
    assert cosine.min() > 0.98
    with pytest.raises(InputError, match="fp16"):
        get_audio_embedding(x, SAMPLE_RATE, model, precision="fp16", device="cpu")


def test_short_audio_is_padded_not_dropped(model):
    x = S.tone(1000, 0.3)
    for center in (True, False):
        emb, stamps = get_audio_embedding(x, SAMPLE_RATE, model, hop_size=0.1, center=center)
        assert len(emb) == window_count(len(x), 0.1, center) >= 1
        assert np.array_equal(stamps, np.arange(len(emb)) * 0.1)
    emb, _ = get_audio_embedding(x, SAMPLE_RATE, model, center=False)
    padded = np.concatenate([x, np.zeros(SAMPLE_RATE - len(x), np.float32)])
    ref, _ = get_audio_embedding(padded, SAMPLE_RATE, model, center=False)
    assert emb.shape == ref.shape == (1, model.config.embedding_dim)
    np.testing.assert_allclose(emb, ref, atol=BATCH_ATOL, rtol=0)
    one_sample, _ = get_audio_embedding(np.array([0.5], np.float32), SAMPLE_RATE, model)
    assert one_sample.shape == (1, model.config.embedding_dim)


def test_list_input_gives_lists(model):
    a, b = S.tone(440, 1.2, 16_000), S.noise(0.7, 44_100)
    embs, stamps = get_audio_embedding([a, b], [16_000, 44_100], model, hop_size=0.5)
    assert isinstance(embs, list) and isinstance(stamps, list) and len(embs) == 2
    for x, sr, emb, ts in zip((a, b), (16_000, 44_100), embs, stamps):
        single, single_ts = get_audio_embedding(x, sr, model, hop_size=0.5)
        np.testing.assert_allclose(emb, single, atol=BATCH_ATOL, rtol=0)
        assert np.array_equal(ts, single_ts)
    same_sr, _ = get_audio_embedding([a, a], 16_000, model, hop_size=0.5)
    np.testing.assert_allclose(same_sr[0], same_sr[1], atol=BATCH_ATOL, rtol=0)
    with pytest.raises(InputError, match="2 audio arrays but 3 sample rates"):
        get_audio_embedding([a, b], [1, 2, 3], model)


@pytest.mark.parametrize(
    "layer,dim",  # tiny: channels 4, 8, 8, 16; the audio transfer grid is 4 x 3
    [("pool4", 16), ("conv4_2", 16 * 12), ("conv3_1", 8 * 12), ("pool2", 8 * 12), ("conv4_1_prerelu", 16 * 12)],
)
def test_audio_layers(model, layer, dim):
    x = S.chirp(seconds=1.2)
    emb, _ = get_audio_embedding(x, SAMPLE_RATE, model, hop_size=0.5, layer=layer)
    assert emb.shape == (window_count(len(x), 0.5), dim) == (3, embedding_size(model, layer, "audio"))
    assert np.isfinite(emb).all()


def test_conv4_2_is_the_paper_transfer_feature(model):
    x = S.noise(1.0, seed=5)
    emb, _ = get_audio_embedding(x, SAMPLE_RATE, model, center=False, layer="conv4_2")
    with torch.inference_mode():
        expected = model.transfer_features("audio", torch.from_numpy(x[None])).numpy()
    np.testing.assert_allclose(emb, expected, atol=BATCH_ATOL, rtol=0)
    # Before the ReLU (the paper's choice for audio): negative values survive the pooling.
    assert (emb < 0).any()


def test_paper_preset_dims_and_default_model():
    x = S.tone(440, 0.5)
    embed.MODEL_CACHE.clear()
    with pytest.warns(UserWarning, match="random weights"):
        emb, _ = get_audio_embedding(x, SAMPLE_RATE, hop_size=1.0)
    assert emb.shape == (1, 512)
    # The default model is loaded once and cached.
    with pytest.warns(UserWarning, match="random weights"):
        assert embedding_model(None) is embedding_model(None)


def test_model_spec_forms_agree(small, tmp_path):
    x = S.noise(1.0, seed=2)
    ref, _ = get_audio_embedding(x, SAMPLE_RATE, small, center=False)
    small.save(tmp_path / "m")
    for spec in ("small", tmp_path / "m", str(tmp_path / "m")):
        emb, _ = get_audio_embedding(x, SAMPLE_RATE, spec, center=False)
        np.testing.assert_array_equal(emb, ref)
    with pytest.raises(l3net.ModelFileError):
        get_audio_embedding(x, SAMPLE_RATE, tmp_path / "missing")
    with pytest.raises(InputError, match="model must be"):
        get_audio_embedding(x, SAMPLE_RATE, 3.5)


def test_training_mode_is_restored_and_stats_untouched():
    net = build_model(S.tiny_config(), seed=1).train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    get_audio_embedding(S.noise(1.0), SAMPLE_RATE, net)
    assert net.training
    after = net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_dtypes_and_layouts_agree(model):
    mono = S.tone(500, 1.1, 16_000) + S.noise(1.1, 16_000, amp=0.05)
    ref, _ = get_audio_embedding(mono.astype(np.float32), 16_000, model, center=False)
    as_int16 = np.round(mono * 32767).astype(np.int16)
    variants = {
        "int16": as_int16,
        "float64": mono.astype(np.float64),
        "(samples, channels)": np.stack([mono, mono], axis=1),
        "(channels, samples)": np.stack([mono, mono], axis=0),
        "torch": torch.from_numpy(mono),
    }
    for name, audio in variants.items():
        emb, _ = get_audio_embedding(audio, 16_000, model, center=False)
        assert emb.shape == ref.shape == (2, model.config.embedding_dim), name
        # int16 quantisation (1/32767) is the only change
        np.testing.assert_allclose(emb, ref, atol=2e-3 if name == "int16" else BATCH_ATOL, rtol=0, err_msg=name)


@pytest.mark.parametrize(
    "audio,sr,match",
    [
        (np.array([0.1, np.nan, 0.2], np.float32), 48_000, "NaN"),
        (np.array([0.1, np.inf], np.float64), 48_000, "NaN or infinite"),
        (np.zeros(0, np.float32), 48_000, "zero-length"),
        (np.zeros((2, 0), np.float32), 48_000, "zero-length"),
        (np.zeros(100, np.float32), 0, "sample rate"),
        (np.zeros(100, np.float32), -16_000, "sample rate"),
        (np.zeros(100, np.float32), float("nan"), "sample rate"),
        (np.zeros(100, np.float32), 22_050.5, "whole number"),
        (np.zeros((4, 100, 2), np.float32), 48_000, "expected 1-D"),
        (np.zeros((100, 100), np.float32), 48_000, "ambiguous"),
        (np.array(["a", "b"]), 48_000, "numbers"),
        (np.zeros(10, bool), 48_000, "boolean"),
    ],
)
def test_bad_audio_arrays(model, audio, sr, match):
    with pytest.raises(InputError, match=match):
        get_audio_embedding(audio, sr, model)


def test_bad_options(model):
    x = S.tone(440, 1.0)
    for hop in (0, -0.1, float("nan"), 1e-6, "0.1"):
        with pytest.raises(InputError, match="hop_size"):
            get_audio_embedding(x, SAMPLE_RATE, model, hop_size=hop)
    for batch_size in (0, -1, 2.5):
        with pytest.raises(InputError, match="batch_size"):
            get_audio_embedding(x, SAMPLE_RATE, model, batch_size=batch_size)
    with pytest.raises(InputError, match="unknown layer 'conv9_9'"):
        get_audio_embedding(x, SAMPLE_RATE, model, layer="conv9_9")


def test_silent_audio_is_finite(model):
    for sr in (48_000, 16_000, 44_100):
        emb, _ = get_audio_embedding(np.zeros(sr, np.int16), sr, model, center=False)
        assert np.isfinite(emb).all()
    emb, _ = get_audio_embedding(np.zeros(SAMPLE_RATE), SAMPLE_RATE, model, center=False, layer="conv4_2")
    assert np.isfinite(emb).all()


# ------------------------------------------------------------------------------------------------
# image embeddings
# ------------------------------------------------------------------------------------------------
def test_image_forms(model):
    rgb = S.pattern_image(120, 160)
    one = get_image_embedding(rgb, model)
    assert one.shape == (1, model.config.embedding_dim) and one.dtype == np.float32
    # float in [0, 1] of the same pixels
    np.testing.assert_allclose(get_image_embedding(rgb / 255.0, model), one, atol=BATCH_ATOL)
    # RGBA fully opaque == RGB
    rgba = np.concatenate([rgb, np.full((120, 160, 1), 255, np.uint8)], axis=2)
    np.testing.assert_allclose(get_image_embedding(rgba, model), one, atol=BATCH_ATOL)
    # greyscale (H x W) == the same grey as RGB
    grey = rgb[:, :, 0]
    np.testing.assert_allclose(
        get_image_embedding(grey, model), get_image_embedding(np.repeat(grey[:, :, None], 3, 2), model), atol=BATCH_ATOL
    )
    batch = np.stack([S.pattern_image(120, 160, seed=i) for i in range(3)])
    assert get_image_embedding(batch, model).shape == (3, model.config.embedding_dim)
    assert get_image_embedding(torch.from_numpy(rgb), model).shape == (1, model.config.embedding_dim)


def test_image_list_of_sizes_and_batch_invariance(model):
    images = [S.pattern_image(h, w, seed=i) for i, (h, w) in enumerate([(50, 70), (300, 200), (96, 96), (33, 400)])]
    together = get_image_embedding(images, model, batch_size=3)
    assert together.shape == (4, model.config.embedding_dim)
    for row, image in zip(together, images):
        np.testing.assert_allclose(row, get_image_embedding(image, model)[0], atol=BATCH_ATOL, rtol=0)


def test_tiny_and_huge_images(model):
    with pytest.warns(UserWarning, match="only 12x10 px"):
        tiny = get_image_embedding(S.pattern_image(10, 12), model)
    assert tiny.shape == (1, model.config.embedding_dim) and np.isfinite(tiny).all()
    huge_image = np.zeros((3000, 4000, 3), np.uint8)
    huge_image[:, :, 1] = np.arange(4000, dtype=np.uint8)  # a 12-megapixel photo's size
    huge = get_image_embedding(huge_image, model)
    assert huge.shape == (1, model.config.embedding_dim) and np.isfinite(huge).all()


def test_image_layers(model):
    rgb = S.pattern_image(120, 160)
    assert get_image_embedding(rgb, model, layer="conv4_2").shape == (1, 16 * 16)  # image grid 4 x 4
    assert get_image_embedding(rgb, model, layer="pool3").shape == (1, 8 * 16)
    # conv4_2 sees the transfer_image_size (64) centre crop, after ReLU: non-negative
    prepared = prepare_image(rgb, model.config, transfer=True)
    assert prepared.shape == (64, 64, 3)
    with torch.inference_mode():
        expected = model.transfer_features("vision", torch.from_numpy(prepared.copy()).permute(2, 0, 1)[None]).numpy()
    got = get_image_embedding(rgb, model, layer="conv4_2")
    np.testing.assert_allclose(got, expected, atol=BATCH_ATOL)
    assert (got >= 0).all()


@pytest.mark.parametrize(
    "images,match",
    [
        ([], "empty list"),
        (np.zeros((0, 8, 8, 3), np.uint8), "empty batch"),
        (np.zeros((8, 8, 5), np.uint8), "expected H x W"),
        (np.zeros((2, 3, 8, 8, 3), np.uint8), "expected H x W"),
        (np.full((8, 8, 3), np.nan), "NaN"),
        (np.full((8, 8, 3), 300, np.int32), r"\[0, 255\]"),
        (np.zeros((0, 5, 3), np.uint8), "empty image"),
    ],
)
def test_bad_images(model, images, match):
    with pytest.raises(InputError, match=match):
        get_image_embedding(images, model)


# ------------------------------------------------------------------------------------------------
# files
# ------------------------------------------------------------------------------------------------
def test_process_audio_file_matches_array_api(model, tmp_path):
    x = S.stereo(S.chirp(seconds=2.3, sr=44_100), S.noise(2.3, 44_100, seed=4))
    path = S.write_audio(tmp_path / "clip.flac", x, 44_100)
    out = process_audio_file(path, tmp_path / "out", model, hop_size=0.25)
    assert out == tmp_path / "out" / "clip.npz"
    with np.load(out) as data:
        assert set(data.files) == {"embedding", "timestamps", "layer", "model"}
        assert str(data["layer"]) == "pool4" and str(data["model"]) == "tiny"
        ref, ts = get_audio_embedding(load_audio(path), SAMPLE_RATE, model, hop_size=0.25)
        np.testing.assert_allclose(data["embedding"], ref, atol=BATCH_ATOL, rtol=0)
        assert np.array_equal(data["timestamps"], ts)
    beside = process_audio_file(path, model=model, hop_size=0.5, suffix="_h05", layer="conv4_2")
    assert beside == tmp_path / "clip_h05.npz"
    assert np.load(beside)["embedding"].shape[1] == 16 * 12


def test_process_image_file(model, tmp_path):
    path = S.write_image(tmp_path / "pic.png", S.pattern_image(80, 100))
    out = process_image_file(path, tmp_path, model, suffix="_x")
    with np.load(out) as data:
        assert out.name == "pic_x.npz"
        np.testing.assert_allclose(data["embedding"], get_image_embedding(S.pattern_image(80, 100), model), atol=BATCH_ATOL)
        assert np.array_equal(data["timestamps"], [0.0])


def test_process_video_file_same_timestamps(model, tmp_path):
    sound = S.chirp(seconds=2.0, sr=44_100)
    path = S.write_video(tmp_path / "v.mp4", seconds=2.0, fps=10, audio=sound, sr=44_100)
    audio_npz, image_npz = process_video_file(path, tmp_path / "out", model, hop_size=0.3)
    assert (audio_npz.name, image_npz.name) == ("v_audio.npz", "v_image.npz")
    a, v = np.load(audio_npz), np.load(image_npz)
    assert np.array_equal(a["timestamps"], v["timestamps"])
    assert len(a["embedding"]) == len(v["embedding"]) >= 7
    # Each image row is the embedding of the frame on screen at its timestamp (flat colours, so
    # the expected frame is known exactly); past the last frame, the last frame stays on screen.
    frames = [np.full((64, 96, 3), S.frame_color(min(int(t * 10 + 1e-9), 19)), np.uint8) for t in v["timestamps"]]
    np.testing.assert_allclose(v["embedding"], get_image_embedding(frames, model), atol=0.05)


def test_video_without_audio_and_audio_without_video(model, tmp_path):
    silent_film = S.write_video(tmp_path / "film.mp4", seconds=1.5, fps=10)
    with pytest.warns(UserWarning, match="film.mp4.*no audio"):
        outputs = process_video_file(silent_film, tmp_path, model, hop_size=0.5)
    assert [p.name for p in outputs] == ["film_image.npz"]
    assert np.array_equal(np.load(outputs[0])["timestamps"], [0.0, 0.5, 1.0, 1.5])
    song = S.write_audio(tmp_path / "song.m4a", S.tone(440, 1.0))
    with pytest.raises(MediaError, match="song.m4a: has no video stream"):
        process_video_file(song, tmp_path, model)


def test_short_video_is_padded(model, data_dir, tmp_path):
    audio_npz, image_npz = process_video_file(data_dir / "bad" / "short_0.5s.mp4", tmp_path, model, hop_size=0.25)
    stamps = np.load(audio_npz)["timestamps"]
    assert np.array_equal(stamps, [0.0, 0.25, 0.5]) and np.array_equal(np.load(image_npz)["timestamps"], stamps)


@pytest.mark.parametrize("name", ["empty.wav", "truncated.mp4", "not_media.mp4", "corrupt_header.wav"])
def test_bad_files_raise_media_error(model, data_dir, tmp_path, name):
    path = data_dir / "bad" / name
    for fn in (process_audio_file, process_video_file):
        with pytest.raises(MediaError) as info:
            fn(path, tmp_path, model)
        assert info.value.path == path and name in str(info.value)
    with pytest.raises(MediaError, match=name):
        process_image_file(path, tmp_path, model)
    assert list(tmp_path.iterdir()) == []


def test_no_partial_output_when_embedding_fails(model, tmp_path, monkeypatch):
    path = S.write_audio(tmp_path / "long.wav", S.noise(3.0))
    calls = []
    real = embed_core.layer_features

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("simulated crash in the middle of a file")
        return real(*args, **kwargs)

    monkeypatch.setattr(embed_core, "layer_features", failing)
    with pytest.raises(RuntimeError, match="simulated"):
        process_audio_file(path, tmp_path / "out", model, hop_size=0.5, batch_size=2)
    assert list((tmp_path / "out").iterdir()) == []


def test_full_disk_leaves_nothing(model, tmp_path, monkeypatch):
    path = S.write_audio(tmp_path / "a.wav", S.noise(1.0))

    def savez_full(file, **arrays):
        Path(file).write_bytes(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", savez_full)
    with pytest.raises(OutputError, match="disk is full"):
        process_audio_file(path, tmp_path / "out", model)
    assert list((tmp_path / "out").iterdir()) == []


def test_file_audio_is_streamed(tmp_path, monkeypatch):
    """A 10-minute file: neither the waveform (115 MB as float32 at 48 kHz) nor its windows are held.

    The network is replaced by a counter (the framing and decoding are what is tested), and
    tracemalloc (which sees numpy's buffers) bounds the peak of Python-side allocations.
    """
    seconds = 600
    path = tmp_path / "long.wav"
    # A 16 kHz 16-bit WAV written directly (a 19 MB file; decoding resamples it to 48 kHz).
    import wave

    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16_000)
        block = (S.tone(440, 10, 16_000) * 8000).astype(np.int16).tobytes()
        for _ in range(seconds // 10):
            w.writeframes(block)
    net = build_model(S.tiny_config())
    batches = []

    def counting(model, modality, x, layer):
        batches.append(x.shape[0])
        return torch.zeros(x.shape[0], 4)

    monkeypatch.setattr(embed_core, "layer_features", counting)
    monkeypatch.setattr(embed_core, "embedding_size", lambda *a, **k: 4)
    tracemalloc.start()
    try:
        out = process_audio_file(path, tmp_path, net, hop_size=1.0, batch_size=16)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert sum(batches) == window_count(seconds * SAMPLE_RATE, 1.0) == seconds + 1
    assert max(batches) == 16
    full_waveform = seconds * SAMPLE_RATE * 4
    # Measured ~12 MB (a few 10-second decoding chunks), whatever the file's length.
    assert peak < full_waveform / 4, f"peak {peak / 2**20:.1f} MB: the file was not streamed"
    assert np.load(out)["embedding"].shape == (seconds + 1, 4)


# ------------------------------------------------------------------------------------------------
# golden regression
# ------------------------------------------------------------------------------------------------
def test_golden_regression():
    """A fixed-seed small model's features of a fixed, code-generated input (tests/golden/make_golden.py).

    Tolerance: 1e-3 absolute on features of magnitude ~1-5 (float rounding between CPUs and
    library versions stays far below it; a changed spectrogram, framing, resampler, preprocessing
    or layer moves them by much more). Regenerate deliberately with ``python tests/golden/make_golden.py``.
    """
    import golden.make_golden as make_golden

    stored = np.load(GOLDEN)
    current = make_golden.compute()
    assert set(stored.files) == set(current)
    for key in stored.files:
        assert stored[key].shape == current[key].shape, key
        np.testing.assert_allclose(current[key], stored[key], atol=1e-3, rtol=0, err_msg=key)
