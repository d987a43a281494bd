"""A folder of files: ``l3net embed``'s corpus path (decoding workers) against openl3's
``process_audio_file(list)`` on the same files and the same network, in one run.

The folder: ``--files`` WAVs of ``--seconds`` s, 44.1 kHz stereo, cut from the real recordings of
``../shared/data/audio`` (so every file needs decoding, downmixing and resampling to 48 kHz). The
network: OpenL3's linear-spectrogram audio network with 512-D output, random weights, in both:
l3net's ``openl3-linear`` preset (the same layers, front end and framing) and openl3 0.4.2 on
TensorFlow (``../shared/tools/install-peers DIR``; ``--peers DIR``). Hop 0.1 s, batch 32, centred.

l3net runs :func:`l3net.corpus.embed_corpus` (what ``l3net embed DIR`` runs) with 0, 1 and 2
decoding workers. For each run: windows/s, and the decode/compute overlap: the decoding time
(summed over files, in the workers), the compute time (main process) and the wall time; with
workers, wall < decode + compute by the time decoding ran beside the model.
openl3 decodes (soundfile, resampy) and computes one file after the other in one process.
``--precisions fp32 auto`` adds a row for ``precision="auto"`` (bf16 where the CPU has AMX or
AVX512-BF16; not the default, and not the same numbers: ``benchmarks/bf16_cost.py``), most workers only.
Each precision's first file (building its graphs) runs before the timed runs and is printed.

    python benchmarks/embed_corpus.py --peers /tmp/peers
    python benchmarks/embed_corpus.py --peers /tmp/peers --files 4 --seconds 10 --workers 0 1
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import describe_machine  # noqa: E402
from _peers import DEFAULT_PEERS, find_peers  # noqa: E402

from l3net.corpus import CorpusItem, CorpusSettings, embed_corpus  # noqa: E402
from l3net.inference import inference_model  # noqa: E402
from l3net.media import load_audio  # noqa: E402
from l3net.models import build_model  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
RATE = 44_100


def make_folder(data: Path, folder: Path, files: int, seconds: float) -> list[Path]:
    """``files`` stereo 44.1 kHz WAVs cut from the real recordings, one after another."""
    import av

    sound = np.concatenate([load_audio(p, RATE) for p in sorted((data / "audio").iterdir()) if p.is_file()])
    n = int(seconds * RATE)
    sound = np.tile(sound, int(np.ceil(files * n / sound.size)) + 1)
    paths = []
    for i in range(files):
        left = sound[i * n : (i + 1) * n]
        stereo = np.stack([left, np.roll(left, 441)])  # two channels that differ
        path = folder / f"clip{i:02d}.wav"
        with av.open(str(path), "w") as out:
            stream = out.add_stream("pcm_s16le", rate=RATE, layout="stereo")
            frame = av.AudioFrame.from_ndarray((np.clip(stereo, -1, 1) * 32767).astype(np.int16).T.reshape(1, -1), format="s16", layout="stereo")
            frame.sample_rate = RATE
            for packet in stream.encode(frame):
                out.mux(packet)
            for packet in stream.encode(None):
                out.mux(packet)
        paths.append(path)
    return paths


def run_l3net(model, paths: list[Path], out: Path, workers: int, hop: float, batch: int) -> dict[str, float]:
    settings = CorpusSettings.for_model(model, audio_layer="pool4", image_layer="pool4", hop_size=hop, center=True, batch_size=batch)
    items = [CorpusItem(p, out, key=p.name) for p in paths]
    start = time.perf_counter()
    results = list(embed_corpus(items, model, settings, workers=workers))
    wall = time.perf_counter() - start
    failed = [r for r in results if r.error]
    if failed:
        raise RuntimeError(f"{failed[0].path}: {failed[0].error}")
    return {
        "seconds": wall,
        "windows": sum(r.windows for r in results),
        "decode": sum(r.decode_seconds for r in results),
        "compute": sum(r.compute_seconds for r in results),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--hop", type=float, default=0.1)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--precisions", nargs="+", default=["fp32"], choices=["fp32", "auto", "bf16"],
                        help="l3net precisions; past the first, each runs with the most workers only (auto: bf16 on AMX/AVX512-BF16 CPUs)")
    parser.add_argument("--peers", default=DEFAULT_PEERS, help="where install-peers put openl3's environment")
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    args = parser.parse_args()
    print(describe_machine())
    peers = find_peers(args.peers)
    network = build_model("openl3-linear", seed=0).eval()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "in").mkdir()
        paths = make_folder(args.data, tmp / "in", args.files, args.seconds)
        print(f"input: {args.files} WAVs of {args.seconds:g} s, 44.1 kHz stereo; network: OpenL3 linear 512-D, "
              f"random weights; hop {args.hop} s, batch {args.batch}\n")
        rows = []
        openl3_row = None
        if "openl3" in peers:
            (tmp / "openl3").mkdir()
            done = subprocess.run(
                [str(peers["openl3"]), str(HERE / "_openl3_files.py"), str(tmp / "openl3"), str(args.hop), str(args.batch),
                 *map(str, paths)], capture_output=True, text=True, check=False,
            )
            if done.returncode != 0:
                raise SystemExit(f"openl3 failed:\n{done.stderr[-3000:]}")
            openl3_row = ("openl3 0.4.2 process_audio_file(list)", json.loads(done.stdout.strip().splitlines()[-1]))
        else:
            print(f"(openl3 not found under {args.peers}: run ../shared/tools/install-peers DIR, then --peers DIR)")
        for number, precision in enumerate(args.precisions):
            # compile=None: the library's own default for the precision (fp32 on a CPU: frozen graphs, not compiled)
            model = inference_model(network, precision=precision, compile=None)
            first = run_l3net(model, paths[:1], tmp / f"warm{precision}", 0, args.hop, args.batch)  # warm-up: graphs, allocations
            print(f"l3net {precision} ({model.precision}): first file (building the graphs) {first['seconds']:.1f} s")
            for workers in args.workers if number == 0 else [max(args.workers)]:
                r = run_l3net(model, paths, tmp / f"l3net{precision}{workers}", workers, args.hop, args.batch)
                rows.append((f"l3net {model.precision}, {workers} decoding worker(s)", r))
        if openl3_row is not None:
            rows.append(openl3_row)
    reference = openl3_row[1]["windows"] / openl3_row[1]["seconds"] if openl3_row else None
    print(f"{'':42} {'windows':>7} {'wall s':>7} {'win/s':>6} {'vs openl3':>9} {'decode s':>8} {'compute s':>9} {'overlap s':>9}")
    for name, r in rows:
        rate = r["windows"] / r["seconds"]
        ratio = f"{rate / reference:8.2f}x" if reference else "        -"
        if "decode" in r:
            overlap = r["decode"] + r["compute"] - r["seconds"]
            extra = f"{r['decode']:8.1f} {r['compute']:9.1f} {overlap:9.1f}"
        else:
            extra = f"{'-':>8} {'-':>9} {'-':>9}"
        print(f"{name:42} {r['windows']:7d} {r['seconds']:7.1f} {rate:6.2f} {ratio} {extra}")


if __name__ == "__main__":
    main()
