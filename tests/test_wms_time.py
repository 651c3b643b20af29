"""WMS TIME as GeoServer's WMS-T reads it, over real HTTP: which publication an instant picks, which alerts a range,
a reduced-precision time or a list draws (pixel for pixel against the published mosaics), and the errors."""

from __future__ import annotations

import datetime as dt
import io
import xml.etree.ElementTree as ET
from dataclasses import dataclass

import httpx
import numpy as np
import pytest
import rasterio
from owslib.wms import WebMapService
from PIL import Image

from catalog.encoding import days_since_epoch
from catalog.store import CatalogLayout, Publication, PublicationIndex, read_index
from server.wms.styles import layer_styles

from conftest import DemoRun

STYLE = "alerts-all"
SHOWN = [code for code, rgba in layer_styles("alerts")[STYLE].colormap.items() if rgba[3] > 0]


@dataclass(frozen=True)
class Area:
    """The published area: its grid, and each publication's status and first-detection date mosaics."""

    index: PublicationIndex
    crs: str
    bounds: tuple[float, float, float, float]
    shape: tuple[int, int]
    status: dict[str, np.ndarray]
    days: dict[str, np.ndarray]


@pytest.fixture(scope="module")
def area(static_run: DemoRun) -> Area:
    layout = CatalogLayout(static_run.cfg.output.stac_dir)
    index = read_index(layout)
    status, days = {}, {}
    for publication in index.publications:
        with rasterio.open(layout.collection_dir / publication.mosaics["status"]) as src:
            status[publication.id] = src.read(1)
            crs, bounds, shape = src.crs.to_string(), tuple(src.bounds), (src.height, src.width)
        with rasterio.open(layout.collection_dir / publication.mosaics["date"]) as src:
            days[publication.id] = src.read(1).astype("int64")
    return Area(index, crs, bounds, shape, status, days)


def getmap(server: str, area: Area, time: str | None, **extra: str) -> httpx.Response:
    """A 1.3.0 GetMap of the whole area on its own grid (one map pixel per published pixel)."""
    params = {
        "SERVICE": "WMS",
        "VERSION": "1.3.0",
        "REQUEST": "GetMap",
        "LAYERS": "alerts",
        "STYLES": STYLE,
        "CRS": area.crs,
        "BBOX": ",".join(map(str, area.bounds)),
        "WIDTH": str(area.shape[1]),
        "HEIGHT": str(area.shape[0]),
        "FORMAT": "image/png",
        "TRANSPARENT": "TRUE",
    }
    if time is not None:
        params["TIME"] = time
    params.update(extra)
    return httpx.get(f"{server}/wms", params=params, timeout=60)


def drawn(response: httpx.Response) -> np.ndarray:
    """Where a transparent PNG map is not transparent."""
    assert response.status_code == 200, response.text
    return np.asarray(Image.open(io.BytesIO(response.content)).convert("RGBA"))[..., 3] > 0


def alerts(area: Area, publication: Publication, first: str | None = None, last: str | None = None) -> np.ndarray:
    """The pixels a publication shows as alerts, first detected from `first` to `last` (inclusive) if given."""
    keep = np.isin(area.status[publication.id], SHOWN)
    days = area.days[publication.id]
    if first or last:
        keep &= days > 0
    if first:
        keep &= days >= days_since_epoch(dt.date.fromisoformat(first))
    if last:
        keep &= days <= days_since_epoch(dt.date.fromisoformat(last))
    return keep


def iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def exception_code(response: httpx.Response) -> tuple[str | None, str]:
    assert response.status_code == 400, response.text
    exception = next(el for el in ET.fromstring(response.content) if el.tag.endswith("ServiceException"))
    return exception.get("code"), exception.text or ""


def test_the_demo_has_four_publications_with_growing_alerts(area: Area) -> None:
    # The cases below rely on this history: the fit (no alert), then three updates each adding alerts.
    counts = [int(alerts(area, p).sum()) for p in area.index.publications]
    assert len(counts) == 4 and counts[0] == 0 and counts[1] < counts[2] <= counts[3], counts


def test_an_instant_selects_the_nearest_publication(static_server: str, area: Area) -> None:
    publications = area.index.publications
    for older, newer in zip(publications, publications[1:], strict=False):
        gap = newer.datetime - older.datetime
        for instant, expected in ((older.datetime + gap * 0.4, older), (older.datetime + gap * 0.6, newer)):
            response = getmap(static_server, area, iso(instant))
            assert response.headers["x-publication-version"] == expected.id, instant
            assert response.headers["warning"] == f"99 Nearest value used: time={iso(expected.datetime)} ISO8601"
            assert (drawn(response) == alerts(area, expected)).all(), instant
    # The analyst's case: midnight of a publication's day is 10 hours from it, and months from the one before.
    third = publications[2]
    midnight = third.datetime.replace(hour=0, minute=0)
    assert getmap(static_server, area, iso(midnight)).headers["x-publication-version"] == third.id
    # Before the first publication: the first one (QGIS's first frame), not an error.
    early = getmap(static_server, area, iso(publications[0].datetime - dt.timedelta(days=400)))
    assert early.headers["x-publication-version"] == publications[0].id and not drawn(early).any()
    exact = getmap(static_server, area, iso(third.datetime))
    assert exact.headers["x-publication-version"] == third.id and "warning" not in exact.headers
    # A range from an instant to itself is that instant.
    same = getmap(static_server, area, f"{iso(third.datetime)}/{iso(third.datetime)}")
    assert same.headers["x-publication-version"] == third.id and (drawn(same) == alerts(area, third)).all()
    for value in (None, "current", "CURRENT", "latest", "2100-01-01T00:00:00Z"):
        response = getmap(static_server, area, value)
        assert response.headers["x-publication-version"] == publications[-1].id, value
        assert (drawn(response) == alerts(area, publications[-1])).all()
    # The WMTS Time values (publication ids) name the same publications.
    assert getmap(static_server, area, third.id).headers["x-publication-version"] == third.id


@pytest.mark.parametrize(
    ("time", "publication", "first", "last"),
    [
        # The analyst's range: the alerts first detected in it, as the first publication after it knows them.
        ("2024-03-01/2024-05-01", 3, "2024-03-01", "2024-05-01"),
        ("2024-03-01T00:00:00Z/2024-05-01T00:00:00Z", 3, "2024-03-01", "2024-04-30"),
        ("2024-03", 3, "2024-03-01", "2024-03-31"),
        ("2024-01/2024-02", 2, "2024-01-01", "2024-02-29"),
        ("2023", 2, "2023-01-01", "2023-12-31"),
        ("2023-12-01/..", 3, "2023-12-01", None),
        ("../2023-12-31", 2, None, "2023-12-31"),
        ("2024-03-11", 3, "2024-03-11", "2024-03-11"),  # the day ends after that day's publication
        ("2021", 0, "2021-01-01", "2021-12-31"),
    ],
)
def test_a_range_draws_the_alerts_detected_in_it(
    static_server: str, area: Area, time: str, publication: int, first: str | None, last: str | None
) -> None:
    expected = area.index.publications[publication]
    response = getmap(static_server, area, time)
    assert response.headers["x-publication-version"] == expected.id
    want = alerts(area, expected, first, last)
    assert (drawn(response) == want).all(), f"{int(drawn(response).sum())} px drawn, {int(want.sum())} expected"


def test_range_counts_are_those_of_the_detection_filter(static_server: str, area: Area) -> None:
    # A range is the vendor filter detected_after/detected_before on the publication it selects.
    ranged = drawn(getmap(static_server, area, "2024-03-01/2024-05-01"))
    filtered = drawn(getmap(static_server, area, None, DETECTED_AFTER="2024-03-01", DETECTED_BEFORE="2024-05-01"))
    everything = drawn(getmap(static_server, area, "2024-05-01T00:00:00Z"))
    assert 0 < ranged.sum() < everything.sum()
    assert (ranged == filtered).all()
    # Both narrow each other: a range and a vendor filter keep what both keep.
    both = drawn(getmap(static_server, area, "2024-03-01/2024-05-01", DETECTED_BEFORE="2024-03-31"))
    assert (both == alerts(area, area.index.publications[3], "2024-03-01", "2024-03-31")).all()


def test_a_list_draws_the_union(static_server: str, area: Area) -> None:
    latest = area.index.publications[3]
    response = getmap(static_server, area, "2023-12,2024-03")
    assert response.headers["x-publication-version"] == latest.id
    want = alerts(area, latest, "2023-12-01", "2023-12-31") | alerts(area, latest, "2024-03-01", "2024-03-31")
    assert (drawn(response) == want).all()
    # An instant in a list stands for everything its publication had detected.
    third = area.index.publications[2]
    union = drawn(getmap(static_server, area, f"2024-06,{iso(third.datetime)}"))
    known = area.days[latest.id] <= days_since_epoch(third.datetime.date())
    assert (union == alerts(area, latest, "2024-06-01", "2024-06-30") | (alerts(area, latest) & known)).all()


def test_adjacent_ranges_never_count_a_day_twice(static_server: str, area: Area) -> None:
    # QGIS's animation frames share their ends ([a, b], then [b, c]): a detection day counts where its noon falls.
    # The demo detected alerts on 2024-01-06, 2024-02-05 and 2024-03-26: the frame ends fall on those days.
    ends = ["2023-12-27T10:12:00Z", "2024-01-06T10:12:00Z", "2024-02-05T00:00:00Z", "2024-03-26T13:00:00Z"]
    days = [("2023-12-27", "2024-01-05", 2), ("2024-01-06", "2024-02-04", 2), ("2024-02-05", "2024-03-26", 3)]
    frames = []
    for (start, end), (first, last, publication) in zip(zip(ends, ends[1:], strict=False), days, strict=True):
        frame = drawn(getmap(static_server, area, f"{start}/{end}"))
        assert (frame == alerts(area, area.index.publications[publication], first, last)).all(), (start, end)
        frames.append(frame)
    assert [int(frame.sum()) > 0 for frame in frames] == [False, True, True]
    assert np.sum(frames, axis=0).max() == 1


@pytest.mark.parametrize(
    ("time", "reason"),
    [
        ("2024-05-01/2024-03-01", "starts after it ends"),
        ("2024-13", "not an ISO 8601 time"),
        ("last tuesday", "not an ISO 8601 time"),
        ("2024-03-01/2024-05-01/P1D", "periods"),
        (",".join(["2024"] * 101), "at most 100"),
    ],
)
def test_bad_time_values_are_invalid_dimension_values(static_server: str, area: Area, time: str, reason: str) -> None:
    code, text = exception_code(getmap(static_server, area, time))
    assert code == "InvalidDimensionValue" and reason in text


def test_capabilities_declare_what_time_accepts(static_server: str, area: Area) -> None:
    times = [iso(p.datetime) for p in area.index.publications]
    for version in ("1.3.0", "1.1.1"):
        wms = WebMapService(f"{static_server}/wms", version=version)
        root = ET.fromstring(
            httpx.get(f"{static_server}/wms", params={"REQUEST": "GetCapabilities", "VERSION": version}).content
        )
        tag = "{http://www.opengis.net/wms}Dimension" if version == "1.3.0" else "Extent"
        element = next(root.iter(tag))
        assert element.get("nearestValue") == "1" and element.get("multipleValues") == "1"
        assert element.get("current") == "1" and element.get("default") == times[-1]
        assert element.text.split(",") == times
        if version == "1.3.0":
            assert wms["alerts"].dimensions["time"]["values"] == times
        else:
            assert wms["alerts"].timepositions == times
