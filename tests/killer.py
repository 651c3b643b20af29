"""Run `nrt-alerts` and SIGKILL it at the N-th hit of a named kill point, with no hook in production code.

One shot:   python tests/killer.py --at absorb:3 -- update -c nrt-alerts.toml --until 2023-06-30
Zygote:     python tests/killer.py --serve
            reads JSON requests {"at": "absorb:3" | null, "argv": [...], "log": "path"} on stdin, one per line; for each
            it forks a child (imports are paid once), which wraps the kill point and runs server.cli.main(argv); it
            answers {"killed": bool, "code": int} on stdout.

A kill point wraps a function (found by "module:attribute.path") so that its N-th call, optionally only calls whose
argument matches a glob, is preceded ("before") or followed ("after") by os.kill(os.getpid(), SIGKILL).
"""

from __future__ import annotations

import argparse
import fnmatch
import functools
import importlib
import json
import os
import signal
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Point:
    """Where to kill: the wrapped function, before or after the call, and which calls count."""

    phase: str  # loading | monitoring | report | catalog
    target: str  # "module:attr" or "module:Class.method"
    when: str = "before"
    arg: int | None = None  # positional argument whose str() must match `pattern`
    pattern: str | None = None


POINTS: dict[str, Point] = {
    # loading: the state, the search, the imagery
    "load-state": Point("loading", "scheduler.state:load_state"),
    "load-state-done": Point("loading", "scheduler.state:load_state", "after"),
    "search": Point("loading", "scheduler.sources:StaticCatalogSource.search"),
    "search-done": Point("loading", "scheduler.sources:StaticCatalogSource.search", "after"),
    "load-index": Point("loading", "scheduler.pipeline:load_new_index"),
    "read-archive-cog": Point("loading", "rasterio:open", arg=0, pattern="*archive*"),
    "odc-load-done": Point("loading", "scheduler.loading:odc_load", "after"),
    # monitoring: absorbing acquisitions and committing the state
    "absorb": Point("monitoring", "scheduler.blocks:absorb"),  # absorb_all calls it, on row-block threads
    "absorb-done": Point("monitoring", "scheduler.blocks:absorb", "after"),
    "nrt-monitor": Point("monitoring", "nrt.monitor:BaseNrt.monitor"),
    "save-state": Point("monitoring", "scheduler.pipeline:save_state"),
    "netcdf-written": Point("monitoring", "xarray:Dataset.to_netcdf", "after"),
    "keep-generation": Point("monitoring", "scheduler.backups:keep_current"),
    "generation-linked": Point("monitoring", "os:link", "after", arg=1, pattern="*/backups/*"),
    "fsync-state-temp": Point("monitoring", "catalog.atomic:fsync", "after", arg=0, pattern="*/state/.*.tmp.nc"),
    "replace-state": Point("monitoring", "os:replace", arg=1, pattern="*/state/*.nc"),
    "state-replaced": Point("monitoring", "os:replace", "after", arg=1, pattern="*/state/*.nc"),
    "prune-generations": Point("monitoring", "scheduler.backups:prune"),
    "prune-unlink": Point("monitoring", "pathlib:Path.unlink", "after", arg=0, pattern="*/backups/*"),
    "save-state-done": Point("monitoring", "scheduler.pipeline:save_state", "after"),
    # report writing: layers, COGs, thumbnails
    "unpublished": Point("report", "scheduler.pipeline:Pipeline._unpublished_times", "after"),
    "staged": Point("report", "scheduler.pipeline:Pipeline.stage", "after"),
    "report-layers": Point("report", "scheduler.pipeline:report_layers", "after"),
    "write-cog": Point("report", "catalog.publish:write_cog"),
    "cog-translated": Point("report", "catalog.cog:cog_translate", "after"),
    "cog-validated": Point("report", "catalog.cog:cog_validate", "after"),
    "replace-cog": Point("report", "os:replace", arg=1, pattern="*.tif"),
    "cog-replaced": Point("report", "os:replace", "after", arg=1, pattern="*.tif"),
    "series-chunk": Point("report", "catalog.series:ChunkWriter.close"),
    "series-staged": Point("report", "catalog.series:_publish_chunk"),
    "series-chunk-done": Point("report", "catalog.series:ChunkWriter.close", "after"),
    "thumbnail": Point("report", "catalog.publish:write_thumbnail"),
    "thumbnail-done": Point("report", "catalog.publish:write_thumbnail", "after"),
    # catalog writing: item JSON, mosaics, collection, the publication index, the run log
    "item-json": Point("catalog", "catalog.atomic:write_json", arg=0, pattern="*/items/*.json"),
    "item-json-done": Point("catalog", "catalog.atomic:write_json", "after", arg=0, pattern="*/items/*.json"),
    "write-vrt": Point("catalog", "catalog.publish:write_vrt"),
    "vrt-replaced": Point("catalog", "os:replace", "after", arg=1, pattern="*.vrt"),
    "collection": Point("catalog", "catalog.atomic:write_json", arg=0, pattern="*/collection.json"),
    "collection-done": Point("catalog", "catalog.atomic:write_json", "after", arg=0, pattern="*/collection.json"),
    "replace-index": Point("catalog", "os:replace", arg=1, pattern="*/publications.json"),
    "index-replaced": Point("catalog", "os:replace", "after", arg=1, pattern="*/publications.json"),
    "index-dir-synced": Point("catalog", "catalog.atomic:fsync", "after", arg=0, pattern="*/stac/alerts"),
    "run-log": Point("catalog", "catalog.runs:RunLog.append"),
    "run-log-done": Point("catalog", "catalog.runs:RunLog.append", "after"),
}


def _resolve(target: str) -> tuple[Any, str]:
    """The object holding the attribute to wrap, and the attribute's name."""
    module_name, _, path = target.partition(":")
    owner: Any = importlib.import_module(module_name)
    *parents, name = path.split(".")
    for parent in parents:
        owner = getattr(owner, parent)
    return owner, name


def install(point_id: str, n: int) -> None:
    """Wrap the kill point so that its n-th matching call kills this process."""
    point = POINTS[point_id]
    owner, name = _resolve(point.target)
    original = getattr(owner, name)
    hits = 0

    def die() -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    lock = threading.Lock()

    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        nonlocal hits
        matches = point.pattern is None or (
            len(args) > point.arg and fnmatch.fnmatch(os.fspath(args[point.arg]), point.pattern)
        )
        mine = 0
        if matches:
            with lock:  # calls come from several threads (row blocks absorb side by side): count each once
                hits += 1
                mine = hits
        if mine == n and point.when == "before":
            die()
        result = original(*args, **kwargs)
        if mine == n and point.when == "after":
            die()
        return result

    setattr(owner, name, wrapper)


def run(at: str | None, argv: list[str]) -> int:
    """Install the kill point (if any) and run the command line in this process."""
    # Imported here so that pathlib/os patches made by install() are seen by the modules that use them.
    from server.cli import main

    if at:
        point_id, _, n = at.rpartition(":")
        install(point_id, int(n))
    return main(argv)


def serve() -> int:
    """Fork one child per request read from stdin; answer how it ended."""
    import server.cli  # noqa: F401  (pay the imports once, before forking)

    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            try:
                fd = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
                os.dup2(fd, 1)
                os.dup2(fd, 2)
                code = run(request["at"], request["argv"])
            except BaseException:  # the child must never return into the request loop
                import traceback

                traceback.print_exc()
                code = 99
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        killed = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
        code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        sys.stdout.write(json.dumps({"killed": killed, "code": code}) + "\n")
        sys.stdout.flush()
    return 0


def main() -> int:
    """Parse the launcher's own arguments; everything after `--` goes to nrt-alerts."""
    sys.path.insert(0, str(ROOT))
    argv = sys.argv[1:]
    own, rest = (argv[: argv.index("--")], argv[argv.index("--") + 1 :]) if "--" in argv else (argv, [])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--at", help="kill point and hit number, e.g. absorb:3 (see POINTS)")
    parser.add_argument("--serve", action="store_true", help="read requests on stdin (see the module docstring)")
    args = parser.parse_args(own)
    if args.serve:
        return serve()
    return run(args.at, rest)


if __name__ == "__main__":
    sys.exit(main())
