"""Streams that change mid-file, each with the clapper's flash and beep (2.0 s) aligned.

- Joined MPEG-TS segments (as recorders and broadcasters join them) whose audio changes layout
  only, rate only, or MP2's rate and layout (tests/test_broadcast.py holds stereo 48 kHz <-> 5.1 44.1 kHz);
- joined segments whose picture changes size (same aspect, other aspect) or pixel format;
- a second audio stream that starts late;
- MPEG-TS timestamps that wrap (33 bits at 90 kHz) inside the kept seconds.
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from clappers import Combo, join_segments, write_clapper
from test_codec_matrix import STEP, assert_aligned
from test_timing import FLASH, HEIGHT, SOURCE_FPS, STORED_FPS, WIDTH, _Spy, beep_onset, flash_time, scene_picture, scene_sound

from l3net import media, process_video_file
from l3net.data.prepare import PrepareConfig, prepare, read_manifest
from l3net.data.shards import ShardSet

JOIN = 1.5  # scene seconds where the second segment begins


def _segments(first: dict, second: dict) -> list[Combo]:
    return [Combo("mpegts", **{"video": "h264", "audio": "aac", **first}, span=(0.0, JOIN)),
            Combo("mpegts", **{"video": "h264", "audio": "aac", **second}, span=(JOIN, 3.0))]


def _embed(path: Path, out: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[list[tuple[float, np.ndarray]], np.ndarray, dict]:
    spy = _Spy(monkeypatch)
    audio_npz, _ = process_video_file(path, out, model="small", hop_size=STEP, batch_size=64, device="cpu")
    with np.load(audio_npz) as saved:
        timing = json.loads(str(saved["timing"]))
    return spy.frames, np.concatenate(spy.audio), timing


AUDIO_CHANGES = {
    "layout": ({}, {"layout": "mono"}),
    "rate": ({}, {"rate": 44_100}),
    "mp2_rate_and_layout": ({"audio": "mp2"}, {"audio": "mp2", "rate": 44_100, "layout": "mono"}),
}


@pytest.mark.parametrize("change", sorted(AUDIO_CHANGES))
def test_audio_that_changes_mid_stream(change: str, tmp_path, monkeypatch) -> None:
    path = tmp_path / f"{change}.ts"
    join_segments(path, _segments(*AUDIO_CHANGES[change]))
    frames, audio, timing = _embed(path, tmp_path, monkeypatch)
    assert_aligned(flash_time([t for t, _ in frames], [f for _, f in frames]), beep_onset(audio), path)
    changes = timing["audio_format_changes"]
    # at the join (MP2's decoder takes two frames to get there: layout, then rate)
    assert changes and all(c["t"] == pytest.approx(JOIN, abs=0.05) for c in changes), timing
    second = _segments(*AUDIO_CHANGES[change])[1]
    assert changes[-1]["to"].endswith(f"{second.layout} {second.rate} Hz"), timing


@pytest.mark.parametrize("size", [(96, 72), (80, 48)], ids=["same_aspect", "other_aspect"])
def test_video_whose_size_changes_mid_stream(size: tuple[int, int], tmp_path, monkeypatch) -> None:
    """Every frame comes at the first frame's size (a player's window keeps its size); the change
    is reported with its time."""
    path = tmp_path / "resized.ts"
    join_segments(path, _segments({}, {"size": size}))
    frames, audio, timing = _embed(path, tmp_path, monkeypatch)
    assert {f.shape for _, f in frames} == {frames[0][1].shape}
    assert_aligned(flash_time([t for t, _ in frames], [f for _, f in frames]), beep_onset(audio), path)
    [changed] = timing["video_size_changes"]
    assert changed["t"] == pytest.approx(JOIN, abs=0.05) and changed["to"] == f"{size[0]}x{size[1]}", timing
    assert changed["from"] == f"{WIDTH}x{HEIGHT}"
    # read without scaling: the later frames are scaled to the first's coded size
    shapes = {f.shape for _, f in media.VideoReader(path, times=[0.5, 2.5])}
    assert shapes == {(HEIGHT, WIDTH, 3)}


def test_video_whose_pixel_format_changes_mid_stream(tmp_path, monkeypatch) -> None:
    """4:2:0 then 4:4:4 (High 4:4:4 H.264 after the join): the same picture, no size change."""
    path = tmp_path / "yuv444.ts"
    join_segments(path, _segments({}, {"pix_fmt": "yuv444p"}))
    with av.open(str(path)) as container:  # the file really changes: FFmpeg decodes both formats
        assert {f.format.name for f in container.decode(video=0)} == {"yuv420p", "yuv444p"}
    frames, audio, timing = _embed(path, tmp_path, monkeypatch)
    assert {f.shape for _, f in frames} == {frames[0][1].shape} and timing["video_size_changes"] == []
    assert_aligned(flash_time([t for t, _ in frames], [f for _, f in frames]), beep_onset(audio), path)


def _write_late_second_audio(path: Path, late: float) -> None:
    """Matroska, h264 + two mono AAC streams beeping at the flash; the second starts at ``late`` s."""
    rate = 48_000
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=SOURCE_FPS, options={"preset": "ultrafast"})
        video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        audios = [out.add_stream("aac", rate=rate, layout="mono") for _ in range(2)]
        for k in range(3 * SOURCE_FPS):
            frame = av.VideoFrame.from_ndarray(scene_picture(k / SOURCE_FPS), format="rgb24")
            frame.pts, frame.time_base = k, Fraction(1, SOURCE_FPS)
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        for stream, start in zip(audios, (0.0, late)):
            for first in range(round(start * rate), 3 * rate, 1024):
                frame = av.AudioFrame.from_ndarray(scene_sound(first, 1024, rate)[None], format="fltp", layout="mono")
                frame.sample_rate, frame.pts, frame.time_base = rate, first, Fraction(1, rate)
                out.mux(stream.encode(frame))
            out.mux(stream.encode(None))


def test_a_second_audio_stream_that_starts_late(tmp_path, monkeypatch) -> None:
    path = tmp_path / "late_second.mkv"
    _write_late_second_audio(path, late=1.0)
    spy = _Spy(monkeypatch)
    audio_npz, _ = process_video_file(path, tmp_path, model="small", hop_size=STEP, batch_size=64, device="cpu", audio_stream=1)
    audio = np.concatenate(spy.audio)
    assert_aligned(flash_time([t for t, _ in spy.frames], [f for _, f in spy.frames]), beep_onset(audio), path)
    with np.load(audio_npz) as saved:
        timing = json.loads(str(saved["timing"]))
    assert timing["audio_stream"] == 1 and timing["audio_padded_s"] == pytest.approx(1.0, abs=0.03), timing
    assert not np.any(np.abs(audio[: round(0.9 * 48_000)]) > 1e-4)  # silence before the late stream


#: MPEG-TS timestamps are 33 bits of 90 kHz: they wrap every 2**33 / 90000 s (about 26.5 hours).
WRAP = 2**33 / 90_000


@pytest.fixture(scope="module")
def wrapped(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The clapper in MPEG-TS, its clock 1 s before the wrap at scene time 0: the wrap falls at 1 s."""
    path = tmp_path_factory.mktemp("wrap") / "wrap.ts"
    write_clapper(path, Combo("mpegts", "h264", "aac", clock_offset=WRAP - 1.0))
    with av.open(str(path)) as container:  # the file really wraps: its raw timestamps go back
        raw = [p.pts for p in container.demux(video=0) if p.pts is not None]
    assert max(raw) > 0 > min(raw) or any(b < a - 90_000 for a, b in zip(raw, raw[1:])), "the writer did not wrap"
    return path


def test_mpegts_timestamp_wrap_inside_the_kept_seconds(wrapped, tmp_path, monkeypatch) -> None:
    frames, audio, _ = _embed(wrapped, tmp_path, monkeypatch)
    assert_aligned(flash_time([t for t, _ in frames], [f for _, f in frames]), beep_onset(audio), wrapped)
    assert audio.size == pytest.approx(3.0 * 48_000, abs=0.05 * 48_000)  # nothing lost or doubled at the wrap
    # prepare keeps 0.5 s to 2.5 s: the wrap (1 s) and the flash (2 s) inside
    config = PrepareConfig(seconds=2.0, start=0.5, fps=STORED_FPS, frame_size=HEIGHT, split_ratios=(1.0, 0.0, 0.0))
    prepare([wrapped], tmp_path / "s", config=config, progress=False)
    [line] = read_manifest(tmp_path / "s")
    assert line["status"] == "kept", line
    shards = ShardSet(tmp_path / "s")
    [video] = shards.videos("train")
    stored = [shards.read_frame(video, i) for i in range(len(video.frame_times))]
    flash, beep = flash_time(video.frame_times, stored), beep_onset(shards.read_audio(video))
    assert beep == pytest.approx(FLASH - 0.5, abs=0.03) and 0 <= flash - beep < STEP + 0.03
