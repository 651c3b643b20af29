"""The published STAC tree as clients read it: month catalogs, per-item map links, extent, summaries, retention."""

from __future__ import annotations

import datetime as dt
import io
import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import morecantile
import numpy as np
import pystac
import pytest
import rasterio
from affine import Affine
from rasterio.crs import CRS

from catalog.encoding import Status, classification_classes
from catalog.mosaic import AreaGrid
from catalog.publish import Publisher, TileReport
from catalog.retention import RetentionPolicy, prune_locked
from catalog.store import CatalogLayout, read_index
from catalog.tree import linked_items
from catalog.validate import validate_object, validate_tree
from server.settings import ServerSettings

from conftest import serving

TMS = morecantile.tms.get("WebMercatorQuad")
CRS_UTM = CRS.from_epsg(32633)
SIDE = 16  # px per tile, 20 m pixels: two tiles side by side
ORIGIN = (500000.0, 5400000.0)
HISTORY_START = "2021-01-01T00:00:00Z"
FIRST = dt.datetime(2024, 1, 3, 10, 12, tzinfo=dt.UTC)
EVERY = dt.timedelta(days=15)
PUBLICATIONS = 16  # 2024-01-03 .. 2024-08-15: eight months
TILES = ("r000c000", "r000c001")


def _report(tile: int, when: dt.datetime) -> TileReport:
    """A tile whose every pixel is a confirmed alert (so a map of it is lit exactly where the tile is)."""
    transform = Affine(20, 0, ORIGIN[0] + tile * SIDE * 20, 0, -20, ORIGIN[1])
    shape = (SIDE, SIDE)
    days = (when.date() - dt.date(1970, 1, 1)).days
    layers = {
        "status": np.full(shape, Status.CONFIRMED_HIGH, np.uint8),
        "date": np.full(shape, days - 20, np.uint16),
        "confirmed": np.full(shape, days, np.uint16),
        "magnitude": np.full(shape, -0.3, np.float32),
        "confidence": np.full(shape, 12.0, np.float32),
    }
    properties = {
        "nrt:algorithm": "IQR",
        "nrt:index": "ndvi",
        "start_datetime": HISTORY_START,
        "end_datetime": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    return TileReport(TILES[tile], when, CRS_UTM, transform, layers, properties)


def _publisher(stac_dir: Path) -> Publisher:
    grid = AreaGrid(CRS_UTM, Affine(20, 0, ORIGIN[0], 0, -20, ORIGIN[1]), 2 * SIDE, SIDE)
    return Publisher(stac_dir, grid, title="Test alerts")


def _publish(stac_dir: Path, times: list[dt.datetime]) -> None:
    publisher = _publisher(stac_dir)
    for when in times:
        publisher.publish([_report(0, when), _report(1, when)], now=when + dt.timedelta(hours=1))


def _month(value: str | dt.datetime) -> str:
    when = dt.datetime.fromisoformat(value) if isinstance(value, str) else value
    return when.strftime("%Y-%m")


@dataclass
class Published:
    stac_dir: Path
    url: str


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Published]:
    """16 publications of two tiles, every 15 days over eight months, served over HTTP (tests must not modify it)."""
    stac_dir = tmp_path_factory.mktemp("structure") / "stac"
    _publish(stac_dir, [FIRST + n * EVERY for n in range(PUBLICATIONS)])
    with serving(ServerSettings(stac_dir=stac_dir)) as url:
        yield Published(stac_dir, url)


def _json_files(stac_dir: Path) -> list[Path]:
    return [p for p in stac_dir.rglob("*.json") if p.name != "publications.json" and not p.name.startswith(".")]


def test_pystac_walks_every_item_through_month_catalogs_over_http(published: Published) -> None:
    index = read_index(CatalogLayout(published.stac_dir))
    every_item = {item for p in index.publications for item in p.items.values()}
    assert len(every_item) == 2 * PUBLICATIONS

    root = pystac.Catalog.from_file(f"{published.url}/stac/catalog.json")
    (collection,) = root.get_children()
    assert isinstance(collection, pystac.Collection) and collection.id == "alerts"
    # The collection links months only; each month links the items of its data time.
    assert not collection.get_item_links()
    months = list(collection.get_children())
    assert [m.id for m in months] == [f"alerts-2024-{n:02d}" for n in range(1, 9)]
    seen = {}
    for month in months:
        assert month.get_self_href() == f"{published.url}/stac/alerts/months/{month.id[-7:]}/catalog.json"
        items = list(month.get_items())
        assert items, month.id
        for item in items:
            assert _month(item.datetime) == month.id[-7:]
            assert item.get_parent().id == month.id and item.get_collection().id == "alerts"
            # The parent link in the item's own file names the same month catalog.
            assert item.get_single_link("parent").get_absolute_href() == month.get_self_href()
            seen[item.id] = item
    assert set(seen) == every_item
    assert {i.id for i in root.get_items(recursive=True)} == every_item


def test_no_catalog_file_grows_with_the_number_of_publications(published: Published, tmp_path: Path) -> None:
    per_month = {}
    for path in _json_files(published.stac_dir):
        obj = json.loads(path.read_text())
        if obj["type"] == "Catalog" and obj["id"].startswith("alerts-"):
            per_month[obj["id"]] = sum(link["rel"] == "item" for link in obj["links"])
    # At most three publications a month, two tiles: 6 items (and 2 more links: root, parent) in any catalog file.
    assert max(per_month.values()) == 6 and sum(per_month.values()) == 2 * PUBLICATIONS
    # Items link root, parent and collection; the collection its root, parent and 8 months; the root 1 child.
    counts = {
        path.relative_to(published.stac_dir).as_posix(): len(json.loads(path.read_text())["links"])
        for path in _json_files(published.stac_dir)
        if "/months/" not in path.as_posix()
    }
    assert (counts.pop("catalog.json"), counts.pop("alerts/collection.json")) == (2, 2 + 8)
    assert len(counts) == 2 * PUBLICATIONS and set(counts.values()) == {3}
    # Publishing more into an existing month adds nothing to the collection or the root: only that month grows.
    stac_dir = tmp_path / "stac"
    shutil.copytree(published.stac_dir, stac_dir)
    layout = CatalogLayout(stac_dir)
    before = {p: json.loads(p.read_text()) for p in _json_files(stac_dir)}
    last = read_index(layout).latest.datetime
    _publish(stac_dir, [last + dt.timedelta(days=1), last + dt.timedelta(days=2)])
    after = json.loads(layout.collection_path.read_text())
    assert after["links"] == before[layout.collection_path]["links"]
    month = layout.month_path(_month(last))
    assert len(json.loads(month.read_text())["links"]) == len(before[month]["links"]) + 4


def test_tree_and_served_objects_validate_against_the_offline_schemas(published: Published) -> None:
    # root + collection + 8 months + 32 items, core and every declared extension.
    assert validate_tree(published.stac_dir / "catalog.json") == 1 + 1 + 8 + 2 * PUBLICATIONS
    index = read_index(CatalogLayout(published.stac_dir))
    item_id = index.latest.items[TILES[1]]
    for path in (
        "catalog.json",
        "alerts/collection.json",
        f"alerts/months/{_month(index.latest.datetime)}/catalog.json",
        f"alerts/items/{item_id}/{item_id}.json",
    ):
        url = f"{published.url}/stac/{path}"
        response = httpx.get(url)
        assert response.status_code == 200, url
        validate_object(response.json(), href=url)


def _lit_columns(png: bytes) -> np.ndarray:
    """The columns of a 256 px tile where any pixel is opaque."""
    with rasterio.MemoryFile(io.BytesIO(png)) as mem, mem.open() as src:
        alpha = src.read(4)
    return np.nonzero((alpha > 0).any(axis=0))[0]


def test_an_items_map_links_show_that_item_alone(published: Published) -> None:
    index = read_index(CatalogLayout(published.stac_dir))
    publication = index.publications[5]
    left = publication.items[TILES[0]]
    item = httpx.get(f"{published.url}/stac/alerts/items/{left}/{left}.json").json()
    links = {link["rel"]: link for link in item["links"]}
    assert links["xyz"]["href"].endswith(f"/{{z}}/{{x}}/{{y}}.png?version={publication.id}&item={left}")
    assert f"item {left}" in links["xyz"]["title"]

    # The TileJSON of the item's link spans the item's bbox, not the area's.
    tilejson = httpx.get(links["tilejson"]["href"]).json()
    np.testing.assert_allclose(tilejson["bounds"], item["bbox"], atol=1e-6)
    assert f"version={publication.id}" in tilejson["tiles"][0] and f"item={left}" in tilejson["tiles"][0]
    area = httpx.get(f"{published.url}/layers/alerts/WebMercatorQuad/tilejson.json?version={publication.id}").json()
    assert area["bounds"][2] > item["bbox"][2] + 0.003  # the area reaches a tile further east

    # A map tile over the seam of the two tiles: the item's link lights the west half only, the area's both.
    seam_lon, seam_lat = item["bbox"][2], (item["bbox"][1] + item["bbox"][3]) / 2
    tile = TMS.tile(seam_lon, seam_lat, 16)
    bounds = TMS.xy_bounds(tile)
    seam_x, _ = TMS.xy(seam_lon, seam_lat)
    seam_col = (seam_x - bounds.left) / (bounds.right - bounds.left) * 256
    xyz = links["xyz"]["href"].replace("{z}", str(tile.z)).replace("{x}", str(tile.x)).replace("{y}", str(tile.y))
    mine = _lit_columns(httpx.get(xyz).content)
    whole = _lit_columns(httpx.get(xyz.replace(f"&item={left}", "")).content)
    assert len(mine) > 20 and mine.max() <= seam_col + 1
    assert whole.max() > seam_col + 20 and set(mine) < set(whole)

    # An item the publication does not name is refused with the reason.
    other = index.publications[6].items[TILES[0]]
    response = httpx.get(links["tilejson"]["href"].replace(f"item={left}", f"item={other}"))
    assert response.status_code == 404 and other in response.json()["detail"]


def test_collection_extent_covers_every_item_and_summaries_describe_them(published: Published) -> None:
    collection = pystac.Collection.from_file(f"{published.url}/stac/alerts/collection.json")
    ((start, end),) = collection.extent.temporal.intervals
    items = list(collection.get_items(recursive=True))
    for item in items:
        assert start <= item.common_metadata.start_datetime <= item.common_metadata.end_datetime <= end
        assert item.common_metadata.start_datetime <= item.datetime <= end
    assert start == dt.datetime(2021, 1, 1, tzinfo=dt.UTC)
    assert end == FIRST + (PUBLICATIONS - 1) * EVERY == max(i.datetime for i in items)
    (bbox,) = collection.extent.spatial.bboxes
    assert bbox[0] == min(i.bbox[0] for i in items) and bbox[2] == max(i.bbox[2] for i in items)

    summaries = collection.summaries
    assert summaries.get_list("nrt:algorithm") == ["IQR"]
    assert summaries.get_list("nrt:index") == ["ndvi"]
    assert summaries.get_list("proj:code") == ["EPSG:32633"]
    assert summaries.get_list("gsd") == [20.0] and {i.common_metadata.gsd for i in items} == {20.0}
    classes = summaries.get_list("classification:classes")
    assert classes == classification_classes() and {c["value"] for c in classes} >= {0, 3, 6, 255}
    status_bands = collection.extra_fields["item_assets"]["status"]["raster:bands"]
    assert status_bands == [{"nodata": 255, "data_type": "uint8"}]


def test_prune_empties_and_removes_month_catalogs(published: Published, tmp_path: Path) -> None:
    stac_dir = tmp_path / "stac"
    shutil.copytree(published.stac_dir, stac_dir)
    layout = CatalogLayout(stac_dir)
    latest = read_index(layout).latest.datetime
    # Keep the last 60 days of data: 2024-06-16 .. 2024-08-15 (June keeps one publication of its two).
    with _publisher(stac_dir).lock():
        report = prune_locked(layout, RetentionPolicy(all_days=60, weekly_days=60, monthly=False))
    after = read_index(layout)
    assert len(report.removed) == 11 and len(after.publications) == 5
    kept_items = {item for p in after.publications for item in p.items.values()}
    assert all(latest - p.datetime <= dt.timedelta(days=60) for p in after.publications)
    # Emptied months are gone from the collection and from disk; June keeps only its kept items.
    assert sorted(p.name for p in layout.months_dir.iterdir()) == ["2024-06", "2024-07", "2024-08"]
    assert set(linked_items(layout)) == kept_items
    june = json.loads(layout.month_path("2024-06").read_text())
    assert [link["title"] for link in june["links"] if link["rel"] == "item"] == [
        after.publications[0].items[t] for t in TILES
    ]
    assert validate_tree(stac_dir / "catalog.json") == 1 + 1 + 3 + len(kept_items)
    with serving(ServerSettings(stac_dir=stac_dir)) as url:
        collection = pystac.Collection.from_file(f"{url}/stac/alerts/collection.json")
        assert [c.id for c in collection.get_children()] == ["alerts-2024-06", "alerts-2024-07", "alerts-2024-08"]
        assert {i.id for i in collection.get_items(recursive=True)} == kept_items


def _flatten(layout: CatalogLayout) -> None:
    """Rewrite a catalog into the flat layout of earlier releases: item links in the collection, no months."""
    collection = json.loads(layout.collection_path.read_text())
    items = sorted(linked_items(layout))
    collection["links"] = [link for link in collection["links"] if link["rel"] in ("root", "parent")] + [
        {"rel": "item", "href": f"./items/{i}/{i}.json", "type": "application/geo+json", "title": i} for i in items
    ]
    first = read_index(layout).publications[0].datetime.strftime("%Y-%m-%dT%H:%M:%SZ")
    collection["extent"]["temporal"]["interval"][0][0] = first  # earlier releases started at the first item
    del collection["summaries"]
    layout.collection_path.write_text(json.dumps(collection))
    for item_id in items:
        path = layout.item_path(item_id)
        item = json.loads(path.read_text())
        item["links"][1]["href"] = "../../collection.json"
        path.write_text(json.dumps(item))
    shutil.rmtree(layout.months_dir)


def test_a_flat_catalog_is_read_then_migrated_by_the_next_publication(tmp_path: Path) -> None:
    stac_dir = tmp_path / "stac"
    times = [FIRST + n * EVERY for n in range(4)]  # January .. February
    _publish(stac_dir, times)
    layout = CatalogLayout(stac_dir)
    _flatten(layout)
    old_items = set(linked_items(layout))
    assert len(old_items) == 8 and not layout.months_dir.exists()
    with serving(ServerSettings(stac_dir=stac_dir)) as url:
        collection = pystac.Collection.from_file(f"{url}/stac/alerts/collection.json")
        assert {i.id for i in collection.get_items()} == old_items

    _publish(stac_dir, [times[-1] + EVERY])  # March
    collection = json.loads(layout.collection_path.read_text())
    assert not [link for link in collection["links"] if link["rel"] == "item"]
    assert [link["href"] for link in collection["links"] if link["rel"] == "child"] == [
        f"./months/2024-{n:02d}/catalog.json" for n in (1, 2, 3)
    ]
    assert collection["extent"]["temporal"]["interval"][0][0] == HISTORY_START
    assert collection["summaries"]["nrt:algorithm"] == ["IQR"]
    every_item = {item for p in read_index(layout).publications for item in p.items.values()}
    assert set(linked_items(layout)) == every_item and old_items < every_item
    assert validate_tree(stac_dir / "catalog.json") == 1 + 1 + 3 + 10
    with serving(ServerSettings(stac_dir=stac_dir)) as url:
        root = pystac.Catalog.from_file(f"{url}/stac/catalog.json")
        assert {i.id for i in root.get_items(recursive=True)} == every_item


def test_prune_of_a_flat_catalog_drops_its_item_links(tmp_path: Path) -> None:
    stac_dir = tmp_path / "stac"
    _publish(stac_dir, [FIRST + n * EVERY for n in range(4)])
    layout = CatalogLayout(stac_dir)
    _flatten(layout)
    with _publisher(stac_dir).lock():
        report = prune_locked(layout, RetentionPolicy(all_days=15, weekly_days=15, monthly=False))
    assert len(report.removed) == 2
    kept = {item for p in read_index(layout).publications for item in p.items.values()}
    assert set(linked_items(layout)) == kept and len(kept) == 4
    assert validate_tree(stac_dir / "catalog.json") == 1 + 1 + 4


def _join(base: str, href: str) -> str:
    return str(httpx.URL(base).join(href))


def test_every_link_of_every_served_object_leads_to_a_served_object(published: Published) -> None:
    """What a STAC browser does: follow child and item links from the root, and resolve root/parent/collection."""
    seen: dict[str, dict] = {}
    pending = [f"{published.url}/stac/catalog.json"]
    with httpx.Client() as client:
        while pending:
            url = pending.pop()
            if url in seen:
                continue
            response = client.get(url)
            assert response.status_code == 200, url
            seen[url] = response.json()
            for link in seen[url]["links"]:
                if link["rel"] in ("child", "item", "root", "parent", "collection"):
                    pending.append(_join(url, link["href"]))
    kinds = [obj["type"] for obj in seen.values()]
    assert (kinds.count("Catalog"), kinds.count("Collection"), kinds.count("Feature")) == (1 + 8, 1, 2 * PUBLICATIONS)
    # Breadcrumbs: every object's parent links back to it (an item's parent is its month, a month's the collection).
    for url, obj in seen.items():
        for parent in [_join(url, link["href"]) for link in obj["links"] if link["rel"] == "parent"]:
            linked = {_join(parent, link["href"]) for link in seen[parent]["links"] if link["rel"] in ("child", "item")}
            assert url in linked, url
