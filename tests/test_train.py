"""l3net train: a real run through the CLI (the session fixture), its run directory, and its faults."""

from __future__ import annotations

import errno
import json
import shutil
from pathlib import Path

import pytest
import torch

from fixtures_train import MIN_VAL_ACCURACY, TRAINED_SMALL_ARGS
from l3net import L3Net, load_model
from l3net.cli import main
from l3net.errors import InputError, OutputError
from l3net.models import CONFIG_FILE, WEIGHTS_FILE
from l3net.train import (
    CHECKPOINT_DIR,
    LAST_DIR,
    TB_DIR,
    TrainConfig,
    checkpoint_path,
    load_checkpoint,
    read_log,
    train,
)

QUICK = ["--preset", "small", "--batch-size", "4", "--val-every", "0", "--val-pairs", "8", "--log-every", "1", "--no-progress",
         "--workers", "0"]


def _arg(name: str) -> str:
    return TRAINED_SMALL_ARGS[TRAINED_SMALL_ARGS.index(name) + 1]


def _val_steps() -> list[int]:
    """Validation runs every --val-every steps and after the last step."""
    every, steps = int(_arg("--val-every")), int(_arg("--steps"))
    return sorted(set(range(every, steps + 1, every)) | {steps})


def test_training_run_learns(trained_small_run: Path) -> None:
    records = read_log(trained_small_run)
    train_records = [r for r in records if r["event"] == "train"]
    val_records = [r for r in records if r["event"] == "val"]
    steps = int(_arg("--steps"))
    schedule = TrainConfig(data="-", out="-", lr=float(_arg("--lr")), lr_schedule=_arg("--lr-schedule"), steps=steps)
    assert [r["step"] for r in train_records] == list(range(5, steps + 1, 5))
    for r in train_records:
        assert r["pairs"] == r["step"] * int(_arg("--batch-size"))
        # the rate the step trained with: the cosine's value after step - 1 completed steps
        assert r["lr"] == pytest.approx(schedule.lr_at(r["step"] - 1), rel=1e-12)
        assert r["pairs_per_s"] > 0 and 0 <= r["data_wait_fraction"] <= 1
    # The loss falls and the pairs are told apart better than by chance (50 %), in training and on val.
    first, last = train_records[:2], train_records[-2:]
    assert sum(r["loss"] for r in last) < sum(r["loss"] for r in first)
    assert max(r["accuracy"] for r in last) > 0.6
    assert [r["step"] for r in val_records] == _val_steps()
    assert max(r["val_accuracy"] for r in val_records) >= MIN_VAL_ACCURACY
    assert all(r["val_pairs"] > 0 for r in val_records)


def test_run_directory_loads_with_the_core_api(trained_small_run: Path) -> None:
    model = load_model(trained_small_run)
    assert isinstance(model, L3Net) and model.config.name == "small" and not model.training
    config = json.loads((trained_small_run / CONFIG_FILE).read_text())
    val = {r["step"]: r["val_accuracy"] for r in read_log(trained_small_run) if r["event"] == "val"}
    best_step = max(val, key=lambda s: (val[s], -s))
    assert config["step"] == best_step and config["val_accuracy"] == val[best_step]
    assert config["train"]["preset"] == "small" and config["train"]["lr"] == float(_arg("--lr"))
    assert config["train"]["batch_size"] == int(_arg("--batch-size")) and config["world_size"] == 1

    last = load_model(trained_small_run / LAST_DIR)
    assert json.loads((trained_small_run / LAST_DIR / CONFIG_FILE).read_text())["step"] == int(_arg("--steps"))
    checkpoint = load_checkpoint(trained_small_run)  # torch.load(weights_only=True) inside
    assert checkpoint["step"] == int(_arg("--steps"))
    for name, tensor in last.state_dict().items():
        assert torch.equal(tensor, checkpoint["model"][name]), name
    with torch.no_grad():
        images = torch.zeros(2, 3, model.config.image_size, model.config.image_size, dtype=torch.uint8)
        logits = model(images, torch.zeros(2, model.config.clip_samples))
    assert logits.shape == (2, 2) and torch.isfinite(logits).all()


def test_tensorboard_events(trained_small_run: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(trained_small_run / TB_DIR))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/loss", "train/accuracy", "train/pairs_per_s", "val/accuracy"} <= tags
    assert [e.step for e in events.Scalars("val/accuracy")] == _val_steps()


def test_existing_run_needs_resume(trained_small_run: Path, synth_shards: Path, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    shutil.copytree(trained_small_run, run)
    assert main(["train", "--data", str(synth_shards), "--out", str(run), *QUICK, "--steps", "1"]) == 2
    err = capsys.readouterr().err
    assert "already holds a run" in err and "--resume" in err and "Traceback" not in err


def test_resume_of_a_finished_run_and_incompatible_resume(trained_small_run: Path, synth_shards: Path,
                                                          tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    shutil.copytree(trained_small_run, run)
    before = (run / WEIGHTS_FILE).read_bytes()
    # Options left out come from the run: this continues it, and it is already complete.
    assert main(["train", "--out", str(run), "--resume", "--no-progress"]) == 0
    assert f"already at step {_arg('--steps')}" in capsys.readouterr().err

    assert main(["train", "--out", str(run), "--resume", "--batch-size", "16", "--preset", "paper"]) == 2
    err = capsys.readouterr().err
    assert "cannot resume" in err and "--batch-size was 32, now 16" in err and "--preset was 'small'" in err

    other = tmp_path / "other_shards"
    shutil.copytree(synth_shards, other)
    for path in sorted(other.glob("train-*.tar*"))[-2:]:  # one train shard (tar + sidecar) fewer
        path.unlink()
    assert main(["train", "--out", str(run), "--resume", "--data", str(other)]) == 2
    assert "not the data the run was trained on" in capsys.readouterr().err
    assert (run / WEIGHTS_FILE).read_bytes() == before  # refused runs change nothing


def test_unwritable_run_directory(synth_shards: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory\n")
    assert main(["train", "--data", str(synth_shards), "--out", str(blocker / "run"), *QUICK, "--steps", "1"]) == 2
    err = capsys.readouterr().err
    assert "cannot write" in err and str(blocker) in err and "Traceback" not in err


def test_bad_settings_and_data(synth_shards: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = str(tmp_path / "run")
    assert main(["train", "--data", str(synth_shards), "--out", out, *QUICK, "--steps", "0"]) == 2
    assert "--steps must be positive" in capsys.readouterr().err
    assert main(["train", "--data", str(synth_shards), "--out", out, *QUICK, "--precision", "fp16",
                 "--device", "cpu"]) == 2
    assert "fp16" in capsys.readouterr().err
    assert main(["train", "--data", str(tmp_path / "missing"), "--out", out, *QUICK]) == 2
    assert str(tmp_path / "missing") in capsys.readouterr().err
    assert main(["train", "--out", out]) == 2
    assert "--data is required" in capsys.readouterr().err
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").rglob("*.pt"))


def test_non_finite_loss_stops_and_keeps_the_last_good_state(synth_shards: Path, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    # An absurd learning rate: Adam moves every weight by ~1e30 at once, so the next loss overflows.
    code = main(["train", "--data", str(synth_shards), "--out", str(run), *QUICK, "--steps", "4",
                 "--save-every", "1", "--lr", "1e30"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert "the loss became" in err and "at step 2" in err and "checkpoint of step 1" in err
    checkpoint = load_checkpoint(run)
    assert checkpoint["step"] == 1
    assert all(torch.isfinite(t).all() for t in checkpoint["model"].values() if t.is_floating_point())
    assert load_model(run / LAST_DIR) is not None


def test_full_disk_is_reported(synth_shards: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_space(obj: object, f: object, *args: object, **kwargs: object) -> None:
        Path(f).write_bytes(b"partial")  # type: ignore[arg-type]
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", no_space)
    config = TrainConfig(data=str(synth_shards), out=str(tmp_path / "run"), preset="small", batch_size=4, steps=1,
                         val_every=0, val_pairs=8, workers=0)
    with pytest.raises(OutputError, match="disk is full"):
        train(config, progress=False)
    assert not checkpoint_path(tmp_path / "run").exists()
    assert list((tmp_path / "run" / CHECKPOINT_DIR).iterdir()) == []  # no partial file left behind


def test_rng_states_survive_a_weights_only_checkpoint(tmp_path: Path) -> None:
    import random

    import numpy as np

    from l3net.train import rng_state, set_rng_state

    saved = rng_state()
    first = (random.random(), float(np.random.rand()), float(torch.rand(1)))
    torch.save({"rng": [saved]}, tmp_path / "rng.pt")
    set_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True)["rng"][0])
    assert (random.random(), float(np.random.rand()), float(torch.rand(1))) == first


def test_world_from_the_torchrun_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from l3net.distributed import World, world_from_env
    from l3net.errors import InputError

    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert world_from_env() == World(0, 1, 0) and world_from_env().is_main
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "1")
    world = world_from_env()
    assert world == World(3, 4, 1) and world.distributed and not world.is_main
    monkeypatch.setenv("RANK", "4")
    with pytest.raises(InputError, match="RANK=4, WORLD_SIZE=4"):
        world_from_env()


def test_cosine_schedule_decays_to_zero_and_is_logged(synth_shards: Path, tmp_path: Path) -> None:
    config = TrainConfig(data="d", out="o", lr=1e-3, lr_schedule="cosine", steps=4)
    assert [config.lr_at(s) for s in range(5)] == pytest.approx([1e-3, 8.5355e-4, 5e-4, 1.4645e-4, 0.0], rel=1e-4)
    assert TrainConfig(data="d", out="o", lr=1e-3, steps=4).lr_at(3) == 1e-3  # the paper's: constant
    run = tmp_path / "run"
    assert main(["train", "--data", str(synth_shards), "--out", str(run), *QUICK, "--steps", "4",
                 "--lr", "1e-3", "--lr-schedule", "cosine"]) == 0
    logged = [r["lr"] for r in read_log(run) if r["event"] == "train"]
    assert logged == pytest.approx([config.lr_at(s) for s in range(4)], rel=1e-6)  # step k ran at lr_at(k)
    with pytest.raises(SystemExit, match="2"):  # argparse: "invalid choice", with the choices
        main(["train", "--data", str(synth_shards), "--out", str(tmp_path / "bad"), *QUICK, "--lr-schedule", "linear"])
    with pytest.raises(InputError, match="--lr-schedule must be one of constant, cosine"):
        TrainConfig(data="d", out="o", lr_schedule="linear").validate()
