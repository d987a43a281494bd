"""``l3net localize VIDEO... --model M --out DIR``: heatmaps of where the sound is, drawn over the video."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from ..errors import L3NetError, MediaError
from ..fileio import ensure_dir
from ..localize import DEFAULT_FPS
from ..runtime import PRECISIONS

HELP = "Where in the picture is the sound? Heatmaps over a video's frames, from the network's own score"
DESCRIPTION = """Where in the picture is the sound? For each frame (every 1/--fps s) the network scores
the 1 s of sound centred on the frame against every place in the picture: the fusion head applied
to the vision tower's conv4_2 vector at each location (in place of the pool4 vector it was trained
on) with the clip's audio embedding. The resulting map of "this sound comes from here" probabilities
is drawn over the frame.

For each VIDEO, OUT/<video name>/ receives:
  overlays/frame_NNNNN.png   the heatmap over the frame, its peak circled
  overlay.mp4                those pictures as a video, with the original sound (H.264 + AAC)
  heatmaps.npz               times (s), maps (N, h, w) in [0, 1], frame_size (W, H), peaks (x, y px)
  localize.json              per frame: time, peak, peak and mean score, picture

Unreadable files, audio-only files and videos without sound are reported and skipped; the others
go on. A video shorter than 1 s is scored with its sound zero-padded to 1 s.

example:
  l3net localize clip.mp4 --model runs/small --out localize/
  l3net localize clip.mp4 --model random:small --out localize/ --fps 2 --max-seconds 10
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("videos", nargs="+", metavar="VIDEO", help="video file(s) with a sound track")
    parser.add_argument(
        "--model",
        required=True,
        help="a trained model or run directory, a preset name (random weights from --seed), or 'random' / "
        "'random:PRESET' (untrained)",
    )
    parser.add_argument("--out", required=True, help="output directory (one sub-folder per video)")
    parser.add_argument("--fps", type=float, default=DEFAULT_FPS, help=f"frames scored per second (default: {DEFAULT_FPS:g})")
    parser.add_argument("--max-seconds", type=float, help="score only the first this many seconds (default: all)")
    parser.add_argument(
        "--scale",
        choices=("frame", "absolute"),
        default="frame",
        help="colours: 'frame' stretches each frame's scores (where, in this frame); 'absolute' shows "
        "probabilities 0..1 (comparable across frames) (default: frame)",
    )
    parser.add_argument("--no-video", action="store_true", help="do not write overlay.mp4")
    parser.add_argument("--no-overlays", action="store_true", help="do not write the per-frame PNGs")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default: auto)")
    parser.add_argument("--precision", default="fp32", choices=PRECISIONS, help="numeric precision (default: fp32)")
    parser.add_argument("--batch-size", type=int, default=16, help="frames per forward pass (default: 16)")
    parser.add_argument("--seed", type=int, default=0, help="seed of random weights (default: 0)")


def _folder_name(path: Path, taken: set[str]) -> str:
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", path.stem).strip("._") or "video"
    name, n = base, 2
    while name in taken:
        name, n = f"{base}_{n}", n + 1
    taken.add(name)
    return name


def run(args: argparse.Namespace) -> int:
    from ..localize import localize_video
    from ..modelspec import resolve_model

    resolved = resolve_model(args.model, device=args.device, seed=args.seed)
    model, label = resolved.model, resolved.label
    out = ensure_dir(args.out)
    failures: list[str] = []
    taken: set[str] = set()
    for video in args.videos:
        path = Path(video)
        target = out / _folder_name(path, taken)
        try:
            result = localize_video(
                model,
                path,
                target,
                fps=args.fps,
                max_seconds=args.max_seconds,
                batch_size=args.batch_size,
                precision=args.precision,
                scale=args.scale,
                write_overlays=not args.no_overlays,
                write_video=not args.no_video,
                model_name=label,
            )
        except MediaError as exc:
            failures.append(str(exc))
            print(f"l3net localize: skipped {exc}", file=sys.stderr)
            continue
        except L3NetError:
            raise  # a model, output or argument problem: every video would fail the same way
        for note in result.notes:
            print(f"l3net localize: note: {path}: {note}", file=sys.stderr)
        written = [f"{len(result.overlay_paths)} overlays"] if result.overlay_paths else []
        if result.video_path:
            written.append(result.video_path.name)
        written += ["heatmaps.npz", "localize.json"]
        print(f"{path}: {len(result.times)} frames -> {target}/ ({', '.join(written)})")
    if failures:
        print(f"l3net localize: {len(failures)} of {len(args.videos)} video(s) skipped", file=sys.stderr)
        return 1
    return 0
