"""``l3net eval baselines``: Table 1's supervised rows (:func:`l3net.evaluate.baselines.evaluate_baselines`)."""

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

The network supervised pretraining builds is saved (OUT/baselines/supervised_pretraining/), so
the other evaluations can be run on it. Defaults suit a laptop CPU with the small preset.

example:
  l3net eval baselines --data shards/ --out runs/small --preset small --epochs 10
  -> runs/small/eval/baselines.json, baselines_training.png"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, metavar="SHARDS", help="a labelled shard directory (l3net prepare --labels)")
    parser.add_argument("--preset", default=_D["preset"], choices=sorted(PRESETS),
                        help=f"architecture of the towers (default: {_D['preset']})")
    parser.add_argument("--split", default=_D["split"], choices=("val", "test"),
                        help=f"split whose pairs are scored (default: {_D['split']})")
    parser.add_argument("--epochs", type=int, default=_D["epochs"], help=f"classifier training epochs (default: {_D['epochs']})")
    parser.add_argument("--samples-per-video", type=int, default=_D["samples_per_video"],
                        help=f"random frames / 1 s clips drawn from each train video per epoch (default: {_D['samples_per_video']})")
    parser.add_argument("--head-steps", type=int, default=_D["head_steps"],
                        help=f"steps training the fusion head of supervised pretraining (default: {_D['head_steps']})")
    parser.add_argument("--lr", type=float, default=_D["lr"], help=f"Adam learning rate (default: {_D['lr']:g})")
    parser.add_argument("--head-lr", type=float, default=_D["head_lr"],
                        help=f"Adam learning rate of the fusion head alone, on frozen towers (default: {_D['head_lr']:g}: "
                        "a small head from scratch learns faster with a larger step; the paper gives none)")
    parser.add_argument("--weight-decay", type=float, default=_D["weight_decay"],
                        help=f"Adam weight decay (default: {_D['weight_decay']:g})")
    parser.add_argument("--pairs-per-video", type=int, default=_D["pairs_per_video"],
                        help=f"evaluation pairs per video, as 'l3net eval avc' (default: {_D['pairs_per_video']})")
    add_common_arguments(parser, BaselinesConfig, model=False)


def run(args: argparse.Namespace) -> int:
    from ...errors import InputError
    from ...evaluate.baselines import MODEL_SUBDIR, evaluate_baselines

    if args.out is None:
        raise InputError("pass --out DIR: where the results (DIR/eval/) and the baseline network go")
    config = BaselinesConfig(
        preset=args.preset, split=args.split, epochs=args.epochs, samples_per_video=args.samples_per_video,
        head_steps=args.head_steps, batch_size=args.batch_size, lr=args.lr, head_lr=args.head_lr,
        weight_decay=args.weight_decay, pairs_per_video=args.pairs_per_video, device=args.device,
        precision=args.precision, seed=args.seed,
    )
    out = eval_dir(None, args.out)  # bad settings or an unwritable place fail before training
    result = evaluate_baselines(args.data, config)
    model_dir = Path(args.out) / MODEL_SUBDIR
    result.network.save(model_dir, extra_config={"baseline": "supervised pretraining", "classes": result.metrics["classes"]})
    result.metrics["model_dir"] = str(model_dir)
    result.notes.append(f"The supervised-pretraining network is saved in {model_dir} (use it as --model).")
    write_and_report(out, result)
    print(f"supervised-pretraining network: {model_dir}")
    return 0
