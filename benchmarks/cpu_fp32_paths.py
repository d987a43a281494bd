"""fp32 on a CPU: ways to run the audio tower of the inference copy, side by side in one process.

For each ``--presets`` model (random weights, seed 0) and ``--batches`` of 1 s windows, the audio
tower (the front end runs once, outside the timing: it is the same for every path) run by:

- ``eager``: today's inference copy (BatchNorm folded, channels_last, eager PyTorch);
- ``jit-frozen``: ``torch.jit.trace`` + ``torch.jit.freeze`` + ``torch.jit.optimize_for_inference``
  (oneDNN-prepacked convolutions with their ReLU fused, on the CPU);
- ``mkldnn``: ``torch.utils.mkldnn.to_mkldnn`` (prepacked weights), activations kept as oneDNN
  tensors through the tower and converted back at the end;
- ``compile``: ``torch.compile`` (inductor, ``freezing`` on; cpp weight prepacking is inductor's
  default for fp32 convolutions on the CPU);

timed in interleaved rounds (every path once per round, ``--rounds`` rounds, median windows/s), with
each path's build + first-call seconds, and its max |difference| / max |eager output| over the batch.
Threads: whatever torch uses in this process (``--threads`` sets it here, in the benchmark; the library
never does).

    python benchmarks/cpu_fp32_paths.py --presets openl3-mel256 paper --batches 32 64 --rounds 5
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Callable

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import describe_machine  # noqa: E402

from l3net.config import SAMPLE_RATE  # noqa: E402
from l3net.inference import InferenceModel  # noqa: E402
from l3net.models import build_model  # noqa: E402

Runner = Callable[[torch.Tensor], torch.Tensor]


def build_paths(tower: torch.nn.Module, example: torch.Tensor, which: list[str]) -> dict[str, tuple[Runner, float]]:
    """``{name: (run, build + first-call seconds)}`` for the paths that build; a failure is printed."""
    paths: dict[str, tuple[Runner, float]] = {}

    def add(name: str, make: Callable[[], Runner]) -> None:
        if name not in which:
            return
        start = time.perf_counter()
        try:
            run = make()
            with torch.inference_mode():
                run(example)
        except Exception as exc:  # noqa: BLE001 - report and go on with the other paths
            print(f"  {name}: failed ({type(exc).__name__}: {str(exc).strip().splitlines()[0][:160]})")
            return
        paths[name] = (run, time.perf_counter() - start)

    add("eager", lambda: tower)

    def jit() -> Runner:
        with torch.no_grad():
            traced = torch.jit.trace(tower, example, check_trace=False)
            return torch.jit.optimize_for_inference(torch.jit.freeze(traced.eval()))

    add("jit-frozen", jit)

    def mkldnn() -> Runner:
        from torch.utils import mkldnn as mk

        dense = mk.to_mkldnn(_copy(tower))
        body = [m for m in ([dense.input_bn] if dense.input_bn is not None else []) + list(dense.layers.values())]
        head = body.pop()  # the global max pool has no oneDNN-layout kernel: it runs on the dense tensor

        def run(x: torch.Tensor) -> torch.Tensor:
            x = x.contiguous().to_mkldnn()
            for module in body:
                x = module(x)
            return head(x.to_dense())

        return run

    add("mkldnn", mkldnn)

    def compiled() -> Runner:
        fn = torch.compile(_copy(tower), dynamic=False, options={"freezing": True})
        return fn

    add("compile", compiled)
    return paths


def _copy(module: torch.nn.Module) -> torch.nn.Module:
    import copy

    return copy.deepcopy(module)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["openl3-mel256", "openl3-linear", "paper"])
    parser.add_argument("--batches", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--paths", nargs="+", default=["eager", "jit-frozen", "mkldnn", "compile"])
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads here (default: torch's own)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(describe_machine())
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; windows/s, median of {args.rounds} interleaved rounds\n")
    warnings.filterwarnings("ignore", category=UserWarning)
    for preset in args.presets:
        fast = InferenceModel(build_model(preset, seed=0).eval(), precision="fp32", compile=False)
        tower = fast.net.audio
        for batch in args.batches:
            torch.manual_seed(batch)
            with torch.inference_mode():
                spec = fast._tower_input("audio", torch.randn(batch, SAMPLE_RATE) * 0.1).clone()
            print(f"{preset}, batch {batch} (tower input {tuple(spec.shape)}):")
            paths = build_paths(tower, spec, args.paths)
            with torch.inference_mode():
                reference = tower(spec)
                errors = {name: float((run(spec) - reference).abs().max() / reference.abs().max()) for name, (run, _) in paths.items()}
            rates: dict[str, list[float]] = {name: [] for name in paths}
            for _ in range(args.rounds):
                for name, (run, _) in paths.items():
                    with torch.inference_mode():
                        start = time.perf_counter()
                        run(spec)
                        rates[name].append(batch / (time.perf_counter() - start))
            eager = statistics.median(rates["eager"]) if "eager" in rates else None
            for name, (run, first) in paths.items():
                rate = statistics.median(rates[name])
                ratio = f"{rate / eager:5.2f}x" if eager else "    -"
                print(f"  {name:11} {rate:7.2f} win/s  {ratio} eager  first call {first:6.1f} s  max rel err {errors[name]:.1e}")
            print(flush=True)


if __name__ == "__main__":
    main()
