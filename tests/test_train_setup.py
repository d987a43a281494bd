"""Trainer.setup: it leaves the caller's TrainConfig as it was, makes no attribute __init__ did not
declare, and refuses a checkpoint of an earlier format or of another loop with the reason."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from l3net.checkpoint import save_checkpoint
from l3net.data.shards import ShardSet
from l3net.errors import InputError
from l3net.runtime import default_workers
from l3net.train import RESUME_FIXED, Trainer, TrainConfig, checkpoint_path


def _config(shards: Path, out: Path) -> TrainConfig:
    return TrainConfig(data=str(shards), out=str(out), preset="small", batch_size=4, steps=1, val_every=0,
                       val_pairs=4, device="cpu")


def test_setup_resolves_a_copy_and_declares_its_attributes_in_init(synth_shards: Path, tmp_path: Path) -> None:
    config = _config(synth_shards, tmp_path / "run")
    before = dataclasses.replace(config)
    trainer = Trainer(config, progress=False)
    declared = set(vars(trainer))
    try:
        trainer.setup()
        assert set(vars(trainer)) == declared, "setup() made attributes __init__ does not declare"
        assert config == before and config.workers is None and config.augment is None  # the caller's: unchanged
        assert trainer.config is not config
        assert trainer.config.workers == default_workers(torch.device("cpu"))
        assert trainer.config.augment == dataclasses.asdict(trainer.augment)
        assert trainer.data_fingerprint == ShardSet(synth_shards).fingerprint()
        assert trainer.run_info["train"] == trainer.config.to_dict()
    finally:
        trainer.close()


def test_resume_refuses_an_earlier_format_and_another_loops_checkpoint(synth_shards: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    path = checkpoint_path(run)
    path.parent.mkdir(parents=True)
    torch.save({"format": 1, "step": 3, "run": "{}"}, path)  # what l3net train wrote before l3net.checkpoint
    with pytest.raises(InputError, match="earlier l3net .format 1.*does not resume") as caught:
        Trainer(_config(synth_shards, run), resume=True, progress=False).setup()
    assert str(path) in str(caught.value)

    save_checkpoint(path, "probe", {key: None for key in RESUME_FIXED}, {"step": 3})
    with pytest.raises(InputError, match="a 'probe' checkpoint, not a 'train' one"):
        Trainer(_config(synth_shards, run), resume=True, progress=False).setup()
