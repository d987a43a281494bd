"""OpenL3's networks: l3net against openl3 0.4.2 (TensorFlow) and torchopenl3 1.0.1, in one run.

For each front end (``--front-ends``, default mel256 and linear): l3net's ``get_audio_embedding``
with the ``openl3-<front end>`` preset (OpenL3's exact network, converted from the random-weight
fixture in ../shared/data/openl3 when present, else the preset's own random weights: the same
computation), openl3's ``get_audio_embedding`` and torchopenl3's, on the same clip (``--seconds``
of ``../shared/data/audio/trumpet_44k_stereo.wav`` at 48 kHz, mono, repeated), hop 0.1 s, batch
32, centred windows, 512-D, on the same CPU. The peers run in their own environments (built by
``../shared/tools/install-peers DIR``, random weights through their own classes: see
``_peers.py``); each system is called once to warm up, then timed ``--repeats`` times in turn; the
best time counts. Printed: windows/s of each and l3net's speed-up over each peer.

    python benchmarks/openl3.py                    # 10 s clip, mel256 and linear
    python benchmarks/openl3.py --seconds 30 --front-ends mel256 --repeats 3
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import describe_machine  # noqa: E402
from _peers import DEFAULT_PEERS, PeerWorker, find_peers  # noqa: E402

from l3net import get_audio_embedding, load_model  # noqa: E402
from l3net.config import SAMPLE_RATE  # noqa: E402
from l3net.framing import window_count  # noqa: E402
from l3net.media import load_audio  # noqa: E402
from l3net.openl3 import convert  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"


def clip(seconds: float) -> np.ndarray:
    """``seconds`` of the trumpet recording at 48 kHz mono (l3net's decoder), repeated as needed."""
    audio = load_audio(DATA / "audio" / "trumpet_44k_stereo.wav")
    n = round(seconds * SAMPLE_RATE)
    return np.resize(audio, n).astype(np.float32)


def l3net_model(front_end: str, scratch: Path):
    fixture = DATA / "openl3" / f"openl3_audio_{front_end}_random.h5"
    if fixture.is_file():
        return load_model(convert([fixture], scratch / front_end)), "converted fixture"
    return load_model(f"openl3-{front_end}"), "preset, random weights"


def best_of(fn, repeats: int) -> float:
    """Best wall time of ``repeats`` calls after a warm-up one (which builds l3net's inference copy
    and TensorFlow's graph). ``fn`` returns its own time (a peer times itself, leaving out the
    hand-over of the clip between processes) or None (timed here)."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        own = fn()
        times.append(own if own is not None else time.perf_counter() - start)
    return min(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0, help="clip length (default: 10)")
    parser.add_argument("--front-ends", nargs="+", default=["mel256", "linear"], choices=("linear", "mel128", "mel256"))
    parser.add_argument("--repeats", type=int, default=1, help="timed calls per system after the warm-up (default: 1)")
    parser.add_argument("--peers", default=DEFAULT_PEERS, help=f"install-peers directory (default: {DEFAULT_PEERS})")
    args = parser.parse_args()

    import tempfile

    print(describe_machine())
    samples = clip(args.seconds)
    windows = window_count(samples.size, 0.1, True, SAMPLE_RATE, framing="openl3")
    print(f"clip: {args.seconds:g} s of trumpet_44k_stereo.wav at 48 kHz mono, hop 0.1 s centred -> {windows} windows, "
          f"batch 32, 512-D, fp32, best of {args.repeats} after a warm-up call\n")
    peers = find_peers(args.peers)
    missing = {"openl3", "torchopenl3"} - set(peers)
    if missing:
        print(f"(peers not found under {args.peers}: {', '.join(sorted(missing))}; build them with "
              "../shared/tools/install-peers DIR)")
    with tempfile.TemporaryDirectory(prefix="l3net-bench-openl3-") as scratch:
        for front_end in args.front_ends:
            model, what = l3net_model(front_end, Path(scratch))
            print(f"{'system':<52}{'seconds':>9}{'windows/s':>11}{'l3net speed-up':>16}")
            ours = best_of(
                lambda: get_audio_embedding(samples, SAMPLE_RATE, model=model, hop_size=0.1, batch_size=32) and None,
                args.repeats,
            )
            print(f"{f'l3net openl3-{front_end} ({what})':<52}{ours:>9.2f}{windows / ours:>11.1f}{1.0:>15.2f}x", flush=True)
            for peer, python in sorted(peers.items()):  # each printed as soon as it is measured
                with PeerWorker(peer, python, input_repr=front_end, embedding_size=512) as worker:
                    seconds = best_of(lambda: worker.audio(samples, hop=0.1, batch=32)["seconds"], args.repeats)
                print(f"{f'{peer} {front_end}':<52}{seconds:>9.2f}{windows / seconds:>11.1f}{seconds / ours:>15.2f}x",
                      flush=True)
            print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
