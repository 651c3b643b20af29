"""The `nrt-alerts` command: server/cli.py imported with the garbage collector paused, the process ended at once."""

from __future__ import annotations

import gc
import logging
import os
import sys


def main(argv: list[str] | None = None) -> int:
    """Import the CLI, run it (see server.cli.main), and end the process with its exit code."""
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
