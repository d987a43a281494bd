"""``l3net embed`` end to end: synthetic files, the real videos, bad files, unwritable outputs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from l3net.cli import main
from l3net.models import build_model

import signals as S

BAD = ["corrupt_header.wav", "empty.wav", "not_media.mp4", "truncated.mp4"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("model") / "tiny"
    build_model(S.tiny_config(), seed=0).save(path)
    return path


@pytest.fixture(scope="module")
def media_dir(tmp_path_factory) -> Path:
    """A folder of generated media, one sub-folder deep, plus a non-media file."""
    root = tmp_path_factory.mktemp("media")
    S.write_audio(root / "tone.wav", S.tone(440, 1.4, 44_100), 44_100)
    (root / "sub").mkdir()
    S.write_audio(root / "sub" / "sweep.mp3", S.stereo(S.chirp(seconds=1.2, sr=44_100), S.noise(1.2, 44_100)), 44_100)
    S.write_image(root / "sub" / "picture.png", S.pattern_image(90, 120))
    S.write_video(root / "movie.mp4", seconds=1.5, fps=10, audio=S.chirp(seconds=1.5))
    S.write_video(root / "silent_film.mp4", seconds=1.0, fps=10)
    (root / "notes.csv").write_text("a,b\n1,2\n")
    return root


def no_temp_files(folder: Path) -> bool:
    return not [p for p in folder.rglob("*") if p.name.startswith(".") or ".tmp" in p.name]


def test_folder_end_to_end(model_dir, media_dir, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["embed", str(media_dir), "--model", str(model_dir), "-o", str(out), "--hop-size", "0.5", "-q"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*.npz"))
    assert written == [
        "movie_audio.npz", "movie_image.npz", "silent_film_image.npz",
        "sub/picture.npz", "sub/sweep.npz", "tone.npz",
    ]
    audio, image = np.load(out / "movie_audio.npz"), np.load(out / "movie_image.npz")
    assert np.array_equal(audio["timestamps"], image["timestamps"])
    assert np.array_equal(audio["timestamps"], [0.0, 0.5, 1.0, 1.5])
    tone = np.load(out / "tone.npz")
    assert tone["embedding"].shape == (3, 16) and tone["embedding"].dtype == np.float32  # 1.4 s: 0, 0.5, 1.0
    assert "silent_film.mp4: the video has no audio stream" in captured.err
    assert f"5 file(s) (2 audio, 1 image, 2 video): 6 .npz file(s) written in {out}" in captured.out
    assert "skipped 1 file(s) that are not media" in captured.out
    assert no_temp_files(out)
    # Again with --skip-existing: nothing to do.
    code = main(["embed", str(media_dir), "--model", str(model_dir), "-o", str(out), "--skip-existing", "-q"])
    assert code == 0 and "skipped 5 file(s) whose outputs already exist" in capsys.readouterr().out


def test_real_videos(model_dir, data_dir, tmp_path, capsys):
    videos = sorted((data_dir / "real_av").iterdir())
    code = main(["embed", *map(str, videos), "--model", str(model_dir), "-o", str(tmp_path), "--hop-size", "0.5", "-q"])
    assert code == 0, capsys.readouterr().err
    for video in videos:
        audio, image = np.load(tmp_path / f"{video.stem}_audio.npz"), np.load(tmp_path / f"{video.stem}_image.npz")
        assert np.array_equal(audio["timestamps"], image["timestamps"])
        assert len(audio["timestamps"]) >= 7  # every real video is longer than 3 s
        assert np.isfinite(audio["embedding"]).all() and np.isfinite(image["embedding"]).all()


def test_bad_files_are_reported_and_others_processed(model_dir, data_dir, tmp_path, capsys):
    out = tmp_path / "out"
    good = S.write_audio(tmp_path / "good.wav", S.tone(300, 1.0))
    code = main(["embed", str(data_dir / "bad"), str(good), "--model", str(model_dir), "-o", str(out), "-q"])
    captured = capsys.readouterr()
    assert code == 1
    for name in BAD:
        assert f"failed: {data_dir / 'bad' / name}: " in captured.err
    assert "empty file (0 bytes)" in captured.err
    assert "Traceback" not in captured.err
    # The valid ones (audio-only, video-only, short) and the extra good file are all embedded.
    assert sorted(p.name for p in out.rglob("*.npz")) == [
        "audio_only.npz", "good.npz", "short_0.5s_audio.npz", "short_0.5s_image.npz", "video_only_image.npz",
    ]
    assert "4 file(s) failed" in captured.err
    assert no_temp_files(out)


def test_text_file_named_like_media_fails_but_unrelated_files_are_skipped(model_dir, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "fake.wav").write_text("this is not audio\n")
    (folder / "readme.txt").write_text("notes\n")
    code = main(["embed", str(folder), str(tmp_path / "missing.wav"), "--model", str(model_dir), "-q"])
    captured = capsys.readouterr()
    assert code == 1
    assert f"{folder / 'fake.wav'}: not a media file" in captured.err
    assert f"{tmp_path / 'missing.wav'}: no such file or directory" in captured.err
    assert "skipped 1 file(s) that are not media" in captured.out
    assert not list(folder.glob("*.npz"))


def test_unwritable_output(model_dir, tmp_path, capsys, monkeypatch):
    wav = S.write_audio(tmp_path / "a.wav", S.tone(440, 1.0))
    blocker = tmp_path / "file"
    blocker.write_text("x")
    # An output "directory" under a regular file cannot be created (even by root).
    code = main(["embed", str(wav), "--model", str(model_dir), "-o", str(blocker / "out"), "-q"])
    captured = capsys.readouterr()
    assert code == 2 and "cannot write" in captured.err and "Traceback" not in captured.err
    # A directory that refuses new files: every file fails with the reason, nothing is left.
    from l3net import fileio

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(fileio, "_open_exclusive", refuse)
    out = tmp_path / "ro"
    out.mkdir()
    code = main(["embed", str(wav), "--model", str(model_dir), "-o", str(out), "-q"])
    captured = capsys.readouterr()
    assert code == 1 and "permission denied" in captured.err
    assert list(out.iterdir()) == []


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--hop-size", "0"], "hop_size"),
        (["--layer", "conv7_1"], "unknown layer"),
        (["--batch-size", "0"], "batch_size"),
        (["--device", "cuda:3"] if not __import__("torch").cuda.is_available() else ["--device", "nonsense"], "device"),
        (["--precision", "fp16", "--device", "cpu"], "fp16"),
    ],
)
def test_bad_options(model_dir, tmp_path, capsys, extra, message):
    wav = S.write_audio(tmp_path / "a.wav", S.tone(440, 1.0))
    assert main(["embed", str(wav), "--model", str(model_dir), *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_bad_model(tmp_path, capsys):
    wav = S.write_audio(tmp_path / "a.wav", S.tone(440, 1.0))
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text("{not json")
    assert main(["embed", str(wav), "--model", str(tmp_path / "broken")]) == 2
    assert "not readable JSON" in capsys.readouterr().err


def test_output_name_clash_is_refused(model_dir, tmp_path, capsys):
    (tmp_path / "x").mkdir()
    (tmp_path / "y").mkdir()
    a = S.write_audio(tmp_path / "x" / "same.wav", S.tone(440, 1.0))
    b = S.write_audio(tmp_path / "y" / "same.flac", S.tone(880, 1.0))
    code = main(["embed", str(a), str(b), "--model", str(model_dir), "-o", str(tmp_path / "out"), "-q"])
    assert code == 1
    assert "would overwrite that of" in capsys.readouterr().err


def test_help_explains(capsys):
    with pytest.raises(SystemExit):
        main(["embed", "--help"])
    text = capsys.readouterr().out
    assert "examples:" in text and "l3net embed clip.mp4 --model" in text and "--hop-size" in text


def test_console_script(model_dir, tmp_path):
    """The installed ``l3net`` command (a subprocess, as a user runs it)."""
    wav = S.write_audio(tmp_path / "a.wav", S.tone(440, 1.0))
    result = subprocess.run(
        [sys.executable, "-m", "l3net", "embed", str(wav), "--model", str(model_dir), "-q"],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "1 .npz file(s) written beside the inputs" in result.stdout
    assert (tmp_path / "a.npz").is_file()
