"""Corpora in parallel (l3net.corpus, ``l3net embed --workers/--part/--skip-existing/--failures``):
the same files whatever the number of decoding workers, the same as ``process_*_file``, parts that
split a corpus without coordination, resumption, and the failure summary."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from l3net import corpus
from l3net.cli import main
from l3net.corpus import in_part
from l3net.embed_files import process_audio_file, process_image_file, process_video_file
from l3net.models import build_model

import signals as S

HOP = ["--hop-size", "0.25"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("model") / "tiny"
    build_model(S.tiny_config(), seed=0).save(path)
    return path


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory) -> Path:
    """Audio at two rates (stereo mp3 too), an image, a video with and one without sound, a file that
    is not media and one that claims to be audio but is not."""
    root = tmp_path_factory.mktemp("corpus")
    S.write_audio(root / "tone.wav", S.tone(440, 2.3, 44_100), 44_100)
    (root / "sub").mkdir()
    S.write_audio(root / "sub" / "sweep.mp3", S.stereo(S.chirp(seconds=1.7, sr=22_050), S.noise(1.7, 22_050)), 22_050)
    S.write_audio(root / "sub" / "noise.flac", S.noise(3.1, 48_000, seed=2))
    S.write_image(root / "sub" / "picture.png", S.pattern_image(90, 120))
    S.write_video(root / "movie.mp4", seconds=1.5, fps=10, audio=S.chirp(seconds=1.5))
    S.write_video(root / "silent_film.mp4", seconds=1.0, fps=10)
    (root / "notes.csv").write_text("a,b\n1,2\n")
    (root / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot really")
    return root


def npz_files(folder: Path) -> dict[str, dict[str, np.ndarray]]:
    out = {}
    for p in sorted(folder.rglob("*.npz")):
        with np.load(p) as f:
            out[str(p.relative_to(folder))] = {k: f[k] for k in f.files}
    return out


def assert_same_files(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert a[name].keys() == b[name].keys(), name
        for key in a[name]:
            np.testing.assert_array_equal(a[name][key], b[name][key], err_msg=f"{name}: {key}")


def run_embed(capsys, *words):
    code = main(["embed", *words, "-q"])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_workers_give_the_same_files_as_the_main_process(model_dir, corpus_dir, tmp_path, capsys):
    outs = {}
    for workers in (0, 2):
        out = tmp_path / f"w{workers}"
        code, printed, err = run_embed(capsys, str(corpus_dir), "--model", str(model_dir), "-o", str(out), "--workers", str(workers), *HOP)
        assert code == 1  # broken.wav
        assert f"{workers} decoding worker(s)" in printed
        assert "broken.wav" in err and "silent_film.mp4: the video has no audio stream" in err
        outs[workers] = npz_files(out)
    assert sorted(outs[0]) == [
        "movie_audio.npz", "movie_image.npz", "silent_film_image.npz", "sub/noise.npz", "sub/picture.npz",
        "sub/sweep.npz", "tone.npz",
    ]
    assert_same_files(outs[0], outs[2])


def test_corpus_files_equal_process_file_functions(model_dir, corpus_dir, tmp_path, capsys):
    """The library's one-file functions (streamed decoding) write the same arrays as the corpus path."""
    out = tmp_path / "corpus"
    run_embed(capsys, str(corpus_dir), "--model", str(model_dir), "-o", str(out), "--workers", "1", *HOP)
    single = tmp_path / "single"
    model = build_model(S.tiny_config(), seed=0).eval()
    kw = dict(model=model, hop_size=0.25)
    process_audio_file(corpus_dir / "tone.wav", single, **kw)
    process_audio_file(corpus_dir / "sub" / "sweep.mp3", single / "sub", **kw)
    process_audio_file(corpus_dir / "sub" / "noise.flac", single / "sub", **kw)
    process_image_file(corpus_dir / "sub" / "picture.png", single / "sub", model=model)
    process_video_file(corpus_dir / "movie.mp4", single, **kw)
    with pytest.warns(UserWarning, match="no audio stream"):
        process_video_file(corpus_dir / "silent_film.mp4", single, **kw)
    got, want = npz_files(out), npz_files(single)
    for name in want:  # the model name differs (a directory vs a built config): compare the arrays
        for key in ("embedding", "timestamps", "layer"):
            np.testing.assert_array_equal(got[name][key], want[name][key], err_msg=f"{name}: {key}")
    assert "timing" in got["movie_audio.npz"] and str(got["movie_audio.npz"]["timing"]) == str(want["movie_audio.npz"]["timing"])


def test_long_files_are_streamed_with_the_same_result(model_dir, corpus_dir, tmp_path, capsys, monkeypatch):
    whole = tmp_path / "whole"
    run_embed(capsys, str(corpus_dir), "--model", str(model_dir), "-o", str(whole), "--workers", "0", *HOP)
    monkeypatch.setattr(corpus, "DECODE_BUDGET_BYTES", 1)  # every sound and video is "long"
    streamed = tmp_path / "streamed"
    run_embed(capsys, str(corpus_dir), "--model", str(model_dir), "-o", str(streamed), "--workers", "0", *HOP)
    assert_same_files(npz_files(whole), npz_files(streamed))


def test_parts_split_the_corpus_without_overlap(model_dir, corpus_dir, tmp_path, capsys):
    whole = tmp_path / "whole"
    run_embed(capsys, str(corpus_dir), "--model", str(model_dir), "-o", str(whole), "--workers", "0", *HOP)
    parts = tmp_path / "parts"
    seen: list[str] = []
    for i in (1, 2, 3):
        run_embed(capsys, str(corpus_dir), "--model", str(model_dir), "-o", str(parts), "--part", f"{i}/3", *HOP)
        names = set(npz_files(parts)) - set(seen)
        seen += sorted(names)
        report = json.loads((parts / f"embed_failures.part{i}of3.json").read_text())
        assert report["part"] == [i, 3]
    assert sorted(seen) == sorted(npz_files(whole)) and len(seen) == len(set(seen))
    assert_same_files(npz_files(whole), npz_files(parts))


def test_decoded_size_estimate():
    from l3net.config import get_preset
    from l3net.corpus import CorpusSettings, decoded_bytes
    from l3net.media import MediaInfo

    s = CorpusSettings(get_preset("paper"), 0.1, True, 32, "pool4", "pool4")
    minute = MediaInfo(Path("a.mp4"), "video", 60.0, True, True)
    assert decoded_bytes(minute, s) == 60 * 48_000 * 4 + 601 * 224 * 224 * 3
    assert decoded_bytes(MediaInfo(Path("a.wav"), "audio", 60.0, True, False), s) == 60 * 48_000 * 4
    assert decoded_bytes(MediaInfo(Path("a.ts"), "video", None, True, True), s) == float("inf")


def test_in_part_is_a_stable_function_of_the_name():
    keys = [f"clips/{i:05d}.wav" for i in range(3000)]
    for parts in (1, 2, 7):
        owners = [[p for p in range(1, parts + 1) if in_part(k, p, parts)] for k in keys]
        assert all(len(o) == 1 for o in owners)  # every file in exactly one part
        sizes = np.bincount([o[0] for o in owners], minlength=parts + 1)[1:]
        assert sizes.min() > 0.8 * len(keys) / parts  # and the parts are about equal
    # the split of a file never depends on the rest of the corpus (values fixed by sha1)
    assert [p for p in (1, 2, 3) if in_part("a.wav", p, 3)] == [1 + int.from_bytes(__import__("hashlib").sha1(b"a.wav").digest()[:8], "big") % 3]


@pytest.mark.parametrize("text", ["0/3", "4/3", "a/b", "2"])
def test_bad_part_is_refused(model_dir, corpus_dir, text, capsys):
    code, _, err = run_embed(capsys, str(corpus_dir / "tone.wav"), "--model", str(model_dir), "--part", text)
    assert code == 2 and "--part" in err


def test_skip_existing_resumes(model_dir, corpus_dir, tmp_path, capsys):
    out = tmp_path / "out"
    run_embed(capsys, str(corpus_dir), "--model", str(model_dir), "-o", str(out), *HOP)
    (out / "tone.npz").unlink()
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.npz")}
    code, printed, _ = run_embed(capsys, str(corpus_dir), "--model", str(model_dir), "-o", str(out), "--skip-existing", *HOP)
    assert code == 1  # broken.wav still fails
    assert "embedded 1 file(s) (1 audio)" in printed and "skipped 5 file(s) whose outputs already exist" in printed
    assert (out / "tone.npz").is_file()
    assert all(p.stat().st_mtime_ns == t for p, t in before.items())


def test_failure_summary_file(model_dir, corpus_dir, tmp_path, capsys):
    out = tmp_path / "out"
    summary = tmp_path / "logs" / "failed.json"
    code, _, err = run_embed(capsys, str(corpus_dir), "--model", str(model_dir), "-o", str(out), "--failures", str(summary), *HOP)
    assert code == 1 and f"(also in {summary})" in err
    report = json.loads(summary.read_text())
    assert [Path(f["path"]).name for f in report["failed"]] == ["broken.wav"] and report["failed"][0]["reason"]
    assert report["embedded"] == 6 and report["skipped"] == {"not media": 1}
    assert not [p for p in summary.parent.iterdir() if p != summary]  # written atomically: no temporary left


def test_process_files_is_the_list_form_of_the_file_functions(model_dir, corpus_dir, tmp_path):
    from l3net.corpus import process_files

    paths = [corpus_dir / "tone.wav", corpus_dir / "sub" / "picture.png", corpus_dir / "movie.mp4", corpus_dir / "broken.wav"]
    results = {w: process_files(paths, tmp_path / f"w{w}", model=model_dir, hop_size=0.25, workers=w) for w in (0, 1)}
    assert [r.path for r in results[1]] == paths
    assert [r.error is not None for r in results[1]] == [False, False, False, True]
    assert [p.name for r in results[1] for p in r.outputs] == ["tone.npz", "picture.npz", "movie_audio.npz", "movie_image.npz"]
    assert_same_files(npz_files(tmp_path / "w0"), npz_files(tmp_path / "w1"))
    single = tmp_path / "single"
    process_audio_file(paths[0], single, model=model_dir, hop_size=0.25)
    np.testing.assert_array_equal(np.load(single / "tone.npz")["embedding"], np.load(tmp_path / "w1" / "tone.npz")["embedding"])


def test_a_decoder_that_crashes_fails_only_its_file(model_dir, corpus_dir, tmp_path, monkeypatch):
    """FFmpeg can take its process down on a damaged file: that file is reported, the others are
    embedded as without workers."""
    import os

    from l3net.corpus import process_files

    original = corpus._decode_into

    def crashing(result, item, settings):
        if item.path.name == "tone.wav":
            os._exit(3)  # the worker process dies, as on a segfault
        return original(result, item, settings)

    paths = [corpus_dir / "sub" / "noise.flac", corpus_dir / "tone.wav", corpus_dir / "sub" / "picture.png", corpus_dir / "movie.mp4"]
    want = process_files(paths, tmp_path / "w0", model=model_dir, hop_size=0.25, workers=0)
    monkeypatch.setattr(corpus, "_decode_into", crashing)  # forked workers inherit it
    got = process_files(paths, tmp_path / "w2", model=model_dir, hop_size=0.25, workers=2)
    assert [r.error for r in got] == [None, "the decoder crashed: its process died while decoding this file", None, None]
    expected = npz_files(tmp_path / "w0")
    del expected["tone.npz"]
    assert_same_files(expected, npz_files(tmp_path / "w2"))
    assert [r.error for r in want] == [None] * 4
