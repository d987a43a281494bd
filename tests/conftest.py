"""Shared fixtures. Real media live in ../shared/data (never copied into the repo)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("L3NET_TEST_DATA", REPO.parent / "shared" / "data"))
# No torch.compile unless a test asks for it (compile=True): compiling costs tens of seconds per
# graph on a CPU, and on a GPU machine "auto" would compile in every embedding test (l3net.inference).
os.environ.setdefault("L3NET_COMPILE", "0")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not DATA.is_dir():
        pytest.fail(f"test media not found at {DATA} (set L3NET_TEST_DATA)")
    return DATA


# Session fixtures that build a synthetic world, its shards and a trained small model live in
# their own modules (generated at test time, never committed); conftest only collects them.
try:
    from fixtures_data import *  # noqa: F401,F403
except ModuleNotFoundError as exc:
    if exc.name != "fixtures_data":
        raise
try:
    from fixtures_train import *  # noqa: F401,F403
except ModuleNotFoundError as exc:
    if exc.name != "fixtures_train":
        raise


@pytest.fixture(autouse=True)
def _ordinary_scheduling():
    """A test must leave this process's scheduling as it found it: a real-time policy (SVT-AV1 sets
    SCHED_FIFO when run as root) is inherited by every process started later, and a spinning
    real-time trainer starves its own data-loader worker. Checked after each test, and put back."""
    policy, param = os.sched_getscheduler(0), os.sched_getparam(0)
    yield
    if os.sched_getscheduler(0) != policy:
        os.sched_setscheduler(0, policy, param)
        pytest.fail("the test left this process with a real-time scheduling policy (put back)")
