"""The codec x container matrix: the clapper scene (test_timing's flash and beep at 2.0 s) written
with PyAV in every codec, rate, layout and container the bundled FFmpeg writes, read back on one
clock by ``process_video_file`` (every file) and ``prepare`` (a subset).

Not the full cross product: a covering design (tests/clappers.py). The audio pass writes every
audio codec at every rate (stereo) and in every layout (48 kHz) in Matroska; the video pass every
video codec in Matroska; the container pass every container with every codec it takes, each paired
with a partner codec the container takes. A combination FFmpeg cannot write (or writes and cannot
read back) is skipped with FFmpeg's own reason: ``pytest -rs`` lists them all.

What is asserted for each file: l3net's first flash frame and beep onset sit where FFmpeg itself
(PyAV, decoding the streams directly) puts them on the file's timeline, and the two are within half
a source frame of each other.
"""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest
from clappers import (
    AUDIO_ENCODERS, CONTAINER_PAIRS, MATRIX_CONTAINER, VIDEO_ENCODERS, Combo, Matrix, audio_combos, coverage, file_beep, marked,
    video_combos,
)
from test_timing import (
    FLASH, HALF_SOURCE_FRAME, HEIGHT, SLACK, STORED_FPS, _Spy, beep_onset, expected_scene_time, flash_time,
)

from l3net import process_video_file
from l3net.data.prepare import PrepareConfig, prepare, read_manifest

STEP = 1.0 / STORED_FPS  # a stored frame interval: half a source frame

#: Combinations l3net cannot read yet (file name -> the cause), marked xfail(strict): the day one
#: passes, its mark must go. (MP2 in MPEG-TS was one until the audio graph followed the frames, #21.)
KNOWN_FAILURES: dict[str, str] = {}


@pytest.fixture(scope="session")
def matrix(tmp_path_factory: pytest.TempPathFactory) -> Matrix:
    """The matrix's files, each written once per test session when first asked for."""
    return Matrix(tmp_path_factory.mktemp("codec_matrix"))


def _written(matrix: Matrix, combo: Combo) -> Path:
    reason = matrix.attempt(combo)
    if reason is not None:
        pytest.skip(f"FFmpeg cannot write {combo.name}: {reason}")
    return matrix.path(combo)


def _expect_known_failure(request: pytest.FixtureRequest, combo: Combo) -> None:
    # marked when the test runs: the container pass's partner codecs are chosen by what FFmpeg writes
    if combo.name in KNOWN_FAILURES:
        request.applymarker(pytest.mark.xfail(strict=True, reason=KNOWN_FAILURES[combo.name]))


def assert_aligned(flash: float, beep: float, path: Path) -> None:
    """l3net's flash and beep where FFmpeg's own decoding puts them (the flash on the first stored
    frame at or after FFmpeg's), and FFmpeg's within half a source frame of each other (an encoder
    delay the container cannot declare, as MP2 or AC-3 in AVI, is a few ms).

    A file whose sound and picture FFmpeg itself decodes more than half a source frame apart was
    written out of sync (a delay the container cannot declare, a demuxer that guesses timestamps):
    l3net must still read it on FFmpeg's clock, and the test then says so as a skip, with the numbers.
    """
    expected_flash, expected_beep = expected_scene_time(path), file_beep(path)
    assert expected_flash - SLACK <= flash < expected_flash + STEP + SLACK, f"flash at {flash:.4f} s, FFmpeg's at {expected_flash:.4f} s"
    # 2 ms: the onset of a lossy beep moves by a sample or two through the resampler
    assert beep == pytest.approx(expected_beep, abs=2e-3), f"beep at {beep:.4f} s, FFmpeg's at {expected_beep:.4f} s"
    if abs(expected_beep - expected_flash) > HALF_SOURCE_FRAME:
        pytest.skip(
            f"FFmpeg writes {path.name} out of sync: its own decoding puts the beep at {expected_beep:.3f} s and the "
            f"flash at {expected_flash:.3f} s (scene: both at {FLASH} s); l3net reads it on FFmpeg's clock"
        )
    # the stored frame showing the flash comes up to one stored frame after the flash itself
    assert -HALF_SOURCE_FRAME - SLACK <= flash - beep < HALF_SOURCE_FRAME + STEP + SLACK, f"flash at {flash:.4f} s, beep at {beep:.4f} s"


def embed_and_check(path: Path, combo: Combo, out: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spy = _Spy(monkeypatch)
    audio_npz, image_npz = process_video_file(path, out, model="small", hop_size=STEP, batch_size=64, device="cpu")
    times = [t for t, _ in spy.frames]
    assert_aligned(flash_time(times, [f for _, f in spy.frames]), beep_onset(np.concatenate(spy.audio)), path)
    with np.load(audio_npz) as saved:
        timing = json.loads(str(saved["timing"]))
    channels = len(av.AudioLayout(combo.layout).channels) if combo.audio else 0
    assert timing["audio_channels"] == channels, timing


# ------------------------------------------------------------------------------------------------
# the three passes, through process_video_file
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("combo", audio_combos(), ids=lambda c: c.name)
def test_audio_codec_rate_layout(matrix, combo: Combo, request, tmp_path, monkeypatch) -> None:
    path = _written(matrix, combo)
    _expect_known_failure(request, combo)
    embed_and_check(path, combo, tmp_path, monkeypatch)


@pytest.mark.parametrize("combo", video_combos(), ids=lambda c: c.name)
def test_video_codec(matrix, combo: Combo, request, tmp_path, monkeypatch) -> None:
    path = _written(matrix, combo)
    _expect_known_failure(request, combo)
    embed_and_check(path, combo, tmp_path, monkeypatch)


@pytest.mark.parametrize(("container", "codec"), CONTAINER_PAIRS, ids=[f"{c}-{codec}" for c, codec in CONTAINER_PAIRS])
def test_container_takes_codec(matrix, container: str, codec: str, request, tmp_path, monkeypatch) -> None:
    combo, reason = matrix.pair(container, codec)
    if combo is None or reason is not None:
        pytest.skip(f"FFmpeg cannot write {codec} in {container}: {reason}")
    _expect_known_failure(request, combo)
    embed_and_check(matrix.path(combo), combo, tmp_path, monkeypatch)


def test_every_encoder_this_ffmpeg_has_is_in_the_matrix(matrix) -> None:
    """The writer's own check: a codec whose encoder exists is written somewhere (a matrix that
    skipped everything would pass every test above)."""
    for container, codec in CONTAINER_PAIRS:
        matrix.pair(container, codec)
    written = {c for c, reason in matrix.refused.items() if reason is None}
    for codec, encoder in AUDIO_ENCODERS.items():
        if encoder in av.codecs_available:
            assert any(c.audio == codec and c.video is not None for c in written), codec
    for codec, (encoder, _) in VIDEO_ENCODERS.items():
        if encoder in av.codecs_available:
            assert any(c.video == codec and c.audio is not None for c in written), codec
    assert MATRIX_CONTAINER in {c.container for c in written}


REPO = Path(__file__).resolve().parents[1]
#: the blocks each document holds (tools/codec_matrix.py writes them)
DOCUMENTS = {"README.md": ("containers",), "docs/DESIGN.md": ("containers", "audio")}


def test_the_docs_list_what_the_matrix_covers(matrix) -> None:
    """README's and DESIGN's tables are the matrix's own output (regenerate: tools/codec_matrix.py --write)."""
    blocks = coverage(matrix)
    for document, names in DOCUMENTS.items():
        text = (REPO / document).read_text(encoding="utf-8")
        for name in names:
            written = marked(text, name)
            assert written is not None, f"{document} has no <!-- codec-matrix:{name} --> block"
            ours, theirs = blocks[name].splitlines()[0], written.splitlines()[0]
            if ours != theirs:  # another PyAV wheel bundles another FFmpeg: another matrix
                pytest.skip(f"{document} was generated with another FFmpeg ({theirs!r}); this is {ours!r}")
            assert written == blocks[name], f"{document}'s {name} table is not the matrix's: run tools/codec_matrix.py --write"


# ------------------------------------------------------------------------------------------------
# a subset through prepare: every video codec, and every container with its partner codecs
# ------------------------------------------------------------------------------------------------
def _prepare_subset() -> list[Combo]:
    return video_combos() + [Combo(MATRIX_CONTAINER, "h264", codec) for codec in AUDIO_ENCODERS]


@pytest.fixture(scope="module")
def prepared(matrix, tmp_path_factory: pytest.TempPathFactory):
    from l3net.data.shards import ShardSet

    paths = {c: matrix.path(c) for c in _prepare_subset() if matrix.attempt(c) is None}
    out = tmp_path_factory.mktemp("matrix_prepared") / "shards"
    config = PrepareConfig(seconds=10.0, fps=STORED_FPS, frame_size=HEIGHT, split_ratios=(1.0, 0.0, 0.0), shard_size=100)
    prepare(sorted(paths.values()), out, config=config, progress=False)
    return ShardSet(out), {Path(line["path"]).name: line for line in read_manifest(out)}


@pytest.mark.parametrize("combo", _prepare_subset(), ids=lambda c: c.name)
def test_prepare_keeps_the_matrix_on_one_clock(matrix, prepared, combo: Combo, request) -> None:
    path = _written(matrix, combo)
    _expect_known_failure(request, combo)
    shards, manifest = prepared
    line = manifest[path.name]
    assert line["status"] == "kept", line
    video = next(v for v in shards.videos("train") if v.meta["source"] == path.name)
    frames = [shards.read_frame(video, i) for i in range(len(video.frame_times))]
    assert_aligned(flash_time(video.frame_times, frames), beep_onset(shards.read_audio(video)), path)
