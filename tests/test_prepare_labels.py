"""l3net prepare --labels with a published split column, and --classes (a file or kinetics-sounds)."""

from __future__ import annotations

import json
import warnings
from collections import Counter
from pathlib import Path

import pytest

from l3net.cli import main
from l3net.data import shards as fmt
from l3net.data.classes import KINETICS_SOUNDS, resolve_classes
from l3net.data.prepare import REASON_CLASS_NOT_KEPT, REASONS, PrepareConfig, assign_split, prepare, read_manifest, video_key
from l3net.data.shards import ShardSet
from l3net.data.synth import WorldConfig, make_world
from l3net.errors import DatasetError, InputError

# Every hashed video goes to train, so a video found in val or test got there from the labels.
FAST = PrepareConfig(seconds=2.0, fps=2.0, frame_size=48, split_ratios=(1.0, 0.0, 0.0), shard_size=4)


@pytest.fixture(scope="module")
def tiny_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_world(tmp_path_factory.mktemp("tiny") / "world", WorldConfig(videos=6, classes=3, seconds=2.0, size=64, seed=3))


def _labels(tmp_path: Path, rows: list[str], header: str = "file,class,split") -> Path:
    path = tmp_path / "elsewhere" / "labels.csv"  # rows name files: matched by file name
    path.parent.mkdir(exist_ok=True)
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def test_split_column_overrides_the_hash(tiny_world: Path, tmp_path: Path) -> None:
    labels = _labels(tmp_path, [
        "v00000.mp4,bowling,test", "v00001.mp4,bowling,Validation", "v00002.mp4,typing,", "v00003.mp4,typing,train",
        "v00004.mp4,tickling,test", "v00005.mp4,tickling",  # a short row: no split value, hashed
    ])
    out = tmp_path / "s"
    summary = prepare([tiny_world / "videos"], out, labels=labels, config=FAST, progress=False)
    shards = ShardSet(out)
    where = {Path(v.meta["source"]).name: split for split in fmt.SPLITS for v in shards.videos(split)}
    assert where == {"v00000.mp4": "test", "v00001.mp4": "val", "v00002.mp4": "train", "v00003.mp4": "train",
                     "v00004.mp4": "test", "v00005.mp4": "train"}
    assert all(assign_split(video_key(f"videos/{name}"), FAST.normalised_ratios) == "train" for name in where)
    assert summary.kept == Counter({"train": 3, "test": 2, "val": 1})
    info = json.loads((out / "dataset.json").read_text())
    assert info["split_source"] == "labels"
    assert info["split_counts"] == {"train": 3, "val": 1, "test": 2} and info["split_from_hash"] == 2
    assert info["splits"] == pytest.approx({"train": 0.5, "val": 1 / 6, "test": 1 / 3})
    assert info["hash_splits"] == {"train": 1.0, "val": 0.0, "test": 0.0}
    # the same command resumes; another split column is refused
    assert prepare([tiny_world / "videos"], out, labels=labels, config=FAST, progress=False).reused_shards == 3
    moved = _labels(tmp_path, ["v00000.mp4,bowling,train"])
    with pytest.raises(DatasetError, match="other settings.*split"):
        prepare([tiny_world / "videos"], out, labels=moved, config=FAST, progress=False)


def test_without_a_split_column_the_dataset_says_nothing_new(tiny_world: Path, tmp_path: Path) -> None:
    labels = _labels(tmp_path, ["v00000.mp4,bowling"], header="file,class")
    out = tmp_path / "s"
    prepare([tiny_world / "videos" / "v00000.mp4"], out, labels=labels, config=FAST, progress=False)
    info = json.loads((out / "dataset.json").read_text())
    assert "split_source" not in info and "class_filter" not in info and info["splits"]["train"] == 1.0


def test_bad_split_value_names_file_line_and_value(tiny_world: Path, tmp_path: Path) -> None:
    labels = _labels(tmp_path, ["v00000.mp4,bowling,train", "v00001.mp4,bowling,training"])
    out = tmp_path / "s"
    with pytest.raises(DatasetError, match=r"labels\.csv, line 3: split 'training' is not one of train, val, test"):
        prepare([tiny_world / "videos"], out, labels=labels, config=FAST, progress=False)
    assert not out.exists()


def test_classes_file_keeps_only_listed_classes(tiny_world: Path, tmp_path: Path) -> None:
    labels = _labels(tmp_path, [
        "v00000.mp4,bowling,", "v00001.mp4,Blowing_Nose,", "v00002.mp4,typing,", "v00003.mp4,bowling,",
        "v00004.mp4,tickling,",  # v00005 has no row
    ])
    classes = tmp_path / "keep.txt"
    classes.write_text("# the classes kept\n\nbowling\nblowing nose   # matched ignoring case and '_'\nyodelling\n")
    out = tmp_path / "s"
    with pytest.warns(UserWarning, match="1 class.*yodelling"):
        summary = prepare([tiny_world / "videos"], out, labels=labels, classes=classes, config=FAST, progress=False)
    assert summary.class_counts == Counter({"bowling": 2, "Blowing_Nose": 1})
    assert summary.skipped == Counter({REASON_CLASS_NOT_KEPT: 3}) and REASON_CLASS_NOT_KEPT in REASONS
    assert summary.absent_classes == ["yodelling"] and "yodelling" in summary.table()
    lines = {Path(m["source"]).name: m for m in read_manifest(out)}
    assert len(lines) == 6
    assert {n for n, m in lines.items() if m["status"] == "kept"} == {"v00000.mp4", "v00001.mp4", "v00003.mp4"}
    for name, detail in [("v00002.mp4", "'typing' is not in"), ("v00004.mp4", "'tickling' is not in"),
                         ("v00005.mp4", "no row in the labels file")]:
        assert lines[name]["status"] == "skipped" and lines[name]["reason"] == REASON_CLASS_NOT_KEPT
        assert lines[name]["detail"].startswith(detail)
    assert sorted(Path(v.meta["source"]).name for v in ShardSet(out).videos("train")) == ["v00000.mp4", "v00001.mp4", "v00003.mp4"]
    info = json.loads((out / "dataset.json").read_text())
    assert info["classes"] == ["Blowing_Nose", "bowling"]
    assert info["class_filter"] == {"source": str(classes), "classes": ["bowling", "blowing nose", "yodelling"]}


def test_kinetics_sounds_is_the_papers_34_classes(tiny_world: Path, tmp_path: Path) -> None:
    listed = resolve_classes("kinetics-sounds")
    assert listed.names == KINETICS_SOUNDS and len(set(listed.names)) == 34
    assert {"blowing nose", "tapping pen", "fingerpicking", "patting", "playing bagpipes", "playing xylophone"} <= set(listed.names)
    # Kinetics-400 spellings of the classes it renamed, and its folder names, are kept too
    assert listed.listed_as("dribbling basketball") == "dribbling ball"
    assert listed.listed_as("Playing_Guitar") == "playing guitar"
    assert listed.listed_as("playing cello") is None and listed.listed_as("playing") is None
    labels = _labels(tmp_path, ["v00000.mp4,mowing lawn,", "v00001.mp4,playing cello,", "v00002.mp4,playing_drums,"])
    with pytest.warns(UserWarning, match="32 class"):
        summary = prepare([tiny_world / "videos"], tmp_path / "s", labels=labels, classes="kinetics-sounds",
                          config=FAST, progress=False)
    assert summary.class_counts == Counter({"mowing lawn": 1, "playing_drums": 1})
    assert summary.skipped == Counter({REASON_CLASS_NOT_KEPT: 4})


def test_missing_or_empty_classes_file_fails_before_writing(tiny_world: Path, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    labels = _labels(tmp_path, ["v00000.mp4,bowling,"])
    out = tmp_path / "s"
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing kept\n\n   \n")
    with pytest.raises(InputError, match="empty.txt: the classes file lists no class"):
        prepare([tiny_world / "videos"], out, labels=labels, classes=empty, config=FAST, progress=False)
    with pytest.raises(InputError, match="--classes needs --labels"):
        prepare([tiny_world / "videos"], out, classes="kinetics-sounds", config=FAST, progress=False)
    base = ["prepare", str(tiny_world / "videos"), "--out", str(out), "--labels", str(labels), "--quiet"]
    assert main([*base, "--classes", str(tmp_path / "nope.txt")]) == 2
    assert "nope.txt: classes file not found" in capsys.readouterr().err
    assert not out.exists()


def test_help_explains_split_and_classes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["prepare", "--help"])
    text = capsys.readouterr().out
    assert "'split' column" in text and "--classes kinetics-sounds" in text and "class not kept" in text


def test_cli_classes_and_split(tiny_world: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    labels = _labels(tmp_path, ["v00000.mp4,playing_drums,test", "v00001.mp4,playing cello,"])
    out = tmp_path / "s"
    args = ["prepare", str(tiny_world / "videos" / "v00000.mp4"), str(tiny_world / "videos" / "v00001.mp4"), "--out", str(out),
            "--labels", str(labels), "--classes", "kinetics-sounds", "--seconds", "2", "--fps", "2", "--frame-size", "48",
            "--workers", "1", "--quiet"]
    assert main(args) == 0
    printed = capsys.readouterr()
    assert printed.err.count("l3net prepare: warning: 33 class(es) listed by --classes") == 1
    assert "class not kept" in printed.out and "Warning" not in printed.err
    (kept,) = ShardSet(out).videos("test")
    assert kept.meta["label"] == "playing_drums"


def test_classes_do_not_warn_when_all_present(tiny_world: Path, tmp_path: Path) -> None:
    labels = _labels(tmp_path, ["v00000.mp4,bowling,"])
    classes = tmp_path / "keep.txt"
    classes.write_text("bowling\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        summary = prepare([tiny_world / "videos" / "v00000.mp4"], tmp_path / "s", labels=labels, classes=classes,
                          config=FAST, progress=False)
    assert summary.absent_classes == [] and summary.class_counts == Counter({"bowling": 1})
