"""Running the peers (openl3 0.4.2 on TensorFlow, torchopenl3 1.0.1) beside l3net in one benchmark run.

The peers live in their own virtual environments, built by ``../shared/tools/install-peers DIR``
(``DIR/openl3/bin/python``, ``DIR/topenl3/bin/python``). A :class:`PeerWorker` starts one of them
once (``_peer_worker.py`` under the peer's interpreter, random weights, no l3net import) and times
calls on request, so a benchmark can alternate l3net and the peers on the same input and CPU::

    from _peers import PeerWorker, find_peers

    peers = find_peers(args.peers)                       # {"openl3": python, "torchopenl3": python}
    with PeerWorker("openl3", peers["openl3"], input_repr="linear", embedding_size=512) as openl3:
        seconds = openl3.audio(samples_48k, hop=0.1, batch=32)["seconds"]

(benchmark scripts run as ``python benchmarks/NAME.py``, so this folder is on ``sys.path``.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
#: Where install-peers put the environments when --peers is not given: $L3NET_PEERS, else /work/peers.
DEFAULT_PEERS = os.environ.get("L3NET_PEERS", "/work/peers")
_PYTHONS = {"openl3": "openl3/bin/python", "torchopenl3": "topenl3/bin/python"}


def find_peers(directory: str | os.PathLike[str] = DEFAULT_PEERS) -> dict[str, Path]:
    """``{peer: interpreter}`` for the peers installed under ``directory`` (missing ones left out)."""
    root = Path(directory)
    return {name: root / rel for name, rel in _PYTHONS.items() if (root / rel).is_file()}


class PeerWorker:
    """One peer, running in its own process and environment until :meth:`close` (or ``with``)."""

    def __init__(
        self, peer: str, python: str | os.PathLike[str], *, input_repr: str = "linear", embedding_size: int = 512,
        content_type: str = "env", threads: int | None = None,
    ) -> None:
        self.peer = peer
        self._tmp = tempfile.TemporaryDirectory(prefix=f"l3net-{peer}-")
        self._log = open(os.path.join(self._tmp.name, "stderr.txt"), "w+")  # noqa: SIM115 - closed in close()
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONWARNINGS="ignore")
        if threads:
            env.update(OMP_NUM_THREADS=str(threads), TF_NUM_INTRAOP_THREADS=str(threads))
        self._process = subprocess.Popen(
            [str(python), str(HERE / "_peer_worker.py"), peer, "--input-repr", input_repr,
             "--embedding-size", str(embedding_size), "--content-type", content_type],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, text=True, env=env,
        )
        ready = self._read()
        if ready.get("ready") != peer:
            raise RuntimeError(f"{peer} did not start: {ready}")

    def _read(self) -> dict[str, Any]:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            if line.startswith("{"):
                return json.loads(line)
        status = self._process.wait()
        self._log.seek(0)
        raise RuntimeError(f"{self.peer} exited (status {status}):\n{self._log.read()[-3000:]}")

    def _ask(self, request: dict[str, Any]) -> dict[str, Any]:
        assert self._process.stdin is not None
        self._process.stdin.write(json.dumps(request) + "\n")
        self._process.stdin.flush()
        reply = self._read()
        if "error" in reply:
            raise RuntimeError(f"{self.peer}: {reply['error']}\n{reply.get('traceback', '')}")
        return reply

    def _array(self, name: str, array: np.ndarray) -> str:
        path = os.path.join(self._tmp.name, name)
        np.save(path, array)
        return path

    def audio(
        self, samples: np.ndarray, *, hop: float = 0.1, batch: int = 32, center: bool = True, sr: int = 48_000,
        keep: bool = False,
    ) -> dict[str, Any]:
        """Time one ``get_audio_embedding`` of mono float32 ``samples``: {"seconds", "cpu_seconds",
        "shape"}, plus "embedding" when ``keep``."""
        out = os.path.join(self._tmp.name, "out.npy") if keep else None
        reply = self._ask({"op": "audio", "npy": self._array("audio.npy", samples.astype(np.float32)), "sr": sr,
                           "hop": hop, "batch": batch, "center": center, "save": out})
        if keep:
            reply["embedding"] = np.load(out)
        return reply

    def images(self, images: np.ndarray, *, batch: int = 32, keep: bool = False) -> dict[str, Any]:
        """Time one ``get_image_embedding`` of uint8 ``(N, H, W, 3)`` images (openl3 only)."""
        out = os.path.join(self._tmp.name, "out.npy") if keep else None
        reply = self._ask({"op": "image", "npy": self._array("images.npy", images), "batch": batch, "save": out})
        if keep:
            reply["embedding"] = np.load(out)
        return reply

    def close(self) -> None:
        if self._process.poll() is None:
            try:
                assert self._process.stdin is not None
                self._process.stdin.write(json.dumps({"op": "quit"}) + "\n")
                self._process.stdin.close()
                self._process.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self._process.kill()
        self._log.close()
        self._tmp.cleanup()

    def __enter__(self) -> "PeerWorker":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


if __name__ == "__main__":
    print(find_peers(sys.argv[1] if len(sys.argv) > 1 else DEFAULT_PEERS))
