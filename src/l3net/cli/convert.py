"""``l3net convert openl3``: OpenL3's published Keras weight files -> an l3net model directory."""

from __future__ import annotations

import argparse

HELP = "Convert OpenL3's published weight files (.h5) into an l3net model directory"
DESCRIPTION = """Convert OpenL3's published models (Keras weights-only HDF5, read with h5py: no TensorFlow) into an
l3net model directory (config.json + model.safetensors) that every l3net command loads with --model DIR.

An audio file and an image file of the same kind (e.g. openl3_audio_mel256_env.h5 and
openl3_image_mel256_env.h5) make one two-tower model, so that videos can be embedded; one file makes
a model with that tower only. The modality comes from the layer shapes, the audio front end (linear,
mel128, mel256) from OpenL3's file name, or from --front-end when the file was renamed. Nothing is
written when a file is not an OpenL3 network, is truncated, or has an unknown front end.

OpenL3 never published the audio-visual correspondence (fusion) head: a converted model embeds, but
commands that score correspondence need a head trained first (l3net train --init-from DIR).
Models converted once are also found by name: --model openl3:mel256-env looks for the published files
in $L3NET_OPENL3_DIR and in an installed openl3 package, and converts them into $L3NET_CACHE.

examples:
  l3net convert openl3 openl3_audio_mel256_env.h5 openl3_image_mel256_env.h5 --out models/openl3-mel256-env
  l3net convert openl3 my_copy.h5 --front-end mel128 --out models/mel128
  l3net embed --model models/openl3-mel256-env clip.wav
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="source", metavar="SOURCE", required=True)
    openl3 = sub.add_parser(
        "openl3",
        help="OpenL3's Keras .h5 weight files (audio and/or image)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    openl3.add_argument("files", metavar="FILE.h5", nargs="+", help="one audio and/or one image weights file (.h5 or .h5.gz)")
    openl3.add_argument("--out", required=True, metavar="DIR", help="the model directory to write (must not exist or be empty)")
    openl3.add_argument(
        "--front-end",
        choices=("linear", "mel128", "mel256"),
        help="the audio front end, when the file name does not say it (OpenL3's names do)",
    )
    openl3.add_argument("--overwrite", action="store_true", help="replace an l3net model already in DIR")


def run(args: argparse.Namespace) -> int:
    from ..models import load_model
    from ..openl3 import convert

    out = convert(args.files, args.out, front_end=args.front_end, overwrite=args.overwrite)
    model = load_model(out)  # proves the written directory loads
    towers = [name for name in ("audio", "vision") if name not in model.absent]
    print(
        f"wrote {out}: preset {model.config.name}, "
        + " and ".join("image" if t == "vision" else "audio" for t in towers)
        + " network(s), no fusion head"
    )
    print(f"  use it with: l3net embed --model {out} FILE ...   or   l3net.load_model('{out}')")
    return 0
