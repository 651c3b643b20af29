"""WMS answers beyond the image: GML GetFeatureInfo (QGIS's and GeoServer's default), EXCEPTIONS=INIMAGE/BLANK,
OGC CRS URIs, and boxes far larger than the world, over real HTTP."""

from __future__ import annotations

import datetime as dt
import io
import xml.etree.ElementTree as ET
from dataclasses import dataclass

import httpx
import numpy as np
import pyproj
import pytest
import rasterio
from owslib.wms import WebMapService
from PIL import Image

from catalog.encoding import CONFIRMED_CODES, date_from_days
from catalog.store import CatalogLayout, read_index

from conftest import DemoRun

GML = "{http://www.opengis.net/gml}"
NRT = "{urn:x-nrt-alerts}"
SIZE = 51  # odd: the centre pixel (25, 25) sits on the site
HALF = 0.002  # degrees around the site


@dataclass(frozen=True)
class Site:
    """A confirmed alert pixel of the latest publication, inside a 3 x 3 block of confirmed pixels."""

    lon: float
    lat: float
    status: int
    detected: dt.date
    version: str
    crs: str
    bounds: tuple[float, float, float, float]
    shape: tuple[int, int]


@pytest.fixture(scope="module")
def site(static_run: DemoRun) -> Site:
    layout = CatalogLayout(static_run.cfg.output.stac_dir)
    latest = read_index(layout).latest
    with rasterio.open(layout.collection_dir / latest.mosaics["status"]) as src:
        status, transform, crs = src.read(1), src.transform, src.crs
        bounds, shape = tuple(src.bounds), (src.height, src.width)
    with rasterio.open(layout.collection_dir / latest.mosaics["date"]) as src:
        days = src.read(1)
    confirmed = np.isin(status, CONFIRMED_CODES)
    block = confirmed[:-2, :-2] & confirmed[1:-1, 1:-1] & confirmed[2:, 2:] & confirmed[:-2, 2:] & confirmed[2:, :-2]
    rows, cols = np.nonzero(block)
    row, col = int(rows[0]) + 1, int(cols[0]) + 1
    x, y = transform * (col + 0.5, row + 0.5)
    lon, lat = pyproj.Transformer.from_crs(crs.to_wkt(), "EPSG:4326", always_xy=True).transform(x, y)
    detected = date_from_days(int(days[row, col]))
    assert detected is not None
    return Site(float(lon), float(lat), int(status[row, col]), detected, latest.id, crs.to_string(), bounds, shape)


def around(site: Site, **extra: str) -> dict[str, str]:
    """A 1.3.0 GetMap around the site in EPSG:4326 (latitude first)."""
    params = {
        "SERVICE": "WMS",
        "VERSION": "1.3.0",
        "REQUEST": "GetMap",
        "LAYERS": "alerts",
        "STYLES": "",
        "CRS": "EPSG:4326",
        "BBOX": f"{site.lat - HALF},{site.lon - HALF},{site.lat + HALF},{site.lon + HALF}",
        "WIDTH": str(SIZE),
        "HEIGHT": str(SIZE),
        "FORMAT": "image/png",
        "TRANSPARENT": "TRUE",
    }
    params.update(extra)
    return params


def feature_info(site: Site, **extra: str) -> dict[str, str]:
    params = around(site, REQUEST="GetFeatureInfo", QUERY_LAYERS="alerts", I=str(SIZE // 2), J=str(SIZE // 2))
    params.update(extra)
    return params


def rgba(response: httpx.Response) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(response.content)).convert("RGBA"))


def gml_features(body: bytes) -> list[ET.Element]:
    root = ET.fromstring(body)
    assert root.tag == "{http://www.opengis.net/wfs}FeatureCollection"
    return [member[0] for member in root.iter(f"{GML}featureMember")]


def test_feature_info_in_gml_as_geoserver_writes_it(static_server: str, site: Site) -> None:
    response = httpx.get(f"{static_server}/wms", params=feature_info(site, INFO_FORMAT="application/vnd.ogc.gml"))
    assert response.status_code == 200 and response.headers["content-type"] == "application/vnd.ogc.gml"
    (feature,) = gml_features(response.content)
    assert feature.tag == f"{NRT}alerts" and feature.get("fid") == f"alerts.{site.version}"
    fields = {child.tag.removeprefix(NRT): child.text for child in feature if child.tag != f"{NRT}geometry"}
    assert int(fields["status"]) == site.status and fields["status_name"].startswith("confirmed")
    assert fields["detection_date"] == site.detected.isoformat()
    assert float(fields["magnitude"]) < 0 and float(fields["confidence"]) > 0
    coordinates = feature.find(f"{NRT}geometry/{GML}Point/{GML}coordinates")
    lon, lat = (float(v) for v in coordinates.text.split(","))
    assert lon == pytest.approx(site.lon, abs=1e-4) and lat == pytest.approx(site.lat, abs=1e-4)
    # The same pixel through OWSLib, in 1.1.1 (x/y), and a TIME range before its detection: no alert there.
    wms = WebMapService(f"{static_server}/wms", version="1.1.1")
    answer = wms.getfeatureinfo(
        layers=["alerts"],
        srs="EPSG:4326",
        bbox=(site.lon - HALF, site.lat - HALF, site.lon + HALF, site.lat + HALF),
        size=(SIZE, SIZE),
        format="image/png",
        query_layers=["alerts"],
        info_format="application/vnd.ogc.gml",
        xy=(SIZE // 2, SIZE // 2),
    )
    (same,) = gml_features(answer.read())
    assert same.find(f"{NRT}detection_date").text == site.detected.isoformat()
    earlier = f"2020-01-01/{(site.detected - dt.timedelta(days=1)).isoformat()}"
    dropped = httpx.get(
        f"{static_server}/wms", params=feature_info(site, INFO_FORMAT="application/vnd.ogc.gml", TIME=earlier)
    )
    (none,) = gml_features(dropped.content)
    assert none.find(f"{NRT}status_name").text == "none" and not none.find(f"{NRT}detection_date").text
    # Outside the published area: an empty collection.
    away = feature_info(site, INFO_FORMAT="application/vnd.ogc.gml", BBOX="0,0,1,1")
    assert gml_features(httpx.get(f"{static_server}/wms", params=away).content) == []


def test_capabilities_offer_gml_and_the_exception_formats(static_server: str) -> None:
    for version, formats in (
        ("1.3.0", ["XML", "INIMAGE", "BLANK"]),
        ("1.1.1", ["application/vnd.ogc.se_xml", "application/vnd.ogc.se_inimage", "application/vnd.ogc.se_blank"]),
    ):
        wms = WebMapService(f"{static_server}/wms", version=version)
        assert "application/vnd.ogc.gml" in wms.getOperationByName("GetFeatureInfo").formatOptions
        root = ET.fromstring(
            httpx.get(f"{static_server}/wms", params={"REQUEST": "GetCapabilities", "VERSION": version}).content
        )
        exception = next(el for el in root.iter() if el.tag.endswith("Exception"))
        assert [el.text for el in exception] == formats


@pytest.mark.parametrize(
    ("version", "mode"),
    [("1.3.0", "INIMAGE"), ("1.1.1", "application/vnd.ogc.se_inimage")],
)
def test_exceptions_inimage_write_the_error_in_the_map(static_server: str, site: Site, version: str, mode: str) -> None:
    params = around(site, LAYERS="forest", EXCEPTIONS=mode, VERSION=version, WIDTH="300", HEIGHT="80")
    if version == "1.1.1":
        params["SRS"] = params.pop("CRS")
    response = httpx.get(f"{static_server}/wms", params=params)
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    assert response.headers["x-wms-exception"] == "LayerNotDefined"
    assert response.headers["cache-control"] == "no-store"
    picture = rgba(response)
    assert picture.shape == (80, 300, 4)
    ink = picture[..., 3] > 0
    assert 50 < ink.sum() < 0.5 * ink.size, "the message is written, the rest is transparent"
    assert {tuple(px) for px in picture[ink][:, :3]} <= {(200, 0, 0)}
    # Opaque JPEG: the text on BGCOLOR.
    jpeg = httpx.get(f"{static_server}/wms", params={**params, "FORMAT": "image/jpeg", "BGCOLOR": "0x0000FF"})
    assert jpeg.headers["content-type"] == "image/jpeg"
    pixels = np.asarray(Image.open(io.BytesIO(jpeg.content)).convert("RGB")).astype(int)
    assert (np.abs(pixels[-1, -1] - (0, 0, 255)) < 8).all() and (np.abs(pixels - (0, 0, 255)).sum(axis=2) > 100).any()


def test_exceptions_blank_and_fallback_to_xml(static_server: str, site: Site) -> None:
    blank = httpx.get(f"{static_server}/wms", params=around(site, TIME="2024-13", EXCEPTIONS="BLANK"))
    assert blank.status_code == 200 and blank.headers["x-wms-exception"] == "InvalidDimensionValue"
    assert rgba(blank).shape == (SIZE, SIZE, 4) and not rgba(blank)[..., 3].any()
    opaque = httpx.get(
        f"{static_server}/wms", params=around(site, TIME="2024-13", EXCEPTIONS="BLANK", TRANSPARENT="FALSE")
    )
    assert (rgba(opaque) == (255, 255, 255, 255)).all()
    # No size to draw in, or another operation: the XML report.
    sizeless = around(site, LAYERS="forest", EXCEPTIONS="INIMAGE")
    del sizeless["WIDTH"]
    for params in (sizeless, feature_info(site, LAYERS="forest", EXCEPTIONS="INIMAGE")):
        response = httpx.get(f"{static_server}/wms", params=params)
        assert response.status_code == 400 and response.headers["content-type"].startswith("text/xml")
    # EXCEPTIONS=XML is the default.
    xml = httpx.get(f"{static_server}/wms", params=around(site, LAYERS="forest", EXCEPTIONS="XML"))
    assert xml.status_code == 400 and b"LayerNotDefined" in xml.content


def test_crs_uris_are_crs_codes(static_server: str, site: Site) -> None:
    code = httpx.get(f"{static_server}/wms", params=around(site))
    assert code.status_code == 200 and rgba(code)[SIZE // 2, SIZE // 2, 3] == 255
    for uri in ("http://www.opengis.net/def/crs/EPSG/0/4326", "urn:ogc:def:crs:EPSG::4326"):
        response = httpx.get(f"{static_server}/wms", params=around(site, CRS=uri))
        assert response.status_code == 200, response.text
        assert response.content == code.content, uri
    crs84 = around(site, CRS="http://www.opengis.net/def/crs/OGC/1.3/CRS84")
    crs84["BBOX"] = f"{site.lon - HALF},{site.lat - HALF},{site.lon + HALF},{site.lat + HALF}"
    assert httpx.get(f"{static_server}/wms", params=crs84).content == code.content
    # An unsupported CRS in URI form gets the CRS error, not the path guard's.
    other = httpx.get(f"{static_server}/wms", params=around(site, CRS="http://www.opengis.net/def/crs/EPSG/0/2154"))
    assert (
        other.status_code == 400 and b'code="InvalidCRS"' in other.content and b"layers are named" not in other.content
    )
    # A path stays refused.
    path = httpx.get(f"{static_server}/wms", params=around(site, CRS="/etc/passwd"))
    assert path.status_code == 400 and b"only CRS codes" in path.content


def test_boxes_far_larger_than_the_world(static_server: str, site: Site) -> None:
    params = around(site, CRS="EPSG:3857", BBOX="-1e12,-1e12,1e12,1e12")
    response = httpx.get(f"{static_server}/wms", params=params)
    assert response.status_code == 400 and b'code="InvalidParameterValue" locator="BBOX"' in response.content
    # Huge but allowed: the tiny area draws in at most one pixel, quickly, and the rest is transparent.
    huge = httpx.get(f"{static_server}/wms", params=around(site, CRS="EPSG:3857", BBOX="-1e9,-1e9,1e9,1e9"))
    assert huge.status_code == 200 and (rgba(huge)[..., 3] > 0).sum() <= 1


def test_a_box_half_outside_the_area_draws_the_area_on_the_same_grid(static_server: str, site: Site) -> None:
    # The area on its own grid, then the same grid extended by the area's width to the west: the east half of the
    # second map must be the first, pixel for pixel (only the covered part is read, on the map's grid).
    west, south, east, north = site.bounds
    height, width = site.shape
    native = around(site, CRS=site.crs, BBOX=f"{west},{south},{east},{north}", WIDTH=str(width), HEIGHT=str(height))
    whole = rgba(httpx.get(f"{static_server}/wms", params=native))
    wider = {**native, "BBOX": f"{2 * west - east},{south},{east},{north}", "WIDTH": str(2 * width)}
    extended = rgba(httpx.get(f"{static_server}/wms", params=wider))
    assert (whole[..., 3] > 0).sum() > 100
    assert (extended[:, width:] == whole).all() and not extended[:, :width, 3].any()
