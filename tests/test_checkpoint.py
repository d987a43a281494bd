"""The one checkpoint module (l3net.checkpoint): round trip, atomic writes, a full disk, an unwritable
directory, mismatched fingerprints, other versions, kinds and corrupt files, each a clear error."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest
import torch

from l3net.checkpoint import (
    VERSION,
    CheckpointMismatch,
    check_fingerprint,
    read_checkpoint,
    resume_checkpoint,
    save_checkpoint,
)
from l3net.errors import InputError, OutputError

FINGERPRINT = {"preset": "small", "lr": 1e-3, "classes": ("a", "b"), "augment": {"gain": [0.5, 2.0]}}


def _state(seed: int) -> dict:
    generator = torch.Generator().manual_seed(seed)
    return {
        "step": seed,
        "model": {"w": torch.randn(3, 4, generator=generator), "n": torch.tensor(seed)},
        "history": {"loss": [0.5, 0.25], "every": 2},
        "best": None,
    }


def _temporaries(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if ".tmp" in p.name]


def test_round_trip_gives_back_state_fingerprint_and_kind(tmp_path: Path) -> None:
    path = tmp_path / "run" / "state.pt"  # the folder is created
    state = _state(7)
    save_checkpoint(path, "train", FINGERPRINT, state)
    saved = read_checkpoint(path, "train")
    assert saved.kind == "train" and saved.path == path
    assert saved.fingerprint == {**FINGERPRINT, "classes": ["a", "b"]}  # as JSON: tuples come back as lists
    assert torch.equal(saved.state["model"]["w"], state["model"]["w"]) and int(saved.state["model"]["n"]) == 7
    assert saved.state["history"] == state["history"] and saved.state["best"] is None
    # an equal fingerprint (tuples or lists alike) resumes
    check_fingerprint(saved, FINGERPRINT)
    assert resume_checkpoint(path, "train", {**FINGERPRINT, "classes": ["a", "b"]})["step"] == 7
    # the file is a plain weights_only checkpoint of this format
    raw = torch.load(path, weights_only=True)
    assert raw["l3net_checkpoint"] == "train" and raw["version"] == VERSION
    assert _temporaries(path.parent) == []


def test_a_failure_mid_write_leaves_the_old_checkpoint_and_no_temporary(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "state.pt"
    save_checkpoint(path, "probe", FINGERPRINT, _state(1))
    before = path.read_bytes()
    real_save = torch.save

    def dies_half_way(obj: object, f: object, *args: object, **kwargs: object) -> None:
        real_save(obj, f)
        Path(f).write_bytes(Path(f).read_bytes()[:100])  # cut short, then the process is stopped
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", dies_half_way)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, "probe", FINGERPRINT, _state(2))
    assert path.read_bytes() == before and _temporaries(tmp_path) == []
    assert read_checkpoint(path, "probe").state["step"] == 1


def test_a_full_disk_is_a_clear_error_naming_the_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "state.pt"
    save_checkpoint(path, "train", FINGERPRINT, _state(1))
    before = path.read_bytes()

    def no_space(obj: object, f: object, *args: object, **kwargs: object) -> None:
        Path(f).write_bytes(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", no_space)
    with pytest.raises(OutputError, match="disk is full") as caught:
        save_checkpoint(path, "train", FINGERPRINT, _state(2))
    assert str(path) in str(caught.value)
    assert path.read_bytes() == before and _temporaries(tmp_path) == []

    # torch's zip writer reports a failed write as a RuntimeError: the same clear error
    def zip_writer_fails(obj: object, f: object, *args: object, **kwargs: object) -> None:
        Path(f).write_bytes(b"partial")
        raise RuntimeError("PytorchStreamWriter failed writing file data/0: file write failed")

    monkeypatch.setattr(torch, "save", zip_writer_fails)
    with pytest.raises(OutputError, match="is the disk full") as caught:
        save_checkpoint(path, "train", FINGERPRINT, _state(2))
    assert str(path) in str(caught.value)
    assert path.read_bytes() == before and _temporaries(tmp_path) == []


def test_an_unwritable_directory_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory\n")
    with pytest.raises(OutputError, match="cannot write") as caught:
        save_checkpoint(blocker / "checkpoint" / "state.pt", "train", FINGERPRINT, _state(1))
    assert str(blocker) in str(caught.value)


def test_stale_temporaries_of_a_killed_writer_are_removed(tmp_path: Path) -> None:
    path = tmp_path / "state.pt"
    stale = tmp_path / ".state.pt.0123abcd.tmp"
    stale.write_bytes(b"left by kill -9")
    other = tmp_path / ".other.pt.0123abcd.tmp"  # not this checkpoint's: kept
    other.write_bytes(b"someone else's")
    save_checkpoint(path, "train", FINGERPRINT, _state(1))
    assert not stale.exists() and other.exists()


def test_a_mismatched_fingerprint_names_every_difference(tmp_path: Path) -> None:
    path = tmp_path / "state.pt"
    save_checkpoint(path, "baselines", {**FINGERPRINT, "data": "abc", "workers": 2}, _state(1))
    saved = read_checkpoint(path, "baselines")
    current = {**FINGERPRINT, "lr": 0.01, "data": "def", "seed": 3}  # "workers" only in the saved one
    names = {"lr": "--lr", "data": lambda old, new: "the data is not the data the run was trained on"}
    with pytest.raises(CheckpointMismatch) as caught:
        check_fingerprint(saved, current, names=names, advice="Resume with the same options.")
    message = str(caught.value)
    assert isinstance(caught.value, InputError) and str(path) in message and "cannot resume" in message
    assert caught.value.differences == [
        "--lr was 0.001, now 0.01",
        "the data is not the data the run was trained on",
        "seed was None, now 3",
        "workers was 2, now None",
    ]
    assert message.endswith("Resume with the same options.")
    with pytest.raises(CheckpointMismatch, match="preset was 'small', now 'paper'"):
        resume_checkpoint(path, "baselines", {**FINGERPRINT, "data": "abc", "workers": 2, "preset": "paper"})


def test_another_version_kind_or_an_earlier_format_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.pt"
    payload = {"l3net_checkpoint": "train", "version": VERSION + 1, "fingerprint": "{}", "state": {}}
    torch.save(payload, path)
    with pytest.raises(InputError, match=f"format version {VERSION + 1}.*reads version {VERSION} only") as caught:
        read_checkpoint(path, "train")
    assert str(path) in str(caught.value)

    save_checkpoint(path, "probe", FINGERPRINT, _state(1))
    with pytest.raises(InputError, match="a 'probe' checkpoint, not a 'train' one"):
        read_checkpoint(path, "train")

    # the three earlier layouts (training, baselines, streamed probe), each refused with the reason
    for old in ({"format": 1, "step": 3, "run": "{}"}, {"format": 1, "fixed": {}, "stages": {}},
                {"version": 1, "step": 3, "fingerprint": {}, "rows": {}}):
        torch.save(old, path)
        with pytest.raises(InputError, match="earlier l3net .format 1.*does not resume"):
            read_checkpoint(path, "train")


@pytest.mark.parametrize("content", ["garbage", "truncated", "not a dict", "foreign dict", "no fingerprint"])
def test_a_corrupt_file_is_a_clear_error(tmp_path: Path, content: str) -> None:
    path = tmp_path / "state.pt"
    if content == "garbage":
        path.write_bytes(b"\x00not a checkpoint at all" * 10)
    elif content == "truncated":
        save_checkpoint(path, "train", FINGERPRINT, _state(1))
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif content == "not a dict":
        torch.save([1, 2, 3], path)
    elif content == "foreign dict":
        torch.save({"weights": torch.zeros(2)}, path)
    else:
        torch.save({"l3net_checkpoint": "train", "version": VERSION, "state": {}}, path)
    with pytest.raises(InputError, match="corrupt|not an l3net checkpoint") as caught:
        read_checkpoint(path, "train")
    assert str(path) in str(caught.value)


def test_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no checkpoint there"):
        read_checkpoint(tmp_path / "none.pt", "train")


def test_the_module_writes_through_torch_save_and_fileio(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # The full-disk tests above replace torch.save: make sure that is the write the module does.
    calls = []
    real_save = torch.save
    monkeypatch.setattr(torch, "save", lambda obj, f, *a, **k: (calls.append(Path(f)), real_save(obj, f))[1])
    save_checkpoint(tmp_path / "state.pt", "train", FINGERPRINT, _state(1))
    assert len(calls) == 1 and calls[0].parent == tmp_path and calls[0].name.startswith(".state.pt.")
