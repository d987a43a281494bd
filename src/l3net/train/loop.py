"""The training recipe, top to bottom: :class:`Trainer` sets up (processes, run directory, model,
optimizer, data), then :meth:`Trainer.train` runs the step, validates, saves and logs; :func:`train`
is the whole run."""

from __future__ import annotations

import dataclasses
import math
import sys
import time
from pathlib import Path
from typing import Any, Iterator, Mapping

import torch
from torch import nn
from torch.nn import functional as F

from .. import distributed
from .._version import __version__
from ..checkpoint import save_checkpoint
from ..config import ModelConfig, get_preset
from ..distributed import World
from ..errors import InputError, L3NetError
from ..rundir import CHECKPOINT_DIR, LAST_DIR
from ..runtime import autocast, default_workers, optimizer_step, synchronize, training_math
from .data import check_streams, make_loader, make_val_loader, pair_stream
from .config import TrainConfig, TrainResult
from .log import RunLog, announcement, say, summary
from .model import build_state, wrap_for_step
from .state import (
    CHECKPOINT_KIND,
    TrainState,
    check_compatible,
    checkpoint_path,
    prepare_run_dir,
    read_run_checkpoint,
    rng_state,
    run_fingerprint,
    seed_everything,
)


class NonFiniteLossError(L3NetError):
    """The loss became NaN or infinite; the run stopped without saving the broken weights."""


class _Meter:
    """The current log interval's step losses, correct pairs and data wait, and this process's
    training time, pairs and data wait over the run (validation and saving excluded)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.losses: list[torch.Tensor] = []
        self.correct = torch.zeros((), dtype=torch.int64, device=device)
        self.data_wait = 0.0  # s
        self.start = 0.0  # time.perf_counter() when the interval started
        self.run_time, self.run_pairs, self.run_wait = 0.0, 0, 0.0

    def restart(self) -> None:
        """Start an interval once the device has finished its queued work (set-up's, validation's)."""
        synchronize(self.device)
        self.start = time.perf_counter()

    def add(self, loss: torch.Tensor, correct: torch.Tensor) -> None:
        self.losses.append(loss)
        self.correct += correct

    def lap(self, pairs_per_step: int) -> tuple[float, float]:
        """End the interval now (after its losses reached the host) and start the next one at the same
        reading, so no time escapes both; returns (elapsed s, wall clock Unix time) and resets."""
        end, wall = time.perf_counter(), time.time()
        elapsed = end - self.start
        self.start = end
        self.run_time += elapsed
        self.run_pairs += len(self.losses) * pairs_per_step
        self.run_wait += self.data_wait
        return elapsed, wall

    def reset(self) -> None:
        self.losses, self.data_wait = [], 0.0
        self.correct.zero_()

    def rates(self) -> tuple[float | None, float | None]:
        """The run's pairs per second and share of its time spent waiting for data (None: no time)."""
        if not self.run_time:
            return None, None
        return self.run_pairs / self.run_time, self.run_wait / self.run_time


class Trainer:
    """Set-up, the step, validation, checkpointing and logging of one training run."""

    def __init__(self, config: TrainConfig, *, resume: bool = False, progress: bool = True) -> None:
        # The caller's settings; setup() replaces them with a resolved copy and never changes them.
        self.config = config
        self.resume = resume
        self.progress = progress
        self.world = World()
        self.device = torch.device("cpu")
        self.log: RunLog | None = None
        self.saved_step: int | None = None  # step of the checkpoint on disk
        # The run's parts, made by setup() (empty until then).
        self.math: dict[str, Any] = {}  # how the run computes (precision, TF32), recorded in the run
        self.augment: Any = None  # the sampler's AugmentConfig
        self.run_dir = Path(config.out)
        self.model_config: ModelConfig | None = None
        self.batch_per_rank = 0  # pairs per process and step
        self.total_steps = 0
        self.data_fingerprint = ""  # ShardSet.fingerprint() of --data
        self.state: TrainState | None = None
        self.run_info: dict[str, Any] = {}  # saved with every model and checkpoint
        self.step_model: nn.Module | None = None  # the model as the step runs it (DDP, compiled)
        self.train_loader: torch.utils.data.DataLoader | None = None
        self.val_loader: torch.utils.data.DataLoader | None = None

    # -- set-up ----------------------------------------------------------------------------------
    def setup(self) -> None:
        """Set up the run: processes, resolved settings, model and optimizer, run directory (new or
        resumed), what runs the step, the data loaders and the log."""
        cfg = self.config
        cfg.validate()
        self.world, self.device = distributed.setup(cfg.device)
        world = self.world
        self.math = training_math(cfg.precision, self.device)  # TF32 off on GPUs; recorded in the run
        if cfg.batch_size % world.world_size:
            raise InputError(
                f"--batch-size {cfg.batch_size} cannot be split evenly over {world.world_size} processes; "
                f"use a multiple of {world.world_size}"
            )
        if cfg.sync_bn and world.distributed and self.device.type == "cpu":
            raise InputError("--sync-bn needs GPUs: PyTorch's SyncBatchNorm has no CPU implementation")
        from ..data.sampler import AugmentConfig
        from ..data.shards import ShardSet

        # The run's settings with the machine's defaults filled in, as a copy: the caller's config is not
        # changed. Workers and augmentation are fixed for the run: the pair stream depends on them.
        self.augment = AugmentConfig(**cfg.augment) if cfg.augment else AugmentConfig()
        # Agreed over the ranks (unequal nodes would count differently): the pair stream depends on it.
        workers = (distributed.min_over_ranks(default_workers(self.device, world.world_size), world, self.device)
                   if cfg.workers is None else cfg.workers)
        cfg = self.config = dataclasses.replace(cfg, workers=workers, augment=dataclasses.asdict(self.augment))
        self.run_dir = Path(cfg.out)
        self.model_config = get_preset(cfg.preset)
        self.batch_per_rank = cfg.batch_size // world.world_size
        self.total_steps = cfg.total_steps
        self.data_fingerprint = distributed.run_on_main(lambda: ShardSet(cfg.data).fingerprint(), world)

        seed_everything(cfg.seed, world.rank)
        self.state = build_state(cfg, self.model_config, world, self.device)

        # The run directory: new, or resumed from its checkpoint (rank 0 checks; all ranks load).
        checkpoint = distributed.run_on_main(prepare_run_dir, world, self.run_dir, self.resume)
        resumed_from = None
        if checkpoint:
            saved = read_run_checkpoint(self.run_dir)
            check_compatible(saved, self._run_fingerprint(), cfg.data)
            rng = saved.state["rng"]
            self.state.load_state_dict(saved.state, world.rank if len(rng) == world.world_size else 0)
            resumed_from = self.saved_step = self.state.step
        self.run_info = {
            "train": cfg.to_dict(),
            "world_size": world.world_size,
            "data_fingerprint": self.data_fingerprint,
            "l3net_version": __version__,
            "torch_version": torch.__version__,
            "math": self.math,
        }

        self.step_model = wrap_for_step(self.state.model, cfg, world, self.device)
        train_pairs = pair_stream(cfg, self.model_config, world, self.augment, train=True, step=self.state.step)
        check_streams(train_pairs, cfg.workers or 0, world)
        self.train_loader = make_loader(train_pairs, cfg, world, self.device)
        self.val_loader = make_val_loader(cfg, self.model_config, world, self.augment, self.device)
        if world.is_main:
            self.log = RunLog(self.run_dir, resumed_from)
        self._announce(resumed_from)

    def _run_fingerprint(self) -> dict[str, Any]:
        return run_fingerprint(self.config, self.data_fingerprint, self.world.world_size)

    def _announce(self, resumed_from: int | None) -> None:
        cfg, world = self.config, self.world
        where = f"{self.device}" + (f" x {world.world_size} processes" if world.distributed else "")
        start = f"resuming at step {resumed_from:,}" if resumed_from is not None else "new run"
        say(world, announcement(start=start, preset=cfg.preset, parameters=self.state.model.num_parameters(),
                                steps=self.total_steps, batch_size=cfg.batch_size, where=where,
                                math_choice=self.math, run_dir=self.run_dir))

    # -- the step --------------------------------------------------------------------------------
    def train_step(self, batch: Mapping[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """One synchronous optimisation step on a batch; returns (loss, correct pairs) on the device.

        Nothing here waits for the device: the loss is checked when the log is written.
        """
        images, waveforms, labels = self._to_device(batch)
        with autocast(self.config.precision, self.device):
            logits = self.step_model(images, waveforms)
        loss = F.cross_entropy(logits.float(), labels)
        optimizer_step(self.state.optimizer, self.state.scaler, loss, lr=self.config.lr_at(self.state.step))
        correct = (logits.detach().argmax(dim=1) == labels).sum()
        return loss.detach(), correct

    def _to_device(self, batch: Mapping[str, Any]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        from ..data.sampler import batch_waveforms

        # uint8 images and raw waveforms travel; normalisation and the spectrogram run on the device.
        images = batch["image"].to(self.device, non_blocking=True)
        if self.config.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        waveforms = batch_waveforms(batch, self.device, non_blocking=True)  # int16 crosses; scaled there
        labels = batch["label"].to(self.device, non_blocking=True)
        return images, waveforms, labels


    # -- the loop --------------------------------------------------------------------------------
    def train(self) -> TrainResult:
        """Run the steps left: each logs every --log-every steps, validates every --val-every and saves
        every --save-every (and all three after the last step); returns the run's result."""
        cfg, state, world = self.config, self.state, self.world
        if state.step >= self.total_steps:
            say(world, f"l3net train: the run is already at step {state.step:,} of {self.total_steps:,}; "
                "pass a larger --steps or --pairs to train longer")
            return self._result(None, None, None)
        bar = self._progress_bar()
        meter = _Meter(self.device)
        meter.restart()  # set-up's device work is not the first interval's
        last_accuracy: float | None = None
        shown: dict[str, str] = {}  # the progress bar's postfix: latest loss, accuracy, speed, validation
        state.model.train()
        batches: Iterator[Mapping[str, Any]] = iter(self.train_loader)
        try:
            while state.step < self.total_steps:
                t0 = time.perf_counter()
                batch = next(batches)
                meter.data_wait += time.perf_counter() - t0

                meter.add(*self.train_step(batch))
                state.step += 1
                state.pairs_seen += cfg.batch_size
                bar.update(1)

                step = state.step
                last = step == self.total_steps
                val_due = (cfg.val_every and step % cfg.val_every == 0) or last
                save_due = step % cfg.save_every == 0 or last
                if step % cfg.log_every == 0 or val_due or save_due:
                    record = self._end_interval(meter)
                    shown.update(loss=f"{record['loss']:.4f}", acc=f"{record['accuracy']:.3f}",
                                 pairs_s=f"{record['pairs_per_s']:.1f}")
                    bar.set_postfix(shown, refresh=False)
                    if val_due:
                        last_accuracy = self.validate()
                        if last_accuracy is not None:
                            shown["val"] = f"{last_accuracy:.3f}"
                            bar.set_postfix(shown, refresh=False)
                    if save_due:
                        self.save_checkpoint()
                    if val_due or save_due:  # validation and saving are not training time
                        meter.restart()
        except KeyboardInterrupt:
            bar.close()
            say(world, f"l3net train: interrupted at step {state.step:,}; `--resume` continues from the last "
                f"checkpoint in {self.run_dir / CHECKPOINT_DIR}")
            raise
        finally:
            bar.close()
        if state.best_step is None and world.is_main:
            # No validation pairs: the final model is the run's model.
            self.state.model.save(self.run_dir, extra_config=self._model_extra(None))
        result = self._result(*meter.rates(), last_accuracy)
        say(world, summary(result, self.math))
        return result

    def _progress_bar(self) -> Any:
        from tqdm import tqdm

        return tqdm(
            total=self.total_steps,
            initial=self.state.step,
            desc="train",
            unit="step",
            file=sys.stderr,
            dynamic_ncols=True,
            mininterval=0.5 if sys.stderr.isatty() else 30.0,
            disable=not (self.world.is_main and self.progress),
        )

    def _end_interval(self, meter: _Meter) -> dict[str, Any]:
        """Log the interval that ends now and start the next; returns its log record.

        The interval ends once the device has finished its steps: the losses reach the host first (the
        loop's only sync), then the clock is read (a GPU runs several steps behind the CPU).
        """
        stats = self._interval_stats(meter.losses, meter.correct)
        elapsed, wall = meter.lap(self.config.batch_size)
        record = self._log_train(stats, len(meter.losses), elapsed, meter.data_wait, wall)
        self.state.elapsed_s += elapsed
        meter.reset()
        return record

    def _interval_stats(self, losses: list[torch.Tensor], correct: torch.Tensor) -> torch.Tensor:
        """The interval's step losses summed over ranks, then its correct pairs, on the host: the one
        sync of the loop (it waits for every step queued on the device). Stops on a non-finite loss."""
        state, world = self.state, self.world
        stats = torch.cat([torch.stack(losses).float(), correct.float().view(1)])
        stats = distributed.all_reduce_sum(stats, world).cpu()
        step_losses = stats[:-1] / world.world_size
        if not torch.isfinite(step_losses).all():
            bad = int(torch.nonzero(~torch.isfinite(step_losses))[0]) + state.step - len(losses) + 1
            saved = self.saved_step
            keep = (f"the last good state is the checkpoint of step {saved:,} in {self.run_dir / CHECKPOINT_DIR}"
                    if saved is not None else "no checkpoint had been saved yet")
            raise NonFiniteLossError(
                f"the loss became {float(step_losses[bad - (state.step - len(losses) + 1)])} at step {bad:,}; "
                f"training stopped without saving the broken weights ({keep}). Try a lower --lr, "
                "or --precision fp32 if you train in fp16"
            )
        return stats

    def _log_train(self, stats: torch.Tensor, n: int, elapsed: float, data_wait: float, wall: float) -> dict:
        """Log an interval of ``n`` steps that took ``elapsed`` s (ending at ``wall``, Unix time) from its
        host ``stats`` (:meth:`_interval_stats`)."""
        cfg, state, world = self.config, self.state, self.world
        step_losses = stats[:-1] / world.world_size
        record = {
            "event": "train",
            "step": state.step,
            "pairs": state.pairs_seen,
            "loss": float(step_losses.mean()),
            "accuracy": float(stats[-1]) / (n * cfg.batch_size),
            "lr": self.state.optimizer.param_groups[0]["lr"],
            "pairs_per_s": n * cfg.batch_size / elapsed if elapsed > 0 else None,
            "data_wait_s": data_wait,
            "data_wait_fraction": data_wait / elapsed if elapsed > 0 else None,
            "interval_s": elapsed,
            "time": wall,  # the end of the interval: the next one starts there unless val/save came between
        }
        if self.log is not None:
            self.log.write(record, {
                "train/loss": record["loss"],
                "train/accuracy": record["accuracy"],
                "train/lr": record["lr"],
                "train/pairs_per_s": record["pairs_per_s"],
                "train/data_wait_fraction": record["data_wait_fraction"],
            })
        return record

    # -- validation ------------------------------------------------------------------------------
    def validate(self) -> float | None:
        """AVC accuracy on the val split's fixed pairs (each rank its share); keeps the best model.

        Returns None when there are no validation pairs.
        """
        if self.val_loader is None:
            return None
        cfg, model = self.config, self.state.model
        limit = math.ceil(cfg.val_pairs / self.batch_per_rank) if cfg.val_pairs else None
        sums = torch.zeros(3, dtype=torch.float64, device=self.device)  # correct, pairs, summed loss
        model.eval()
        with torch.no_grad():
            for batch in self.val_loader:
                if limit is not None and batch["step"] >= limit:
                    break  # batches arrive in order: the rest are past the limit too
                images, waveforms, labels = self._to_device(batch)
                with autocast(cfg.precision, self.device):
                    logits = model(images, waveforms)
                sums[0] += (logits.argmax(dim=1) == labels).sum()
                sums[1] += labels.numel()
                sums[2] += F.cross_entropy(logits.float(), labels, reduction="sum")
        model.train()
        correct, total, loss_sum = distributed.all_reduce_sum(sums, self.world).tolist()
        if total == 0:
            return None
        accuracy, state = correct / total, self.state
        improved = state.best_accuracy is None or accuracy > state.best_accuracy
        if improved:
            state.best_accuracy, state.best_step = accuracy, state.step
        distributed.run_on_main(self._record_validation, self.world, accuracy, loss_sum / total, int(total), improved)
        return accuracy

    def _record_validation(self, accuracy: float, loss: float, pairs: int, improved: bool) -> None:
        state = self.state
        if improved:
            state.model.save(self.run_dir, extra_config=self._model_extra(accuracy))
        record = {"event": "val", "step": state.step, "pairs": state.pairs_seen, "val_accuracy": accuracy,
                  "val_loss": loss, "val_pairs": pairs, "best": improved, "time": time.time()}
        if self.log is not None:
            self.log.write(record, {"val/accuracy": accuracy, "val/loss": loss})

    # -- checkpointing ---------------------------------------------------------------------------
    def save_checkpoint(self) -> None:
        """Save RUN_DIR/last/ and the full state, atomically (all ranks call: RNG states are gathered)."""
        rng = distributed.gather_to_main(rng_state(), self.world)
        distributed.run_on_main(self._save_on_main, self.world, rng)

    def _save_on_main(self, rng: list[dict[str, Any]]) -> None:
        state = self.state
        state.model.save(self.run_dir / LAST_DIR, extra_config=self._model_extra(None))
        save_checkpoint(checkpoint_path(self.run_dir), CHECKPOINT_KIND, self._run_fingerprint(),
                        state.state_dict(rng, self.run_info))
        self.saved_step = state.step

    def _model_extra(self, accuracy: float | None) -> dict[str, Any]:
        state = self.state
        return {
            **self.run_info,
            "step": state.step,
            "pairs_seen": state.pairs_seen,
            "val_accuracy": accuracy,
        }

    # -- the end ---------------------------------------------------------------------------------
    def close(self) -> None:
        if self.log is not None:
            self.log.close()
            self.log = None

    def _result(self, pairs_per_s: float | None, wait: float | None, last_accuracy: float | None) -> TrainResult:
        s = self.state
        return TrainResult(self.run_dir, s.step, s.pairs_seen, s.best_accuracy, s.best_step, last_accuracy,
                           pairs_per_s, wait)


def train(config: TrainConfig, *, resume: bool = False, progress: bool = True) -> TrainResult:
    """Train (or, with ``resume``, continue) a run; see :class:`TrainConfig` and the module doc.

    Works alone or as one process of ``torchrun``; returns the run's :class:`TrainResult`.
    """
    trainer = Trainer(config, resume=resume, progress=progress)
    try:
        trainer.setup()
        return trainer.train()
    finally:
        trainer.close()
        distributed.teardown()
