"""``l3net embed``: embed audio, image and video files (or whole folders) into .npz files."""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from tqdm.auto import tqdm

from ..embed_core import DEFAULT_BATCH_SIZE, DEFAULT_HOP_SIZE, check_batch_size, embedding_model
from ..embed_files import output_path, process_audio_file, process_image_file, process_video_file
from ..framing import check_hop as _check_hop
from ..layers import check_layer as _check_layer
from ..errors import L3NetError, MediaError
from ..fileio import ensure_dir
from ..media import MEDIA_EXTENSIONS, MediaInfo, probe
from ..inference import COMPILE_ENV, PRECISION_CHOICES, inference_model
from ..runtime import resolve_device

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
    parser.add_argument("--skip-existing", action="store_true", help="skip inputs whose outputs already exist")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bar")


@dataclass(frozen=True)
class _Item:
    path: Path
    root: Path | None  # the folder given on the command line that contained it, if any


def _walk(folder: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.startswith("."):
                yield Path(dirpath) / name


def _out_dir(item: _Item, output_dir: Path | None) -> Path | None:
    if output_dir is None:
        return None
    if item.root is None:
        return output_dir
    return output_dir / item.path.parent.relative_to(item.root)


def _planned(info: MediaInfo, item: _Item, out_dir: Path | None, suffix: str) -> list[Path]:
    if info.kind == "video":
        sound = [output_path(item.path, out_dir, f"{suffix}_audio")] if info.has_audio else []
        return sound + [output_path(item.path, out_dir, f"{suffix}_image")]
    return [output_path(item.path, out_dir, suffix)]


def _reason(path: Path, exc: BaseException) -> str:
    if isinstance(exc, MediaError) and exc.path == path:
        return exc.reason
    if isinstance(exc, L3NetError):
        return str(exc)
    return f"unexpected error: {type(exc).__name__}: {exc}"


def run(args: argparse.Namespace) -> int:
    hop_size = _check_hop(args.hop_size)
    batch_size = check_batch_size(args.batch_size)
    device = resolve_device(args.device)
    # The inference copy (BatchNorm folded, channels_last, compiled or not) made once for every file.
    model = inference_model(embedding_model(args.model, device), precision=args.precision, compile=args.compile)
    _check_layer(model.audio, args.layer)
    output_dir = ensure_dir(args.output_dir) if args.output_dir else None
    options = dict(model=model, batch_size=batch_size, layer=args.layer, suffix=args.suffix, precision=args.precision)
    audio_options = dict(options, hop_size=hop_size, center=args.center)

    items: list[_Item] = []
    failures: list[tuple[Path, str]] = []
    for name in args.inputs:
        path = Path(name)
        if path.is_dir():
            items += [_Item(p, path) for p in _walk(path)]
        elif path.exists():
            items.append(_Item(path, None))
        else:
            failures.append((path, "no such file or directory"))
            print(f"l3net embed: {path}: no such file or directory", file=sys.stderr)

    written: dict[Path, Path] = {}  # output -> the input that produced it
    kinds: Counter[str] = Counter()
    skipped_not_media = skipped_existing = 0
    show_inner = not args.quiet and sys.stderr.isatty()
    bar = tqdm(items, desc="embedding", unit="file", disable=args.quiet, file=sys.stderr)
    for item in bar:
        path = item.path
        bar.set_postfix_str(path.name[-40:], refresh=False)
        try:
            try:
                info = probe(path)
            except MediaError:
                if item.root is not None and path.suffix.lower() not in MEDIA_EXTENSIONS:
                    skipped_not_media += 1  # an unrelated file in a scanned folder (CSV, notes...)
                    continue
                raise
            out_dir = _out_dir(item, output_dir)
            kind = info.kind
            planned = _planned(info, item, out_dir, args.suffix)
            clash = [p for p in planned if p in written]
            if clash:
                raise MediaError(
                    path, f"its output {clash[0]} would overwrite that of {written[clash[0]]}; use --suffix or rename"
                )
            if args.skip_existing and all(p.exists() for p in planned):
                skipped_existing += 1
                continue
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                if kind == "audio":
                    outputs = [process_audio_file(path, out_dir, verbose=show_inner, **audio_options)]
                elif kind == "image":
                    outputs = [process_image_file(path, out_dir, **options)]
                else:
                    outputs = process_video_file(path, out_dir, verbose=show_inner, audio_stream=args.audio_stream, **audio_options)
            for warning in caught:
                tqdm.write(f"l3net embed: warning: {warning.message}", file=sys.stderr)
            for out in outputs:
                written[out] = path
            kinds[kind] += 1
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # one bad file must not stop the others
            failures.append((path, _reason(path, exc)))
            tqdm.write(f"l3net embed: failed: {path}: {_reason(path, exc)}", file=sys.stderr)
    bar.close()

    done = sum(kinds.values())
    where = f"in {output_dir}" if output_dir else "beside the inputs"
    detail = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
    print(f"embedded {done} file(s){f' ({detail})' if detail else ''}: {len(written)} .npz file(s) written {where}")
    if skipped_existing:
        print(f"skipped {skipped_existing} file(s) whose outputs already exist (--skip-existing)")
    if skipped_not_media:
        print(f"skipped {skipped_not_media} file(s) that are not media")
    if failures:
        print(f"{len(failures)} file(s) failed:", file=sys.stderr)
        for path, reason in failures:
            print(f"  {path}: {reason}", file=sys.stderr)
        return 1
    if not done and not skipped_existing:
        print("l3net embed: no media files found in the inputs", file=sys.stderr)
        return 1
    return 0
