"""The run history: one record per update run, written by the scheduler, read by /status and `nrt-alerts status`."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from catalog import atomic
from catalog.locking import file_lock

KEEP = 500  # records kept; older ones are dropped so the file stays small

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunRecord:
    """What one run did: when, how many tiles and acquisitions, and how it ended."""

    started: str
    finished: str
    until: str
    outcome: str  # ok | partial (some tiles failed) | failed | skipped (another run held the lock)
    tiles: int = 0
    acquisitions: int = 0
    failed_tiles: list[str] = field(default_factory=list)
    version: str | None = None
    error: str | None = None
    # Items the source found but could not read (file or id: reason), skipped this run and read again the next.
    unreadable_items: list[str] = field(default_factory=list)

    @property
    def succeeded(self) -> bool:
        """The run completed for every tile."""
        return self.outcome == "ok"

    @property
    def finished_at(self) -> dt.datetime:
        """`finished` as a datetime."""
        return dt.datetime.fromisoformat(self.finished)


class RunLog:
    """A JSON file of the latest runs, rewritten atomically under a lock at every run.

    When the file cannot be written (a full disk), the history goes to a fallback file in the system's temp
    folder instead, so that /status, /healthz and `nrt-alerts status` still show the failed runs; the next
    successful write takes the history back and removes the fallback.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    @property
    def fallback(self) -> Path:
        """Where the history goes while `path` cannot be written (one file per run log)."""
        digest = hashlib.sha256(str(Path(self.path).absolute()).encode()).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / f"nrt-alerts-runs-{digest}.json"

    def append(self, record: RunRecord) -> None:
        """Add a record (oldest ones beyond KEEP are dropped)."""
        with file_lock(self.path.with_name(f".{self.path.name}.lock")):
            records = {"runs": ([asdict(r) for r in self.read()] + [asdict(record)])[-KEEP:]}
            try:
                atomic.write_json(self.path, records)
            except OSError as exc:
                atomic.write_json(self.fallback, records)
                log.error(
                    "run history %s could not be written (%s): kept in %s until it can", self.path, exc, self.fallback
                )
                return
            self.fallback.unlink(missing_ok=True)

    def read(self) -> list[RunRecord]:
        """All kept records, oldest first (none before the first run); the fallback's while it is newer."""
        main, fallback = _records(self.path), _records(self.fallback)
        if fallback and (not main or fallback[-1].finished >= main[-1].finished):
            return fallback
        return main

    def last_success(self) -> RunRecord | None:
        """The newest run that completed for every tile."""
        return next((r for r in reversed(self.read()) if r.succeeded), None)


def _records(path: Path) -> list[RunRecord]:
    """The records of one run-log file (none if it does not exist)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    return [RunRecord(**r) for r in data["runs"]]
