"""What a run did, tile by tile: the results the pipeline and its executors (scheduler/parallel.py) hand back."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from catalog.store import Publication
    from scheduler.state import TileState


@dataclass
class TileOutcome:
    """What one tile did in a run."""

    tile_id: str
    absorbed: list[str] = field(default_factory=list)
    skipped_late: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)  # items the search found but could not read
    error: str | None = None
    # The state the tile's work left on disk, for its report in this process (see stage); never sent from dask.
    state: TileState | None = field(default=None, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        """No error."""
        return self.error is None


@dataclass
class RunResult:
    """What a fit or update run did."""

    tiles: list[TileOutcome]
    publication: Publication | None = None  # the newest publication of the run
    publications: list[Publication] = field(default_factory=list)  # every one, in order (dask: one per tile)

    def __post_init__(self) -> None:
        if self.publication is not None and not self.publications:
            self.publications = [self.publication]

    @property
    def failed(self) -> list[TileOutcome]:
        """Tiles that failed."""
        return [t for t in self.tiles if not t.ok]

    @property
    def acquisitions(self) -> int:
        """Distinct acquisitions absorbed (by any tile)."""
        return len({key for t in self.tiles for key in t.absorbed})
