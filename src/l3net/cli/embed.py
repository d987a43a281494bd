"""``l3net embed``: embed audio, image and video files (or whole folders) into .npz files."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Iterator

from tqdm.auto import tqdm

from ..corpus import CorpusItem, CorpusSettings, embed_corpus, in_part
from ..embed_core import DEFAULT_BATCH_SIZE, DEFAULT_HOP_SIZE, check_batch_size, embedding_model
from ..errors import InputError, OutputError
from ..fileio import ensure_dir, write_json
from ..framing import check_hop as _check_hop
from ..inference import COMPILE_ENV, PRECISION_CHOICES, inference_model
from ..layers import resolve_layer
from ..runtime import default_workers, resolve_device

HELP = "Embed audio, image and video files into .npz files (embeddings + timestamps)"
DESCRIPTION = """Embed audio, image and video files with an L3-Net, one .npz file per input.

Files are recognised by their content (any format FFmpeg or Pillow reads); folders are searched
recursively (hidden files are skipped, and so are files that are neither media nor named like
media). Each output .npz holds 'embedding' (float32, T x D), 'timestamps' (seconds, T), 'layer'
and 'model':

  audio  a.wav      -> a.npz            one row per 1 s window, every --hop-size seconds
  image  b.jpg      -> b.npz            one row, timestamp 0
  video  c.mp4      -> c_audio.npz      the sound track, framed as for audio
                       c_image.npz      the frame on screen at each audio timestamp (same timestamps)

Outputs go beside each input, or into --output-dir (a folder given on the command line keeps its
sub-folder layout there). A file that fails is reported on stderr with the reason and the others
are still processed; the exit status is 1 if any file failed. Nothing is left half-written.

examples:
  l3net embed clip.mp4 --model runs/my_run
  l3net embed recordings/ photos/ --model runs/my_run --output-dir embeddings/ --hop-size 0.5
  l3net embed sounds/ --model runs/my_run --layer conv4_2 -o features/   # 6144-D transfer features
  l3net embed a.wav --model paper -o out/     # the paper architecture with random weights
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="FILE_OR_DIR", help="media files and/or folders (recursive)")
    parser.add_argument(
        "--model", required=True,
        help="a trained model or run directory, or a preset name (paper, small: random weights)",
    )
    parser.add_argument("--output-dir", "-o", metavar="DIR", help="where the .npz files go (default: beside each input)")
    parser.add_argument(
        "--hop-size", type=float, default=DEFAULT_HOP_SIZE, metavar="SECONDS",
        help=f"seconds between audio windows (default: {DEFAULT_HOP_SIZE})",
    )
    parser.add_argument(
        "--no-center", dest="center", action="store_false",
        help="start the first window at 0 s instead of centring windows on their timestamps",
    )
    parser.add_argument(
        "--layer", default="pool4",
        help="pool4 (the embedding, default), conv4_2 (the paper's transfer feature: 6144-D audio, "
        "8192-D images), or another layer name (pooled to the transfer grid)",
    )
    parser.add_argument(
        "--audio-stream", type=int, default=None, metavar="N",
        help="for videos: use audio stream N (0: the first; default: the stream marked default, else the first)",
    )
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, help=f"windows or frames per forward pass (default: {DEFAULT_BATCH_SIZE})")
    parser.add_argument(
        "--precision", default="fp32", choices=PRECISION_CHOICES,
        help="fp32 (default: the same embeddings on every machine), bf16/fp16 autocast, or auto: bf16 on a GPU "
        "or a CPU with AMX/AVX512-BF16, else fp32 (bf16 embeddings: cosine >= 0.9999 to fp32's, BENCHMARKS.md)",
    )
    parser.add_argument(
        "--no-compile", dest="compile", action="store_false", default=None,
        help=f"never torch.compile the network (default: compile on a GPU and for bf16 on CPUs with bf16 "
        f"instructions, where it pays; ${COMPILE_ENV}=0/1 sets the default)",
    )
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default: auto)")
    parser.add_argument("--suffix", default="", help="added to each output name before .npz / _audio.npz (default: none)")
    parser.add_argument("--skip-existing", action="store_true", help="skip inputs whose outputs already exist (resume)")
    parser.add_argument(
        "--workers", type=int, default=None, metavar="N",
        help="processes decoding files while the model runs (0: decode in the main process; default: 1 on a CPU "
        "with 2+ cores, cores - 1 on a GPU: runtime.default_workers); outputs are the same for every N",
    )
    parser.add_argument(
        "--part", metavar="I/N", default=None,
        help="embed only part I of N of the inputs (a stable hash of each file's path within its folder): "
        "N jobs or machines given 1/N .. N/N share a corpus with no coordination",
    )
    parser.add_argument(
        "--failures", metavar="FILE", default=None,
        help="write the failed files and reasons here as JSON (default with --output-dir: "
        "DIR/embed_failures.json, or embed_failures.partIofN.json with --part)",
    )
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bar")


def _walk(folder: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.startswith("."):
                yield Path(dirpath) / name


def _part(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    try:
        part, parts = (int(v) for v in text.split("/"))
    except ValueError:
        raise InputError(f"--part must be I/N (e.g. 2/8), got {text!r}") from None
    if not 1 <= part <= parts:
        raise InputError(f"--part {text}: I must be between 1 and N")
    return part, parts


def _items(inputs: list[str], output_dir: Path | None) -> tuple[list[CorpusItem], list[tuple[Path, str]]]:
    """The files named or found in folders (a folder keeps its layout under --output-dir)."""
    items: list[CorpusItem] = []
    missing: list[tuple[Path, str]] = []
    for name in inputs:
        path = Path(name)
        if path.is_dir():
            for p in _walk(path):
                rel = p.relative_to(path)
                out = None if output_dir is None else output_dir / rel.parent
                items.append(CorpusItem(p, out, scanned=True, key=rel.as_posix()))
        elif path.exists():
            items.append(CorpusItem(path, output_dir, key=path.name))
        else:
            missing.append((path, "no such file or directory"))
    return items, missing


def _failures_file(args: argparse.Namespace, output_dir: Path | None, part: tuple[int, int] | None) -> Path | None:
    if args.failures:
        return Path(args.failures)
    if output_dir is None:
        return None
    return output_dir / (f"embed_failures.part{part[0]}of{part[1]}.json" if part else "embed_failures.json")


def run(args: argparse.Namespace) -> int:
    hop_size = _check_hop(args.hop_size)
    batch_size = check_batch_size(args.batch_size)
    device = resolve_device(args.device)
    part = _part(args.part)
    # The inference copy (BatchNorm folded, channels_last, compiled or not) made once for every file.
    model = inference_model(embedding_model(args.model, device), precision=args.precision, compile=args.compile)
    layer = resolve_layer(model.audio, args.layer)
    try:
        image_layer: str | None = resolve_layer(model.vision, args.layer)
    except InputError:  # an audio-only layer name: image and video files then fail, each with the reason
        image_layer = None
    output_dir = ensure_dir(args.output_dir) if args.output_dir else None
    workers = default_workers(device) if args.workers is None else max(0, args.workers)
    settings = CorpusSettings.for_model(
        model, audio_layer=layer, image_layer=image_layer, hop_size=hop_size, center=args.center, batch_size=batch_size,
        precision=args.precision, suffix=args.suffix, audio_stream=args.audio_stream, skip_existing=args.skip_existing,
    )
    items, failures = _items(args.inputs, output_dir)
    for path, reason in failures:
        print(f"l3net embed: {path}: {reason}", file=sys.stderr)
    if part is not None:
        items = [item for item in items if in_part(item.part_key(), *part)]

    kinds: Counter[str] = Counter()
    skipped: Counter[str] = Counter()
    written = windows = 0
    start = time.perf_counter()
    bar = tqdm(total=len(items), desc="embedding", unit="file", disable=args.quiet, file=sys.stderr)
    for result in embed_corpus(items, model, settings, workers=workers):
        bar.update(1)
        for warning in result.warnings:
            tqdm.write(f"l3net embed: warning: {warning}", file=sys.stderr)
        if result.error is not None:
            failures.append((result.path, result.error))
            tqdm.write(f"l3net embed: failed: {result.path}: {result.error}", file=sys.stderr)
        elif result.skipped is not None:
            skipped[result.skipped] += 1
        else:
            kinds[result.kind or "?"] += 1
            written += len(result.outputs)
            windows += result.windows
        bar.set_postfix_str(f"{windows / max(time.perf_counter() - start, 1e-9):.1f} windows/s", refresh=False)
    bar.close()

    done = sum(kinds.values())
    where = f"in {output_dir}" if output_dir else "beside the inputs"
    detail = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
    seconds = time.perf_counter() - start
    print(
        f"embedded {done} file(s){f' ({detail})' if detail else ''}: {written} .npz file(s) written {where}; "
        f"{windows} windows/images in {seconds:.1f} s ({windows / max(seconds, 1e-9):.1f}/s, {workers} decoding worker(s))"
    )
    if part is not None:
        print(f"part {part[0]} of {part[1]}: {len(items)} file(s) of the inputs")
    if skipped["existing"]:
        print(f"skipped {skipped['existing']} file(s) whose outputs already exist (--skip-existing)")
    if skipped["not media"]:
        print(f"skipped {skipped['not media']} file(s) that are not media")
    report = _failures_file(args, output_dir, part)
    if report is not None:
        summary = {"failed": [{"path": str(p), "reason": r} for p, r in failures], "embedded": done,
                   "skipped": dict(skipped), "part": list(part) if part else None}
        try:
            write_json(report, summary)
        except OutputError as exc:  # the summary below still says everything
            print(f"l3net embed: could not write the failure summary: {exc}", file=sys.stderr)
            report = None
    if failures:
        print(f"{len(failures)} file(s) failed:" + (f" (also in {report})" if report else ""), file=sys.stderr)
        for path, reason in failures:
            print(f"  {path}: {reason}", file=sys.stderr)
        return 1
    if not done and not sum(skipped.values()) and not (part and items == []):
        print("l3net embed: no media files found in the inputs", file=sys.stderr)
        return 1
    return 0
