"""``l3net eval baselines``: Table 1's supervised rows (:func:`l3net.evaluate.baselines.protocol.evaluate_baselines`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ...config import PRESETS
from ...evaluate.baselines import BaselinesConfig
from ._common import add_common_arguments, config_defaults, eval_dir, write_and_report

_D = config_defaults(BaselinesConfig)

HELP = "Table 1's supervised baselines: classifiers, 'supervised direct' and 'supervised pretraining'"
DESCRIPTION = """Train Table 1's supervised baselines on a labelled shard set and score them on the same
AVC test pairs as 'l3net eval avc':

  vision / audio classifier   the L3 tower + fc (C x 128) + fc (128 x K), cross-entropy on the train
                              split's frames / 1 s clips (their test accuracy is reported too)
  supervised direct           corresponds if the dot product of the two softmax outputs exceeds a
                              threshold chosen on the val split's pairs
  supervised pretraining      the two trained towers frozen in an L3-Net, only the fusion head
                              trained on AVC pairs

Trained "in the same manner as" L3-Net: the paper's Adam settings, L3 training's augmentation
(random crop, flip, brightness, saturation of frames; random 1 s clips with a random gain), and
by default the budget of the L3 run they are compared with (--model RUN: the steps x batch size
its model was trained for): the head trains on as many AVC pairs, each classifier on as many
frames / clips (epochs over the train split). Without --model, the budget is l3net train's
default, the paper's 60 M pairs. --epochs, --head-pairs and --head-steps set it yourself. The
budget used, and where it came from, are in baselines.json (metrics.budget) and its table.

Training is checkpointed (OUT/baselines/checkpoint/) every --save-every steps; --resume
continues an interrupted run (on the CPU, to the same weights as an uninterrupted one). The
network supervised pretraining builds is saved
(OUT/baselines/supervised_pretraining/), so the other evaluations can be run on it.

examples:
  l3net eval baselines --data shards/ --model runs/small       # the budget of runs/small
  -> runs/small/eval/baselines.json, baselines_training.png
  l3net eval baselines --data shards/ --model runs/small --resume   # after an interruption
  l3net eval baselines --data shards/ --out runs/baselines --preset small --epochs 10 --head-pairs 16000"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, metavar="SHARDS", help="a labelled shard directory (l3net prepare --labels)")
    parser.add_argument("--model", metavar="RUN",
                        help="the L3 run (l3net train's directory, or its last/) the baselines are compared with: the "
                        "default budgets, preset and augmentation are its own, and --out defaults to it")
    parser.add_argument("--preset", default=_D["preset"], choices=sorted(PRESETS),
                        help="architecture of the towers (default: the --model run's, else small)")
    parser.add_argument("--split", default=_D["split"], choices=("val", "test"),
                        help=f"split whose pairs are scored (default: {_D['split']})")
    parser.add_argument("--epochs", type=int, default=_D["epochs"],
                        help="classifier epochs over the train split, each usable train video once per epoch "
                        "(default: as many frames / clips as the --model run's pairs; without --model, the paper's 60 M)")
    parser.add_argument("--head-pairs", type=int, default=_D["head_pairs"],
                        help="AVC pairs training the fusion head of supervised pretraining (default: the --model "
                        "run's pairs; without --model, the paper's 60 M)")
    parser.add_argument("--head-steps", type=int, default=_D["head_steps"],
                        help="steps training the fusion head (wins over --head-pairs)")
    parser.add_argument("--lr", type=float, default=_D["lr"], help=f"Adam learning rate (default: {_D['lr']:g})")
    parser.add_argument("--head-lr", type=float, default=_D["head_lr"],
                        help=f"Adam learning rate of the fusion head alone, on frozen towers (default: {_D['head_lr']:g}: "
                        "a small head from scratch learns faster with a larger step; the paper gives none)")
    parser.add_argument("--weight-decay", type=float, default=_D["weight_decay"],
                        help=f"Adam weight decay (default: {_D['weight_decay']:g})")
    parser.add_argument("--pairs-per-video", type=int, default=_D["pairs_per_video"],
                        help=f"evaluation pairs per video, as 'l3net eval avc' (default: {_D['pairs_per_video']})")
    parser.add_argument("--save-every", type=int, default=_D["save_every"],
                        help=f"steps between training checkpoints (default: {_D['save_every']})")
    parser.add_argument("--workers", type=int, default=_D["workers"],
                        help="data loader processes reading the training batches (default: as l3net train, 1 on the "
                        "CPU, cores - 1 up to 16 per GPU; 0: in the main process). A resumed run keeps it")
    parser.add_argument("--resume", action="store_true",
                        help="continue the training checkpointed in OUT/baselines/checkpoint/ (same options)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_common_arguments(parser, BaselinesConfig, model=False)


def run(args: argparse.Namespace) -> int:
    from ...errors import InputError
    from ...evaluate.baselines import CHECKPOINT_SUBDIR, MODEL_SUBDIR, evaluate_baselines, reference_run
    from ...evaluate.baselines.training import CHECKPOINT_FILE
    from ._common import say

    reference = reference_run(args.model) if args.model is not None else None
    if args.out is None and args.model is None:
        raise InputError("pass --out DIR (or --model RUN): where the results (DIR/eval/) and the baseline network go")
    root = Path(args.out if args.out is not None else args.model)
    config = BaselinesConfig(
        preset=args.preset, split=args.split, epochs=args.epochs, head_pairs=args.head_pairs, head_steps=args.head_steps,
        batch_size=args.batch_size, lr=args.lr, head_lr=args.head_lr, weight_decay=args.weight_decay,
        pairs_per_video=args.pairs_per_video, save_every=args.save_every, workers=args.workers, device=args.device,
        precision=args.precision, seed=args.seed, progress=not args.no_progress,
    )
    out = eval_dir(None, root)  # bad settings or an unwritable place fail before training
    checkpoint_dir = root / CHECKPOINT_SUBDIR
    if (checkpoint_dir / CHECKPOINT_FILE).is_file() and not args.resume:
        raise InputError(f"{checkpoint_dir} holds the checkpoint of an earlier baselines training: pass --resume to "
                         "continue it, or remove it to start again")
    if args.resume and not (checkpoint_dir / CHECKPOINT_FILE).is_file():
        say(f"l3net eval baselines: no checkpoint in {checkpoint_dir}; starting from the beginning")
    result = evaluate_baselines(args.data, config, reference=reference, checkpoint_dir=checkpoint_dir, resume=args.resume)
    model_dir = root / MODEL_SUBDIR
    result.network.save(model_dir, extra_config={"baseline": "supervised pretraining", "classes": result.metrics["classes"]})
    result.metrics["model_dir"] = str(model_dir)
    result.notes.append(f"The supervised-pretraining network is saved in {model_dir} (use it as --model); the "
                        f"training checkpoint in {checkpoint_dir}.")
    write_and_report(out, result)
    print(f"supervised-pretraining network: {model_dir}")
    return 0
