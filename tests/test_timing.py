"""One clock for sound and picture: a corpus of "clapper" videos in every container PyAV writes here.

Each clapper shows a white flash and plays a 1 kHz beep at the same moment of the scene
(``FLASH`` = 2.0 s), then is written with the traps of real files: streams that do not start at
0 (delayed audio, delayed video, MPEG-TS at 600 s), edit lists or none, encoder priming (AAC,
Opus), rotation metadata, non-square pixels, a variable frame rate, two audio streams, gaps,
audio shorter than the picture, interlacing. After ``prepare`` and after ``process_video_file``
the flash and the beep must land at the same time, at the scene's time, and the manifest must
say what was done.

How "the same time" is measured: audio is exact to the sample; a stored frame at time t shows
the last frame whose timestamp is <= t, so the first stored frame showing the flash is at or
after the flash, by less than one stored frame interval. Frames are stored at ``STORED_FPS`` =
twice the source rate: the flash is then within ``1 / STORED_FPS`` = half a source frame
interval of the beep.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
import torch

from l3net import embed_files, media
from l3net.config import SAMPLE_RATE
from l3net.data import shards as fmt
from l3net.data.prepare import PrepareConfig, prepare, read_manifest
from l3net.data.shards import ShardSet
from l3net.errors import MediaError

FLASH = 2.0  # scene seconds of the flash and the beep
FLASH_LENGTH = 0.1
SOURCE_FPS = 25
STORED_FPS = 2 * SOURCE_FPS
WIDTH, HEIGHT = 64, 48
AUDIO_RATE = 48_000
SECONDS = 3.5
#: detection slack: the beep's onset is found to within a sample or two; frame times are rounded
#: to the microsecond in the metadata.
SLACK = 1e-3
HALF_SOURCE_FRAME = 0.5 / SOURCE_FPS

DARK, WHITE, MARK = 30, 235, (200, 0, 0)


def scene_picture(t: float) -> np.ndarray:
    """The scene at ``t`` s: dark grey, white during the flash; a red mark in the top-left
    quarter-corner shows which way is up."""
    image = np.full((HEIGHT, WIDTH, 3), WHITE if FLASH <= t < FLASH + FLASH_LENGTH else DARK, np.uint8)
    image[: HEIGHT // 4, : WIDTH // 4] = MARK
    return image


def scene_sound(first: int, count: int, rate: int, beep_at: float = FLASH) -> np.ndarray:
    """``count`` samples from sample ``first`` of the scene's sound: silence, a 1 kHz beep at ``beep_at``."""
    t = (first + np.arange(count)) / rate
    beep = (t >= beep_at) & (t < beep_at + FLASH_LENGTH)
    return np.where(beep, 0.5 * np.sin(2 * np.pi * 1000.0 * t), 0.0).astype(np.float32)


@dataclass(frozen=True)
class Clapper:
    """One file of the corpus: how it is written and what reading it must report."""

    name: str
    suffix: str
    video_codec: str = "libx264"
    audio_codec: str = "aac"
    container_format: str | None = None
    options: dict[str, str] = field(default_factory=dict)  # muxer options
    video_options: dict[str, str] = field(default_factory=dict)  # encoder options
    pix_fmt: str = "yuv420p"
    video_start: float = 0.0  # scene time of the first video frame
    audio_start: float = 0.0  # scene time of the first audio sample
    audio_end: float = SECONDS
    audio_gap: tuple[float, float] | None = None  # scene seconds with no audio packets
    clock_offset: float = 0.0  # container time of scene time 0
    rotation: int = 0  # display matrix, degrees counter-clockwise
    sample_aspect: Fraction | None = None
    vfr: bool = False
    beeps: tuple[float, ...] = (FLASH,)  # one audio stream per beep time
    default_audio: int | None = None  # the audio stream marked default
    #: encoder delay the container cannot signal: the file itself plays its sound this much late
    #: (FFmpeg's AC-3 encoder: 256 samples of priming; AVI has no edit list)
    unsignalled_delay: float = 0.0
    expect: dict[str, Any] = field(default_factory=dict)  # manifest "timing" fields (approximate numbers)

    def codecs(self) -> list[str]:
        return [self.video_codec, self.audio_codec]


CORPUS = [
    Clapper("mp4_editlist", ".mp4"),  # x264 B-frames and AAC priming: both behind an edit list
    # No edit list: FFmpeg's muxer moves the audio after its first (priming) packet to the video's
    # B-frame delay (80 ms), leaving a gap that becomes silence.
    Clapper("mp4_no_editlist", ".mp4", options={"use_editlist": "0"}, expect={"audio_gaps_s": 0.0587}),
    Clapper("mov", ".mov"),
    Clapper("mkv_audio_late", ".mkv", audio_start=1.0, expect={"audio_padded_s": 1.0, "audio_offset": 1.0}),
    Clapper("mkv_video_late", ".mkv", video_start=1.0, expect={"video_offset": 1.0, "audio_padded_s": 0.0}),
    Clapper("webm_vp9_opus", ".webm", "libvpx-vp9", "libopus"),
    # AC-3, not MP3: FFmpeg's AVI muxer loses the second video packet next to MP3 audio.
    Clapper("avi", ".avi", "mpeg4", "ac3", unsignalled_delay=256 / AUDIO_RATE),
    Clapper("ts_600s", ".ts", container_format="mpegts", clock_offset=600.0, expect={"timeline_origin": 599.98}),
    # Matroska keeping negative timestamps: the sound starts at -1.02 s (priming included)
    Clapper("mkv_negative", ".mkv", options={"avoid_negative_ts": "disabled"}, clock_offset=-1.0, expect={"timeline_origin": -1.022}),
    Clapper("mp4_rotated", ".mp4", rotation=90, expect={"rotation": 90}),
    Clapper("mp4_anamorphic", ".mp4", sample_aspect=Fraction(2, 1), expect={"sample_aspect_ratio": "2:1"}),
    Clapper("mkv_vfr", ".mkv", vfr=True),
    Clapper("mkv_two_audio", ".mkv", beeps=(2.5, FLASH), default_audio=1, expect={"audio_stream": 1, "audio_streams": 2}),
    Clapper("mkv_audio_gap", ".mkv", audio_gap=(0.8, 1.3), expect={"audio_gaps_s": 0.5}),
    Clapper("mp4_short_audio", ".mp4", audio_end=2.5, expect={"audio_padded_end_s": 1.0}),
    Clapper("mp4_interlaced", ".mp4", video_options={"flags": "+ilme+ildct"}, expect={"deinterlaced": True}),
]


def _frame_times(clapper: Clapper) -> list[float]:
    if not clapper.vfr:
        return [k / SOURCE_FPS for k in range(round(SECONDS * SOURCE_FPS))]
    # irregular intervals (20, 60, 20, 60... ms) with a frame exactly at the flash
    times, t, k = [], 0.0, 0
    while t < SECONDS - 1e-9:
        times.append(round(t, 3))
        t += 0.02 if k % 2 else 0.06
        k += 1
    return sorted(set(times) | {FLASH, FLASH + FLASH_LENGTH})


def write_clapper(path: Path, clapper: Clapper) -> None:
    """Write ``clapper`` to ``path`` with PyAV (low resolution, a few seconds)."""
    with av.open(str(path), "w", format=clapper.container_format, options=clapper.options) as out:
        video = out.add_stream(clapper.video_codec, rate=SOURCE_FPS, options=clapper.video_options)
        video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, clapper.pix_fmt
        time_base = Fraction(1, 1000) if clapper.vfr else Fraction(1, SOURCE_FPS)
        if clapper.vfr:
            video.time_base = video.codec_context.time_base = time_base
        if clapper.rotation:
            video.set_display_rotation(clapper.rotation)
        if clapper.sample_aspect is not None:
            video.codec_context.sample_aspect_ratio = clapper.sample_aspect
        audios = [out.add_stream(clapper.audio_codec, rate=AUDIO_RATE, layout="mono") for _ in clapper.beeps]
        if clapper.default_audio is not None:
            for index, stream in enumerate(audios):
                stream.disposition = av.stream.Disposition.default if index == clapper.default_audio else av.stream.Disposition(0)
        for t in _frame_times(clapper):
            if t < clapper.video_start - 1e-9:
                continue
            frame = av.VideoFrame.from_ndarray(scene_picture(t), format="rgb24")
            frame.pts, frame.time_base = round((t + clapper.clock_offset) / time_base), time_base
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        for stream, beep_at in zip(audios, clapper.beeps):
            first, end = round(clapper.audio_start * AUDIO_RATE), round(clapper.audio_end * AUDIO_RATE)
            while first < end:
                count = min(1024, end - first)
                if clapper.audio_gap is None or not clapper.audio_gap[0] * AUDIO_RATE <= first < clapper.audio_gap[1] * AUDIO_RATE:
                    samples = scene_sound(first, count, AUDIO_RATE, beep_at)[None]
                    frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
                    frame.sample_rate = AUDIO_RATE
                    frame.pts, frame.time_base = first + round(clapper.clock_offset * AUDIO_RATE), Fraction(1, AUDIO_RATE)
                    out.mux(stream.encode(frame))
                first += count
            out.mux(stream.encode(None))


def _missing_codecs(clapper: Clapper) -> list[str]:
    return [c for c in clapper.codecs() if c not in av.codecs_available]


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """name -> path of every clapper whose encoders this FFmpeg has (written once per session)."""
    folder = tmp_path_factory.mktemp("clappers")
    paths = {}
    for clapper in CORPUS:
        if _missing_codecs(clapper):
            continue
        path = folder / f"{clapper.name}{clapper.suffix}"
        write_clapper(path, clapper)
        paths[clapper.name] = path
    return paths


def _clapper_path(corpus: dict[str, Path], clapper: Clapper) -> Path:
    missing = _missing_codecs(clapper)
    if missing:
        pytest.skip(f"this FFmpeg has no encoder for {', '.join(missing)}")
    return corpus[clapper.name]


# ------------------------------------------------------------------------------------------------
# measuring
# ------------------------------------------------------------------------------------------------
def beep_onset(audio: np.ndarray, rate: int = SAMPLE_RATE) -> float:
    """Seconds of the first sample of the beep (its envelope crosses half its amplitude)."""
    loud = np.flatnonzero(np.abs(audio) > 0.25)
    assert loud.size, "no beep in the audio"
    return float(loud[0]) / rate


def flash_time(times: list[float], frames: list[np.ndarray]) -> float:
    """Time of the first frame showing the flash (most of the picture white)."""
    for t, frame in zip(times, frames):
        if (frame.mean(axis=2) > 180).mean() > 0.5:
            return float(t)
    raise AssertionError("no flash in the frames")


def expected_scene_time(path: Path) -> float:
    """Where the flash belongs on the file's timeline: the container time of the first white frame
    (decoded with PyAV, independently of l3net's reader) minus the timeline's origin, which must be
    the earliest start of the file's streams."""
    with av.open(str(path)) as container:
        starts = [float(s.start_time * s.time_base) for s in container.streams if s.type in ("audio", "video") and s.start_time is not None]
        flash = next(f.time for f in container.decode(video=0) if f.to_ndarray(format="rgb24").mean() > 150)
    origin = media.read_timeline(path).origin
    assert origin == pytest.approx(min(starts))
    return flash - origin


def assert_in_sync(flash: float, beep: float, expected: float, step: float) -> None:
    """Flash and beep at the same moment (to one stored frame ``step`` = half a source frame)
    and at the scene's time."""
    assert beep - SLACK <= flash < beep + step + SLACK, f"flash at {flash:.4f} s, beep at {beep:.4f} s"
    assert expected - SLACK <= flash < expected + step + SLACK, f"flash at {flash:.4f} s, expected {expected:.4f} s"
    assert abs(beep - expected) <= HALF_SOURCE_FRAME, f"beep at {beep:.4f} s, expected {expected:.4f} s"


def assert_reported(timing: dict[str, Any], clapper: Clapper) -> None:
    defaults = {"audio_padded_s": 0.0, "audio_trimmed_s": 0.0, "audio_overlaps_s": 0.0, "rotation": 0, "deinterlaced": False,
                "sample_aspect_ratio": "1:1", "audio_stream": 0, "audio_gaps_s": 0.0, "audio_padded_end_s": None}
    for key, value in {**defaults, **clapper.expect}.items():
        if value is None:
            continue
        if isinstance(value, float):
            assert timing[key] == pytest.approx(value, abs=0.03), (key, timing)
        else:
            assert timing[key] == value, (key, timing)


# ------------------------------------------------------------------------------------------------
# the corpus through prepare and through process_video_file
# ------------------------------------------------------------------------------------------------
PREPARE = PrepareConfig(seconds=10.0, fps=STORED_FPS, frame_size=HEIGHT, split_ratios=(1.0, 0.0, 0.0), shard_size=100)


@pytest.fixture(scope="module")
def prepared(corpus: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[ShardSet, dict[str, dict]]:
    out = tmp_path_factory.mktemp("prepared") / "shards"
    prepare(sorted(corpus.values()), out, config=PREPARE, progress=False)
    manifest = {Path(line["path"]).stem: line for line in read_manifest(out)}
    return ShardSet(out), manifest


@pytest.mark.parametrize("clapper", CORPUS, ids=lambda c: c.name)
def test_prepare_keeps_sound_and_picture_on_one_clock(corpus, prepared, clapper: Clapper) -> None:
    path = _clapper_path(corpus, clapper)
    shards, manifest = prepared
    line = manifest[clapper.name]
    assert line["status"] == "kept", line
    video = next(v for v in shards.videos("train") if v.meta["source"] == path.name)
    audio = shards.read_audio(video)
    frames = [shards.read_frame(video, i) for i in range(len(video.frame_times))]
    expected = expected_scene_time(path)
    beep = beep_onset(audio) - clapper.unsignalled_delay
    assert_in_sync(flash_time(video.frame_times, frames), beep, expected, 1.0 / STORED_FPS)
    assert video.meta["timing"] == line["timing"]
    assert_reported(line["timing"], clapper)
    assert video.duration == pytest.approx(SECONDS + expected - FLASH, abs=0.05)  # the picture's span, sound padded to it
    if clapper.expect.get("audio_padded_s") or clapper.expect.get("audio_gaps_s") or clapper.expect.get("audio_padded_end_s"):
        assert any("silence" in w for w in line["warnings"]), line


class _Spy:
    """Records what process_video_file's readers hand to the towers, and stands in for the towers'
    forward pass (zeros): what is tested is what reaches them."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.audio: list[np.ndarray] = []
        self.frames: list[tuple[float, np.ndarray]] = []
        spy = self

        class AudioSpy(media.AudioReader):
            def __iter__(self):
                for chunk in super().__iter__():
                    spy.audio.append(chunk)
                    yield chunk

        class VideoSpy(media.VideoReader):
            def __iter__(self):
                for pair in super().__iter__():
                    spy.frames.append(pair)
                    yield pair

        # patched where process_video_file and the towers' forward look them up, wherever that is
        files = sys.modules[embed_files.process_video_file.__module__]
        monkeypatch.setattr(files, "AudioReader", AudioSpy)
        monkeypatch.setattr(files, "VideoReader", VideoSpy)
        for name, module in list(sys.modules.items()):  # and `l3net embed`'s corpus path, in this process
            if name.startswith("l3net") and module is not files and module is not media:
                for reader, spy_class in (("AudioReader", AudioSpy), ("VideoReader", VideoSpy)):
                    if getattr(module, reader, None) is getattr(media, reader):
                        monkeypatch.setattr(module, reader, spy_class)
        for name, module in list(sys.modules.items()):
            if name.startswith("l3net") and hasattr(module, "layer_features"):
                monkeypatch.setattr(module, "layer_features", lambda model, modality, x, layer: torch.zeros(x.shape[0], 1))


@pytest.mark.parametrize("clapper", CORPUS, ids=lambda c: c.name)
def test_process_video_file_keeps_sound_and_picture_on_one_clock(corpus, clapper: Clapper, tmp_path, monkeypatch) -> None:
    path = _clapper_path(corpus, clapper)
    spy = _Spy(monkeypatch)
    audio_npz, image_npz = embed_files.process_video_file(
        path, tmp_path, model="small", hop_size=1.0 / STORED_FPS, batch_size=64, device="cpu"
    )
    expected = expected_scene_time(path)
    times = [t for t, _ in spy.frames]
    beep = beep_onset(np.concatenate(spy.audio)) - clapper.unsignalled_delay
    assert_in_sync(flash_time(times, [f for _, f in spy.frames]), beep, expected, 1.0 / STORED_FPS)
    with np.load(audio_npz) as a, np.load(image_npz) as b:
        assert np.array_equal(a["timestamps"], b["timestamps"])
        assert np.allclose(b["timestamps"][: len(times)], times)
        timing = json.loads(str(a["timing"]))
        assert timing == json.loads(str(b["timing"]))
    assert_reported(timing, clapper)


# ------------------------------------------------------------------------------------------------
# the traps one by one
# ------------------------------------------------------------------------------------------------
def _by_name(name: str) -> Clapper:
    return next(c for c in CORPUS if c.name == name)


def test_rotated_frames_stand_upright(corpus) -> None:
    path = _clapper_path(corpus, _by_name("mp4_rotated"))
    reader = media.VideoReader(path, times=[0.0])
    [(_, frame)] = list(reader)
    # stored landscape 64 x 48 with a display matrix of 90 degrees counter-clockwise: shown
    # portrait, the top-left mark turned to the bottom-left
    assert frame.shape == (WIDTH, HEIGHT, 3) and reader.report.rotation == 90
    red = (frame[..., 0] > 150) & (frame[..., 1] < 80)
    rows, cols = np.nonzero(red)
    assert rows.min() >= WIDTH * 3 // 4 - 2 and cols.max() < HEIGHT // 4 + 2


def test_anamorphic_frames_at_display_aspect(corpus) -> None:
    path = _clapper_path(corpus, _by_name("mp4_anamorphic"))
    [(_, frame)] = list(media.VideoReader(path, times=[0.0]))
    assert frame.shape == (HEIGHT, 2 * WIDTH, 3)  # 2:1 pixels: twice as wide as coded
    [(_, small)] = list(media.VideoReader(path, times=[0.0], smaller_side=24))
    assert small.shape == (24, 64, 3)


def test_variable_frame_rate_gives_the_frame_on_screen(corpus) -> None:
    path = _clapper_path(corpus, _by_name("mkv_vfr"))
    # the frames are at 0, 60, 80, 140, 160 ms...: at 70 ms the frame of 60 ms is on screen
    shown = dict(media.VideoReader(path, times=[FLASH - 0.001, FLASH, FLASH + FLASH_LENGTH - 0.001, FLASH + FLASH_LENGTH]))
    brightness = {t: float(f.mean()) for t, f in shown.items()}
    assert brightness[FLASH - 0.001] < 100 < brightness[FLASH] and brightness[FLASH + FLASH_LENGTH - 0.001] > 100
    assert brightness[FLASH + FLASH_LENGTH] < 100


def test_choose_the_audio_stream(corpus) -> None:
    path = _clapper_path(corpus, _by_name("mkv_two_audio"))
    default = media.AudioReader(path)
    assert beep_onset(np.concatenate(list(default))) == pytest.approx(FLASH, abs=SLACK) and default.report.stream == 1
    first = media.AudioReader(path, stream=0)
    assert beep_onset(np.concatenate(list(first))) == pytest.approx(2.5, abs=SLACK) and first.report.stream == 0
    with pytest.raises(MediaError, match="has no audio stream 2: it has 2"):
        media.load_audio(path, stream=2)


@pytest.mark.parametrize("name", ["ts_600s", "mkv_video_late", "mp4_editlist"])
def test_start_seeks_and_keeps_the_clock(corpus, name: str) -> None:
    """Reading from 1.5 s: the beep and the flash at 0.5 s of what is read."""
    clapper = _by_name(name)
    path = _clapper_path(corpus, clapper)
    expected = expected_scene_time(path)
    audio = media.AudioReader(path, start=1.5, duration=1.5)
    sound = np.concatenate(list(audio))
    assert sound.size == round(1.5 * SAMPLE_RATE) and audio.report.seek == "seek"
    video = media.VideoReader(path, fps=STORED_FPS, start=1.5, duration=1.5)
    pairs = list(video)
    assert video.report.seek in ("seek", "decode from start")
    times = [t - 1.5 for t, _ in pairs]
    assert times[:3] == pytest.approx([0.0, 0.02, 0.04])
    assert_in_sync(flash_time(times, [f for _, f in pairs]), beep_onset(sound), expected - 1.5, 1.0 / STORED_FPS)


def test_a_failed_seek_falls_back_to_decoding_from_the_start(corpus, monkeypatch) -> None:
    path = _clapper_path(corpus, _by_name("ts_600s"))
    reference = np.concatenate(list(media.AudioReader(path, start=1.5, duration=1.0)))
    frames = list(media.VideoReader(path, times=[2.1]))
    monkeypatch.setattr(media.timeline, "_seek_units", lambda seconds, stream: 1 << 40)  # seeks past the end
    audio = media.AudioReader(path, start=1.5, duration=1.0)
    assert np.allclose(np.concatenate(list(audio)), reference, atol=1e-4) and audio.report.seek == "decode from start"
    video = media.VideoReader(path, times=[2.1])
    again = list(video)
    assert video.report.seek == "decode from start" and np.array_equal(again[0][1], frames[0][1])


def test_prepare_start_and_audio_stream(corpus, tmp_path) -> None:
    path = _clapper_path(corpus, _by_name("mkv_two_audio"))
    config = PrepareConfig(seconds=1.5, start=1.5, audio_stream=0, fps=STORED_FPS, frame_size=HEIGHT, split_ratios=(1.0, 0.0, 0.0))
    prepare([path], tmp_path / "s", config=config, progress=False)
    [video] = ShardSet(tmp_path / "s").videos("train")
    assert video.meta["start"] == 1.5 and video.meta["timing"]["audio_stream"] == 0
    assert video.frame_times[0] == 0.0 and video.duration == pytest.approx(1.5, abs=1e-3)
    # stream 0 beeps at 2.5 s of the scene: 1.0 s into the sample
    assert beep_onset(ShardSet(tmp_path / "s").read_audio(video)) == pytest.approx(1.0, abs=SLACK)
    description = json.loads((tmp_path / "s" / fmt.DATASET_FILE).read_text())
    assert description["start"] == 1.5 and description["audio_stream"] == 0


def test_interlaced_frames_are_deinterlaced(tmp_path) -> None:
    """Fields of different brightness (a comb: even rows light, odd rows dark), coded interlaced:
    what is read is one field interpolated (yadif), not the comb."""
    path = tmp_path / "comb.mkv"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=SOURCE_FPS, options={"flags": "+ilme+ildct"})
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        comb = np.full((HEIGHT, WIDTH, 3), 30, np.uint8)
        comb[0::2] = 220
        for k in range(10):
            frame = av.VideoFrame.from_ndarray(comb, format="rgb24")
            frame.pts = k
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))

    def combing(image: np.ndarray) -> float:
        return float(np.abs(np.diff(image.astype(float).mean(axis=2), axis=0)).mean())

    reader = media.VideoReader(path, times=[0.2])
    [(_, frame)] = list(reader)
    assert reader.report.deinterlaced and combing(frame) < 0.1 * combing(comb)


def test_embed_chooses_the_audio_stream(corpus, tmp_path, monkeypatch) -> None:
    """`l3net embed --audio-stream 0` on a video whose default sound is stream 1."""
    import l3net.corpus  # noqa: F401  (loaded before the spy, which patches the readers it decodes with)
    from l3net.cli import main

    path = _clapper_path(corpus, _by_name("mkv_two_audio"))
    spy = _Spy(monkeypatch)  # watches this process's decoding: --workers 0 keeps it here
    assert main(["embed", str(path), "--model", "small", "--audio-stream", "0", "-o", str(tmp_path), "--device", "cpu",
                 "--workers", "0", "--quiet"]) == 0
    assert beep_onset(np.concatenate(spy.audio)) == pytest.approx(2.5, abs=SLACK)  # stream 0 beeps at 2.5 s
    with np.load(tmp_path / f"{path.stem}_audio.npz") as saved:
        assert json.loads(str(saved["timing"]))["audio_stream"] == 0
        in_process = saved["embedding"]
    # A decoding worker process takes the same stream.
    out = tmp_path / "workers"
    assert main(["embed", str(path), "--model", "small", "--audio-stream", "0", "-o", str(out), "--device", "cpu",
                 "--workers", "1", "--quiet"]) == 0
    with np.load(out / f"{path.stem}_audio.npz") as saved:
        assert json.loads(str(saved["timing"]))["audio_stream"] == 0
        np.testing.assert_array_equal(saved["embedding"], in_process)
