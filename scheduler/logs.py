"""Log lines: one per event, ISO timestamp with time zone, as text or as JSON with tile/acquisition/cause fields."""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from typing import Literal, TextIO

LogFormat = Literal["text", "json"]

# Fields a record may carry via `extra=`; JSON lines always have them (null when not relevant).
EVENT_FIELDS = ("tile", "acquisition", "cause")
# Third-party chatter an operator does not need at INFO.
HANDLER_NAME = "nrt-alerts"
NOISY_LOGGERS = ("rasterio", "rio_tiler", "titiler", "numba", "apscheduler", "httpx", "urllib3")


def _timestamp(record: logging.LogRecord) -> str:
    """The record's time, ISO 8601 with milliseconds and the UTC offset."""
    return dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds")


def _one_line(text: str) -> str:
    """Multi-line text (a GDAL message, a traceback) folded so one event stays one line."""
    return " | ".join(part.strip() for part in text.splitlines() if part.strip())


class TextFormatter(logging.Formatter):
    """`2026-11-21T08:30:00.123+00:00 ERROR   scheduler.pipeline: message [tile=... acquisition=...]`."""

    def format(self, record: logging.LogRecord) -> str:
        """One line; fields given via extra= are appended as key=value, a traceback is folded."""
        line = f"{_timestamp(record)} {record.levelname:<7} {record.name}: {record.getMessage()}"
        # Fields given via extra= that the message does not already say.
        values = {k: getattr(record, k, None) for k in ("tile", "acquisition")}
        fields = [f"{k}={v}" for k, v in values.items() if v and str(v) not in line]
        if fields:
            line += " [" + " ".join(fields) + "]"
        if record.exc_info:
            line += " | " + _one_line(self.formatException(record.exc_info))
        return _one_line(line)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, tile, acquisition, cause (and traceback)."""

    def format(self, record: logging.LogRecord) -> str:
        """Serialise the record; values that are not JSON become strings."""
        entry: dict[str, object] = {
            "time": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in EVENT_FIELDS:
            entry[name] = getattr(record, name, None)
        if record.exc_info:
            entry["traceback"] = self.formatException(record.exc_info)
            if entry["cause"] is None and record.exc_info[1] is not None:
                entry["cause"] = f"{type(record.exc_info[1]).__name__}: {record.exc_info[1]}"
        return json.dumps(entry, default=str, ensure_ascii=False)


def setup_logging(level: str = "info", fmt: LogFormat = "text", stream: TextIO | None = None) -> None:
    """Send every log record to stderr (or `stream`), one line per event, in the chosen format."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.set_name(HANDLER_NAME)
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == HANDLER_NAME]:
        root.removeHandler(old)  # only our own: a host's handlers (pytest's, an embedding app's) stay
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper()))
    for noisy in NOISY_LOGGERS:
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # Its "Retrying ..." lines repeat ours (scheduler.sources says which request failed and why).
    logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)
