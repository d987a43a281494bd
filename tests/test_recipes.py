"""The dataset recipes (docs/recipes/*.md) and ``l3net labels`` (data/published.py).

The recipe tests run the commands of every fenced block marked ``bash recipe`` in the recipe, in
order, on a small stand-in laid out like the real dataset: a few videos of the session's synthetic
world, renamed as downloaders name YouTube clips, and a CSV in the published layout. Only sizes
are changed (:data:`TINY`), so a flag renamed or removed in the code fails here.
"""

from __future__ import annotations

import csv
import itertools
import json
import re
import shlex
import shutil
from pathlib import Path

import pytest

from l3net.cli import main
from l3net.data.published import held_out_for_val, match_published, read_kinetics_csv, read_vggsound_csv
from l3net.errors import DatasetError

REPO = Path(__file__).resolve().parents[1]
RECIPES = REPO / "docs" / "recipes"

#: Flags that take no value (so that substitution knows what to remove).
SWITCHES = {"--compile", "--channels-last", "--sync-bn", "--no-tsne", "--quiet", "--no-progress", "--resume"}
#: Per command: flag -> tiny value (None: remove the flag). Flags absent from a command are added.
TINY: dict[str, dict[str, str | None]] = {
    "prepare": {"--workers": "2", "--frame-size": "112", "--seconds": "4", "--shard-size": "4", "--quiet": ""},
    "train": {"--preset": "small", "--batch-size": "8", "--steps": "2", "--val-every": "0", "--val-pairs": "8",
              "--save-every": "2", "--workers": "0", "--precision": "fp32", "--device": "cpu", "--compile": None,
              "--channels-last": None, "--no-progress": ""},
    "avc": {"--workers": "0", "--pairs-per-video": "2", "--batch-size": "8", "--device": "cpu", "--precision": "fp32"},
    "baselines": {"--preset": "small", "--epochs": "1", "--head-steps": "2",
                  "--pairs-per-video": "2", "--batch-size": "8", "--device": "cpu"},
    "cluster": {"--k": "2", "--n-init": "1", "--no-tsne": "", "--batch-size": "8", "--device": "cpu"},
    "units": {"--figure-units": "2", "--batch-size": "8", "--device": "cpu"},
    "sound": {"--batch-size": "8", "--device": "cpu", "--no-progress": ""},
}


def recipe_commands(path: Path) -> list[list[str]]:
    """The argv (after ``l3net``) of every command in the recipe's ``bash recipe`` blocks."""
    text = path.read_text(encoding="utf-8")
    commands = []
    for block in re.findall(r"^```bash recipe\n(.*?)^```", text, flags=re.S | re.M):
        for line in block.replace("\\\n", " ").splitlines():
            argv = shlex.split(line, comments=True)
            if not argv:
                continue
            if argv[0] == "torchrun":  # torchrun [options] -m l3net ...: one process here
                argv = ["l3net", *argv[argv.index("-m") + 2:]]
            assert argv[0] == "l3net", f"{path.name}: a recipe line that is not an l3net command: {line}"
            commands.append(argv[1:])
    return commands


def shrink(argv: list[str]) -> list[str]:
    """``argv`` with the sizes of :data:`TINY` for its command."""
    name = argv[1] if argv[0] == "eval" else argv[0]
    changes = TINY.get(name, {})
    out: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        takes_value = arg.startswith("--") and arg not in SWITCHES and i + 1 < len(argv)
        if arg in changes:
            i += 1 if arg in SWITCHES else 2
            continue
        out.append(arg)
        if takes_value:
            out.append(argv[i + 1])
            i += 2
        else:
            i += 1
    for flag, value in changes.items():
        if value is None:
            continue
        out.append(flag)
        if flag not in SWITCHES:
            out.append(value)
    return out


def world_videos(world: Path) -> list[tuple[Path, str]]:
    """(video, class) of the session world, the classes taken in turn (labels.csv order within a
    class), so that the first n videos cover every class about equally whatever the world's size."""
    by_class: dict[str, list[Path]] = {}
    with open(world / "labels.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            by_class.setdefault(row["class"], []).append(world / row["video"])
    turns = itertools.zip_longest(*by_class.values())
    classes = list(by_class)
    return [(video, classes[i]) for turn in turns for i, video in enumerate(turn) if video is not None]


def youtube_id(i: int) -> str:
    """An 11-character id with the characters real ones have (``_`` and ``-`` included)."""
    return f"-a_{i:04d}xyZ9"[:11].ljust(11, "q")


def copy_esc50(data_dir: Path, root: Path) -> None:
    shutil.copytree(data_dir / "esc50_mini", root / "ESC-50")


def run_recipe(recipe: Path, cwd: Path, monkeypatch) -> list[list[str]]:
    monkeypatch.chdir(cwd)
    commands = recipe_commands(recipe)
    for argv in commands:
        tiny = shrink(argv)
        assert main(tiny) == 0, f"{recipe.name}: l3net {shlex.join(tiny)} failed"
    return commands


def names(commands: list[list[str]]) -> list[str]:
    return [" ".join(argv[:2]) if argv[0] == "eval" else argv[0] for argv in commands]


EXPECTED = ["labels", "prepare", "train", "eval avc", "eval avc", "eval baselines", "eval cluster", "eval units",
            "eval sound", "report"]


@pytest.mark.slow
def test_kinetics_sounds_recipe_runs_on_a_stand_in(synth_world, data_dir, tmp_path, monkeypatch, capsys):
    videos = world_videos(synth_world)[:15]
    root = tmp_path
    (root / "kinetics" / "videos").mkdir(parents=True)
    splits = ["train"] * 8 + ["validate"] * 2 + ["test"] * 5  # eval units ranks a top 5: 5 test videos
    rows = {"train": [], "validate": [], "test": []}
    for i, ((video, label), split) in enumerate(zip(videos, splits)):
        yid = youtube_id(i)
        folder = root / "kinetics" / "videos" / label.replace(" ", "_")
        folder.mkdir(exist_ok=True)
        shutil.copy(video, folder / f"{yid}_{i:06d}_{i + 10:06d}.mp4")
        rows[split].append([label, yid, i, i + 10, split])
    rows["train"].append(["abseiling", "notdownload", 0, 10, "train"])  # listed, not downloaded, not a KS class
    shutil.copy(videos[0][0], root / "kinetics" / "videos" / "holiday.mp4")  # found, not listed
    for split, file in (("train", "train.csv"), ("validate", "validate.csv"), ("test", "test.csv")):
        with open(root / "kinetics" / file, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["label", "youtube_id", "time_start", "time_end", "split"])
            writer.writerows(rows[split])
    copy_esc50(data_dir, root)

    commands = run_recipe(RECIPES / "kinetics-sounds.md", root, monkeypatch)
    assert names(commands) == EXPECTED
    out = capsys.readouterr().out
    assert "15 of 16 listed clips found (8 train, 2 val, 5 test)" in out
    assert (root / "kinetics" / "labels.csv.missing.txt").read_text().startswith("notdownload,0,abseiling,train")
    assert (root / "kinetics" / "labels.csv.unlisted.txt").read_text().strip().endswith("holiday.mp4")
    dataset = json.loads((root / "ks-shards" / "dataset.json").read_text())
    assert dataset["split_source"] == "labels"
    assert {k: v for k, v in dataset["split_counts"].items() if k in ("train", "val", "test")} == {"train": 8, "val": 2, "test": 5}
    from l3net.data.prepare import read_manifest

    reasons = {Path(line["path"]).name: line.get("reason") for line in read_manifest(root / "ks-shards")}
    assert reasons["holiday.mp4"] == "class not kept"  # found, not listed: prepare leaves it out under --classes
    for result in ("avc", "cluster", "units", "sound"):
        assert (root / "runs" / "ks" / "eval" / f"{result}.json").is_file(), result
    assert (root / "runs" / "ks-random" / "eval" / "avc.json").is_file()


@pytest.mark.slow
def test_vggsound_recipe_runs_on_a_stand_in(synth_world, data_dir, tmp_path, monkeypatch, capsys):
    videos = world_videos(synth_world)[:21]  # 16 train, 5 test: eval units ranks a top 5
    root = tmp_path
    (root / "vggsound" / "videos").mkdir(parents=True)
    lines = []
    for i, (video, label) in enumerate(videos):
        yid = youtube_id(i)
        split = "test" if i >= 16 else "train"
        name = f"{yid}_{i:06d}.mp4" if i % 2 else f"{yid}_{i}.mp4"  # with and without leading zeros
        shutil.copy(video, root / "vggsound" / "videos" / name)
        lines.append([yid, i, f"{label}, loud" if label == videos[0][1] else label, split])  # a class with a comma: quoted
    with open(root / "vggsound" / "vggsound.csv", "w", newline="") as handle:
        csv.writer(handle).writerows(lines)
    copy_esc50(data_dir, root)
    # The recipe's 5 % of 16 training clips is one clip here: the test holds out more, for a real val split
    # (by id: 7 of the 16 here, leaving every class at least one training clip).
    monkeypatch.setitem(TINY, "labels", {"--val-from-train": "0.3"})
    commands = run_recipe(RECIPES / "vggsound.md", root, monkeypatch)
    assert names(commands) == EXPECTED
    with open(root / "vggsound" / "labels.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(videos)
    assert {r["split"] for r in rows} == {"train", "val", "test"}
    assert any(r["class"].endswith(", loud") for r in rows)
    dataset = json.loads((root / "vgg-shards" / "dataset.json").read_text())
    assert dataset["split_source"] == "labels"
    for result in ("avc", "cluster", "units", "sound"):
        assert (root / "runs" / "vgg" / "eval" / f"{result}.json").is_file(), result


# ---- l3net labels: the published layouts and file names ------------------------------------------


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_kinetics_rows_match_downloader_names_in_class_folders(tmp_path):
    listing = write(tmp_path / "train.csv", "label,youtube_id,time_start,time_end,split\n"
                    "bowling,--0edUL8zmA,15,25,train\nbowling,--0edUL8zmA,40,50,validate\nsinging,a_b-cdefghi,3,13,test\n"
                    "singing,zzzzzzzzzzz,1,11,train\n")
    for name in ("bowling/--0edUL8zmA_000015_000025.mp4", "bowling/--0edUL8zmA_000040_000050.mp4",
                 "a_b-cdefghi_000003_000013.mkv", "holiday.mp4", "notes.txt"):
        write(tmp_path / "videos" / name, "x")
    found = match_published(read_kinetics_csv(listing), tmp_path / "videos", tmp_path / "out")
    assert found.rows == [
        ("../videos/bowling/--0edUL8zmA_000015_000025.mp4", "bowling", "train"),
        ("../videos/bowling/--0edUL8zmA_000040_000050.mp4", "bowling", "val"),  # same id, other start
        ("../videos/a_b-cdefghi_000003_000013.mkv", "singing", "test"),
    ]
    assert [c.youtube_id for c in found.missing] == ["zzzzzzzzzzz"]
    assert found.unlisted == [tmp_path / "videos" / "holiday.mp4"]  # not notes.txt: not media


def test_vggsound_start_with_or_without_zeros_and_a_bare_id(tmp_path):
    listing = write(tmp_path / "vggsound.csv", '--0edUL8zmA,15,"dog, barking",train\nabcdefghijk,7,cat,test\n'
                    "onlyoneclip,30,cow,train\n")
    for name in ("--0edUL8zmA_15.mp4", "abcdefghijk_000007_000017.mp4", "onlyoneclip.mp4"):
        write(tmp_path / "v" / name, "x")
    found = match_published(read_vggsound_csv(listing), tmp_path / "v", tmp_path)
    assert found.rows == [("v/--0edUL8zmA_15.mp4", "dog, barking", "train"), ("v/abcdefghijk_000007_000017.mp4", "cat", "test"),
                          ("v/onlyoneclip.mp4", "cow", "train")]
    assert not found.missing and not found.unlisted


def test_a_start_mismatch_is_missing_not_matched(tmp_path):
    listing = write(tmp_path / "vggsound.csv", "abcdefghijk,7,cat,train\nabcdefghijk,8,cat,train\n")
    write(tmp_path / "v" / "abcdefghijk_000009.mp4", "x")
    write(tmp_path / "v" / "abcdefghijk.mp4", "x")  # a bare id names no clip when the id is listed twice
    found = match_published(read_vggsound_csv(listing), tmp_path / "v", tmp_path)
    assert found.rows == [] and len(found.missing) == 2 and len(found.unlisted) == 2


def test_val_from_train_is_stable_and_takes_about_the_fraction(tmp_path):
    ids = [f"{i:011d}" for i in range(2000)]
    held = [i for i in ids if held_out_for_val(i, 0.1)]
    assert 150 < len(held) < 250  # binomial(2000, 0.1): mean 200, sd 13
    assert held == [i for i in ids if held_out_for_val(i, 0.1)]
    assert set(held) <= {i for i in ids if held_out_for_val(i, 0.2)}  # a larger fraction only adds clips
    listing = write(tmp_path / "vggsound.csv", "".join(f"{i},0,c,train\n" for i in ids[:50]) + f"{ids[0]},1,c,test\n")
    for i in ids[:50]:
        write(tmp_path / "v" / f"{i}_0.mp4", "x")
    write(tmp_path / "v" / f"{ids[0]}_1.mp4", "x")
    found = match_published(read_vggsound_csv(listing), tmp_path / "v", tmp_path, val_fraction=0.5)
    assert {s for _, _, s in found.rows} == {"train", "val", "test"}
    assert found.rows[-1][2] == "test"  # test clips are never moved
    with pytest.raises(DatasetError, match=r"\[0, 1\)"):
        match_published(read_vggsound_csv(listing), tmp_path / "v", tmp_path, val_fraction=1.0)


@pytest.mark.parametrize("layout, text, message", [
    ("kinetics", "--0edUL8zmA,15,dog,train\n", r"k\.csv, line 1: expected Kinetics' header .*a VGGSound list"),
    ("kinetics", "label,youtube_id,time_start,time_end,split\ndog,abcdefghijk,15,25\n", r"k\.csv, line 2: expected 5 fields"),
    ("kinetics", "label,youtube_id,time_start,time_end,split\ndog,abcdefghijk,soon,25,train\n", r"line 2: time_start 'soon'"),
    ("kinetics", "label,youtube_id,time_start,time_end,split\ndog,abcdefghijk,1,11,holdout\n", r"line 2: split 'holdout'"),
    ("vggsound", "label,youtube_id,time_start,time_end,split\n", r"k\.csv, line 1: expected VGGSound's 4 fields .*a Kinetics list"),
    ("vggsound", "youtube_id,start_seconds,label,split\n", r"line 1: VGGSound's CSV has no header"),
    ("vggsound", "abcdefghijk,1,dog,train\nabcdefghijk,2,dog,val\n", r"line 2: split 'val' is not one of train, test"),
])
def test_a_csv_in_the_wrong_layout_names_file_line_and_expectation(tmp_path, capsys, layout, text, message):
    listing = write(tmp_path / "k.csv", text)
    write(tmp_path / "v" / "abcdefghijk_1.mp4", "x")
    assert main(["labels", layout, str(listing), "--videos", str(tmp_path / "v"), "--out", str(tmp_path / "labels.csv")]) == 2
    assert re.search(message, capsys.readouterr().err)
    assert not (tmp_path / "labels.csv").exists()


def test_cli_writes_labels_that_prepare_reads_and_reports_what_is_missing(tmp_path, capsys):
    from l3net.data.prepare import read_labels

    listing = write(tmp_path / "vggsound.csv", "abcdefghijk,1,dog,train\nbcdefghijkl,2,cat,test\n")
    write(tmp_path / "v" / "abcdefghijk_000001.mp4", "x")
    write(tmp_path / "v" / "stray.mp4", "x")
    out = tmp_path / "meta" / "labels.csv"
    assert main(["labels", "vggsound", str(listing), "--videos", str(tmp_path / "v"), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "1 of 2 listed clips found (1 train)" in printed and "1 listed clips not found" in printed
    labels = read_labels(out)
    assert list(labels) == [(tmp_path / "v" / "abcdefghijk_000001.mp4").resolve()]
    label = labels[(tmp_path / "v" / "abcdefghijk_000001.mp4").resolve()]
    assert (label.label, label.split) == ("dog", "train")
    assert (tmp_path / "meta" / "labels.csv.missing.txt").read_text() == "bcdefghijkl,2,cat,test\n"
    assert (tmp_path / "meta" / "labels.csv.unlisted.txt").read_text().strip().endswith("stray.mp4")


def test_cli_refuses_when_nothing_is_found(tmp_path, capsys):
    listing = write(tmp_path / "vggsound.csv", "abcdefghijk,1,dog,train\n")
    (tmp_path / "v").mkdir()
    assert main(["labels", "vggsound", str(listing), "--videos", str(tmp_path / "v"), "--out", str(tmp_path / "l.csv")]) == 2
    assert "none of the 1 listed clips was found" in capsys.readouterr().err
    assert not (tmp_path / "l.csv").exists()
