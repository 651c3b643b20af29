"""Earlier generations of a tile's state file: kept on each save, pruned to N, restored atomically.

Layout, beside the states: ``state/backups/<tile>/<tile>.<saved>.nc`` where ``<saved>`` is the modification time
of the state file that generation was (UTC, to the nanosecond), so names sort oldest to newest and a save that is
interrupted and repeated keeps the same name. A generation is a hard link to the file being replaced (no copy;
the state file is only ever replaced, never modified in place), or a copy where links are not supported.
Files replaced by a restore go to ``state/set-aside/`` and are never deleted by nrt-alerts.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
from pathlib import Path

from catalog.atomic import atomic_path, fsync

BACKUP_DIR = "backups"
ASIDE_DIR = "set-aside"


def generations_dir(path: Path) -> Path:
    """Folder of the earlier generations of the state file `path`."""
    return path.parent / BACKUP_DIR / path.stem


def aside_dir(path: Path) -> Path:
    """Folder where a restore keeps the files it replaced."""
    return path.parent / ASIDE_DIR


def _stamp(ns: int) -> str:
    """A sortable UTC timestamp to the nanosecond."""
    when = dt.datetime.fromtimestamp(ns // 1_000_000_000, dt.UTC)
    return f"{when:%Y%m%dT%H%M%S}.{ns % 1_000_000_000:09d}Z"


def generation_paths(path: Path) -> list[Path]:
    """The kept generations of a state file, newest first (generation 1 is the first of them)."""
    folder = generations_dir(path)
    if not folder.is_dir():
        return []
    files = [p for p in folder.glob(f"{path.stem}.*.nc") if not p.name.startswith(".")]
    return sorted(files, key=lambda p: p.name, reverse=True)


def _link_or_copy(source: Path, target: Path) -> None:
    """Make `target` a hard link to `source`, or an atomic copy where hard links are not supported."""
    try:
        os.link(source, target)
    except FileExistsError:
        pass  # the same generation was kept by an earlier, interrupted save
    except OSError:
        with atomic_path(target) as tmp:
            shutil.copy2(source, tmp)


def keep_current(path: Path) -> Path | None:
    """Keep the current state file as a generation before it is replaced; return the generation's path."""
    try:
        ns = os.stat(path).st_mtime_ns
    except FileNotFoundError:
        return None
    folder = generations_dir(path)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{path.stem}.{_stamp(ns)}.nc"
    _link_or_copy(path, target)
    fsync(folder)
    return target


def prune(path: Path, keep: int) -> list[Path]:
    """Delete all but the newest `keep` generations of a state file; return the deleted ones."""
    removed = generation_paths(path)[keep:]
    for old in removed:
        old.unlink(missing_ok=True)
    if removed:
        fsync(generations_dir(path))
    return removed


def restore_file(path: Path, generation: Path) -> Path | None:
    """Make `generation` the current state file atomically; the replaced file is kept aside (returned)."""
    aside = None
    with atomic_path(path) as tmp:
        shutil.copyfile(generation, tmp)
        if path.exists():
            folder = aside_dir(path)
            folder.mkdir(parents=True, exist_ok=True)
            now = dt.datetime.now(dt.UTC)
            aside = folder / f"{path.stem}.replaced-{now:%Y%m%dT%H%M%S}.{now.microsecond:06d}Z.nc"
            # A link, not a move: until the restored copy replaces it, the current file stays where it is.
            _link_or_copy(path, aside)
            fsync(folder)
    return aside
