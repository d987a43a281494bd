"""Broadcast streams (#21 item 1): the filter graphs follow the frames. MPEG-TS with MP2 sound; two
MPEG-TS segments joined whose sound changes layout and rate (stereo 48 kHz, then 5.1 at 44.1 kHz);
two joined whose interlaced picture changes size and pixel format.

The sound of the first two was refused with FFmpeg's "Invalid argument" from the filter graph,
built once from what the stream declares; the third's pictures came out at one size. The files show test_timing's clapper scene (a flash and a beep); the joined one
beeps on both sides of the change, so a sample lost or shifted at the change moves the second beep.
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from test_timing import (
    FLASH,
    HEIGHT,
    WIDTH,
    SECONDS,
    SLACK,
    SOURCE_FPS,
    STORED_FPS,
    assert_in_sync,
    expected_scene_time,
    flash_time,
    scene_picture,
    scene_sound,
)

from l3net import media
from l3net.config import SAMPLE_RATE
from l3net.data.prepare import PrepareConfig, prepare, read_manifest
from l3net.embed_files import process_video_file
from l3net.media.resampling import _FollowingGraph

#: scene time at which the second segment of the joined file begins, and of its first beep
CHANGE = 1.5
EARLY_BEEP = 1.0
#: the joined files: (layout, rate) of the first segment and of the second. The issue's order, and
#: the reverse, where the first segment goes through the resampler (whose last samples at the change
#: must be counted exactly)
JOINED = {"joined": (("stereo", 48_000), ("5.1", 44_100)), "joined_reverse": (("5.1", 44_100), ("stereo", 48_000))}
#: the picture's size (width, height) in the second segment of the joined file whose picture changes
PICTURE_CHANGE = (96, 64)
#: container time of scene time 0: positive, so no segment's muxer shifts its own timestamps
#: (AAC priming would be negative), and the joined segments keep one continuous clock
CLOCK_OFFSET = 10.0


def write_segment(
    path: Path, *, video: str, audio: str, layout: str, rate: int, begin: float, end: float, beeps: tuple[float, ...],
    size: tuple[int, int] = (WIDTH, HEIGHT), pix_fmt: str = "yuv420p", interlaced: bool = False,
) -> None:
    """An MPEG-TS of the scene from ``begin`` to ``end`` s, on the container clock a broadcast keeps;
    the picture ``size`` (width, height) pixels, coded interlaced or not."""
    channels = len(av.AudioLayout(layout).channels)
    rows, cols = (np.arange(size[1]) * HEIGHT // size[1]), (np.arange(size[0]) * WIDTH // size[0])
    with av.open(str(path), "w", format="mpegts") as out:
        pictures = out.add_stream(video, rate=SOURCE_FPS, options={"flags": "+ilme+ildct"} if interlaced else {})
        pictures.width, pictures.height, pictures.pix_fmt = size[0], size[1], pix_fmt
        sound = out.add_stream(audio, rate=rate, layout=layout)
        for k in range(round(begin * SOURCE_FPS), round(end * SOURCE_FPS)):
            picture = np.ascontiguousarray(scene_picture(k / SOURCE_FPS)[rows][:, cols])
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
            frame.pts, frame.time_base = k + round(CLOCK_OFFSET * SOURCE_FPS), Fraction(1, SOURCE_FPS)
            out.mux(pictures.encode(frame))
        out.mux(pictures.encode(None))
        first, stop = round(begin * rate), round(end * rate)
        while first < stop:
            count = min(1152, stop - first)
            mono = sum(scene_sound(first, count, rate, at) for at in beeps)
            frame = av.AudioFrame.from_ndarray(np.repeat(mono[None], channels, axis=0), format="fltp", layout=layout)
            frame.sample_rate = rate
            frame.pts, frame.time_base = first + round(CLOCK_OFFSET * rate), Fraction(1, rate)
            out.mux(sound.encode(frame))
            first += count
        out.mux(sound.encode(None))


@pytest.fixture(scope="module")
def broadcast(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """'mp2': MPEG-2 video + MP2 stereo in MPEG-TS; each of ``JOINED``: two H.264 + AAC segments, their
    bytes concatenated; 'picture': two interlaced H.264 segments, the second larger and 4:2:2
    (written once per module)."""
    missing = [c for c in ("mpeg2video", "mp2", "libx264", "aac") if c not in av.codecs_available]
    if missing:
        pytest.skip(f"this FFmpeg has no encoder for {', '.join(missing)}")
    folder = tmp_path_factory.mktemp("broadcast")
    write_segment(folder / "mp2.ts", video="mpeg2video", audio="mp2", layout="stereo", rate=48_000, begin=0.0, end=SECONDS, beeps=(FLASH,))
    for name, (first, then) in JOINED.items():
        parts = []
        for index, ((layout, rate), begin, end) in enumerate(((first, 0.0, CHANGE), (then, CHANGE, SECONDS))):
            part = folder / f"{name}_{index}.ts"
            write_segment(part, video="libx264", audio="aac", layout=layout, rate=rate, begin=begin, end=end, beeps=(EARLY_BEEP, FLASH))
            parts.append(part.read_bytes())
        (folder / f"{name}.ts").write_bytes(b"".join(parts))
    parts = []
    for index, (size, pix_fmt, begin, end) in enumerate((((WIDTH, HEIGHT), "yuv420p", 0.0, CHANGE), (PICTURE_CHANGE, "yuv422p", CHANGE, SECONDS))):
        part = folder / f"picture_{index}.ts"
        write_segment(
            part, video="libx264", audio="aac", layout="stereo", rate=48_000, begin=begin, end=end, beeps=(FLASH,),
            size=size, pix_fmt=pix_fmt, interlaced=True,
        )
        parts.append(part.read_bytes())
    (folder / "picture.ts").write_bytes(b"".join(parts))
    return {"mp2": folder / "mp2.ts", "picture": folder / "picture.ts", **{name: folder / f"{name}.ts" for name in JOINED}}


def onset(audio: np.ndarray, after: float, before: float) -> float:
    """Seconds of the first sample between ``after`` and ``before`` s louder than half the beep."""
    window = audio[round(after * SAMPLE_RATE) : round(before * SAMPLE_RATE)]
    loud = np.flatnonzero(np.abs(window) > 0.25 * np.abs(audio).max())
    assert loud.size, f"no beep between {after} and {before} s"
    return after + float(loud[0]) / SAMPLE_RATE


def sound_end(path: Path) -> float:
    """Timeline seconds where the file's sound ends: its last decoded frame's end (PyAV, independently of l3net)."""
    with av.open(str(path)) as container:
        *_, last = container.decode(audio=0)
    return last.time + last.samples / last.sample_rate - media.read_timeline(path).origin


def assert_nothing_lost(sound: np.ndarray, report: media.AudioReport, path: Path) -> None:
    """The sound's own samples, and silence only after them up to the end of the picture (to one
    sample: the resampler's last)."""
    end, heard = media.read_timeline(path).end, sound_end(path)
    assert report.gaps == 0 and report.padded_start == 0
    assert report.padded_end == pytest.approx(max(0.0, end - heard), abs=1.5 / SAMPLE_RATE)
    assert abs(sound.size - round(max(end, heard) * SAMPLE_RATE)) <= 1


def read_both(path: Path) -> tuple[np.ndarray, media.AudioReader, list[tuple[float, np.ndarray]]]:
    reader = media.AudioReader(path)
    sound = np.concatenate(list(reader))
    return sound, reader, list(media.VideoReader(path, fps=STORED_FPS))


def test_mp2_in_mpeg_ts_is_read_on_one_clock(broadcast) -> None:
    path = broadcast["mp2"]
    with av.open(str(path)) as container:  # the trap: the stream declares one sample format, the decoder gives another
        stream = container.streams.audio[0]
        declared = stream.format.name
        decoded = next(container.decode(stream)).format.name
    sound, reader, pairs = read_both(path)
    expected = expected_scene_time(path)
    assert_in_sync(flash_time([t for t, _ in pairs], [f for _, f in pairs]), onset(sound, 0.0, SECONDS), expected, 1.0 / STORED_FPS)
    assert_nothing_lost(sound, reader.report, path)
    timing = reader.report.to_dict()
    assert timing["audio_format_changes"] == [] and timing["audio_overlaps_s"] == 0
    assert declared != decoded or timing["audio_downmix"] == "mean"


@pytest.mark.parametrize("name", sorted(JOINED))
def test_joined_segments_change_layout_and_rate_without_moving_a_sample(broadcast, name: str) -> None:
    path = broadcast[name]
    sound, reader, pairs = read_both(path)
    expected = expected_scene_time(path)  # the flash, after the change
    shift = expected - FLASH  # scene time -> timeline time (the sound's priming before scene 0)
    second = onset(sound, CHANGE + shift, SECONDS)
    assert_in_sync(flash_time([t for t, _ in pairs], [f for _, f in pairs]), second, expected, 1.0 / STORED_FPS)
    # both beeps where the scene has them, to the millisecond: nothing lost or shifted at the change
    assert onset(sound, 0.0, CHANGE + shift) == pytest.approx(EARLY_BEEP + shift, abs=SLACK)
    assert second == pytest.approx(FLASH + shift, abs=SLACK)
    report = reader.report
    assert_nothing_lost(sound, report, path)
    # the second segment's AAC priming overlaps the first's last frame: dropped, no more
    assert report.overlaps < 0.05
    [change] = report.format_changes
    assert change["t"] == pytest.approx(CHANGE + shift, abs=0.05)
    (layout, rate), (new_layout, new_rate) = JOINED[name]
    assert change["from"].startswith(f"fltp {layout}") and change["from"].endswith(f" {rate} Hz")
    assert change["to"].startswith(f"fltp {new_layout}") and change["to"].endswith(f" {new_rate} Hz")
    assert report.to_dict()["audio_format_changes"] == [change]


def test_the_manifest_and_the_npz_say_what_changed_and_when(broadcast, tmp_path) -> None:
    path = broadcast["joined"]
    config = PrepareConfig(seconds=10.0, fps=STORED_FPS, frame_size=HEIGHT, split_ratios=(1.0, 0.0, 0.0))
    prepare([path, broadcast["mp2"]], tmp_path / "shards", config=config, progress=False)
    lines = {Path(line["path"]).name: line for line in read_manifest(tmp_path / "shards")}
    assert all(line["status"] == "kept" for line in lines.values()), lines
    [change] = lines["joined.ts"]["timing"]["audio_format_changes"]
    assert "44100 Hz" in change["to"] and lines["mp2.ts"]["timing"]["audio_format_changes"] == []
    audio_npz, image_npz = process_video_file(path, tmp_path / "npz", model="small", hop_size=0.5, batch_size=8, device="cpu")
    with np.load(audio_npz) as saved:
        timing = json.loads(str(saved["timing"]))
    assert timing["audio_format_changes"] == [change]


def upright_mark(frame: np.ndarray) -> bool:
    """The scene's red mark fills the top-left quarter-corner of the frame, whatever its size: a
    frame decoded, deinterlaced and scaled as what it is, not as a frame of another size."""
    height, width = frame.shape[:2]
    red = (frame[..., 0] > 150) & (frame[..., 1] < 80)
    rows, cols = np.nonzero(red)
    corner = red[: height // 4 - 1, : width // 4 - 1]
    return bool(rows.size) and rows.max() <= height // 4 + 1 and cols.max() <= width // 4 + 1 and bool(corner.mean() > 0.9)


def test_joined_segments_change_picture_size_and_pixel_format(broadcast) -> None:
    """An interlaced picture that changes size and pixel format mid-stream: the deinterlacer
    follows the frames; every frame shows the scene, the flash in step with the beep."""
    path = broadcast["picture"]
    with av.open(str(path)) as container:  # what the file holds: two sizes, two pixel formats
        coded = {(f.width, f.height, f.format.name) for f in container.decode(video=0)}
    assert coded == {(WIDTH, HEIGHT, "yuv420p"), (*PICTURE_CHANGE, "yuv422p")}
    sound = media.load_audio(path)
    reader = media.VideoReader(path, fps=STORED_FPS)
    pairs = list(reader)
    assert reader.report.deinterlaced
    assert all(upright_mark(frame) for _, frame in pairs)
    expected = expected_scene_time(path)
    assert_in_sync(flash_time([t for t, _ in pairs], [f for _, f in pairs]), onset(sound, 0.0, SECONDS), expected, 1.0 / STORED_FPS)
    # from a seek (MPEG-TS: decoding from the start), scaled: the scene on both sides of the change
    scaled = list(media.VideoReader(path, times=[0.5, 2.5], smaller_side=32))
    assert len(scaled) == 2 and all(min(f.shape[:2]) == 32 and upright_mark(f) for _, f in scaled)


def _silent(layout: str, rate: int, samples: int) -> av.AudioFrame:
    frame = av.AudioFrame(format="fltp", layout=layout, samples=samples)
    for plane in frame.planes:
        plane.update(bytes(plane.buffer_size))
    frame.sample_rate = rate
    return frame


def test_a_rebuilt_graph_hands_over_exactly_the_samples_that_went_in() -> None:
    """At a change the old graph's output is made exactly as long as its input (FFmpeg's resampler
    rounds up: 66560 samples at 44.1 kHz come out as 72447 at 48 kHz, not 72446.26)."""
    graph = _FollowingGraph(None, out_rate=SAMPLE_RATE, start=0.5, path=Path("synthetic.ts"))
    before = graph.push(_silent("5.1", 44_100, 66_560))
    at_change = graph.push(_silent("stereo", 48_000, 4_800))
    assert sum(p.size for p in before + at_change) == round(66_560 * SAMPLE_RATE / 44_100)
    rest = graph.push(None)
    assert sum(p.size for p in before + at_change + rest) == round(66_560 * SAMPLE_RATE / 44_100) + 4_800
    assert graph.changes == [{"t": pytest.approx(0.5 + 66_560 / 44_100), "from": "fltp 5.1 44100 Hz", "to": "fltp stereo 48000 Hz"}]
    assert graph.downmix == "ffmpeg matrix"  # the first graph's (5.1)
