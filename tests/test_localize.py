"""l3net localize: heatmaps from the fusion head at every conv4_2 location, drawn over real videos."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from l3net.cli import main
from l3net.config import SAMPLE_RATE
from l3net.errors import InputError, MediaError
from l3net.inputs import centred_clip, clip_start
from l3net import heatmaps as hm
from l3net import localize as loc
from l3net.media import probe
from l3net.models import build_model

REAL_VIDEO = "real_av/stream_of_water_h264_flac.mkv"  # 3.1 s, 320 x 240, H.264 + FLAC


@pytest.fixture(scope="module")
def model():
    return build_model("small", seed=1).eval()


@pytest.fixture(scope="module")
def frames_and_clips(data_dir, model):
    from l3net.media import load_audio, read_frames

    times, frames = read_frames(data_dir / REAL_VIDEO, [0.5, 1.5, 2.5])
    audio = load_audio(data_dir / REAL_VIDEO)
    clips = np.stack([centred_clip(audio, t, model.config.clip_samples) for t in times])
    return frames, clips


def _no_temporaries(directory):
    return [p for p in directory.rglob(".*") if ".tmp" in p.name]


# -- the maths ------------------------------------------------------------------------------------
def test_heatmaps_shape_range_on_real_frames(model, frames_and_clips):
    frames, clips = frames_and_clips
    maps = hm.heatmaps(model, frames, clips, batch_size=2)
    assert maps.shape == frames.shape[:3]
    assert maps.dtype == np.float32
    assert np.isfinite(maps).all() and maps.min() >= 0.0 and maps.max() <= 1.0
    assert maps.std() > 0  # a map, not a constant
    low = hm.low_res_heatmaps(model, frames, clips)
    # the last conv works at 1/8 of the tower input, whose smaller side is image_resize
    side = model.config.image_resize
    assert low.shape == (3, side // 8, round(side * 320 / 240) // 8)
    # batching does not change the numbers
    np.testing.assert_allclose(hm.low_res_heatmaps(model, frames, clips, batch_size=1), low, atol=1e-5)


def test_heatmaps_run_the_model_in_eval_mode(frames_and_clips):
    """A model left in training mode is scored with its BatchNorm running statistics, not the batch's
    (heatmaps() used to keep the caller's mode), and is handed back in training mode."""
    frames, clips = frames_and_clips
    net = build_model("small", seed=3)
    for module in net.modules():  # running statistics unlike any batch's, so train mode would show
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.fill_(0.3)
            module.running_var.fill_(2.0)
    expected = hm.heatmaps(net.eval(), frames, clips)
    net.train()
    np.testing.assert_allclose(hm.heatmaps(net, frames, clips), expected, atol=1e-5)
    assert net.training


def test_a_single_location_scores_exactly_like_the_avc_forward(model):
    """With a 1 x 1 conv4_2 map, pool4 is that location's vector: the local score is the AVC score."""
    torch.manual_seed(0)
    images = torch.randint(0, 256, (3, 3, 8, 8), dtype=torch.uint8)  # 8 px -> conv4_2 is 1 x 1
    waves = 0.1 * torch.randn(3, model.config.clip_samples)
    with torch.no_grad():
        expected = torch.softmax(model(images, waves), dim=-1)[:, 1]
        local = hm.score_maps(model, images, model.embed("audio", waves))
    assert local.shape == (3, 1, 1)
    torch.testing.assert_close(local[:, 0, 0], expected, rtol=1e-5, atol=1e-6)


def test_silent_audio_and_odd_inputs(model, frames_and_clips):
    frames, _ = frames_and_clips
    silent = np.zeros(model.config.clip_samples, np.float32)
    maps = hm.heatmaps(model, frames[:2], silent)  # one clip shared by every frame
    assert np.isfinite(maps).all() and maps.shape == (2,) + frames.shape[1:3]
    grey = frames[0].mean(axis=2).astype(np.uint8)  # one greyscale frame, a short clip (zero-padded)
    assert hm.heatmaps(model, grey, silent[:1000]).shape == (1,) + grey.shape
    with pytest.raises(InputError, match="NaN"):
        hm.heatmaps(model, frames[:1], np.full(model.config.clip_samples, np.nan, np.float32))
    with pytest.raises(InputError, match="one clip per frame"):
        hm.heatmaps(model, frames, np.zeros((2, model.config.clip_samples), np.float32))
    with pytest.raises(InputError, match="samples; the model takes"):
        hm.heatmaps(model, frames[:1], np.zeros(model.config.clip_samples + 1, np.float32))
    with pytest.raises(InputError, match="float"):
        hm.heatmaps(model, frames[:1], np.zeros(model.config.clip_samples, np.int16))
    with pytest.raises(InputError, match="same size"):
        hm.heatmaps(model, [frames[0], frames[0][:100]], silent)


def test_peak_and_centred_clip():
    heat = np.zeros((4, 6))
    heat[2, 5] = 1.0
    assert hm.peak_location(heat) == (5.5, 2.5)  # the centre of pixel (row 2, column 5)
    sr = SAMPLE_RATE
    assert clip_start(5.0, 10 * sr, sr) == int(4.5 * sr)
    assert clip_start(0.1, 10 * sr, sr) == 0  # moved inside at the start
    assert clip_start(9.9, 10 * sr, sr) == 9 * sr  # and at the end
    assert clip_start(0.25, sr // 2, sr) == 0  # shorter than a clip: all of it (padded)
    audio = np.arange(100, dtype=np.float32)
    clip = centred_clip(audio, 0.0, 150)
    assert clip.shape == (150,) and clip[99] == 99 and not clip[100:].any()
    long = np.arange(10 * sr, dtype=np.float32)
    assert centred_clip(long, 5.0, sr)[0] == 4.5 * sr


# -- whole videos ---------------------------------------------------------------------------------
def test_localize_real_video_writes_everything(model, data_dir, tmp_path):
    out = tmp_path / "out"
    result = loc.localize_video(model, data_dir / REAL_VIDEO, out, fps=2, max_seconds=2.0, progress=False)
    assert list(result.times) == [0.0, 0.5, 1.0, 1.5]
    assert result.frame_size == (320, 240)
    assert result.maps.min() >= 0 and result.maps.max() <= 1
    heat = result.heatmap(0)
    assert heat.shape == (240, 320)
    assert tuple(result.peaks[0]) == hm.peak_location(heat)
    assert [p.name for p in result.overlay_paths] == [f"frame_{i:05d}.png" for i in range(4)]
    from PIL import Image

    with Image.open(result.overlay_paths[0]) as image:
        assert image.size == (320, 240)
    info = probe(result.video_path)
    assert info.has_video and info.has_audio and info.frame_rate == pytest.approx(2.0)
    assert info.duration == pytest.approx(2.0, abs=0.1)
    summary = json.loads((out / loc.SUMMARY_FILE).read_text())
    assert len(summary["frames"]) == 4 and summary["video_out"] == loc.VIDEO_FILE
    assert all((out / f["overlay"]).is_file() for f in summary["frames"])
    saved = np.load(out / loc.HEATMAPS_FILE)
    np.testing.assert_allclose(saved["maps"], result.maps)
    assert not _no_temporaries(out)


def test_short_video_is_padded(model, data_dir, tmp_path):
    (tmp_path / ".localize.json.x1y2.tmp").write_text("left by a run killed with kill -9")
    (tmp_path / "overlays").mkdir()
    (tmp_path / "overlays" / "frame_00007.png").write_bytes(b"from an earlier, longer run")
    result = loc.localize_video(model, data_dir / "bad/short_0.5s.mp4", tmp_path, write_video=False, progress=False)
    assert len(result.times) == 2 and np.isfinite(result.maps).all()
    assert any("zero-padded" in note for note in result.notes)
    assert result.video_path is None and not (tmp_path / loc.VIDEO_FILE).exists()
    assert sorted(p.name for p in (tmp_path / "overlays").iterdir()) == ["frame_00000.png", "frame_00001.png"]
    assert not _no_temporaries(tmp_path)


@pytest.mark.parametrize(
    "name, reason",
    [
        ("bad/audio_only.m4a", "audio only"),
        ("bad/video_only.mp4", "no audio stream"),
        ("bad/not_media.mp4", "not a media file"),
        ("bad/truncated.mp4", "truncated"),
        ("bad/empty.wav", "empty file"),
        ("photos/animal/cat_chelsea.jpg", "still image"),
    ],
)
def test_bad_inputs_name_the_file_and_write_nothing(model, data_dir, tmp_path, name, reason):
    out = tmp_path / "out"
    with pytest.raises(MediaError, match=reason) as info:
        loc.localize_video(model, data_dir / name, out, progress=False)
    assert info.value.path.name == name.split("/")[-1]
    assert not out.exists()


def test_a_failure_midway_leaves_no_partial_video(model, data_dir, tmp_path, monkeypatch):
    calls = []
    real = loc.overlay

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("boom")
        return real(*args, **kwargs)

    monkeypatch.setattr(loc, "overlay", failing)
    with pytest.raises(RuntimeError, match="boom"):
        loc.localize_video(model, data_dir / REAL_VIDEO, tmp_path, fps=2, max_seconds=2.0, progress=False)
    assert not (tmp_path / loc.VIDEO_FILE).exists() and not (tmp_path / loc.SUMMARY_FILE).exists()
    assert not _no_temporaries(tmp_path)


def test_cli_goes_on_after_bad_videos(data_dir, tmp_path, capsys):
    videos = [str(data_dir / REAL_VIDEO), str(data_dir / "bad/audio_only.m4a"), str(data_dir / "bad/video_only.mp4")]
    rc = main(["localize", *videos, "--model", "random:small", "--out", str(tmp_path), "--max-seconds", "1",
               "--fps", "2", "--no-video"])
    captured = capsys.readouterr()
    assert rc == 1
    assert "audio_only.m4a: has no video stream" in captured.err
    assert "video_only.mp4: has no audio stream" in captured.err
    assert "2 of 3 video(s) skipped" in captured.err
    done = tmp_path / "stream_of_water_h264_flac"
    assert f"-> {done}/" in captured.out
    assert sorted(p.name for p in (done / "overlays").iterdir()) == ["frame_00000.png", "frame_00001.png"]
    assert not (tmp_path / "audio_only").exists()


def test_cli_bad_arguments_are_clear(data_dir, tmp_path, capsys):
    rc = main(["localize", str(data_dir / REAL_VIDEO), "--model", "nonexistent_model", "--out", str(tmp_path / "o")])
    assert rc == 2 and "neither a preset" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
    corrupt = build_model("small").save(tmp_path / "corrupt")
    (corrupt / "model.safetensors").write_bytes(b"not a safetensors file")
    rc = main(["localize", str(data_dir / REAL_VIDEO), "--model", str(corrupt), "--out", str(tmp_path / "o")])
    assert rc == 2 and "corrupt" in capsys.readouterr().err
    (tmp_path / "file").write_text("x")  # an output path that cannot be a directory
    rc = main(["localize", str(data_dir / REAL_VIDEO), "--model", "random:small", "--out", str(tmp_path / "file" / "o")])
    assert rc == 2 and "cannot write" in capsys.readouterr().err
    rc = main(["localize", str(data_dir / REAL_VIDEO), "--model", "random:small", "--out", str(tmp_path), "--fps", "0"])
    assert rc == 2 and "fps must be a positive number" in capsys.readouterr().err


def test_video_writer_sound_sizes_and_abort(tmp_path):
    """media.VideoWriter, the one MP4 writer (overlays here, the synthetic world in data/synth.py)."""
    from l3net.media import VideoWriter, load_audio

    sound = 0.1 * np.sin(np.linspace(0, 2000, 24_000, dtype=np.float32))
    with VideoWriter(tmp_path / "v.mp4", 4, sound, audio_rate=24_000) as writer:
        for i in range(6):  # 1.5 s of pictures for 1 s of sound: padded with silence
            writer.write(np.full((65, 81, 3), 40 * i, np.uint8))
    info = probe(tmp_path / "v.mp4")
    assert (info.width, info.height) == (80, 64)  # even sizes for 4:2:0
    assert info.has_audio and info.duration == pytest.approx(1.5, abs=0.1)
    assert abs(load_audio(tmp_path / "v.mp4").size / 48_000 - 1.5) < 0.1
    with pytest.raises(RuntimeError):
        with VideoWriter(tmp_path / "w.mp4", 4) as writer:
            writer.write(np.zeros((64, 64, 3), np.uint8))
            raise RuntimeError("killed")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.mp4"]  # nothing partial left
