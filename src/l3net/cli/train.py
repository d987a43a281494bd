"""``l3net train``: train an L3-Net on shards (CPU, one GPU, or many with torchrun)."""

from __future__ import annotations

import argparse

import dataclasses

from ..config import PRESETS
from ..runtime import PRECISIONS
from ..config import PAPER_PAIRS
from ..train import LR_SCHEDULES, TrainConfig

#: TrainConfig's defaults, the one home of the paper's training settings.
_D = {f.name: f.default for f in dataclasses.fields(TrainConfig) if f.default is not dataclasses.MISSING}

HELP = "Train an L3-Net on the audio-visual correspondence task (CPU, GPU, torchrun)"
DESCRIPTION = f"""Train an L3-Net from scratch on shards written by `l3net prepare` (paper section 4).

Defaults are the paper's: Adam, learning rate {_D['lr']:g}, weight decay {_D['weight_decay']:g}, a global batch
of {_D['batch_size']} pairs, {PAPER_PAIRS / 1e6:g} M pairs in all. The run directory (--out) receives:
  config.json + model.safetensors   the best model by validation AVC accuracy
                                    (l3net.load_model(RUN_DIR), l3net embed --model RUN_DIR)
  last/                             the latest model
  checkpoint/state.pt               the full training state, for --resume
  log.jsonl, tb/                    the training log and TensorBoard events

A killed run (even kill -9) continues with --resume, losing at most the steps since the last
checkpoint (--save-every); options left out are taken from the run. With several machines
(torchrun --nnodes), put the run directory on a filesystem they share.

Examples:
  l3net train --data shards/ --out runs/small --preset small --batch-size 64 --steps 2000
  l3net train --out runs/small --resume --steps 4000        # continue, and train longer
  l3net train --data shards/ --out runs/o3 --preset openl3-mel256 --init-from openl3:mel256-env  # OpenL3's towers, new head
  torchrun --nproc_per_node 8 -m l3net train --data shards/ --out runs/paper --precision bf16
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # Defaults are None here so that --resume can tell a given option from one left out;
    # TrainConfig holds the real defaults.
    parser.add_argument("--data", help="shard directory written by `l3net prepare` (needs train and val splits)")
    parser.add_argument("--out", required=True, help="run directory (new, or an existing run with --resume)")
    parser.add_argument("--preset", choices=sorted(PRESETS), help=f"network size (default: {_D['preset']}; small: for CPUs)")
    parser.add_argument("--batch-size", type=int, help=f"global batch in pairs, split over processes (default: {_D['batch_size']})")
    parser.add_argument("--lr", type=float, help=f"Adam learning rate (default: {_D['lr']:g})")
    parser.add_argument("--lr-schedule", choices=LR_SCHEDULES,
                        help="learning rate over the run: constant (default, the paper's) or cosine (decays to 0 at the last step)")
    parser.add_argument("--weight-decay", type=float, help=f"Adam L2 weight decay (default: {_D['weight_decay']:g})")
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--steps", type=int, help="optimisation steps to train for in all")
    length.add_argument("--pairs", type=int, help=f"training pairs to see in all (default: {PAPER_PAIRS:,})")
    parser.add_argument("--val-every", type=int, help=f"validate every N steps, 0: only at the end (default: {_D['val_every']})")
    parser.add_argument("--val-pairs", type=int, help="use at most N of the fixed validation pairs (default: all)")
    parser.add_argument("--save-every", type=int, help=f"save a checkpoint every N steps (default: {_D['save_every']})")
    parser.add_argument("--log-every", type=int, help=f"log every N steps (default: {_D['log_every']})")
    parser.add_argument("--precision", choices=PRECISIONS, help="numeric precision: fp32 (default; true fp32 on GPUs too: TF32 off), bf16 (the fast one on "
                        "recent GPUs) or fp16 (GPU) autocast")
    parser.add_argument("--compile", action="store_true", default=None, help="torch.compile the model")
    parser.add_argument("--channels-last", action="store_true", default=None, help="channels-last memory format")
    parser.add_argument("--sync-bn", action="store_true", default=None,
                        help="BatchNorm statistics over the global batch (GPUs; the paper's were per 16 pairs; "
                        "not with --compile: it breaks the compiled graph)")
    parser.add_argument("--workers", type=int, help="data loader processes per process (default: 1 on CPU; on GPUs the cores - 1 per "
                        "GPU, at most 16, the same on every rank)")
    parser.add_argument("--seed", type=int, help=f"seed of the weights and the pair stream (default: {_D['seed']})")
    parser.add_argument("--device", help="cpu, cuda or auto (default); torchrun uses cuda:LOCAL_RANK")
    parser.add_argument("--init-from", metavar="MODEL",
                        help="start from the towers of a trained or converted model (a model directory, or "
                             "openl3:mel256-env) with a new fusion head; its architecture must be --preset's")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (log lines still go to log.jsonl)")


#: TrainConfig fields that come straight from options of the same name.
_FIELDS = ("data", "preset", "batch_size", "lr", "lr_schedule", "weight_decay", "steps", "pairs", "val_every", "val_pairs",
           "save_every", "log_every", "precision", "compile", "channels_last", "sync_bn", "workers", "seed", "device",
           "init_from")


def run(args: argparse.Namespace) -> int:
    from ..errors import InputError
    from ..train import checkpoint_path, resume_config, train

    given = {name: getattr(args, name) for name in _FIELDS if getattr(args, name) is not None}
    if given.get("steps") is not None:
        given["pairs"] = None  # one length at a time: the newest wins
    elif given.get("pairs") is not None:
        given["steps"] = None
    if args.resume and checkpoint_path(args.out).is_file():
        config = resume_config(args.out, **given)
    else:
        if "data" not in given:
            raise InputError("--data is required (the shard directory written by `l3net prepare`)")
        config = TrainConfig(out=args.out, **given)
    train(config, resume=args.resume, progress=not args.no_progress)
    return 0
