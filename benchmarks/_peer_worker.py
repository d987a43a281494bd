"""A peer (openl3 0.4.2 or torchopenl3 1.0.1) kept running in its own environment, timed on request.

Run by :class:`_peers.PeerWorker` with the peer's interpreter (never imports l3net)::

    PEERS/openl3/bin/python benchmarks/_peer_worker.py openl3 --input-repr linear --embedding-size 512

It builds the peer's networks with random weights through the peer's own code (their published
weights are not downloadable here: openl3's ``Model.load_weights`` is made a no-op, torchopenl3's
``PytorchOpenl3`` is built without ``load_state_dict``), then answers one JSON request per stdin line
with one JSON line on stdout:

- ``{"op": "audio", "npy": PATH, "sr": 48000, "hop": 0.1, "batch": 32, "center": true, "save": PATH|null}``
  -> ``{"seconds": wall, "cpu_seconds": process CPU, "shape": [T, D]}`` for one ``get_audio_embedding``
  call on the float32 samples in PATH (``save``: also write the embedding there as .npy);
- ``{"op": "image", "npy": PATH, "batch": 32, "save": ...}`` -> the same for ``get_image_embedding`` on
  the uint8 ``(N, H, W, 3)`` images in PATH (openl3 only);
- ``{"op": "quit"}``. Errors come back as ``{"error": "..."}``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback


def _openl3(input_repr: str, embedding_size: int, content_type: str):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np
    import openl3
    import tensorflow as tf

    tf.keras.utils.set_random_seed(0)
    tf.keras.Model.load_weights = lambda self, *args, **kwargs: None  # random weights (see the docstring)
    audio_model = openl3.models.load_audio_embedding_model(input_repr, content_type, embedding_size)
    image_model = []

    def audio(samples, sr, hop, batch, center):
        emb, _ = openl3.get_audio_embedding(
            samples, sr, model=audio_model, hop_size=hop, batch_size=batch, center=center, verbose=False
        )
        return np.asarray(emb)

    def image(images, batch):
        if not image_model:
            size = {512: 512, 6144: 8192}.get(embedding_size, embedding_size)
            image_model.append(openl3.models.load_image_embedding_model(input_repr, content_type, size))
        return np.asarray(openl3.get_image_embedding(images, model=image_model[0], batch_size=batch, verbose=False))

    return audio, image


def _torchopenl3(input_repr: str, embedding_size: int, content_type: str):
    import torch
    import torchopenl3
    from torchopenl3.models import PytorchOpenl3

    torch.manual_seed(0)
    model = PytorchOpenl3(content_type=content_type, input_repr=input_repr, embedding_size=embedding_size).eval()

    def audio(samples, sr, hop, batch, center):
        emb, _ = torchopenl3.get_audio_embedding(
            samples, sr, model=model, hop_size=hop, batch_size=batch, center=center, verbose=False
        )
        return emb.cpu().numpy()[0]

    return audio, None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("peer", choices=("openl3", "torchopenl3"))
    parser.add_argument("--input-repr", default="linear", choices=("linear", "mel128", "mel256"))
    parser.add_argument("--embedding-size", type=int, default=512)
    parser.add_argument("--content-type", default="env", choices=("env", "music"))
    args = parser.parse_args()

    # This folder holds benchmarks named like the peers (benchmarks/openl3.py): import the real ones.
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]
    import numpy as np

    build = _openl3 if args.peer == "openl3" else _torchopenl3
    audio, image = build(args.input_repr, args.embedding_size, args.content_type)
    print(json.dumps({"ready": args.peer}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        try:
            if request["op"] == "quit":
                break
            data = np.load(request["npy"])
            wall, cpu = time.perf_counter(), time.process_time()
            if request["op"] == "audio":
                out = audio(data, request.get("sr", 48_000), request["hop"], request["batch"], request.get("center", True))
            elif request["op"] == "image":
                if image is None:
                    raise ValueError(f"{args.peer} has no image model")
                out = image(data, request["batch"])
            else:
                raise ValueError(f"unknown op {request['op']!r}")
            reply = {"seconds": time.perf_counter() - wall, "cpu_seconds": time.process_time() - cpu,
                     "shape": list(out.shape)}
            if request.get("save"):
                np.save(request["save"], out.astype(np.float32))
        except Exception as exc:  # noqa: BLE001 - reported to the parent, which names the peer
            reply = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
        print(json.dumps(reply), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
