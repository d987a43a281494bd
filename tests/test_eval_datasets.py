"""Dataset readers and splits of the transfer evaluations: layouts, folds, groups, and clear errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from l3net.errors import DatasetError
from l3net.evaluate.datasets import (
    DCASE2013_SUBCLIPS,
    ESC50_SUBCLIPS,
    describe_split_rule,
    load_audio_dataset,
    read_dcase2013,
    read_esc50,
    read_image_folder,
    read_labelled_folder,
)

ESC50_HEADER = "filename,fold,target,category,esc10,src_file,take\n"


def touch(path: Path, content: bytes = b"x") -> Path:
    """Readers check layouts, not content: a placeholder file is enough here."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def esc50_layout(root: Path, rows: list[tuple[str, int, str]], header: str = ESC50_HEADER, create: bool = True) -> Path:
    lines = [header] + [f"{name},{fold},0,{cat},False,1,A\n" for name, fold, cat in rows]
    touch(root / "meta" / "esc50.csv", "".join(lines).encode())
    (root / "audio").mkdir(parents=True, exist_ok=True)
    if create:
        for name, _, _ in rows:
            touch(root / "audio" / name)
    return root


# -- ESC-50 ----------------------------------------------------------------------------------------
def test_esc50_mini_uneven_folds(data_dir):
    ds = load_audio_dataset(f"esc50:{data_dir / 'esc50_mini'}")
    assert ds.kind == "esc50" and ds.subclips == ESC50_SUBCLIPS
    assert ds.classes == ("chirping_birds", "cow", "insects", "sheep")
    assert len(ds.examples) == 17 and not ds.skipped
    splits = ds.splits()
    assert [s.name for s in splits] == [f"fold {i}" for i in range(1, 6)]
    labels = ds.labels()
    by_name = {s.name: s for s in splits}
    # cow has no fold 5 and sheep only folds 1, 3, 5: fold 5's test set is birds, insects, sheep
    assert sorted(ds.classes[c] for c in labels[by_name["fold 5"].test]) == ["chirping_birds", "insects", "sheep"]
    assert sorted(ds.classes[c] for c in labels[by_name["fold 2"].test]) == ["chirping_birds", "cow", "insects"]
    for s in splits:  # every example is tested exactly once, never trained on in its own split
        assert not set(s.train) & set(s.test)
        assert not s.notes  # every class keeps training examples in every split
    assert sorted(np.concatenate([s.test for s in splits]).tolist()) == list(range(17))
    assert describe_split_rule(ds, splits) == "leave-one-fold-out over 5 predefined folds"
    assert load_audio_dataset(str(data_dir / "esc50_mini")).kind == "esc50"  # bare path: detected


def test_esc50_missing_meta_csv(tmp_path):
    (tmp_path / "audio").mkdir()
    with pytest.raises(DatasetError, match=r"meta/esc50.csv is missing"):
        read_esc50(tmp_path)


def test_esc50_missing_audio_folder(tmp_path):
    touch(tmp_path / "meta" / "esc50.csv", ESC50_HEADER.encode())
    with pytest.raises(DatasetError, match="audio/ folder is missing"):
        read_esc50(tmp_path)


def test_esc50_wrong_columns(tmp_path):
    esc50_layout(tmp_path, [("a.wav", 1, "dog")], header="file,split,label\n", create=False)
    with pytest.raises(DatasetError, match=r"missing column\(s\) filename, fold, category"):
        read_esc50(tmp_path)


def test_esc50_bad_fold_value(tmp_path):
    esc50_layout(tmp_path, [("a.wav", 1, "dog"), ("b.wav", 1, "cat")])
    csv = tmp_path / "meta" / "esc50.csv"
    csv.write_text(csv.read_text().replace("b.wav,1", "b.wav,x"))
    with pytest.raises(DatasetError, match=r"line 3: fold must be a positive integer"):
        read_esc50(tmp_path)


def test_esc50_fold_with_no_examples(tmp_path):
    rows = [(f"{f}-{c}.wav", f, c) for f in (1, 2, 4) for c in ("dog", "cat")]
    ds = read_esc50(esc50_layout(tmp_path, rows))
    with pytest.raises(DatasetError, match=r"fold\(s\) 3 have no examples"):
        ds.splits()


def test_esc50_listed_but_missing_files_are_skipped_and_listed(tmp_path):
    rows = [(f"{f}-{c}.wav", f, c) for f in (1, 2) for c in ("dog", "cat")]
    esc50_layout(tmp_path, rows)
    (tmp_path / "audio" / "2-dog.wav").unlink()
    ds = read_esc50(tmp_path)
    assert len(ds.examples) == 3
    assert ds.skipped == ((str(tmp_path / "audio" / "2-dog.wav"), "listed in meta/esc50.csv but missing from audio/"),)


def test_esc50_class_with_no_files_is_an_error(tmp_path):
    esc50_layout(tmp_path, [("1-dog.wav", 1, "dog"), ("2-dog.wav", 2, "dog"), ("1-cat.wav", 1, "cat")])
    (tmp_path / "audio" / "1-cat.wav").unlink()
    with pytest.raises(DatasetError, match=r"class\(es\) cat have no existing files"):
        read_esc50(tmp_path)


def test_class_missing_from_training_is_noted(tmp_path):
    rows = [("1-dog.wav", 1, "dog"), ("2-dog.wav", 2, "dog"), ("1-cat.wav", 1, "cat"), ("2-cat.wav", 2, "cat"),
            ("1-cow.wav", 1, "cow")]  # cow only in fold 1: nothing to learn it from when fold 1 is tested
    splits = read_esc50(esc50_layout(tmp_path, rows)).splits()
    assert any("class 'cow' has no training examples in fold 1" in n for n in splits[0].notes)
    assert not splits[1].notes


def test_without_drops_failures_and_lists_them(data_dir):
    ds = read_esc50(data_dir / "esc50_mini")
    fewer = ds.without({0: "truncated"})
    assert len(fewer.examples) == 16 and fewer.skipped[-1] == (str(ds.examples[0].path), "truncated")
    sheep = [i for i, e in enumerate(ds.examples) if e.label == "sheep"]
    with pytest.raises(DatasetError, match=r"sheep have no usable files left"):
        ds.without({i: "unreadable" for i in sheep})


# -- DCASE 2013 ------------------------------------------------------------------------------------
def test_dcase2013_train_test_layout(tmp_path):
    for part, n in (("scenes_stereo", 2), ("scenes_stereo_testset", 1)):
        for scene in ("bus", "park", "office"):
            for i in range(1, n + 1):
                touch(tmp_path / part / f"{scene}{i:02d}.wav")
    touch(tmp_path / "scenes_stereo" / "README.txt")
    ds = load_audio_dataset(f"dcase2013:{tmp_path}")
    assert ds.subclips == DCASE2013_SUBCLIPS and ds.classes == ("bus", "office", "park")
    assert ds.skipped == ((str(tmp_path / "scenes_stereo" / "README.txt"), "not named <class><NN>.wav as DCASE 2013 files are"),)
    (split,) = ds.splits()
    assert split.name == "train/test" and len(split.train) == 6 and len(split.test) == 3
    assert all(ds.examples[i].path.parent.name == "scenes_stereo_testset" for i in split.test)
    assert load_audio_dataset(str(tmp_path)).kind == "dcase2013"


def test_dcase2013_development_set_alone_is_cross_validated(tmp_path):
    for scene in ("bus", "tube"):
        for i in range(1, 11):
            touch(tmp_path / "scenes_stereo" / f"{scene}{i:02d}.wav")
    splits = read_dcase2013(tmp_path).splits(n_splits=5)
    assert len(splits) == 5 and all(len(s.test) == 4 for s in splits)


def test_dcase2013_unknown_class_and_wrong_layout(tmp_path):
    with pytest.raises(DatasetError, match="scenes_stereo/ folder is missing"):
        read_dcase2013(tmp_path)
    touch(tmp_path / "scenes_stereo" / "bus01.wav")
    touch(tmp_path / "scenes_stereo" / "airport01.wav")
    with pytest.raises(DatasetError, match="unknown class 'airport'"):
        read_dcase2013(tmp_path)


# -- labelled folders ------------------------------------------------------------------------------
def test_labelled_audio_csv_groups_stay_together(data_dir):
    ds = load_audio_dataset(f"folder:{data_dir / 'labelled_audio'}")
    assert ds.classes == ("four", "one", "three", "two", "zero") and len(ds.examples) == 40
    splits = ds.splits(n_splits=5)
    assert len(splits) == 3  # three speakers: at most three group folds
    groups = np.array([e.group for e in ds.examples])
    for s in splits:
        assert not set(groups[s.train]) & set(groups[s.test])
    assert sorted(np.concatenate([s.test for s in splits]).tolist()) == list(range(40))
    assert "keeping each group together" in describe_split_rule(ds, splits)


def test_class_subfolders_skip_non_audio_and_loose_files(tmp_path):
    for cls in ("a", "b"):
        for i in range(3):
            touch(tmp_path / cls / f"{i}.wav")
    touch(tmp_path / "a" / "notes.txt")
    touch(tmp_path / "stray.wav")
    touch(tmp_path / "b" / ".hidden.wav")
    ds = read_labelled_folder(tmp_path)
    assert ds.classes == ("a", "b") and len(ds.examples) == 6
    assert dict(ds.skipped) == {
        str(tmp_path / "stray.wav"): "not inside a class sub-folder",
        str(tmp_path / "a" / "notes.txt"): "not an audio file (.txt)",
    }
    assert len(ds.splits(n_splits=5)) == 3  # limited by the smallest class


def test_empty_class_folder_is_an_error(tmp_path):
    touch(tmp_path / "a" / "0.wav")
    (tmp_path / "b").mkdir()
    with pytest.raises(DatasetError, match=r"empty class folder\(s\) b"):
        read_labelled_folder(tmp_path)


def test_folder_without_classes(tmp_path):
    touch(tmp_path / "0.wav")
    with pytest.raises(DatasetError, match="no class sub-folders"):
        read_labelled_folder(tmp_path)


def test_single_class_and_single_example_classes(tmp_path):
    touch(tmp_path / "only" / "0.wav")
    with pytest.raises(DatasetError, match="only one class"):
        read_labelled_folder(tmp_path)
    touch(tmp_path / "other" / "0.wav")
    touch(tmp_path / "other" / "1.wav")
    with pytest.raises(DatasetError, match=r"class\(es\) only have a single example"):
        read_labelled_folder(tmp_path).splits()


def test_csv_wrong_columns_and_train_test_folds(tmp_path):
    touch(tmp_path / "labels.csv", b"file_name,what\nx.wav,a\n")
    with pytest.raises(DatasetError, match="needs a path column"):
        read_labelled_folder(tmp_path)
    for name in ("a1", "a2", "b1", "b2", "c1"):
        touch(tmp_path / f"{name}.wav")
    touch(
        tmp_path / "my.csv",
        b"path,label,fold\na1.wav,a,train\nb1.wav,b,train\na2.wav,a,test\nb2.wav,b,test\nc1.wav,c,test\nmissing.wav,a,train\n",
    )
    ds = load_audio_dataset(f"folder:{tmp_path / 'my.csv'}")
    assert ds.skipped == ((str(tmp_path / "missing.wav"), "listed in my.csv but not found"),)
    (split,) = ds.splits()
    assert split.name == "train/test" and len(split.test) == 3
    assert any("class 'c' has no training examples" in n for n in split.notes)


def test_csv_numbered_folds_with_a_gap(tmp_path):
    rows = ["path,label,fold"] + [f"{c}{f}.wav,{c},{f}" for c in "ab" for f in (1, 3)]
    for c in "ab":
        for f in (1, 3):
            touch(tmp_path / f"{c}{f}.wav")
    touch(tmp_path / "labels.csv", ("\n".join(rows) + "\n").encode())
    with pytest.raises(DatasetError, match=r"fold\(s\) 2 have no examples"):
        read_labelled_folder(tmp_path).splits()


def test_unknown_path(tmp_path):
    with pytest.raises(DatasetError, match="no such file or directory"):
        load_audio_dataset(f"esc50:{tmp_path / 'nope'}")


# -- image folders ---------------------------------------------------------------------------------
def test_photos_folder(data_dir):
    ds = read_image_folder(data_dir / "photos")
    assert ds.classes == ("animal", "nature", "object", "person") and len(ds.examples) == 21
    assert len(ds.splits(n_splits=5)) == 5


def test_image_train_val_layout(data_dir, tmp_path):
    for part, take in (("train", slice(0, 3)), ("val", slice(3, 5))):
        for cls in ("animal", "nature"):
            for src in sorted((data_dir / "photos" / cls).iterdir())[take]:
                (tmp_path / part / cls).mkdir(parents=True, exist_ok=True)
                shutil.copy(src, tmp_path / part / cls / src.name)
    ds = read_image_folder(tmp_path)
    (split,) = ds.splits()
    assert (len(split.train), len(split.test)) == (6, 4)
    shutil.copytree(tmp_path / "val" / "nature", tmp_path / "val" / "person")
    with pytest.raises(DatasetError, match=r"unknown class\(es\) person"):
        read_image_folder(tmp_path)
    shutil.rmtree(tmp_path / "val")
    with pytest.raises(DatasetError, match="has train/ but no val/"):
        read_image_folder(tmp_path)
