"""The `nrt-alerts` command: process-wide defaults set before GDAL loads, then server/cli.py."""

from __future__ import annotations

import os
import sys

GDAL_CACHE_MB = 64


def main(argv: list[str] | None = None) -> int:
    """Set GDAL's and numba's process defaults, then run the CLI (see server.cli.main) and exit with its code."""
    # GDAL's block cache, unless the operator sets it: GDAL's default is 5 % of the RAM, and a run keeps up to a
    # year of assets open (scheduler/aligned.py), whose decoded blocks would stay cached. Every block a run reads is
    # read once; TiTiler's tiles need far less.
    os.environ.setdefault("GDAL_CACHEMAX", str(GDAL_CACHE_MB))
    # Tiles run side by side on threads, each calling numba's parallel loops: only the OpenMP and TBB threading
    # layers allow that. Without either (a slim image lacking libgomp1), numba would fall back to its workqueue
    # layer, which aborts the whole process on concurrent use; "threadsafe" makes it a Python error instead.
    os.environ.setdefault("NUMBA_THREADING_LAYER", "threadsafe")
    from server import cli

    sys.exit(cli.main(argv))
