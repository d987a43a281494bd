"""Atomic writes: whole files or nothing, clear errors for unwritable places and full disks, kill -9."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from l3net.errors import OutputError
from l3net.fileio import atomic_open, atomic_path, ensure_dir, read_json, write_json


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_atomic_write_and_json(tmp_path):
    write_json(tmp_path / "a" / "b.json", {"x": [1, 2]})
    assert read_json(tmp_path / "a" / "b.json") == {"x": [1, 2]}
    assert leftovers(tmp_path / "a") == ["b.json"]
    with atomic_open(tmp_path / "t.txt") as handle:
        handle.write("hello")
        assert not (tmp_path / "t.txt").exists()  # not visible until complete
    assert (tmp_path / "t.txt").read_text() == "hello"
    assert oct((tmp_path / "t.txt").stat().st_mode & 0o777) != oct(0o600)  # usual permissions, not mkstemp's


def test_failure_leaves_nothing_and_keeps_the_old_file(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_open(target) as handle:
            handle.write("half of the new")
            raise RuntimeError("crash")
    assert target.read_text() == "old" and leftovers(tmp_path) == ["out.txt"]


def test_suffix_for_writers_that_append_one(tmp_path):
    import numpy as np

    with atomic_path(tmp_path / "e.npz", suffix=".npz") as tmp:
        assert tmp.name.endswith(".npz")
        np.savez(tmp, a=np.arange(3))
    assert leftovers(tmp_path) == ["e.npz"]


def test_full_disk(tmp_path):
    with pytest.raises(OutputError, match="disk is full"):
        with atomic_path(tmp_path / "big.bin") as tmp:
            tmp.write_bytes(b"partial")
            raise OSError(errno.ENOSPC, "No space left on device")
    assert leftovers(tmp_path) == []


def test_unwritable_locations(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    with pytest.raises(OutputError, match="cannot write"):
        ensure_dir(blocker / "sub")
    with pytest.raises(OutputError, match="cannot write"):
        write_json(blocker / "x.json", {})


_WRITE_INTO = """
import sys
from l3net.errors import OutputError
from l3net.fileio import write_json
try:
    write_json(sys.argv[1], {})
except OutputError as exc:
    print("OutputError:", exc)
"""


def _write_unprivileged(target: Path) -> subprocess.CompletedProcess:
    """Run the write in a child that has dropped root for the user nobody (setpriv, else setuid)."""
    import pwd
    import shutil

    import l3net

    nobody = pwd.getpwnam("nobody")
    env = {**os.environ, "PYTHONPATH": str(Path(l3net.__file__).parents[1]), "HOME": str(target.parent.parent)}
    command = [sys.executable, "-c", _WRITE_INTO, str(target)]
    if shutil.which("setpriv"):
        command = ["setpriv", f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}", "--clear-groups", *command]
        return subprocess.run(command, env=env, cwd=target.parent.parent, capture_output=True, text=True, timeout=120)
    return subprocess.run(command, user=nobody.pw_uid, group=nobody.pw_gid, extra_groups=[], env=env,
                          cwd=target.parent.parent, capture_output=True, text=True, timeout=120)


def _write_on_read_only_mount(target: Path) -> subprocess.CompletedProcess:
    """Run the write in a child whose own mount namespace has the folder bind-mounted read-only."""
    import l3net

    env = {**os.environ, "PYTHONPATH": str(Path(l3net.__file__).parents[1])}
    script = 'mount --bind "$1" "$1" && mount -o remount,ro,bind "$1" && exec "$2" -c "$3" "$4"'
    return subprocess.run(["unshare", "-m", "sh", "-c", script, "sh", str(target.parent), sys.executable, _WRITE_INTO,
                           str(target)], env=env, capture_output=True, text=True, timeout=120)


def test_read_only_directory(tmp_path):
    """An unwritable output folder is a clear OutputError. Root writes anywhere (and CI runs as root),
    so as root the write is made by a child that has dropped to the user nobody, or, where nobody
    cannot run this Python (an interpreter under /root), on a read-only bind mount of the folder."""
    if os.geteuid() != 0:
        folder = tmp_path / "ro"
        folder.mkdir()
        folder.chmod(0o555)
        try:
            with pytest.raises(OutputError, match="permission denied"):
                write_json(folder / "x.json", {})
        finally:
            folder.chmod(0o755)
        return
    import shutil
    import tempfile

    base = Path(tempfile.mkdtemp(prefix="l3net-ro-"))  # pytest's tmp_path is private to root
    try:
        base.chmod(0o755)
        folder = base / "ro"
        folder.mkdir()
        folder.chmod(0o555)
        done = _write_unprivileged(folder / "x.json")
        if done.returncode != 0 and "OutputError" not in done.stdout:  # nobody could not start this Python
            folder.chmod(0o755)
            done = _write_on_read_only_mount(folder / "x.json")
        assert done.returncode == 0, done.stderr[-2000:]
        assert "OutputError:" in done.stdout and "permission denied" in done.stdout, done.stdout
        assert not list(folder.iterdir())  # and nothing was left behind
    finally:
        shutil.rmtree(base)


def test_kill_9_mid_write_leaves_no_partial_file(tmp_path):
    """A writer killed with SIGKILL while writing: the final name never holds a partial file."""
    target = tmp_path / "result.bin"
    script = (
        "import sys, time\n"
        "from l3net.fileio import atomic_open\n"
        f"with atomic_open({str(target)!r}, 'wb') as f:\n"
        "    f.write(b'x' * 1000); f.flush()\n"
        "    print('writing', flush=True)\n"
        "    time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "writing"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not target.exists()
    # Only a hidden temporary file may remain, never under the final name.
    assert all(name.startswith(".result.bin.") for name in leftovers(tmp_path))


def test_files_get_the_users_umask_even_when_the_writer_replaces_the_temporary(tmp_path):
    """safetensors writes through its own private (0600) temporary file: the model file must still get
    the same permissions as config.json (it used to be 0600 beside a 0644 config.json)."""
    from l3net.models import build_model

    directory = build_model("small", seed=0).save(tmp_path / "model")
    modes = {p.name: p.stat().st_mode & 0o777 for p in directory.iterdir()}
    assert set(modes) == {"config.json", "model.safetensors"}
    assert len(set(modes.values())) == 1, modes
    umask = os.umask(0o022)  # read it back for the comparison (the test owns this process state)
    os.umask(umask)
    assert modes["config.json"] == 0o666 & ~umask


def test_a_stricter_umask_is_honoured(tmp_path):
    script = (
        "import os, sys\n"
        "os.umask(0o077)\n"
        "from l3net.fileio import write_json\n"
        "write_json(sys.argv[1], {})\n"
    )
    subprocess.run([sys.executable, "-c", script, str(tmp_path / "x.json")], check=True)
    assert (tmp_path / "x.json").stat().st_mode & 0o777 == 0o600


def test_importing_fileio_leaves_the_umask_alone():
    code = "import os; os.umask(0o027); import l3net.fileio; print(oct(os.umask(0)))"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.strip() == "0o27"


def test_remove_stale_temporaries_removes_only_our_temporaries(tmp_path):
    from l3net.fileio import remove_stale_temporaries

    for name in (".result.json.1a2b3c4d.tmp", ".frame_00001.png.00ff00ff.tmp.png", "result.json",
                 ".other.json.1a2b3c4d.tmp", ".result.json.keep", "frame_00001.png"):
        (tmp_path / name).write_text("x")
    removed = remove_stale_temporaries(tmp_path, ["result.json", "frame_*.png"])
    assert sorted(p.name for p in removed) == [".frame_00001.png.00ff00ff.tmp.png", ".result.json.1a2b3c4d.tmp"]
    assert leftovers(tmp_path) == [".other.json.1a2b3c4d.tmp", ".result.json.keep", "frame_00001.png", "result.json"]
    assert remove_stale_temporaries(tmp_path / "missing", ["x"]) == []


def test_importing_l3net_changes_no_pillow_setting():
    code = ("from PIL import Image; before = Image.MAX_IMAGE_PIXELS\n"
            "import l3net, l3net.media, l3net.cli, l3net.report\n"
            "print(before == Image.MAX_IMAGE_PIXELS)")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.strip() == "True"
