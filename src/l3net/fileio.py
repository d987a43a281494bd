"""Atomic writes: a file appears whole under its final name or not at all.

Everything l3net writes goes through here: it is written to a temporary name in the same directory,
flushed, then renamed, so a crash, ``kill -9`` or a full disk never leaves a partial output.
Temporary names are ``.NAME.<random>.tmp[SUFFIX]``; :func:`remove_stale_temporaries` is the one place
that deletes those left behind by a killed writer. Files get the permissions the user's umask gives
any new file (the temporary file is created with mode 0666, which the kernel masks), with no
process-wide state read or changed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import os
import secrets
from pathlib import Path
from typing import IO, Any, Iterable, Iterator

from .errors import OutputError

#: Marks the temporary files of atomic writes: ``.NAME.<random>.tmp[SUFFIX]``.
TMP_MARK = ".tmp"


def _describe_os_error(path: Path, exc: OSError) -> str:
    if exc.errno == errno.ENOSPC:
        return f"cannot write {path}: the disk is full"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"cannot write {path}: permission denied (is the directory writable?)"
    return f"cannot write {path}: {exc.strerror or exc}"


def ensure_dir(path: str | os.PathLike[str]) -> Path:
    """Create ``path`` (and parents) or raise :class:`OutputError` saying why not."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(_describe_os_error(path, exc)) from exc
    if not os.access(path, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write to {path}: permission denied (is the directory writable?)")
    return path


def _open_exclusive(path: Path) -> int:
    """Create ``path`` (it must not exist) with mode 0666 minus the umask; a file descriptor."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)


def _create_temporary(path: Path, suffix: str) -> Path:
    """A new empty file beside ``path``, created with mode 0666 so the user's umask decides its permissions
    (``tempfile.mkstemp`` would make it 0600)."""
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}{TMP_MARK}{suffix}")
        try:
            fd = _open_exclusive(tmp)
        except FileExistsError:
            continue
        except OSError as exc:
            raise OutputError(_describe_os_error(path, exc)) from exc
        os.close(fd)
        return tmp
    raise OutputError(f"cannot write {path}: no free temporary name beside it")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed to ``path``.

    ``suffix`` keeps an extension on the temporary name for writers that insist on one
    (``np.savez`` appends ``.npz`` otherwise). On any exception the temporary file is removed.
    A writer may replace the temporary file with its own (safetensors writes to a private 0600
    file and renames it over the target): the result still gets the mode the temporary file was
    created with.
    """
    path = Path(path)
    ensure_dir(path.parent)
    tmp = _create_temporary(path, suffix)
    mode = os.stat(tmp).st_mode & 0o777
    try:
        yield tmp
        if os.stat(tmp).st_mode & 0o777 != mode:
            os.chmod(tmp, mode)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputError(_describe_os_error(path, exc)) from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def remove_stale_temporaries(directory: str | os.PathLike[str], names: Iterable[str]) -> list[Path]:
    """Delete the temporary files that atomic writes of ``names`` (file names in ``directory``, or
    ``fnmatch`` patterns such as ``frame_*.png``) left behind when their writer was killed.

    Only files named as :func:`atomic_path` names its temporaries are touched, never an output.
    Returns the paths removed.
    """
    import fnmatch

    directory = Path(directory)
    if not directory.is_dir():
        return []
    patterns = [f".{name}.*{TMP_MARK}*" for name in names]
    removed = []
    for path in directory.glob(f".*{TMP_MARK}*"):
        if path.is_file() and any(fnmatch.fnmatchcase(path.name, p) for p in patterns):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "w", **kwargs: Any) -> Iterator[IO[Any]]:
    """``open()`` that writes to a temporary file and renames it into place on success."""
    with atomic_path(path) as tmp:
        with open(tmp, mode, **kwargs) as handle:
            yield handle


def write_json(path: str | os.PathLike[str], data: Any) -> None:
    """Write ``data`` as indented JSON, atomically."""
    with atomic_open(path, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2, sort_keys=False)
        handle.write("\n")


@dataclasses.dataclass
class JsonLines:
    """The objects of a JSON-lines file, and the numbers of the lines that were not JSON objects
    (a line cut short when its writer was killed)."""

    records: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    bad_lines: list[int] = dataclasses.field(default_factory=list)


def read_jsonl(path: str | os.PathLike[str]) -> JsonLines:
    """Parse a JSON-lines file (one object per line, e.g. a training run's ``log.jsonl``); blank lines
    are skipped, bad lines counted, not fatal."""
    result = JsonLines()
    with open(path, encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            line = line.strip()
            if not line:
                continue
            try:
                record = json.loads(line)
            except ValueError:
                result.bad_lines.append(number)
                continue
            if isinstance(record, dict):
                result.records.append(record)
            else:
                result.bad_lines.append(number)
    return result


def read_json(path: str | os.PathLike[str]) -> Any:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)
