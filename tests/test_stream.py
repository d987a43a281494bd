"""Live audio (l3net.AudioStream): chunks of any size at any rate give get_audio_embedding's windows,
timestamps and embeddings; the push framer and the streamed resampler on their own."""

from __future__ import annotations

import numpy as np
import pytest

import l3net
from l3net.config import SAMPLE_RATE
from l3net.errors import InputError
from l3net.framing import WindowCutter, iter_windows
from l3net.media import resample, to_mono
from l3net.models import build_model
from l3net.stream import AudioStream, StreamResampler

import signals as S

# As tests/test_embed.py: a window's embedding may differ by float rounding between batch sizes
# (oneDNN picks kernels by shape), and a stream's batches are what each push completed.
ATOL = 1e-5


@pytest.fixture(scope="module")
def model():
    return build_model(S.tiny_config(), seed=0).eval()


def _chunks(x: np.ndarray, size: int):
    return [x[i : i + size] for i in range(0, len(x), size)]


def _stream(model, x, sr, size, **kw):
    stream = AudioStream(model, sr, **kw)
    parts = [stream.push(c) for c in _chunks(x, size)] + [stream.close()]
    return np.concatenate([e for e, _ in parts]), np.concatenate([t for _, t in parts]), parts


# ------------------------------------------------------------------------------------------------
# the push framer, on made-up numbers
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("hop,center,window", [(3, True, 10), (3, False, 10), (7, False, 5), (10, True, 10), (1, True, 4)])
@pytest.mark.parametrize("size", [1, 2, 9, 1000])
def test_cutter_gives_the_whole_signals_windows_for_any_pushes(hop, center, window, size):
    x = np.arange(1, 38, dtype=np.float32)
    hop_s = hop / SAMPLE_RATE
    whole = np.stack([w.copy() for w in iter_windows([x], hop_s, center, window)])
    cutter = WindowCutter(hop_s, center, window)
    got = []
    for chunk in _chunks(x, size):
        got += [w.copy() for w in cutter.push(chunk)]
    got += cutter.close()
    np.testing.assert_array_equal(np.stack(got), whole)


def test_cutter_returns_each_window_with_the_push_of_its_last_sample():
    cutter = WindowCutter(2 / SAMPLE_RATE, center=False, window=4)
    counts = [len(cutter.push(np.ones(1, np.float32))) for _ in range(8)]
    # windows [0,4), [2,6), [4,8): complete at samples 4, 6, 8
    assert counts == [0, 0, 0, 1, 0, 1, 0, 1]
    assert cutter.emitted == 3


def test_cutter_close_is_final():
    cutter = WindowCutter(0.5, center=True, window=8)
    assert len(cutter.close()) == 1  # no audio: one window of zeros, as the API
    assert cutter.close() == []
    with pytest.raises(InputError, match="after close"):
        cutter.push(np.zeros(3, np.float32))


# ------------------------------------------------------------------------------------------------
# the streamed resampler
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("rate", [44_100, 16_000])
@pytest.mark.parametrize("size", [1, 7, 1000, 10**6])
def test_streamed_resampling_is_the_whole_signals_bit_for_bit(rate, size):
    x = S.noise(0.4, sr=rate, seed=3)
    whole = resample(x, rate, SAMPLE_RATE)
    r = StreamResampler(rate)
    got = np.concatenate([r.push(c) for c in _chunks(x, size)] + [r.close()])
    np.testing.assert_array_equal(got, whole)


def test_streamed_resampler_hands_out_samples_without_waiting_for_a_second():
    r = StreamResampler(44_100)
    out = sum(r.push(c).size for c in _chunks(S.noise(0.05, sr=44_100), 441))
    assert out > 0.04 * SAMPLE_RATE  # all but the filter's delay of the 50 ms pushed


# ------------------------------------------------------------------------------------------------
# the stream against the whole-signal API
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("center", [True, False])
@pytest.mark.parametrize("rate", [SAMPLE_RATE, 44_100])
@pytest.mark.parametrize("size", [1, 37, 4410, 48_000, 3 * 48_000])
def test_stream_equals_get_audio_embedding(model, center, rate, size):
    seconds = 0.6 if size == 1 else 2.3  # one-sample pushes: a short signal keeps the test quick
    x = S.chirp(200, 6000, seconds, sr=rate) + S.noise(seconds, sr=rate, amp=0.05)
    want, want_ts = l3net.get_audio_embedding(x, rate, model=model, hop_size=0.25, center=center)
    got, got_ts, _ = _stream(model, x, rate, size, hop_size=0.25, center=center)
    np.testing.assert_array_equal(got_ts, want_ts)
    assert got.shape == want.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=0, atol=ATOL)


@pytest.mark.parametrize("dtype", [np.float32, np.int16])
@pytest.mark.parametrize("size", [1, 3, 2205])
def test_stereo_chunks_equal_the_whole_stereo_signal(model, dtype, size):
    rate = 22_050
    x = S.stereo(S.tone(330, 1.2, sr=rate), S.noise(1.2, sr=rate, amp=0.2))
    if dtype == np.int16:
        x = (x * 20000).astype(np.int16)
    want, want_ts = l3net.get_audio_embedding(x, rate, model=model, hop_size=0.1)
    got, got_ts, _ = _stream(model, x, rate, size, hop_size=0.1)
    np.testing.assert_array_equal(got_ts, want_ts)
    np.testing.assert_allclose(got, want, rtol=0, atol=ATOL)


def test_openl3_framing_and_a_real_preset(data_dir):
    """An OpenL3 preset (TF-exact STFT, dB front end, openl3's window count) on a real recording at 44.1 kHz."""
    net = build_model("openl3-mel128", seed=0).eval()
    x = l3net.media.load_audio(data_dir / "audio" / "trumpet_44k_stereo.wav", 44_100, duration=1.6)
    want, want_ts = l3net.get_audio_embedding(x, 44_100, model=net, hop_size=0.5)
    got, got_ts, _ = _stream(net, x, 44_100, 12_345, hop_size=0.5)
    np.testing.assert_array_equal(got_ts, want_ts)
    np.testing.assert_allclose(got, want, rtol=0, atol=ATOL)


def test_each_window_comes_out_with_the_push_that_completes_it(model):
    """Nothing is held back: at 48 kHz (no resampler) a window is returned by the very push that
    delivers its last sample, centred windows half a window after their timestamp."""
    stream = AudioStream(model, SAMPLE_RATE, hop_size=0.25, center=True)
    per_push = 0.125 * SAMPLE_RATE
    for i in range(1, 16):
        emb, ts = stream.push(np.zeros(int(per_push), np.float32))
        pushed = i * 0.125
        # every window whose end (t + 0.5 s) has arrived, none other
        assert stream.windows == int((pushed - 0.5) / 0.25) + 1 if pushed >= 0.5 else stream.windows == 0
        assert all(t + 0.5 <= pushed + 1e-9 for t in ts)


def test_close_flushes_then_returns_nothing(model):
    stream = AudioStream(model, 16_000, hop_size=0.5, center=False)
    stream.push(S.noise(0.3, sr=16_000))
    emb, ts = stream.close()
    assert len(ts) == 1 and emb.shape == (1, model.config.embedding_dim)
    emb, ts = stream.close()
    assert emb.shape == (0, model.config.embedding_dim) and ts.shape == (0,)
    with pytest.raises(InputError, match="after close"):
        stream.push(np.zeros(10))


def test_a_stream_with_no_audio_has_one_window_of_zeros_as_the_api(model):
    want, _ = l3net.get_audio_embedding(np.zeros(1, np.float32), SAMPLE_RATE, model=model)
    got, ts = AudioStream(model, SAMPLE_RATE).close()
    assert ts.tolist() == [0.0]
    np.testing.assert_allclose(got, want, rtol=0, atol=ATOL)


def test_pushed_buffers_may_be_reused_by_the_caller(model):
    """A sound card refills one buffer: what the stream keeps must be a copy."""
    x = S.noise(1.5, sr=SAMPLE_RATE, seed=5)
    want, _ = l3net.get_audio_embedding(x, SAMPLE_RATE, model=model, hop_size=0.1)
    stream, buf, out = AudioStream(model, SAMPLE_RATE, hop_size=0.1), np.empty(4800, np.float32), []
    for chunk in _chunks(x, 4800):
        buf[: chunk.size] = chunk
        out.append(stream.push(buf[: chunk.size])[0])
        buf[:] = np.nan
    out.append(stream.close()[0])
    np.testing.assert_allclose(np.concatenate(out), want, rtol=0, atol=ATOL)


@pytest.mark.parametrize(
    "chunk,match",
    [(np.zeros((4, 3, 2)), "samples, channels"), (np.array(["a", "b"]), "numbers"), (np.array([np.nan, 0.0]), "NaN")],
)
def test_bad_chunks_name_the_chunk_and_the_reason(model, chunk, match):
    stream = AudioStream(model, SAMPLE_RATE)
    with pytest.raises(InputError, match=f"chunk 0.*{match}|{match}"):
        stream.push(chunk)


def test_the_channel_count_cannot_change(model):
    stream = AudioStream(model, SAMPLE_RATE)
    stream.push(np.zeros((10, 2), np.float32))
    with pytest.raises(InputError, match="chunk 1: 1 channel"):
        stream.push(np.zeros(10, np.float32))


@pytest.mark.parametrize("sr", [0, -5, 44100.5, float("nan"), "44100", True])
def test_bad_sample_rates_are_refused(model, sr):
    with pytest.raises(InputError, match="sr must be"):
        AudioStream(model, sr)


def test_tiny_chunks_are_mono_averaged_as_whole_arrays():
    """A chunk shorter than its channel count is still read (samples, channels)."""
    from l3net.stream import _mono_chunk

    x = np.array([[0.1, 0.3, 0.5]], np.float32)  # one sample of three channels
    mono, channels = _mono_chunk(x, None, "chunk 0")
    assert channels == 3
    np.testing.assert_array_equal(mono, to_mono(np.tile(x, (4, 1)))[:1])


def test_the_example_streams_a_file_in_small_chunks(data_dir):
    import subprocess
    import sys
    from pathlib import Path

    example = Path(__file__).resolve().parents[1] / "examples" / "stream_file.py"
    audio = data_dir / "audio" / "speech_librispeech_16k_mono.wav"
    done = subprocess.run(
        [sys.executable, str(example), str(audio), "--model", "small", "--hop", "0.5", "--chunk-ms", "20"],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"{audio}: 16000 Hz, chunks of 320 samples")
    delays = [float(line.split("delay")[1].split()[0]) for line in lines if line.startswith("t =")]
    # half a window, up to one chunk (20 ms) and the resampler's delay (32 samples at 16 kHz, 2 ms) more
    assert delays and all(0.5 <= d <= 0.5 + 0.02 + 0.002 + 0.005 for d in delays)
    assert "embeddings of 128 dimensions" in lines[-1]
