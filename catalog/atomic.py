"""Atomic file writes: temp file in the same folder, fsync, os.replace, fsync the folder."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def _current_umask() -> int:
    """The process umask (reading it means setting it, so set it straight back)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


def file_version(path: Path | str) -> tuple[int, int, int]:
    """A file's modification time, size and inode: an atomic replace changes the inode, a rewrite the others.

    What readers that keep something of a file (a parse, an open dataset, a loaded state) compare to notice a new
    version of it. Raises OSError if the file is gone.
    """
    info = os.stat(path)
    return info.st_mtime_ns, info.st_size, info.st_ino


def fsync(path: Path) -> None:
    """Flush a file's content, or a folder's entries (making a rename durable), to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_temp(target: Path) -> Path:
    """A new empty hidden temp file beside `target` (see is_temp); the caller commits or removes it."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    # Keep the suffix so writers that pick a driver from it (GDAL, netCDF) still do the right thing.
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=f".tmp{target.suffix}", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    # mkstemp creates 0600; published files must be readable by a server running as another user.
    os.chmod(tmp, 0o666 & ~_UMASK)
    return tmp


def commit_temp(tmp: Path, target: Path) -> None:
    """Replace `target` with the written temp file `tmp` durably: fsync it, os.replace, fsync the folder."""
    fsync(tmp)
    os.replace(tmp, target)
    fsync(Path(target).parent)


@contextlib.contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temp path beside `target`; on success it replaces `target` atomically, else it is removed."""
    tmp = make_temp(target)
    try:
        yield tmp
        commit_temp(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes(target: Path, data: bytes) -> None:
    """Atomically replace `target` with `data`."""
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def write_json(target: Path, obj: Any) -> None:
    """Atomically replace `target` with `obj` as indented JSON."""
    write_bytes(target, (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode("utf-8"))


def is_temp(path: Path) -> bool:
    """True for leftovers of an interrupted atomic write."""
    return path.name.startswith(".") and ".tmp" in path.name


def remove_temps(folder: Path) -> list[Path]:
    """Delete leftovers of interrupted atomic writes in `folder`; only call it holding the folder's writer lock."""
    try:
        leftovers = [p for p in Path(folder).iterdir() if is_temp(p) and p.is_file()]
    except FileNotFoundError:
        return []
    for path in leftovers:
        path.unlink(missing_ok=True)
    return leftovers
