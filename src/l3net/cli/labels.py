"""``l3net labels``: a published Kinetics/VGGSound list + downloaded videos -> prepare's labels CSV."""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

from ..errors import DatasetError
from ..data.published import LAYOUTS, match_published, read_published
from ..fileio import atomic_open

HELP = "Turn Kinetics' or VGGSound's published CSV and your downloaded videos into prepare's labels CSV"
DESCRIPTION = """Write the labels CSV that 'l3net prepare --labels' reads (video,class,split) from a
dataset's published lists and the folder of videos you downloaded.

Layouts:
  kinetics   one or more of Kinetics' CSVs (train.csv, validate.csv, test.csv; 400/600/700), with
             the header label,youtube_id,time_start,time_end,split
  vggsound   VGGSound's vggsound.csv: no header, rows youtube_id,start_seconds,label,split (train/test)

Videos are found below --videos (class sub-folders are fine) by their file names:
YOUTUBEID_START_END.mp4 (Kinetics' downloader), YOUTUBEID_START.mp4 (START with or without
leading zeros) or YOUTUBEID.mp4 (when the lists name that id once); any extension prepare reads.
The published split is kept (validate -> val); --val-from-train holds out part of train as val. Clips listed but not found and files found but not
listed are counted here and written, one per line, to OUT.missing.txt and OUT.unlisted.txt. Only
found clips get a row; files not listed are not in the CSV ('prepare' would take them as unlabelled
videos: move them out of the folder, or use --classes, which skips them).

examples:
  l3net labels kinetics k400/train.csv k400/validate.csv k400/test.csv --videos k400/videos --out k400/labels.csv
  l3net labels vggsound vggsound.csv --videos vggsound/videos --out vggsound/labels.csv --val-from-train 0.05
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("layout", choices=LAYOUTS, help="the published list's layout")
    parser.add_argument("csv", nargs="+", metavar="CSV", help="the published CSV file(s)")
    parser.add_argument("--videos", required=True, metavar="DIR", help="folder of the downloaded videos (searched recursively)")
    parser.add_argument("--out", required=True, metavar="LABELS_CSV",
                        help="labels CSV to write (video paths relative to its folder, as prepare reads them)")
    parser.add_argument("--val-from-train", type=float, default=0.0, metavar="FRACTION",
                        help="move this fraction of the training clips to val, chosen by a stable hash of the YouTube "
                        "id (default 0; VGGSound has no val split and 'l3net train' needs one: e.g. 0.05)")


def _write_lines(path: Path, lines: list[str]) -> None:
    with atomic_open(path, "w", encoding="utf-8") as handle:
        handle.writelines(line + "\n" for line in lines)


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    clips = read_published(args.layout, args.csv)
    found = match_published(clips, args.videos, out.parent, val_fraction=args.val_from_train)
    if not found.rows:
        raise DatasetError(f"none of the {found.listed} listed clips was found in {args.videos} "
                                             "(file names must start with the YouTube id: ID_START_END.mp4, ID_START.mp4 or ID.mp4)")
    with atomic_open(out, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["video", "class", "split"])
        writer.writerows(found.rows)
    missing = out.with_name(out.name + ".missing.txt")
    unlisted = out.with_name(out.name + ".unlisted.txt")
    _write_lines(missing, [f"{c.youtube_id},{c.start},{c.label},{c.split or ''}" for c in found.missing])
    _write_lines(unlisted, [str(p) for p in found.unlisted])
    counts = found.split_counts()
    per_split = ", ".join(f"{n} {split or 'no split (hashed)'}" for split, n in counts.items() if n)
    print(f"l3net labels: {len(found.rows)} of {found.listed} listed clips found ({per_split or 'none'}); wrote {out}")
    if found.missing:
        print(f"  {len(found.missing)} listed clips not found in {args.videos}: {missing}")
    if found.unlisted:
        print(f"  {len(found.unlisted)} files in {args.videos} not listed (left out of the CSV): {unlisted}")
    for clip, extra in found.duplicates:
        print(f"l3net labels: warning: {clip.source}: several files match; used the first, not {', '.join(map(str, extra))}",
              file=sys.stderr)
    return 0
