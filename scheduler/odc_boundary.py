"""Every use of odc-stac's private parts, behind one switch that falls back to its public API.

odc-stac's public `load(..., fail_on_error=True)` raises GDAL's error, which names neither the asset nor the item.
Its private loader module `odc.loader._rio` logs "Failed to load <asset>" just before: reading that record names the
asset in our error. Setting the environment variable NRT_ALERTS_ODC_ASSET_NAMES=0 leaves odc's log alone: a failed
read is still an error (retried, then reported), named by GDAL's message only.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterator

ASSET_NAMES_ENV = "NRT_ALERTS_ODC_ASSET_NAMES"
# The private logger odc-stac's reads log their failures to.
_READER_LOGGER = "odc.loader._rio"


def asset_names() -> bool:
    """Whether failed assets are named from odc's private log records (the default), else the public API only."""
    return os.environ.get(ASSET_NAMES_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


class FailedAssets(logging.Filter):
    """Takes odc's "Failed to load <asset>" records of this load: the asset goes into our error instead.

    This load's records come from this thread or from its own read pool (named `pool_name`); other loads running
    in the same process keep theirs.
    """

    def __init__(self, pool_name: str) -> None:
        super().__init__()
        self.thread = threading.get_ident()
        self.pool_name = pool_name + "_"
        self.assets: list[str] = []

    def filter(self, record: logging.LogRecord) -> bool:
        """Drop (and remember) this load's failures; let everything else through."""
        ours = record.thread == self.thread or str(record.threadName).startswith(self.pool_name)
        if not ours or not str(record.msg).startswith("Failed to load"):
            return True
        self.assets.append(str(record.args[0]) if isinstance(record.args, tuple) and record.args else "?")
        return False


@contextlib.contextmanager
def failed_assets(pool_name: str) -> Iterator[FailedAssets]:
    """Catch odc-stac's own error lines during a load (they name neither tile nor acquisition); none when off."""
    failed = FailedAssets(pool_name)
    if not asset_names():
        yield failed
        return
    logger = logging.getLogger(_READER_LOGGER)
    logger.addFilter(failed)
    try:
        yield failed
    finally:
        logger.removeFilter(failed)
