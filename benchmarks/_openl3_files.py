"""Run under openl3's own interpreter (``DIR/openl3/bin/python``, see ``_peers.py``): time
``openl3.process_audio_file`` on a list of files, random weights (as ``_peer_worker.py`` builds them).

    python _openl3_files.py OUT_DIR HOP BATCH FILE...    -> one JSON line: seconds, cpu_seconds, windows
"""

import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# This folder holds benchmarks/openl3.py, which would shadow the openl3 package.
sys.path = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]


def main() -> int:
    import numpy as np
    import openl3
    import tensorflow as tf

    out_dir, hop, batch, files = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
    tf.keras.utils.set_random_seed(0)
    tf.keras.Model.load_weights = lambda self, *args, **kwargs: None  # the sdist ships no weights
    model = openl3.models.load_audio_embedding_model("linear", "env", 512)
    openl3.process_audio_file(files[:1], model=model, output_dir=out_dir, hop_size=hop, batch_size=batch, verbose=False)  # warm-up
    wall, cpu = time.perf_counter(), time.process_time()
    openl3.process_audio_file(files, model=model, output_dir=out_dir, hop_size=hop, batch_size=batch, verbose=False)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    windows = 0
    for name in os.listdir(out_dir):
        with np.load(os.path.join(out_dir, name)) as f:
            windows += len(f["timestamps"])
    print(json.dumps({"seconds": wall, "cpu_seconds": cpu, "windows": windows, "files": len(files)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
