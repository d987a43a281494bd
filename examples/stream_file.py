"""Embed a sound as it arrives: a file read in small chunks, as a microphone would deliver them.

    python examples/stream_file.py ../shared/data/audio/trumpet_44k_stereo.wav --model small
    python examples/stream_file.py song.flac --model runs/my_run --chunk-ms 20 --realtime

Each line printed is one window's embedding, returned by the push that delivered its last sample:
its timestamp, the audio pushed so far and the difference (half a window for centred windows, up to
one chunk more). The compute comes on top (``benchmarks/stream_latency.py`` measures it);
``--realtime`` paces the chunks at the file's speed, as a live source would. A real microphone (e.g. the ``sounddevice`` package)
fits the same loop: push each ``indata`` block of its callback, ``(frames, channels)`` as delivered.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

import l3net
from l3net.media import iter_audio, probe


def chunks(path: str, chunk_ms: float, realtime: bool):
    """The file's audio at its own rate, in chunks of ``chunk_ms``; paced in real time if asked."""
    rate = probe(path).sample_rate or l3net.SAMPLE_RATE
    size = max(1, round(rate * chunk_ms / 1000))
    start, sent = time.monotonic(), 0
    pending = np.zeros(0, np.float32)
    for decoded in iter_audio(path, rate, chunk_seconds=1.0):
        pending = np.concatenate([pending, decoded])
        while pending.size >= size:
            chunk, pending = pending[:size], pending[size:]
            sent += size
            if realtime:  # the sound card hands over a chunk once it has been recorded
                time.sleep(max(0.0, start + sent / rate - time.monotonic()))
            yield rate, chunk
    if pending.size:
        yield rate, pending


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("audio", help="an audio (or video) file")
    parser.add_argument("--model", default="small", help="a model directory or preset (presets: random weights)")
    parser.add_argument("--chunk-ms", type=float, default=10.0, help="milliseconds per chunk (a sound card's block)")
    parser.add_argument("--hop", type=float, default=0.1, help="seconds between windows")
    parser.add_argument("--realtime", action="store_true", help="deliver chunks at the file's speed")
    args = parser.parse_args()

    stream, heard = None, 0.0
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="no model given")
        for rate, chunk in chunks(args.audio, args.chunk_ms, args.realtime):
            if stream is None:
                stream = l3net.AudioStream(args.model, rate, hop_size=args.hop)
                print(f"{args.audio}: {rate} Hz, chunks of {len(chunk)} samples, hop {args.hop} s")
            heard += len(chunk) / rate
            for e, t in zip(*stream.push(chunk)):
                print(f"t = {t:6.2f} s  heard {heard:6.2f} s  delay {heard - t:5.2f} s  |e| = {np.linalg.norm(e):.3f}")
    if stream is not None:
        emb, ts = stream.close()
        print(f"end of audio: {len(ts)} last window(s); {stream.windows} embeddings of {stream.dim} dimensions in all")


if __name__ == "__main__":
    main()
