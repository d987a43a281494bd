"""What every benchmark prints first: the machine its numbers come from.

    from _machine import describe_machine
    print(describe_machine())

(benchmark scripts run as ``python benchmarks/NAME.py``, so this folder is on ``sys.path``.)
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
from pathlib import Path


def cpu_model() -> str:
    """The CPU's marketing name from /proc/cpuinfo (Linux), else what platform knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def describe_machine() -> str:
    """One paragraph: CPU, cores, load, GPU, torch and Python versions, date (UTC)."""
    import torch

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "none"
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"machine: {cpu_model()}, {usable_cores()} cores (load average {load:.1f}), GPU: {gpu}\n"
        f"software: torch {torch.__version__} ({torch.get_num_threads()} threads), "
        f"Python {platform.python_version()}, {platform.system()} {platform.release()}; {now}"
    )


if __name__ == "__main__":
    print(describe_machine())
