"""The one-shot GPU check's inference stages, numerics and embed (see benchmarks/gpu_stages.py)."""

from __future__ import annotations

import copy
import time
import warnings
from typing import Any

import numpy as np
import torch

from gpu_stages import Results, Sizes, relative_error, sync


# ------------------------------------------------------------------------------------------------
# numerics and compilation
# ------------------------------------------------------------------------------------------------
def stage_numerics(sizes: Sizes, device: torch.device, results: Results) -> None:
    from torch._dynamo.utils import counters

    from l3net.inference import InferenceModel, full_fp32
    from l3net.models import build_model
    from l3net.runtime import cpu_has_native_bf16

    generator = torch.Generator().manual_seed(0)
    cpu_model = build_model(sizes.preset, seed=0).eval()
    config = cpu_model.config
    inputs = {"vision": torch.randint(0, 256, (8, 3, config.image_size, config.image_size), dtype=torch.uint8,
                                      generator=generator),
              "audio": 0.1 * torch.randn(8, config.clip_samples, generator=generator)}
    reference = {m: InferenceModel(cpu_model, compile=False).embed(m, x) for m, x in inputs.items()}
    model = copy.deepcopy(cpu_model).to(device)
    flags = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    bf16 = torch.cuda.is_bf16_supported() if device.type == "cuda" else bool(cpu_has_native_bf16())
    errors = {}
    for precision in ("fp32", "bf16") if bf16 else ("fp32",):
        fast = InferenceModel(model, precision=precision, compile=False)
        errors[precision] = {m: relative_error(fast.embed(m, x.to(device)), reference[m]) for m, x in inputs.items()}
        print(f"  {precision} embeddings vs the CPU's: max rel err " +
              ", ".join(f"{m} {e:.2e}" for m, e in errors[precision].items()), flush=True)
    results.put("embeddings_vs_cpu", {"errors": errors, "tf32_flags_unchanged":
                                      flags == (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)})

    results.put("fp16_training", fp16_steps(sizes, device))

    compiled = device.type == "cuda"  # minutes per graph on a CPU: --smoke runs the same path eagerly
    x = 0.1 * torch.randn(max(sizes.compile_batches), config.clip_samples, generator=generator).to(device)
    rows = []
    for seed in range(sizes.instances):
        twin = build_model(sizes.preset, seed=seed).to(device).eval()
        fast = InferenceModel(twin, precision="fp32", compile=compiled)
        graphs_before = counters["stats"]["unique_graphs"]
        row: dict[str, Any] = {"seed": seed, "calls": []}
        with warnings.catch_warnings(record=True) as caught, torch.inference_mode():
            warnings.simplefilter("always")
            for n in sizes.compile_batches:
                start = time.perf_counter()
                out = fast.embed("audio", x[:n])
                sync(device)
                seconds = time.perf_counter() - start
                with full_fp32("fp32", device):  # the eager reference without TF32, as the copy runs
                    eager = twin.embed("audio", x[:n])
                row["calls"].append({"batch": n, "seconds": seconds, "rel_err_vs_eager": relative_error(out, eager)})
        row.update(graphs=fast.graphs, dynamo_graphs=counters["stats"]["unique_graphs"] - graphs_before,
                   compiled=fast.use_compile, warnings=sorted({str(w.message)[:200] for w in caught}))
        rows.append(row)
        results.put("compile", {"compiled": compiled, "batches": list(sizes.compile_batches), "instances": rows})
        print(f"  instance {seed}: {fast.graphs} graphs ({row['dynamo_graphs']} by dynamo's count), "
              f"{len(row['warnings'])} warnings, " + ", ".join(f"batch {c['batch']} {c['seconds']:.1f} s"
                                                              for c in row["calls"]), flush=True)


def fp16_steps(sizes: Sizes, device: torch.device) -> dict[str, Any]:
    """Training steps in fp16 with the loss scaler (fp32 on a CPU, which has no fp16 training path here)."""
    from torch.nn import functional as F

    from l3net.models import build_model
    from l3net.runtime import autocast, optimizer_step

    precision = "fp16" if device.type == "cuda" else "fp32"
    model = build_model(sizes.preset, seed=0).to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, weight_decay=1e-5)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    config, g = model.config, torch.Generator().manual_seed(1)
    n = sizes.fp16_batch
    images = torch.randint(0, 256, (n, 3, config.image_size, config.image_size), dtype=torch.uint8, generator=g)
    audio = 0.1 * torch.randn(n, config.clip_samples, generator=g)
    labels = torch.arange(n) % 2
    images, audio, labels = images.to(device), audio.to(device), labels.to(device)
    losses = []
    for _ in range(sizes.fp16_steps):
        with autocast(precision, device):
            logits = model(images, audio)
        loss = F.cross_entropy(logits.float(), labels)
        optimizer_step(optimizer, scaler, loss, lr=1e-4)
        losses.append(loss.detach())
    values = torch.stack(losses).cpu()  # one read at the end: no sync per step
    finite = bool(torch.isfinite(values).all())
    print(f"  {sizes.fp16_steps} {precision} training steps: loss {values[0]:.4f} -> {values[-1]:.4f}, "
          f"{'all finite' if finite else 'NOT FINITE'}", flush=True)
    return {"precision": precision, "steps": sizes.fp16_steps, "finite": finite, "losses": values.tolist(),
            "scale": scaler.get_scale() if scaler.is_enabled() else None}


# ------------------------------------------------------------------------------------------------
# embedding
# ------------------------------------------------------------------------------------------------
def stage_embed(sizes: Sizes, device: torch.device, results: Results) -> None:
    """Windows/s of ``get_audio_embedding`` (audio on the host in, embeddings on the host out) against the
    bare network (``model.audio(model.frontend(x))`` on windows already on the device), same precision."""
    from l3net import get_audio_embedding
    from l3net.inference import full_fp32
    from l3net.models import build_model
    from l3net.runtime import autocast, cpu_has_native_bf16

    model = build_model(sizes.preset, seed=0).to(device).eval()
    audio = (0.1 * np.random.default_rng(0).standard_normal(round(sizes.embed_seconds * 48_000))).astype(np.float32)
    bf16 = torch.cuda.is_bf16_supported() if device.type == "cuda" else bool(cpu_has_native_bf16())
    windows = (0.1 * torch.randn(sizes.embed_batch, model.config.clip_samples)).to(device)
    rows = []
    for precision in ("fp32", "bf16") if bf16 else ("fp32",):
        options = dict(model=model, hop_size=0.1, batch_size=sizes.embed_batch, precision=precision)
        start = time.perf_counter()
        get_audio_embedding(audio, 48_000, **options)  # builds the inference copy and compiles its batch sizes
        first = time.perf_counter() - start
        start = time.perf_counter()
        embedding, _ = get_audio_embedding(audio, 48_000, **options)  # returns host arrays: the device is done
        api = len(embedding) / (time.perf_counter() - start)
        batches = max(1, len(embedding) // sizes.embed_batch)
        with torch.inference_mode(), autocast(precision, device), full_fp32(precision, device):
            model.audio(model.frontend(windows))  # warm-up (cuDNN's choice of kernels)
            sync(device)
            start = time.perf_counter()
            for _ in range(batches):
                model.audio(model.frontend(windows))
            sync(device)
            bare = batches * sizes.embed_batch / (time.perf_counter() - start)
        rows.append({"precision": precision, "api_windows_per_s": api, "bare_windows_per_s": bare, "ratio": api / bare,
                     "api_first_call_s": first, "windows": len(embedding)})
        results.put("embed", rows)
        print(f"  {precision}: API {api:10,.1f} windows/s, bare network {bare:10,.1f} ({api / bare:.2f} x); "
              f"first call {first:.1f} s", flush=True)
