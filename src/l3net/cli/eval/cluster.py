"""``l3net eval cluster``: Table 4 and Figure 10 (:func:`l3net.evaluate.cluster.evaluate_clustering`)."""

from __future__ import annotations

import argparse

from ...evaluate.cluster import ClusterConfig
from ...modelspec import resolve_model
from ._common import add_common_arguments, add_random_seeds_argument, config_defaults, eval_dir, write_and_report

_D = config_defaults(ClusterConfig)

HELP = "Table 4 and Figure 10: k-means on pool4 embeddings, NMI against the labels, t-SNE pictures"
DESCRIPTION = """Cluster the pool4 embeddings of a labelled test split with k-means and score the
clusters against the classes with NMI (the paper's Table 4), for the vision tower (test frames)
and the audio tower (test 1 s clips). The random-assignment row and the untrained-network row
(same architecture, random weights: the mean and spread over --random-seeds networks, weights from
--seed + 1000, + 1001, ...; with --model random, the model is the first of them) are computed in
the same run; the paper's numbers are shown beside. t-SNE maps coloured by class, trained beside
random, make Figure 10.

Each test video gives --per-video frames (equally spaced) and the 1 s clip centred on each.

example:
  l3net eval cluster --model runs/small --data shards/ --k 64
  -> runs/small/eval/cluster.json, cluster_tsne.png, cluster_nmi.png"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, metavar="SHARDS", help="a labelled shard directory (l3net prepare)")
    parser.add_argument("--split", default=_D["split"], choices=("train", "val", "test"),
                        help=f"split to cluster (default: {_D['split']})")
    parser.add_argument("--k", type=int, default=_D["k"], help=f"number of k-means clusters (default: {_D['k']}, the paper's)")
    parser.add_argument("--per-video", type=int, default=_D["per_video"],
                        help=f"frames (and centred 1 s clips) per test video (default: {_D['per_video']})")
    parser.add_argument("--classes", nargs="+", metavar="CLASS", help="cluster only these classes (default: all)")
    parser.add_argument("--n-init", type=int, default=_D["n_init"],
                        help=f"k-means restarts; the best is kept (default: {_D['n_init']})")
    parser.add_argument("--no-tsne", action="store_true", help="skip the t-SNE pictures (the slow part on large sets)")
    add_common_arguments(parser, ClusterConfig)
    add_random_seeds_argument(parser, ClusterConfig)


def run(args: argparse.Namespace) -> int:
    from ...errors import InputError
    from ...evaluate.cluster import evaluate_clustering
    from ...evaluate.inputs import class_names, open_shards, select_classes

    if args.k < 2 or args.per_video < 1 or args.n_init < 1 or args.random_seeds < 1:
        raise InputError(f"--k must be at least 2, --per-video, --n-init and --random-seeds at least 1 (got {args.k}, "
                         f"{args.per_video}, {args.n_init}, {args.random_seeds})")
    shards = open_shards(args.data)  # a wrong --data fails before anything is created
    select_classes(class_names(shards, "clustering"), args.classes)
    out = eval_dir(args.model, args.out)  # an unwritable place fails before any work
    resolved = resolve_model(args.model, device=args.device, seed=args.seed)
    config = ClusterConfig(
        split=args.split, k=args.k, per_video=args.per_video, classes=tuple(args.classes) if args.classes else None,
        tsne=not args.no_tsne, batch_size=args.batch_size, device=args.device, precision=args.precision,
        seed=args.seed, n_init=args.n_init, random_seeds=args.random_seeds,
    )
    result = evaluate_clustering(resolved.model, shards, config, model_name=resolved.label,
                                 untrained=resolved.untrained)
    write_and_report(out, result)
    return 0
