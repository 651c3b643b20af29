"""Retention: which publications to keep (all recent ones, then one a week, then one a month) and pruning the rest.

A publication names one item per tile and a mosaic per layer; items name series chunks and a model file shared
with other items. Pruning removes the publications the policy drops from the index (the pointer, written first,
so readers never follow it to a deleted file; the month catalogs' links to the removed items go before it, and a
month left without items loses its catalog), then their item folders and mosaics, then the shared files that only
removed items named. Files no publication names (an item written ahead, a chunk a state has just recorded)
are never touched.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path

from catalog import atomic, tree
from catalog.series import item_series
from catalog.store import CatalogLayout, Publication, PublicationIndex, read_index


@dataclass(frozen=True)
class RetentionPolicy:
    """Which publications stay: all recent ones, one a week, then one a month; the latest always.

    Every publication younger than `all_days`, the newest of each ISO week up to `weekly_days`, then the newest of
    each month (or none when `monthly` is off). Ages are data times, counted back from the latest publication's.
    """

    all_days: int = 90
    weekly_days: int = 365
    monthly: bool = True


@dataclass
class PruneReport:
    """What a prune removed (or, in a dry run, would remove)."""

    kept: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    files: int = 0
    bytes: int = 0


def kept_publications(index: PublicationIndex, policy: RetentionPolicy) -> list[Publication]:
    """The publications the policy keeps, oldest first."""
    if not index.publications:
        return []
    newest = index.latest.datetime
    chosen: dict[tuple, Publication] = {}
    for publication in index.publications:  # oldest first: a later one of a week or month replaces the earlier
        age = newest - publication.datetime
        if age <= dt.timedelta(days=policy.all_days):
            key: tuple = ("all", publication.id)
        elif age <= dt.timedelta(days=policy.weekly_days):
            key = ("week", *publication.datetime.isocalendar()[:2])
        elif policy.monthly:
            key = ("month", publication.datetime.year, publication.datetime.month)
        else:
            continue
        chosen[key] = publication
    chosen[("latest",)] = index.latest
    ids = {p.id for p in chosen.values()}
    return [p for p in index.publications if p.id in ids]


def _item_files(layout: CatalogLayout, item_id: str) -> set[Path]:
    """The shared series chunks and model file an item names."""
    path = layout.item_path(item_id)
    try:
        item = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return set()
    model, chunks = item_series(item, path.parent)
    return {*chunks, *([model] if model else [])}


def _size(path: Path) -> tuple[int, int]:
    """Files and bytes under a path (a file or a folder)."""
    if path.is_file():
        return 1, path.stat().st_size
    files = [p for p in path.rglob("*") if p.is_file()]
    return len(files), sum(p.stat().st_size for p in files)


def prune_locked(layout: CatalogLayout, policy: RetentionPolicy, *, dry_run: bool = False) -> PruneReport:
    """Remove what the policy drops; the caller holds the publication lock (exclusive)."""
    index = read_index(layout)
    kept = kept_publications(index, policy)
    kept_ids = {p.id for p in kept}
    removed = [p for p in index.publications if p.id not in kept_ids]
    report = PruneReport(kept=[p.id for p in kept], removed=[p.id for p in removed])
    if not removed:
        return report
    kept_items = {item for p in kept for item in p.items.values()}
    gone_items = {item for p in removed for item in p.items.values()} - kept_items
    shared_kept = set().union(*(_item_files(layout, item) for item in kept_items))
    shared_gone = set().union(*(_item_files(layout, item) for item in gone_items)) - shared_kept
    doomed = [
        *(layout.item_path(item).parent for item in sorted(gone_items)),
        *(layout.mosaic_path(p.id, "status").parent for p in removed),
        *sorted(shared_gone),
    ]
    for path in doomed:
        if path.exists():
            files, size = _size(path)
            report.files += files
            report.bytes += size
    if dry_run:
        return report
    # The links and the pointer first: once they no longer name them, nothing leads a reader to the files below.
    emptied_months = tree.unlink_items(layout, gone_items)
    atomic.write_json(layout.index_path, replace(index, publications=tuple(kept)).to_dict())
    for path in [*doomed, *emptied_months]:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    for folder in {p.parent for p in [*doomed, *emptied_months]}:
        if folder.exists():
            atomic.fsync(folder)
    return report
