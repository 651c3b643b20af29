"""A full disk, told as such: free space before a run, and write failures that a full disk explains."""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

from catalog.errors import CatalogError

MB = 1024 * 1024
# Below this much free space a failed write is put down to the full disk: GDAL ("IO error") and HDF5 ("NetCDF:
# HDF error") report ENOSPC in their own words, without the errno.
NEARLY_FULL = 16 * MB
FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT}


class DiskFullError(CatalogError):
    """The output's file system has no room (left) for a run's writes."""


def free_bytes(path: Path) -> int:
    """Free space on the file system holding `path` (or its nearest existing parent)."""
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return shutil.disk_usage(path).free


def _says_full(exc: BaseException) -> bool:
    """Whether an exception or one of its causes is an ENOSPC/EDQUOT OSError."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in FULL_ERRNOS:
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def disk_full(exc: BaseException, path: Path) -> DiskFullError | None:
    """A DiskFullError naming `path` and the free space if a full disk explains `exc`, else None."""
    if isinstance(exc, DiskFullError):
        return exc
    try:
        free = free_bytes(path)
    except OSError:
        return None
    if not _says_full(exc) and free >= NEARLY_FULL:
        return None
    return DiskFullError(f"no space left on the disk of {path} ({free / MB:.1f} MB free): {exc}")


def require_free(path: Path, minimum_mb: float) -> None:
    """Refuse to start a run when the file system of `path` has less than `minimum_mb` MB free."""
    free = free_bytes(path)
    if free < minimum_mb * MB:
        raise DiskFullError(
            f"only {free / MB:.1f} MB free on the disk of {path}; a run needs at least {minimum_mb:g} MB "
            "(output.min_free_mb): free some space, or lower the setting"
        )
