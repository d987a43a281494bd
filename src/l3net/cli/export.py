"""``l3net export``: a model's towers as ONNX or TorchScript files, with their input contract."""

from __future__ import annotations

import argparse

HELP = "Export a model's audio and image networks to ONNX or TorchScript (runs without l3net)"
DESCRIPTION = """Write a model's audio and image networks (any preset, a trained run, a converted OpenL3 model) to
DIR as ONNX (onnxruntime, C++, mobile, the browser) or TorchScript (libtorch) files with a dynamic
batch axis, and beside them:

  contract.json   what each network takes and gives: input name, shape and dtype; audio: 48 kHz,
                  the window (1 s) and default hop (0.1 s), the front end's settings; images: uint8
                  RGB in [0, 255], resize of the smaller side and centre crop; the layer and the
                  embedding size
  frontend.py     the audio front end (waveform -> log-spectrogram) in NumPy and SciPy, and
  frontend.npz    its constants: the audio graph starts at the spectrogram (why: l3net.export)

ONNX needs the 'export' extra (pip install 'l3net[export]': onnx, onnxscript; onnxruntime to run it).

examples:
  l3net export small --format onnx --out exported/small
  l3net export runs/my_run --format torchscript --out exported/my_run
  l3net export openl3:mel256-env --format onnx --out exported/openl3 --towers audio
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODEL", help="a model or run directory, a preset (random weights), openl3:NAME")
    parser.add_argument("--format", choices=("onnx", "torchscript"), default="onnx", help="file format (default onnx)")
    parser.add_argument("--out", required=True, metavar="DIR", help="directory to write (created; same-named files replaced)")
    parser.add_argument(
        "--towers", choices=("audio", "image", "both"), default="both",
        help="which networks (default both: every network the model has)",
    )
    parser.add_argument("--layer", default="pool4", help="audio layer (default pool4, the embedding; see l3net embed --help)")
    parser.add_argument("--image-layer", default="pool4", help="image layer (default pool4)")
    parser.add_argument("--seed", type=int, default=0, help="weights of a preset or random: model (default 0)")


def run(args: argparse.Namespace) -> int:
    import warnings

    from ..export import export_model
    from ..modelspec import resolve_model

    resolved = resolve_model(args.model, seed=args.seed)
    modalities = None if args.towers == "both" else ("vision" if args.towers == "image" else "audio",)
    with warnings.catch_warnings():
        # The tracer's notes about the towers' input checks (constant under a fixed input shape).
        warnings.filterwarnings("ignore", category=UserWarning, module=r"torch\..*")
        warnings.filterwarnings("ignore", message=r".*Converting a tensor to a Python boolean.*")
        warnings.filterwarnings("ignore", category=FutureWarning)
        result = export_model(
            resolved.model, args.out, args.format, modalities=modalities, audio_layer=args.layer, image_layer=args.image_layer
        )
    print(f"wrote {result.directory} ({resolved.label}, {args.format}):")
    for path in result.files:
        print(f"  {path.name}")
    for stem in ("audio", "image"):
        if stem in result.contract:
            entry = result.contract[stem]
            shape = " x ".join(str(s) for s in entry["input"]["shape"])
            print(f"  {stem}: {entry['input']['name']} {shape} {entry['input']['dtype']} -> {entry['layer']} ({entry['embedding_size']}-D)")
    return 0
