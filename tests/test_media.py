"""Decoding: every file of ../shared/data (good and bad), generated files, arrays, images."""

from __future__ import annotations


import numpy as np
import pytest
from PIL import Image

from l3net import media
from l3net.errors import InputError, MediaError
from l3net.media import (
    MEDIA_EXTENSIONS,
    center_crop,
    iter_audio,
    iter_video_frames,
    load_audio,
    load_image,
    prepare_audio_array,
    probe,
    read_frames,
    resample,
    resize_smaller_side,
    to_mono,
    to_rgb_uint8,
)

import signals as S

# (file, source sample rate, channels, seconds) from ../shared/data/README.md
AUDIO = [
    ("speech_librispeech_16k_mono.wav", 16_000, 1, 13.9),
    ("trumpet_44k_stereo.wav", 44_100, 2, 5.3),
    ("robin_birdsong_44k_stereo.flac", 44_100, 2, 2.7),
    ("alarm_clock_vorbis.ogg", 48_000, 2, 6.1),
    ("humpback_whale_20s.mp3", 44_100, 1, 20.0),
    ("voice_front_center_48k_mono.wav", 48_000, 1, 1.4),
    ("brahms_strings_48k_stereo.opus", 48_000, 2, 10.0),
    ("dog_bark_22k_u8.wav", 22_050, 1, 0.93),
    ("t_rex_roar.mp3", 44_100, 2, 2.1),
]


@pytest.mark.parametrize("name,rate,channels,seconds", AUDIO)
def test_real_audio_files(data_dir, name, rate, channels, seconds):
    path = data_dir / "audio" / name
    info = probe(path)
    assert info.kind == "audio" and info.has_audio and not info.has_video
    assert info.sample_rate == rate and info.channels == channels
    x = load_audio(path)
    assert x.dtype == np.float32 and x.ndim == 1 and np.isfinite(x).all()
    assert abs(len(x) / 48_000 - seconds) < 0.1
    assert 0.01 < np.abs(x).max() <= 1.5
    chunks = list(iter_audio(path, chunk_seconds=1.0))
    assert all(len(c) == 48_000 for c in chunks[:-1])
    assert np.array_equal(np.concatenate(chunks), x)  # streaming gives the same samples


def test_duration_limit(data_dir):
    path = data_dir / "audio" / "humpback_whale_20s.mp3"
    assert len(load_audio(path, duration=1.5)) == 72_000
    assert len(load_audio(path, 16_000, duration=2.0)) == 32_000


@pytest.mark.parametrize("name", [
    "big_buck_bunny_mpeg4_mp3.avi", "friday_vp9_opus.webm", "stream_of_water_h264_flac.mkv",
    "tears_of_steel_seg04s_h264_aac.mov", "tears_of_steel_seg12s_h264_aac.mp4",
])
def test_real_videos(data_dir, name):
    path = data_dir / "real_av" / name
    info = probe(path)
    assert info.kind == "video" and info.has_audio and info.width == 320 and info.frame_rate > 0
    audio = load_audio(path)
    assert abs(len(audio) / 48_000 - info.duration) < 0.15 and np.abs(audio).max() > 0.01
    times, frames = read_frames(path, [0.0, 1.0, 2.5, 1.0], smaller_side=64)
    assert np.array_equal(times, [0.0, 1.0, 1.0, 2.5])
    assert frames.dtype == np.uint8 and frames.shape[0] == 4 and min(frames.shape[1:3]) == 64 and frames.shape[3] == 3
    assert np.array_equal(frames[1], frames[2])
    at_rate = list(iter_video_frames(path, fps=2.0))
    assert [t for t, _ in at_rate] == [k / 2 for k in range(len(at_rate))]
    assert abs(len(at_rate) / 2 - info.duration) <= 0.5


def test_photos(data_dir):
    photos = sorted((data_dir / "photos").rglob("*.jpg"))
    assert len(photos) >= 20
    for path in photos:
        assert probe(path).kind == "image"
        image = load_image(path)
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3 and min(image.shape[:2]) == 256


@pytest.mark.parametrize("name,reason", [
    ("empty.wav", "empty file"),
    ("truncated.mp4", "truncated/corrupt"),
    ("not_media.mp4", "not a media file"),
    ("corrupt_header.wav", "not a media file"),
])
def test_bad_files(data_dir, name, reason):
    path = data_dir / "bad" / name
    for call in (probe, load_audio, load_image, lambda p: read_frames(p, [0.0])):
        expected = "not an image" if call is load_image and name != "empty.wav" else reason
        with pytest.raises(MediaError, match=expected) as info:
            call(path)
        assert info.value.path == path and str(info.value).startswith(str(path))


def test_degenerate_but_valid_files(data_dir):
    bad = data_dir / "bad"
    audio_only = probe(bad / "audio_only.m4a")
    assert audio_only.kind == "audio" and len(load_audio(bad / "audio_only.m4a")) > 48_000
    with pytest.raises(MediaError, match="audio_only.m4a: has no video stream"):
        read_frames(bad / "audio_only.m4a", [0.0])
    video_only = probe(bad / "video_only.mp4")
    assert video_only.kind == "video" and not video_only.has_audio
    with pytest.raises(MediaError, match="video_only.mp4: has no audio"):
        load_audio(bad / "video_only.mp4")
    short = load_audio(bad / "short_0.5s.mp4")
    assert 0.4 < len(short) / 48_000 < 0.65  # shorter than a window: the embedding API pads it


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(MediaError, match="no such file"):
        probe(tmp_path / "nothing.wav")
    with pytest.raises(MediaError, match="is a directory"):
        load_audio(tmp_path)


@pytest.mark.parametrize("ext", ["wav", "flac", "mp3", "m4a", "ogg"])
def test_generated_audio_formats(tmp_path, ext):
    x = S.stereo(S.tone(1000, 1.5, 44_100), S.tone(1000, 1.5, 44_100))
    path = S.write_audio(tmp_path / f"a.{ext}", x, 44_100)
    assert probe(path).kind == "audio"
    y = load_audio(path)
    assert abs(len(y) - 72_000) < 3_000  # lossy codecs add a little padding
    spectrum = np.abs(np.fft.rfft(y[4_800:52_800]))
    assert abs(spectrum.argmax() - 1000) <= 1  # 1 Hz bins: the tone survives resampling to 48 kHz
    if ext in ("wav", "flac"):
        np.testing.assert_allclose(y[1000:-1000], resample(S.tone(1000, 1.5, 44_100), 44_100)[1000:-1000], atol=1e-4)


def test_generated_video_frames_at_times(tmp_path):
    path = S.write_video(tmp_path / "v.mp4", seconds=2.0, fps=10, audio=S.tone(440, 2.0))
    times = np.arange(0, 2.0, 0.05)
    found, frames = read_frames(path, times)
    assert np.array_equal(found, times)
    for t, frame in zip(found, frames):
        expected = np.array(S.frame_color(int(t * 10 + 1e-9)))
        assert np.abs(frame[5, 5].astype(int) - expected).max() <= 4, t  # the frame on screen at t
    # 0.3 * 3 = 0.8999999999999999 is the time of frame 9, not the end of frame 8
    _, (frame,) = read_frames(path, [0.3 * 3])
    assert np.abs(frame[5, 5].astype(int) - np.array(S.frame_color(9))).max() <= 4


# ------------------------------------------------------------------------------------------------
# arrays
# ------------------------------------------------------------------------------------------------
def test_to_mono_layouts_and_dtypes():
    x = S.tone(300, 0.1)
    both = np.stack([x, 0.5 * x])
    np.testing.assert_allclose(to_mono(both), 0.75 * x, atol=1e-7)  # (channels, samples)
    np.testing.assert_allclose(to_mono(both.T), 0.75 * x, atol=1e-7)  # (samples, channels)
    np.testing.assert_array_equal(to_mono(np.array([-32768, 0, 16384], np.int16)), [-1.0, 0.0, 0.5])
    np.testing.assert_array_equal(to_mono(np.array([0, 128, 255], np.uint8)), [-1.0, 0.0, 127 / 128])
    assert to_mono(x.astype(np.float64)).dtype == np.float32
    assert to_mono([0.1, 0.2]).shape == (2,)


def test_prepare_audio_array_resamples():
    y = prepare_audio_array(S.tone(1000, 1.0, 16_000), 16_000)
    assert y.shape == (48_000,) and y.dtype == np.float32
    assert abs(np.abs(np.fft.rfft(y)).argmax() - 1000) <= 1
    assert prepare_audio_array(np.zeros(441, np.int16), 44_100).shape == (480,)
    assert np.array_equal(prepare_audio_array(S.tone(5, 0.01), 48_000), S.tone(5, 0.01))


@pytest.mark.parametrize("audio,sr,match", [
    (np.full(10, np.nan, np.float32), 48_000, "NaN"),
    (np.zeros(0), 48_000, "zero-length"),
    (np.zeros(10), 0, "positive"),
    (np.zeros(10), -1, "positive"),
    (np.zeros(10), "48000", "positive"),
    (np.zeros((2, 2, 2)), 48_000, "expected 1-D"),
])
def test_prepare_audio_array_errors(audio, sr, match):
    with pytest.raises(InputError, match=match):
        prepare_audio_array(audio, sr)


# ------------------------------------------------------------------------------------------------
# images
# ------------------------------------------------------------------------------------------------
def test_image_files(tmp_path):
    rgb = S.pattern_image(60, 80)
    rgba = Image.fromarray(np.dstack([rgb, np.full((60, 80), 0, np.uint8)]), "RGBA")
    rgba.save(tmp_path / "clear.png")
    assert (load_image(tmp_path / "clear.png") == 255).all()  # transparent -> composited on white
    Image.fromarray(rgb[:, :, 0]).save(tmp_path / "grey.png")
    grey = load_image(tmp_path / "grey.png")
    assert grey.shape == (60, 80, 3) and np.array_equal(grey[:, :, 0], grey[:, :, 2])
    Image.fromarray(np.zeros((5000, 3000, 3), np.uint8)).save(tmp_path / "huge.jpg")
    assert load_image(tmp_path / "huge.jpg").shape[:2] == (4096, 2458)
    data = (tmp_path / "huge.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[:200])
    with pytest.raises(MediaError, match="cut.jpg"):
        load_image(tmp_path / "cut.jpg")
    Image.fromarray(rgb[:20, :20]).save(tmp_path / "tiny.png")
    with pytest.warns(UserWarning, match="only 20x20 px"):
        load_image(tmp_path / "tiny.png")


def test_image_arrays():
    rgb = S.pattern_image(40, 50)
    assert np.array_equal(to_rgb_uint8(rgb / 255.0), rgb)
    assert np.array_equal(to_rgb_uint8(rgb.astype(np.uint16) * 257), rgb)
    assert to_rgb_uint8(rgb[:, :, :1]).shape == (40, 50, 3)
    half = np.dstack([rgb, np.full((40, 50), 128, np.uint8)])
    assert np.abs(to_rgb_uint8(half).astype(int) - (rgb * 0.502 + 127).astype(int)).max() <= 1
    with pytest.raises(InputError, match="dtype"):
        to_rgb_uint8(np.zeros((4, 4, 3), complex))
    resized = resize_smaller_side(S.pattern_image(100, 300), 50)
    assert resized.shape == (50, 150, 3)
    assert center_crop(resized, 50).shape == (50, 50, 3)
    with pytest.raises(InputError, match="cannot crop"):
        center_crop(resized, 60)


def test_extension_lists():
    assert {".wav", ".mp3", ".mp4", ".mkv", ".jpg", ".png", ".webm", ".opus"} <= MEDIA_EXTENSIONS
    assert ".csv" not in MEDIA_EXTENSIONS and ".npz" not in MEDIA_EXTENSIONS


# ------------------------------------------------------------------------------------------------
# channels and the clock (the clapper corpus is in test_timing.py)
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("layout", ["5.1", "7.1"])
def test_surround_is_downmixed_as_ffmpeg_does(tmp_path, layout):
    """One tone per channel: each channel's share of the mono mix is FFmpeg's default matrix
    (swresample, as av.AudioResampler applies it), normalised so that the mix cannot clip."""
    import av

    channels = [c.name for c in av.AudioLayout(layout).channels]
    freqs = [200 + 100 * i for i in range(len(channels))]
    t = np.arange(48_000) / 48_000
    x = np.stack([0.1 * np.sin(2 * np.pi * f * t) for f in freqs]).astype(np.float32)
    path = tmp_path / "surround.wav"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("pcm_s16le", rate=48_000, layout=layout)
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(x.T.reshape(1, -1)), format="flt", layout=layout)
        frame.sample_rate = 48_000
        out.mux(stream.encode(frame))
        out.mux(stream.encode(None))

    def gains(y):
        spectrum = np.abs(np.fft.rfft(y[:48_000])) / 24_000 / 0.1
        return np.array([spectrum[f] for f in freqs])

    reader = media.AudioReader(path)
    ours = gains(np.concatenate(list(reader)))
    with av.open(str(path)) as container:
        resampler = av.AudioResampler(format="flt", layout="mono", rate=48_000)
        frames = [o for f in container.decode(audio=0) for o in resampler.resample(f)] + resampler.resample(None)
        ffmpeg = gains(np.concatenate([f.to_ndarray().reshape(-1) for f in frames]))
    assert reader.report.downmix == "ffmpeg matrix" and reader.report.layout == layout
    np.testing.assert_allclose(ours, ffmpeg / ffmpeg.sum(), atol=2e-3)
    assert ours[channels.index("LFE")] < 1e-3 and ours[channels.index("FC")] > ours[channels.index("FL")]


def test_stereo_is_averaged(tmp_path):
    left, right = S.tone(300, 1.0, 48_000), S.tone(500, 1.0, 48_000)
    path = S.write_audio(tmp_path / "s.wav", S.stereo(left, 0.5 * right), 48_000)
    reader = media.AudioReader(path)
    np.testing.assert_allclose(np.concatenate(list(reader)), (left + 0.5 * right) / 2, atol=1e-4)
    assert reader.report.downmix == "mean"


def test_real_files_timeline(data_dir):
    # friday_vp9_opus.webm: picture from 7 ms, sound from 0 (the timeline's origin)
    path = data_dir / "real_av" / "friday_vp9_opus.webm"
    assert media.read_timeline(path).origin == 0.0
    video = media.VideoReader(path, times=[0.0])
    list(video)
    audio = media.AudioReader(path, duration=1.0)
    assert np.concatenate(list(audio)).size == 48_000
    assert video.report.offset == pytest.approx(0.007) and audio.report.offset == 0.0 and audio.report.padded_start == 0.0
    # tears_of_steel: AAC packets whose timestamps jitter by up to 20 ms around the sample count,
    # without drifting: no gap, no overlap, every decoded sample kept
    jittery = media.AudioReader(data_dir / "real_av" / "tears_of_steel_seg12s_h264_aac.mp4")
    assert np.concatenate(list(jittery)).size == 384_523
    assert jittery.report.gaps == 0.0 and jittery.report.overlaps == 0.0
    # an audio file's timeline ends with its sound: no padding after it
    song = media.AudioReader(data_dir / "audio" / "t_rex_roar.mp3")
    list(song)
    assert song.report.padded_end == 0.0 and song.report.padded_start == 0.0


def test_reader_arguments(data_dir):
    path = data_dir / "real_av" / "friday_vp9_opus.webm"
    with pytest.raises(InputError, match="start must be a non-negative"):
        load_audio(path, start=-1.0)
    with pytest.raises(InputError, match="start must be a non-negative"):
        list(iter_video_frames(path, fps=1.0, start=float("nan")))
    with pytest.raises(MediaError, match="friday_vp9_opus.webm: has no audio stream 1: it has 1"):
        load_audio(path, stream=1)
    assert probe(path).audio_streams == 1
