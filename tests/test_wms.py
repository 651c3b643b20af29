"""The WMS at /wms through real clients over HTTP: OWSLib (1.3.0 and 1.1.1), GDAL's WMS driver and httpx."""

from __future__ import annotations

import datetime as dt
import io
import json
import socket
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import numpy as np
import pyproj
import pytest
import rasterio
from numpy.lib.stride_tricks import sliding_window_view
from owslib.util import ServiceException
from owslib.wms import WebMapService
from PIL import Image
from rasterio.windows import Window

from catalog.encoding import CONFIRMED_CODES, FIRST_CODES, STATUS_CLASSES, days_since_epoch, status_colormap
from catalog.layers import PUBLISHED_LAYERS
from catalog.store import CatalogLayout, PublicationIndex, read_index
from server.settings import ServerSettings

from conftest import DemoRun, serving

WMS_NS = "{http://www.opengis.net/wms}"
XLINK_HREF = "{http://www.w3.org/1999/xlink}href"
ALERT_RGBA = {c.rgba for c in STATUS_CLASSES if 1 <= c.code <= 8}
CONFIRMED_RGBA = {status_colormap()[code] for code in CONFIRMED_CODES}
TRANSPARENT = (0, 0, 0, 0)
LAYER_NAMES = [spec.name for spec in PUBLISHED_LAYERS]
SIZE = 121  # odd: pixel (60, 60) is centred on the site
HALF_METRES = 600.0  # half the side of the maps drawn around the site


@dataclass(frozen=True)
class Area:
    """The latest published mosaic and the ground truth, on the area grid."""

    index: PublicationIndex
    status: np.ndarray
    days: np.ndarray
    crs: pyproj.CRS
    bounds: tuple[float, float, float, float]
    transform: rasterio.Affine


@dataclass(frozen=True)
class Site:
    """A pixel deep inside a confirmed clear-cut."""

    row: int
    col: int
    lon: float
    lat: float
    planted_day: int


@pytest.fixture(scope="module")
def area(static_run: DemoRun) -> Area:
    layout = CatalogLayout(static_run.cfg.output.stac_dir)
    index = read_index(layout)
    with rasterio.open(layout.collection_dir / index.latest.mosaics["status"]) as src:
        status = src.read(1)
        crs, bounds, transform = pyproj.CRS.from_wkt(src.crs.to_wkt()), tuple(src.bounds), src.transform
    with rasterio.open(static_run.cfg.source.catalog.parent / "ground_truth.tif") as src:
        days = src.read(1)
    return Area(index, status, days, crs, bounds, transform)


@pytest.fixture(scope="module")
def site(area: Area) -> Site:
    # Pixels whose whole 5 x 5 neighbourhood is confirmed and truly disturbed: any map there shows the alert.
    confirmed = np.isin(area.status, CONFIRMED_CODES) & (area.days > 0)
    interior = sliding_window_view(np.pad(confirmed, 2), (5, 5)).all(axis=(2, 3))
    rows, cols = np.nonzero(interior)
    assert len(rows) > 0, "the demo must have a confirmed clear-cut at least 5 px wide"
    row, col = int(rows[len(rows) // 2]), int(cols[len(cols) // 2])
    x, y = area.transform * (col + 0.5, row + 0.5)
    lon, lat = pyproj.Transformer.from_crs(area.crs, "EPSG:4326", always_xy=True).transform(x, y)
    return Site(row, col, float(lon), float(lat), int(area.days[row, col]))


def lonlat_box(site: Site) -> tuple[float, float, float, float]:
    """West, south, east, north of a square of about 1.2 km centred on the site."""
    dlat = HALF_METRES / 111_320
    dlon = dlat / np.cos(np.radians(site.lat))
    return site.lon - dlon, site.lat - dlat, site.lon + dlon, site.lat + dlat


def mercator_box(site: Site) -> tuple[float, float, float, float]:
    """The same square in EPSG:3857 (Mercator metres are 1/cos(lat) ground metres)."""
    x, y = pyproj.Transformer.from_crs("EPSG:4326", "EPSG:3857", always_xy=True).transform(site.lon, site.lat)
    half = HALF_METRES / np.cos(np.radians(site.lat))
    return x - half, y - half, x + half, y + half


def latlon_bbox_param(site: Site) -> str:
    """A WMS 1.3.0 EPSG:4326 BBOX: latitude first."""
    west, south, east, north = lonlat_box(site)
    return f"{south},{west},{north},{east}"


def getmap_params(site: Site, **extra: str) -> dict[str, str]:
    """A 1.3.0 GetMap over the site in EPSG:4326."""
    params = {
        "SERVICE": "WMS",
        "VERSION": "1.3.0",
        "REQUEST": "GetMap",
        "LAYERS": "alerts",
        "STYLES": "",
        "CRS": "EPSG:4326",
        "BBOX": latlon_bbox_param(site),
        "WIDTH": str(SIZE),
        "HEIGHT": str(SIZE),
        "FORMAT": "image/png",
        "TRANSPARENT": "TRUE",
    }
    params.update(extra)
    return params


def rgba_of(png: bytes) -> np.ndarray:
    """A PNG or JPEG as (rows, cols, 4) RGBA."""
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGBA"))


def colours(rgba: np.ndarray) -> set[tuple[int, ...]]:
    return {tuple(int(v) for v in px) for px in rgba.reshape(-1, 4)}


def count(rgba: np.ndarray, palette: set[tuple[int, ...]]) -> int:
    return sum(1 for px in map(tuple, rgba.reshape(-1, 4)) if px in palette)


def assert_alert_map(png: bytes) -> None:
    """Confirmed-alert colours at the centre and around it; transparent wherever there is no alert."""
    rgba = rgba_of(png)
    assert rgba.shape == (SIZE, SIZE, 4)
    assert tuple(int(v) for v in rgba[SIZE // 2, SIZE // 2]) in CONFIRMED_RGBA
    assert count(rgba, CONFIRMED_RGBA) > 100
    assert (rgba[..., 3] == 0).mean() > 0.3, "most of the map is not an alert and must be transparent"
    assert not colours(rgba) - ALERT_RGBA - {TRANSPARENT}


def exception_of(response: httpx.Response) -> tuple[str, str | None]:
    """The version and code of a ServiceExceptionReport."""
    assert 400 <= response.status_code < 500, response.text
    assert response.headers["content-type"].split(";")[0] in ("text/xml", "application/vnd.ogc.se_xml")
    root = ET.fromstring(response.content)
    assert root.tag.endswith("ServiceExceptionReport"), response.text
    if root.get("version") == "1.3.0":
        assert root.tag == "{http://www.opengis.net/ogc}ServiceExceptionReport"
    exception = next(el for el in root if el.tag.endswith("ServiceException"))
    assert exception.text and "Traceback" not in response.text
    return root.get("version"), exception.get("code")


def lonlat_bounds(area: Area) -> tuple[float, ...]:
    return pyproj.Transformer.from_crs(area.crs, "EPSG:4326", always_xy=True).transform_bounds(*area.bounds)


def mercator_bounds(area: Area) -> tuple[float, ...]:
    return pyproj.Transformer.from_crs(area.crs, "EPSG:3857", always_xy=True).transform_bounds(*area.bounds)


def publication_times(area: Area) -> list[dt.datetime]:
    return [p.datetime for p in area.index.publications]


def parse_times(values: list[str]) -> list[dt.datetime]:
    return [dt.datetime.fromisoformat(v.strip()) for v in values]


# --- GetCapabilities -------------------------------------------------------------------------------------------


def test_capabilities_130_with_owslib(static_server: str, area: Area) -> None:
    wms = WebMapService(f"{static_server}/wms", version="1.3.0")
    assert wms.identification.type == "WMS"
    assert list(wms.contents) == LAYER_NAMES
    west, south, east, north = lonlat_bounds(area)
    native = f"EPSG:{area.crs.to_epsg()}"
    for name in LAYER_NAMES:
        layer = wms[name]
        assert layer.queryable == 1 and layer.title and layer.abstract
        np.testing.assert_allclose(layer.boundingBoxWGS84, (west, south, east, north), atol=1e-6)
        assert set(layer.crsOptions) == {"EPSG:3857", "EPSG:4326", "CRS:84", native}
        # OWSLib gives every box back as x/y, whatever the axis order on the wire.
        boxes = {box[4]: box[:4] for box in layer.crs_list}
        np.testing.assert_allclose(boxes["EPSG:4326"], (west, south, east, north), atol=1e-6)
        np.testing.assert_allclose(boxes["CRS:84"], (west, south, east, north), atol=1e-6)
        np.testing.assert_allclose(boxes["EPSG:3857"], mercator_bounds(area), atol=0.01)
        np.testing.assert_allclose(boxes[native], area.bounds, atol=0.01)
        time = layer.dimensions["time"]
        assert time["units"] == "ISO8601" and time["nearestValue"] == "1"
        assert parse_times(time["values"]) == publication_times(area)
        assert dt.datetime.fromisoformat(time["default"]) == area.index.latest.datetime
    assert set(wms["alerts"].styles) == {"default", "alerts-all", "context"}
    for name in LAYER_NAMES:
        for style in wms[name].styles.values():
            legend = httpx.get(style["legend"], timeout=30)
            assert legend.status_code == 200 and legend.headers["content-type"] == "image/png"
            image = Image.open(io.BytesIO(legend.content))
            assert image.size == (int(style["legend_width"]), int(style["legend_height"]))
    assert {op.name for op in wms.operations} >= {"GetCapabilities", "GetMap", "GetFeatureInfo"}
    assert "image/png" in wms.getOperationByName("GetMap").formatOptions

    # On the wire, 1.3.0 EPSG:4326 boxes are latitude first; CRS:84 longitude first.
    root = ET.fromstring(wms.getServiceXML())
    layer = next(el for el in root.iter(f"{WMS_NS}Layer") if el.findtext(f"{WMS_NS}Name") == "alerts")
    wire = {
        box.get("CRS"): [float(box.get(k)) for k in ("minx", "miny", "maxx", "maxy")]
        for box in layer.findall(f"{WMS_NS}BoundingBox")
    }
    np.testing.assert_allclose(wire["EPSG:4326"], (south, west, north, east), atol=1e-6)
    np.testing.assert_allclose(wire["CRS:84"], (west, south, east, north), atol=1e-6)


def test_capabilities_111_with_owslib(static_server: str, area: Area) -> None:
    wms = WebMapService(f"{static_server}/wms", version="1.1.1")
    assert list(wms.contents) == LAYER_NAMES
    west, south, east, north = lonlat_bounds(area)
    native = f"EPSG:{area.crs.to_epsg()}"
    for name in LAYER_NAMES:
        layer = wms[name]
        assert layer.queryable == 1
        np.testing.assert_allclose(layer.boundingBoxWGS84, (west, south, east, north), atol=1e-6)
        assert set(layer.crsOptions) == {"EPSG:3857", "EPSG:4326", "CRS:84", native}
        assert parse_times(layer.timepositions) == publication_times(area)
        assert dt.datetime.fromisoformat(layer.defaulttimeposition) == area.index.latest.datetime
        assert all("REQUEST=GetLegendGraphic" in style["legend"] for style in layer.styles.values())
    # 1.1.1 writes every box x/y (longitude first), and the time as Dimension + Extent.
    root = ET.fromstring(wms.getServiceXML())
    layer = next(el for el in root.iter("Layer") if el.findtext("Name") == "alerts")
    wire = {
        box.get("SRS"): [float(box.get(k)) for k in ("minx", "miny", "maxx", "maxy")]
        for box in layer.findall("BoundingBox")
    }
    np.testing.assert_allclose(wire["EPSG:4326"], (west, south, east, north), atol=1e-6)
    np.testing.assert_allclose(wire["EPSG:3857"], mercator_bounds(area), atol=0.01)
    np.testing.assert_allclose(wire[native], area.bounds, atol=0.01)
    assert layer.find("Dimension").get("units") == "ISO8601"
    assert layer.find("Extent").get("nearestValue") == "1"


def test_capabilities_without_version_urls_behind_a_proxy(static_server: str) -> None:
    plain = httpx.get(f"{static_server}/wms", params={"SERVICE": "WMS", "REQUEST": "GetCapabilities"})
    assert plain.status_code == 200 and plain.headers["content-type"].startswith("text/xml")
    root = ET.fromstring(plain.content)
    assert root.tag == f"{WMS_NS}WMS_Capabilities" and root.get("version") == "1.3.0"
    hrefs = [el.get(XLINK_HREF) for el in root.iter(f"{WMS_NS}OnlineResource")]
    assert hrefs and all(h.startswith(f"{static_server}/wms") for h in hrefs)

    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "maps.example.org", "X-Forwarded-Prefix": "/fr"}
    behind = httpx.get(f"{static_server}/wms?service=WMS&request=GetCapabilities&version=1.1.1", headers=forwarded)
    root = ET.fromstring(behind.content)
    assert root.tag == "WMT_MS_Capabilities"
    hrefs = [el.get(XLINK_HREF) for el in root.iter("OnlineResource")]
    assert hrefs and all(h.startswith("https://maps.example.org/fr/wms") for h in hrefs)
    # A malformed forwarded host is ignored, never written into the document.
    odd = httpx.get(f"{static_server}/wms?service=WMS&request=GetCapabilities", headers={"X-Forwarded-Host": "a b<"})
    assert b"a b" not in odd.content and f"{static_server}/wms".encode() in odd.content


def test_capabilities_before_any_publication_use_the_public_url(tmp_path: Path) -> None:
    settings = ServerSettings(stac_dir=tmp_path / "stac", public_url="https://alerts.example.org/base")
    with serving(settings) as url:
        # The configured public URL is the operator's word: it wins over forwarded headers.
        headers = {"X-Forwarded-Host": "elsewhere.example.org"}
        wms = WebMapService(f"{url}/wms", version="1.3.0", headers=headers)
        assert list(wms.contents) == []
        assert wms.getOperationByName("GetMap").methods[0]["url"] == "https://alerts.example.org/base/wms?"
        params = {"REQUEST": "GetMap", "VERSION": "1.3.0", "LAYERS": "alerts", "CRS": "EPSG:3857"}
        response = httpx.get(f"{url}/wms", params=params)
        assert response.status_code == 404 and exception_of(response)[1] == "LayerNotDefined"


# --- GetMap ----------------------------------------------------------------------------------------------------


def test_getmap_130_latlon_with_owslib(static_server: str, site: Site) -> None:
    wms = WebMapService(f"{static_server}/wms", version="1.3.0")
    image = wms.getmap(
        layers=["alerts"],
        styles=["default"],
        srs="EPSG:4326",
        bbox=lonlat_box(site),  # OWSLib swaps it to latitude first for EPSG:4326
        size=(SIZE, SIZE),
        format="image/png",
        transparent=True,
    )
    sent = parse_qs(urlsplit(wms.request).query)
    assert sent["crs"] == ["EPSG:4326"]
    assert float(sent["bbox"][0].split(",")[0]) == pytest.approx(lonlat_box(site)[1])
    assert_alert_map(image.read())
    # The same request written by hand, latitude first, draws the same picture.
    direct = httpx.get(f"{static_server}/wms", params=getmap_params(site), timeout=30)
    assert direct.status_code == 200 and direct.headers["content-type"] == "image/png"
    assert_alert_map(direct.content)


def test_getmap_111_web_mercator_with_owslib(static_server: str, site: Site) -> None:
    wms = WebMapService(f"{static_server}/wms", version="1.1.1")
    image = wms.getmap(
        layers=["alerts"],
        srs="EPSG:3857",
        bbox=mercator_box(site),
        size=(SIZE, SIZE),
        format="image/png",
        transparent=True,
    )
    assert_alert_map(image.read())


def test_getmap_time_selects_the_nearest_publication(static_server: str, site: Site, area: Area) -> None:
    # tests/test_wms_time.py covers TIME in depth (ranges, reduced precision, lists).
    first, second = area.index.publications[0], area.index.publications[1]
    before = httpx.get(f"{static_server}/wms", params=getmap_params(site, TIME=first.datetime.isoformat()))
    assert before.status_code == 200 and before.headers["x-publication-version"] == first.id
    rgba = rgba_of(before.content)
    assert not colours(rgba) & ALERT_RGBA, "right after the fit nothing alerts"
    nearer_first = first.datetime + (second.datetime - first.datetime) * 0.4
    for time in (nearer_first.strftime("%Y-%m-%dT%H:%M:%SZ"), "2000-01-01T00:00:00Z"):
        response = httpx.get(f"{static_server}/wms", params=getmap_params(site, TIME=time))
        assert response.headers["x-publication-version"] == first.id, time
    for time in ("current", area.index.latest.datetime.isoformat(), "2100-01-01T00:00:00Z"):
        response = httpx.get(f"{static_server}/wms", params=getmap_params(site, TIME=time))
        assert response.headers["x-publication-version"] == area.index.latest.id, time
        assert_alert_map(response.content)


def test_getmap_opaque_png_jpeg_and_other_layers(static_server: str, site: Site) -> None:
    opaque = httpx.get(f"{static_server}/wms", params=getmap_params(site, TRANSPARENT="FALSE", BGCOLOR="0x000000"))
    image = Image.open(io.BytesIO(opaque.content))
    assert image.mode == "RGB"
    rgb = np.asarray(image)
    assert tuple(rgb[SIZE // 2, SIZE // 2]) in {c[:3] for c in CONFIRMED_RGBA}
    assert (rgb.sum(axis=2) == 0).mean() > 0.3, "no alert shows the black background"
    jpeg = httpx.get(f"{static_server}/wms", params=getmap_params(site, FORMAT="image/jpeg"))
    assert jpeg.headers["content-type"] == "image/jpeg" and jpeg.content[:2] == b"\xff\xd8"
    for name in LAYER_NAMES[1:]:
        response = httpx.get(f"{static_server}/wms", params=getmap_params(site, LAYERS=name), timeout=30)
        assert response.status_code == 200, response.text
        rgba = rgba_of(response.content)
        assert rgba[SIZE // 2, SIZE // 2, 3] == 255, f"{name} must draw the clear-cut"
    context = httpx.get(f"{static_server}/wms", params=getmap_params(site, STYLES="context"))
    assert (rgba_of(context.content)[..., 3] == 255).mean() > 0.5


def test_gdal_wms_driver_reads_the_layer(static_server: str, site: Site, area: Area, tmp_path: Path) -> None:
    minx, miny, maxx, maxy = mercator_bounds(area)
    resolution = 5.0
    description = f"""<GDAL_WMS>
  <Service name="WMS">
    <Version>1.1.1</Version>
    <ServerUrl>{static_server}/wms?</ServerUrl>
    <SRS>EPSG:3857</SRS>
    <ImageFormat>image/png</ImageFormat>
    <Layers>alerts</Layers>
    <Transparent>TRUE</Transparent>
  </Service>
  <DataWindow>
    <UpperLeftX>{minx}</UpperLeftX><UpperLeftY>{maxy}</UpperLeftY>
    <LowerRightX>{maxx}</LowerRightX><LowerRightY>{miny}</LowerRightY>
    <SizeX>{round((maxx - minx) / resolution)}</SizeX><SizeY>{round((maxy - miny) / resolution)}</SizeY>
  </DataWindow>
  <BandsCount>4</BandsCount>
  <BlockSizeX>256</BlockSizeX><BlockSizeY>256</BlockSizeY>
</GDAL_WMS>"""
    path = tmp_path / "alerts_wms.xml"
    path.write_text(description)
    x, y = pyproj.Transformer.from_crs("EPSG:4326", "EPSG:3857", always_xy=True).transform(site.lon, site.lat)
    with rasterio.Env(GDAL_HTTP_TIMEOUT="30", GDAL_HTTP_MAX_RETRY="0"), rasterio.open(path) as src:
        assert src.count == 4 and src.crs.to_epsg() == 3857
        row, col = src.index(x, y)
        rgba = np.moveaxis(src.read(window=Window(col - 40, row - 40, 81, 81)), 0, -1)
    assert tuple(int(v) for v in rgba[40, 40]) in CONFIRMED_RGBA
    assert count(rgba, CONFIRMED_RGBA) > 100
    assert not colours(rgba) - ALERT_RGBA - {TRANSPARENT}


# --- GetLegendGraphic ------------------------------------------------------------------------------------------


def test_legend_graphic_shows_every_drawn_status_colour(static_server: str) -> None:
    def legend(**params: str) -> set[tuple[int, ...]]:
        response = httpx.get(f"{static_server}/wms", params={"SERVICE": "WMS", "REQUEST": "GetLegendGraphic", **params})
        assert response.status_code == 200 and response.headers["content-type"] == "image/png", response.text
        return colours(rgba_of(response.content))

    shown = {rgba for rgba in status_colormap().values() if rgba[3]}
    first = {status_colormap(first_detections=True)[code] for code in FIRST_CODES}
    default = legend(LAYER="alerts", FORMAT="image/png")
    assert shown <= default
    assert not first & default, "first detections are hidden in the default style, so not in its legend"
    assert shown | first <= legend(layer="alerts", format="image/png", style="alerts-all")
    ramp = legend(LAYER="alert-magnitude", FORMAT="image/png")
    assert len(ramp) > 50, "a continuous layer's legend is a colour ramp"
    missing = httpx.get(f"{static_server}/wms", params={"REQUEST": "GetLegendGraphic", "LAYER": "nope"})
    assert exception_of(missing)[1] == "LayerNotDefined"


# --- GetFeatureInfo --------------------------------------------------------------------------------------------


def featureinfo_params(site: Site, info_format: str, **extra: str) -> dict[str, str]:
    params = getmap_params(site, REQUEST="GetFeatureInfo", QUERY_LAYERS="alerts", INFO_FORMAT=info_format)
    params.update(I=str(SIZE // 2), J=str(SIZE // 2), FEATURE_COUNT="5")
    del params["FORMAT"]
    params.update(extra)
    return params


def assert_detected_near(site: Site, detection_date: str) -> None:
    detected = days_since_epoch(dt.date.fromisoformat(detection_date))
    assert abs(detected - site.planted_day) <= 30


def test_feature_info_in_three_formats(static_server: str, site: Site, area: Area) -> None:
    as_json = httpx.get(f"{static_server}/wms", params=featureinfo_params(site, "application/json"))
    assert as_json.status_code == 200 and as_json.headers["content-type"].startswith("application/json")
    (feature,) = as_json.json()["features"]
    props = feature["properties"]
    assert props["status_name"].startswith("confirmed") and props["status"] == int(area.status[site.row, site.col])
    assert_detected_near(site, props["detection_date"])
    assert props["confirmation_date"] >= props["detection_date"]
    assert props["magnitude"] < 0 and props["confidence"] > 0
    assert props["version"] == area.index.latest.id
    assert feature["geometry"]["coordinates"] == pytest.approx([site.lon, site.lat], abs=1e-6)

    text = httpx.get(f"{static_server}/wms", params=featureinfo_params(site, "text/plain"))
    assert text.headers["content-type"].startswith("text/plain")
    lines = dict(line.split(" = ", 1) for line in text.text.splitlines() if " = " in line)
    assert lines["status_name"].startswith("confirmed")
    assert_detected_near(site, lines["detection_date"])

    page = httpx.get(f"{static_server}/wms", params=featureinfo_params(site, "text/html"))
    assert page.headers["content-type"].startswith("text/html")
    assert f"<td>{props['status_name']}</td>" in page.text and props["detection_date"] in page.text

    # Same answer as /point, and TIME honoured: right after the fit the pixel had no alert.
    point = httpx.get(f"{static_server}/point/{site.lon},{site.lat}").json()
    assert point["status_name"] == props["status_name"] and point["detection_date"] == props["detection_date"]
    first = area.index.publications[0]
    early = httpx.get(f"{static_server}/wms", params=featureinfo_params(site, "application/json", TIME=first.id))
    assert early.status_code == 200, early.text
    assert early.json()["features"][0]["properties"]["status_name"] == "none"


def test_feature_info_clients_and_1_1_1(static_server: str, site: Site) -> None:
    wms = WebMapService(f"{static_server}/wms", version="1.3.0")
    answer = wms.getfeatureinfo(
        layers=["alerts"],
        srs="EPSG:4326",
        bbox=lonlat_box(site),
        size=(SIZE, SIZE),
        format="image/png",
        query_layers=["alerts"],
        info_format="application/json",
        xy=(SIZE // 2, SIZE // 2),
    )
    assert json.loads(answer.read())["features"][0]["properties"]["status_name"].startswith("confirmed")
    params = {
        "service": "WMS",
        "version": "1.1.1",
        "request": "GetFeatureInfo",
        "layers": "alerts",
        "query_layers": "alerts",
        "styles": "",
        "srs": "EPSG:3857",
        "bbox": ",".join(map(str, mercator_box(site))),
        "width": str(SIZE),
        "height": str(SIZE),
        "x": str(SIZE // 2),
        "y": str(SIZE // 2),
        "info_format": "application/json",
    }
    response = httpx.get(f"{static_server}/wms", params=params)
    props = response.json()["features"][0]["properties"]
    assert props["status_name"].startswith("confirmed")
    assert_detected_near(site, props["detection_date"])
    # Outside the published area: no feature, not an error.
    away = getmap_params(site, BBOX="0,0,1,1")
    away.update(REQUEST="GetFeatureInfo", QUERY_LAYERS="alerts", INFO_FORMAT="application/json", I="5", J="5")
    outside = httpx.get(f"{static_server}/wms", params=away)
    assert outside.status_code == 200 and outside.json()["features"] == []


# --- Errors and parameters -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "version", "code"),
    [
        ({"LAYERS": "forest"}, "1.3.0", "LayerNotDefined"),
        ({"LAYERS": "alerts,alert-date"}, "1.3.0", "InvalidParameterValue"),
        ({"CRS": "EPSG:2154"}, "1.3.0", "InvalidCRS"),
        ({"CRS": "+proj=longlat +datum=WGS84"}, "1.3.0", "InvalidCRS"),
        ({"VERSION": "1.1.1", "CRS": None, "SRS": "EPSG:9999"}, "1.1.1", "InvalidSRS"),
        ({"FORMAT": "image/gif"}, "1.3.0", "InvalidFormat"),
        ({"STYLES": "neon"}, "1.3.0", "StyleNotDefined"),
        ({"TIME": "last tuesday"}, "1.3.0", "InvalidDimensionValue"),
        ({"TIME": "2024-05-01/2024-03-01"}, "1.3.0", "InvalidDimensionValue"),
        ({"BBOX": None}, "1.3.0", "MissingParameterValue"),
        ({"LAYERS": None}, "1.3.0", "MissingParameterValue"),
        ({"REQUEST": "GetPicture"}, "1.3.0", "OperationNotSupported"),
        ({"WIDTH": "100000"}, "1.3.0", "InvalidParameterValue"),
        ({"WIDTH": "²"}, "1.3.0", "InvalidParameterValue"),
        ({"BBOX": "1,2,3"}, "1.3.0", "InvalidParameterValue"),
        ({"REQUEST": "GetFeatureInfo", "QUERY_LAYERS": "alerts", "I": "500", "J": "1"}, "1.3.0", "InvalidPoint"),
        (
            {"REQUEST": "GetFeatureInfo", "QUERY_LAYERS": "alerts", "I": "1", "J": "1", "INFO_FORMAT": "x/y"},
            "1.3.0",
            "InvalidFormat",
        ),
    ],
)
def test_errors_are_service_exception_reports(
    static_server: str, site: Site, changes: dict[str, str | None], version: str, code: str
) -> None:
    params = getmap_params(site)
    for name, value in changes.items():
        if value is None:
            params.pop(name, None)
        else:
            params[name] = value
    response = httpx.get(f"{static_server}/wms", params=params)
    assert response.status_code == 400
    assert exception_of(response) == (version, code)


def test_parameter_names_in_any_case(static_server: str, site: Site) -> None:
    params = {
        name.lower() if i % 2 else name.capitalize(): value
        for i, (name, value) in enumerate(getmap_params(site).items())
    }
    response = httpx.get(f"{static_server}/wms", params=params)
    assert response.status_code == 200, response.text
    assert_alert_map(response.content)
    caps = httpx.get(f"{static_server}/wms?sErViCe=wms&ReQuEsT=getcapabilities&vErSiOn=1.1.1")
    assert caps.status_code == 200 and ET.fromstring(caps.content).tag == "WMT_MS_Capabilities"
    missing = httpx.get(f"{static_server}/wms?service=WMS&layers=alerts")
    assert exception_of(missing) == ("1.3.0", "MissingParameterValue")
    bare = httpx.get(f"{static_server}/wms")  # a browser opening the endpoint gets the capabilities
    assert bare.status_code == 200 and ET.fromstring(bare.content).tag == f"{WMS_NS}WMS_Capabilities"


def test_path_like_names_never_read_anything(static_server: str, site: Site) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        refused_by_app = [
            {"LAYERS": "../../etc/passwd"},
            {"LAYERS": f"/vsicurl/http://127.0.0.1:{port}/x"},
            {"LAYERS": f"http://127.0.0.1:{port}/x.tif"},
            {"CRS": "/etc/passwd"},
            {"STYLES": "../default"},
        ]
        for changes in refused_by_app:
            response = httpx.get(f"{static_server}/wms", params=getmap_params(site, **changes))
            assert response.status_code == 400, changes
            assert not response.headers["content-type"].startswith("image/")
            assert b"root:" not in response.content
        # Names that pass the app's filter are still only names: unknown ones, never files.
        for changes, code in [
            ({"LAYERS": "etc/passwd"}, "LayerNotDefined"),
            ({"LAYERS": f"vsicurl/http:127.0.0.1:{port}/x"}, "LayerNotDefined"),
            ({"CRS": "etc/passwd"}, "InvalidCRS"),
            ({"CRS": f"EPSG:4326 vsicurl/http:127.0.0.1:{port}"}, "InvalidCRS"),
        ]:
            response = httpx.get(f"{static_server}/wms", params=getmap_params(site, **changes))
            assert exception_of(response)[1] == code
        legend = httpx.get(f"{static_server}/wms", params={"REQUEST": "GetLegendGraphic", "LAYER": "etc/passwd"})
        assert exception_of(legend)[1] == "LayerNotDefined"
        listener.settimeout(0.5)
        with pytest.raises(TimeoutError):
            listener.accept()


# --- Caching ---------------------------------------------------------------------------------------------------


def test_caching_headers_and_not_modified(static_server: str, site: Site, area: Area) -> None:
    latest = httpx.get(f"{static_server}/wms", params=getmap_params(site))
    assert latest.headers["cache-control"] == "public, max-age=60"
    etag = latest.headers["etag"]
    again = httpx.get(f"{static_server}/wms", params=getmap_params(site), headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
    weak = httpx.get(f"{static_server}/wms", params=getmap_params(site), headers={"If-None-Match": f"W/{etag}"})
    assert weak.status_code == 304
    first = area.index.publications[0]
    dated = httpx.get(f"{static_server}/wms", params=getmap_params(site, TIME=first.datetime.isoformat()))
    assert dated.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert dated.headers["etag"] != etag
    other = httpx.get(f"{static_server}/wms", params=getmap_params(site, WIDTH="64"), headers={"If-None-Match": etag})
    assert other.status_code == 200 and other.headers["etag"] != etag
    # A TIME that selects the latest publication may select a newer one tomorrow: not immutable.
    future = httpx.get(f"{static_server}/wms", params=getmap_params(site, TIME="2100-01-01T00:00:00Z"))
    assert future.headers["cache-control"] == "public, max-age=60"


def test_owslib_raises_service_exceptions(static_server: str, site: Site) -> None:
    wms = WebMapService(f"{static_server}/wms", version="1.3.0")
    with pytest.raises(ServiceException, match="InvalidFormat|unsupported FORMAT"):
        wms.getmap(layers=["alerts"], srs="EPSG:4326", bbox=lonlat_box(site), size=(8, 8), format="image/gif")
