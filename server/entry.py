"""The `nrt-alerts` command: server/cli.py imported with the garbage collector paused, the process ended at once."""

from __future__ import annotations

import gc
import logging
import os
import sys

GDAL_CACHE_MB = 64


def main(argv: list[str] | None = None) -> int:
    """Import the CLI, run it (see server.cli.main), and end the process with its exit code."""
    # GDAL's block cache, unless the operator sets it: GDAL's default is 5 % of the RAM, and a run keeps up to a
    # year of assets open (scheduler/aligned.py), whose decoded blocks would stay cached. Every block a run reads is
    # read once; TiTiler's tiles need far less.
    os.environ.setdefault("GDAL_CACHEMAX", str(GDAL_CACHE_MB))
    # Importing the scientific stack allocates millions of objects, none of them garbage: the collector's passes
    # meanwhile cost ~0.2 s of every command's start and find nothing. cli.main then freezes what was imported.
    enabled = gc.isenabled()
    gc.disable()
    try:
        from server import cli
    finally:
        if enabled:
            gc.enable()
    code = cli.main(argv)
    # Tearing the imported stack down would cost ~0.2 s more and keep nothing safe: every file the command wrote
    # is complete and synced (atomic writes), a dask cluster is closed by cli.main, the logs are flushed here.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
