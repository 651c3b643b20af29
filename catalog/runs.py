"""The run history: one record per update run, written by the scheduler, read by /status and `nrt-alerts status`."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from catalog import atomic
from catalog.locking import file_lock

KEEP = 500  # records kept; older ones are dropped so the file stays small


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
    """A JSON file of the latest runs, rewritten atomically under a lock at every run."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def append(self, record: RunRecord) -> None:
        """Add a record (oldest ones beyond KEEP are dropped)."""
        with file_lock(self.path.with_name(f".{self.path.name}.lock")):
            records = [asdict(r) for r in self.read()] + [asdict(record)]
            atomic.write_json(self.path, {"runs": records[-KEEP:]})

    def read(self) -> list[RunRecord]:
        """All kept records, oldest first (none before the first run)."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return []
        return [RunRecord(**r) for r in data["runs"]]

    def last_success(self) -> RunRecord | None:
        """The newest run that completed for every tile."""
        return next((r for r in reversed(self.read()) if r.succeeded), None)
