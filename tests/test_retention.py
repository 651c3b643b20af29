"""Retention: a year of daily runs pruned to every recent publication, one a week, then one a month."""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from pathlib import Path

import pytest
import rasterio

from catalog.retention import RetentionPolicy, kept_publications
from catalog.series import item_series
from catalog.store import CatalogLayout, Publication, PublicationIndex, read_index
from catalog.tree import linked_items
from scheduler.demo import DemoArchive
from scheduler.pipeline import Pipeline
from server.cli import main

from conftest import make_workspace


def _daily(days: int) -> PublicationIndex:
    start = dt.datetime(2023, 1, 1, 10, 12, tzinfo=dt.UTC)
    return PublicationIndex(
        tuple(
            Publication(f"v{n:03d}", start + dt.timedelta(days=n), start + dt.timedelta(days=n), {}, {})
            for n in range(days)
        )
    )


def test_policy_keeps_all_recent_then_the_newest_of_each_week_then_of_each_month() -> None:
    index = _daily(2 * 365)
    newest = index.latest.datetime
    policy = RetentionPolicy(all_days=30, weekly_days=180, monthly=True)
    kept = kept_publications(index, policy)
    kept_ids = {p.id for p in kept}
    assert index.latest.id in kept_ids
    weeks, months = defaultdict(list), defaultdict(list)
    for p in index.publications:
        age = newest - p.datetime
        if age <= dt.timedelta(days=30):
            assert p.id in kept_ids, p
        elif age <= dt.timedelta(days=180):
            weeks[p.datetime.isocalendar()[:2]].append(p)
        else:
            months[(p.datetime.year, p.datetime.month)].append(p)
    for group in (*weeks.values(), *months.values()):
        assert [p.id for p in group if p.id in kept_ids] == [group[-1].id], "one per week/month: the newest"
    assert len(kept) == 31 + len(weeks) + len(months)
    assert 40 < len(kept) < 80  # instead of 730
    # Without monthly ones, nothing older than the weekly horizon stays.
    none_monthly = kept_publications(index, RetentionPolicy(30, 180, monthly=False))
    assert all(newest - p.datetime <= dt.timedelta(days=180) for p in none_monthly)
    # A single publication, however old, is the latest: it stays.
    assert [p.id for p in kept_publications(_daily(1), RetentionPolicy(0, 0, False))] == ["v000"]


def _files_named(layout: CatalogLayout, publications: list[Publication]) -> set[Path]:
    named = set()
    for publication in publications:
        named |= {layout.collection_dir / rel for rel in publication.mosaics.values()}
        for item_id in publication.items.values():
            path = layout.item_path(item_id)
            item = json.loads(path.read_text())
            named |= {(path.parent / a["href"]).resolve() for a in item["assets"].values()} | {path}
            model, chunks = item_series(item, path.parent)
            named |= set(chunks) | ({model} if model else set())
    return named


def _bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


@pytest.mark.slow
def test_a_year_of_daily_runs_is_pruned_and_keeps_every_file_a_kept_version_names(
    tmp_path: Path, demo_archive: DemoArchive, capsys: pytest.CaptureFixture
) -> None:
    cfg = make_workspace(tmp_path / "deploy", demo_archive)
    output = cfg.output.model_copy(update={"keep_all_days": 30, "keep_weekly_days": 120, "prune": False})
    cfg = cfg.model_copy(update={"output": output})
    pipeline = Pipeline(cfg)
    day = dt.datetime(2023, 1, 1, 23, 59, tzinfo=dt.UTC)
    pipeline.run_fit(until=day)
    end = dt.datetime(2023, 12, 31, 23, 59, tzinfo=dt.UTC)
    while day < end:  # one run a day; a run that finds a new acquisition publishes
        day += dt.timedelta(days=1)
        pipeline.run_update(day)
    layout = CatalogLayout(cfg.output.stac_dir)
    before = read_index(layout)
    assert len(before.publications) >= 70
    size_before, index_before = _bytes(layout.root), layout.index_path.stat().st_size

    dry = pipeline.prune(dry_run=True)
    assert read_index(layout) == before, "a dry run changes nothing"
    report = pipeline.prune()
    assert (report.removed, report.kept, report.files) == (dry.removed, dry.kept, dry.files) and report.removed
    after = read_index(layout)
    kept = kept_publications(before, RetentionPolicy(30, 120, True))
    assert [p.id for p in after.publications] == [p.id for p in kept] and after.latest == before.latest
    # Every file a kept version names is there and reads; every removed version's own files are gone.
    named = _files_named(layout, list(after.publications))
    for path in named:
        assert path.is_file(), path
    for rel in after.latest.mosaics.values():
        with rasterio.open(layout.collection_dir / rel) as src:
            src.read(1)
    for version in report.removed:
        assert not (layout.collection_dir / "mosaics" / version).exists()
    removed_items = {i for p in before.publications if p.id in report.removed for i in p.items.values()}
    removed_items -= {i for p in after.publications for i in p.items.values()}
    assert removed_items and not any(layout.item_path(i).parent.exists() for i in removed_items)
    # The catalog's links (collection -> month catalogs -> items) lead to the kept items exactly.
    assert set(linked_items(layout)) == {i for p in after.publications for i in p.items.values()}
    assert _bytes(layout.root) < size_before and layout.index_path.stat().st_size < index_before
    # What the published catalog costs per tile and year with this retention (docs/operations.md quotes it).
    tiles = len(pipeline.tiles)
    with capsys.disabled():
        print(
            f"\nretention: {len(before.publications)} -> {len(after.publications)} publications; "
            f"{size_before / tiles / 1e6:.2f} -> {_bytes(layout.root) / tiles / 1e6:.2f} MB per tile-year (128 px)"
        )

    # The command line: nothing more to prune; with another policy it prunes again and says so.
    assert main(["prune", "-c", str(cfg.output.dir.parent / "nrt-alerts.toml"), "--dry-run"]) == 0
    assert "would remove" in capsys.readouterr().out
