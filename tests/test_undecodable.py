"""Damaged streams: which stream failed, at what time, and FFmpeg's reason; never the other stream.

A clapper (test_timing's flash and beep at 2.0 s, Matroska, H.264 + AAC) with the payload of some
packets of one stream replaced by random bytes, timestamps kept. Damaged in the middle, the file is
read as ffmpeg reads it (the damaged packets skipped: silence, or the frame before kept on screen),
in sync, with a warning naming the stream; damaged throughout, it is refused with the stream, the
time and FFmpeg's reason in the error, the manifest's ``failure`` and on stderr.
"""

from __future__ import annotations

import json
from pathlib import Path

import av
import pytest
from clappers import Combo, corrupt_packets, write_clapper
from test_codec_matrix import assert_aligned
from test_timing import HEIGHT, STORED_FPS, beep_onset, flash_time

from l3net import media, process_video_file
from l3net.data.prepare import PrepareConfig, prepare, read_manifest
from l3net.data.shards import ShardSet
from l3net.errors import StreamDecodeError

STREAM = {"audio": "audio stream 0 (#1, aac)", "video": "video stream 0 (#0, h264)"}
OTHER = {"audio": "video", "video": "audio"}
CONFIG = PrepareConfig(seconds=10.0, fps=STORED_FPS, frame_size=HEIGHT, split_ratios=(1.0, 0.0, 0.0))


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("damaged") / "clean.mkv"
    write_clapper(path, Combo("matroska", "h264", "aac"))
    return path


def ffmpeg_reason(path: Path, kind: str) -> str:
    """What FFmpeg (PyAV, not l3net) says about the first packet of ``kind`` it cannot decode."""
    with av.open(str(path)) as container:
        for packet in container.demux(getattr(container.streams, kind)[0]):
            try:
                packet.decode()
            except av.error.FFmpegError as exc:
                return exc.strerror
    raise AssertionError(f"FFmpeg decodes every {kind} packet of {path.name}")


@pytest.mark.parametrize("kind", ["audio", "video"])
def test_a_stream_damaged_mid_file_is_read_around_the_damage(clean, kind: str, tmp_path) -> None:
    path = tmp_path / f"{kind}_damaged.mkv"
    count = corrupt_packets(clean, path, kind, (1.0, 1.5))
    assert count > 0
    prepare([path], tmp_path / "s", config=CONFIG, progress=False)
    [line] = read_manifest(tmp_path / "s")
    assert line["status"] == "kept", line
    said = [w for w in line["warnings"] if "skipped (FFmpeg:" in w]
    assert len(said) == 1 and STREAM[kind] in said[0] and ffmpeg_reason(path, kind) in said[0], line["warnings"]
    assert "from 1.0" in said[0] or "from 1.1" in said[0], said  # where: the damage starts at 1.0 s (reordered frames: 1.1)
    assert not any(STREAM[OTHER[kind]] in w for w in line["warnings"]), line["warnings"]
    assert line["timing"][f"{kind}_damaged_packets"] > 0 and line["timing"][f"{OTHER[kind]}_damaged_packets"] == 0
    assert not any("gaps in the sound's timestamps" in w for w in line["warnings"]), line["warnings"]  # not the cause
    shards = ShardSet(tmp_path / "s")
    [video] = shards.videos("train")
    frames = [shards.read_frame(video, i) for i in range(len(video.frame_times))]
    # where FFmpeg puts them in the undamaged file (same timestamps; its own decoding of the damaged
    # one would stop at the first damaged packet)
    assert_aligned(flash_time(video.frame_times, frames), beep_onset(shards.read_audio(video)), clean)


@pytest.mark.parametrize("kind", ["audio", "video"])
def test_a_stream_that_cannot_be_decoded_is_named_with_time_and_reason(clean, kind: str, tmp_path, capsys) -> None:
    from l3net.cli import main

    path = tmp_path / f"{kind}_garbage.mkv"
    corrupt_packets(clean, path, kind, (-1.0, 99.0))
    reason = ffmpeg_reason(path, kind)
    reader = media.AudioReader(path) if kind == "audio" else media.VideoReader(path, fps=STORED_FPS)
    with pytest.raises(StreamDecodeError) as raised:
        list(reader)
    assert raised.value.kind == kind and STREAM[kind] in str(raised.value) and reason in str(raised.value)
    assert raised.value.at is not None and raised.value.at < 0.2  # the first packet is already damaged
    # the other stream reads as before
    other = media.VideoReader(path, fps=STORED_FPS) if kind == "audio" else media.AudioReader(path)
    assert list(other)
    # the manifest and stderr of `l3net prepare`
    assert main(["prepare", str(path), "--out", str(tmp_path / "s"), "--quiet", "--workers", "1"]) == 0
    [line] = read_manifest(tmp_path / "s")
    assert line["status"] == "skipped" and line["reason"] == "undecodable", line
    failure = line["failure"]
    assert failure["stream"] == kind and failure["index"] == 0 and failure["ffmpeg"] == reason, failure
    assert failure["container_index"] == (1 if kind == "audio" else 0) and failure["at_s"] < 0.2, failure
    assert OTHER[kind] not in line["detail"], line
    err = capsys.readouterr().err
    assert f"undecodable: {path}" in err and STREAM[kind] in err and reason in err, err
    # process_video_file and `l3net embed` say the same
    with pytest.raises(StreamDecodeError, match=STREAM[kind].replace("(", r"\(").replace(")", r"\)")):
        process_video_file(path, tmp_path / "e", model="small", device="cpu")
    assert main(["embed", str(path), "--model", "small", "-o", str(tmp_path / "e"), "--device", "cpu", "--quiet"]) != 0
    err = capsys.readouterr().err
    assert f"failed: {path}: {STREAM[kind]}" in err and reason in err and STREAM[OTHER[kind]] not in err, err


def test_the_failure_is_in_the_manifest_as_json(clean, tmp_path) -> None:
    """StreamDecodeError.to_dict is what the manifest holds: plain JSON."""
    error = StreamDecodeError(clean, kind="audio", index=0, container_index=1, codec="aac", at=1.0, ffmpeg="x", what="y")
    assert json.loads(json.dumps(error.to_dict())) == error.to_dict()
    assert "audio stream 0 (#1, aac) failed at 1.00 s: y (FFmpeg: x)" in str(error)
