"""The web map at `/` in headless Chromium (driven by Playwright) against the real server, fully offline."""

from __future__ import annotations

import io
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import rasterio
from playwright.sync_api import sync_playwright
from rasterio.warp import transform
from scipy import ndimage

from catalog.encoding import CONFIRMED_CODES, status_colormap

from conftest import DemoRun, latest_layers, truth

CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
if not CHROMIUM and not os.environ.get("CI"):
    pytest.skip("chromium is not installed (apt-get install chromium); required under CI", allow_module_level=True)

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--enable-unsafe-swiftshader",
]
VIEWPORT = {"width": 1200, "height": 800}
CONFIRMED_RGB = np.array([status_colormap()[code][:3] for code in CONFIRMED_CODES], dtype=int)
TOLERANCE = 24  # per channel, for blending and resampling at edges


# ---- ground truth on the area grid


def _grid(run: DemoRun) -> rasterio.DatasetReader:
    return rasterio.open(next(run.cfg.output.stac_dir.glob("alerts/mosaics/*/status.vrt")))


def _lonlat(run: DemoRun, rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    with _grid(run) as src:
        xs, ys = src.transform @ (np.asarray(cols) + 0.5, np.asarray(rows) + 0.5)
        lon, lat = transform(src.crs, "EPSG:4326", np.atleast_1d(xs), np.atleast_1d(ys))
    return np.asarray(lon), np.asarray(lat)


def _pixel_of(run: DemoRun, lon: float, lat: float) -> tuple[int, int]:
    with _grid(run) as src:
        xs, ys = transform("EPSG:4326", src.crs, [lon], [lat])
        return src.index(xs[0], ys[0])


@pytest.fixture(scope="module")
def areas(static_run: DemoRun) -> dict[str, np.ndarray]:
    """Interior (eroded) pixels: confirmed clear-cuts, and stable forest with no alert."""
    days, forest = truth(static_run)
    status = latest_layers(static_run)["status"]
    confirmed = np.isin(status, CONFIRMED_CODES)
    hit = ndimage.binary_erosion(confirmed & (days > 0), iterations=1)
    stable = ndimage.binary_erosion(forest & (days == 0) & ((status == 0) | (status > 8)), iterations=2)
    assert hit.sum() > 50 and stable.sum() > 500
    return {"hit": hit, "stable": stable, "disturbed": days > 0}


# ---- the browser


@pytest.fixture(scope="module")
def browser_page(static_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[object, list[str]]]:
    """The map page loaded in headless Chromium (fresh profile); yields the page and every URL it requested."""
    profile: Path = tmp_path_factory.mktemp("chromium-profile")
    requests: list[str] = []
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, headless=True, args=FLAGS, viewport=VIEWPORT
        )
        context.on("request", lambda request: requests.append(request.url))
        page = context.pages[0] if context.pages else context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda err: errors.append(str(err)))
        page.goto(f"{static_server}/", wait_until="load")
        page.wait_for_function("window.nrt && window.nrt.ready === true", timeout=60_000)
        _wait_idle(page)
        assert not errors, errors
        try:
            yield page, requests
        finally:
            context.close()


def _wait_idle(page) -> None:
    page.evaluate(
        """() => new Promise((resolve) => {
            const map = window.nrt.map;
            if (map.loaded() && map.areTilesLoaded() && !map.isMoving()) resolve();
            else map.once('idle', resolve);
        })"""
    )
    page.wait_for_timeout(300)  # let the compositor show the last frame


def _project(page, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Screen (page CSS pixel) positions of lon/lat points through the map's own projection."""
    points = page.evaluate(
        """(pts) => {
            const map = window.nrt.map, box = map.getContainer().getBoundingClientRect();
            return pts.map(([lon, lat]) => {
                const p = map.project([lon, lat]);
                return [p.x + box.left, p.y + box.top];
            });
        }""",
        [[float(a), float(b)] for a, b in zip(lon, lat, strict=True)],
    )
    return np.asarray(points)


def _screenshot(page) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(page.screenshot())).convert("RGB")).astype(int)


def _is_confirmed_colour(rgb: np.ndarray) -> np.ndarray:
    return (np.abs(rgb[:, None, :] - CONFIRMED_RGB[None, :, :]).max(axis=2) <= TOLERANCE).any(axis=1)


def _sample(run: DemoRun, page, mask: np.ndarray, n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rows, cols = np.nonzero(mask)
    pick = np.random.default_rng(seed).choice(len(rows), size=min(n, len(rows)), replace=False)
    lon, lat = _lonlat(run, rows[pick], cols[pick])
    return _project(page, lon, lat), lon, lat


def test_map_shows_confirmed_alerts_over_clear_cuts(static_run: DemoRun, browser_page, areas) -> None:
    page, _ = browser_page
    image = _screenshot(page)
    height, width, _ = image.shape
    if shot := os.environ.get("WEB_MAP_SCREENSHOT"):  # a path: keep the screenshot to look at
        page.screenshot(path=shot)

    def colours_at(xy: np.ndarray) -> np.ndarray:
        x, y = np.floor(xy[:, 0]).astype(int), np.floor(xy[:, 1]).astype(int)
        assert ((x >= 0) & (x < width) & (y >= 0) & (y < height)).all(), "the area must be fitted in view"
        return image[y, x]

    hit_xy, _, _ = _sample(static_run, page, areas["hit"], 300, seed=1)
    on_cuts = _is_confirmed_colour(colours_at(hit_xy)).mean()
    assert on_cuts >= 0.9, f"only {on_cuts:.0%} of clear-cut positions show a confirmed-alert colour"
    stable_xy, _, _ = _sample(static_run, page, areas["stable"], 300, seed=2)
    on_stable = _is_confirmed_colour(colours_at(stable_xy)).mean()
    assert on_stable <= 0.02, f"{on_stable:.0%} of stable-forest positions show alert colours"
    # The monitored area is drawn: stable forest shows the context green, not the empty background.
    green = np.array([120, 170, 110])
    assert (np.abs(colours_at(stable_xy) - green).max(axis=1) <= TOLERANCE).mean() >= 0.9


def test_click_opens_panel_with_decoded_alert(static_run: DemoRun, browser_page, areas) -> None:
    page, _ = browser_page
    xy, _, _ = _sample(static_run, page, areas["hit"], 1, seed=3)
    page.mouse.click(float(xy[0, 0]), float(xy[0, 1]))
    page.wait_for_selector("#panel:not([hidden]) dd", timeout=20_000)
    terms = page.locator("#panel dt").all_inner_texts()
    values = page.locator("#panel dd").all_inner_texts()
    fields = dict(zip(terms, values, strict=True))
    assert fields["status"].startswith("confirmed"), fields
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", fields["detected"]), fields
    # The time series plot: observation dots, the model line, the shaded band and the detection line.
    page.wait_for_selector("#series-plot .observations circle", timeout=20_000)
    plot = _plot_geometry(page)
    assert plot["circles"] > 150, plot
    assert plot["model_points"] > 100 and plot["band"] == 1, plot
    assert "NDVI" in plot["title"] and fields["detected"] in plot["title"]
    left, right = plot["axis_x"]
    assert left < plot["start_x"] < plot["detection_x"] <= right, plot
    # The clear-cut drops NDVI: dots right of the detection line sit lower (larger y) than those left of it.
    assert plot["mean_y_after"] > plot["mean_y_before"] + 30, plot
    # The colours as drawn: the red detection line, the blue model, the shaded band, dark dots (measured on the
    # demo: about 140, 130, 3700 and 1100 pixels; the dots hide part of the model line).
    from PIL import Image

    png = page.locator("#timeseries svg").screenshot()
    if path := os.environ.get("SERIES_PLOT_SCREENSHOT"):  # a path: keep the plot to look at
        Path(path).write_bytes(page.locator("#panel").screenshot())
    shot = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    colours = shot.reshape(-1, 3)

    def near(rgb: tuple[int, int, int], tolerance: int = 30) -> int:
        return int((np.abs(colours - np.array(rgb)).max(axis=1) <= tolerance).sum())

    red, blue, band, dots = near((215, 25, 28)), near((20, 70, 160)), near((197, 219, 244), 12), near((40, 40, 40))
    assert red >= 100 and blue >= 80 and band >= 1000 and dots >= 300, (red, blue, band, dots)
    # The red line is vertical: its pixels share one or two screen columns.
    ys, xs = np.nonzero(np.abs(shot - np.array((215, 25, 28))).max(axis=2) <= 30)
    assert np.ptp(xs) <= 3 and np.ptp(ys) >= 100, (np.ptp(xs), np.ptp(ys))


def _plot_geometry(page) -> dict:
    """Counts and positions of the plot's elements, read from the SVG the page drew."""
    return page.evaluate(
        """() => {
            const svg = document.getElementById('series-plot');
            const circles = [...svg.querySelectorAll('.observations circle')];
            const det = svg.querySelector('line.detection'), start = svg.querySelector('line.monitoring-start');
            const axis = svg.querySelector('line.axis');
            const dx = +det.getAttribute('x1');
            const mean = (a) => a.reduce((s, c) => s + +c.getAttribute('cy'), 0) / Math.max(a.length, 1);
            return {
                circles: circles.length,
                model_points: svg.querySelector('path.model').getAttribute('d').split('L').length,
                band: svg.querySelectorAll('path.band').length,
                title: svg.querySelector('title').textContent,
                axis_x: [+axis.getAttribute('x1'), +axis.getAttribute('x2')],
                start_x: +start.getAttribute('x1'),
                detection_x: dx,
                mean_y_before: mean(circles.filter((c) => +c.getAttribute('cx') < dx - 5)),
                mean_y_after: mean(circles.filter((c) => +c.getAttribute('cx') > dx + 5)),
            };
        }"""
    )


def test_newest_alerts_list_zooms_to_patch(static_run: DemoRun, static_server: str, browser_page, areas) -> None:
    page, _ = browser_page
    body = httpx.get(f"{static_server}/alerts/newest", params={"limit": 20}, timeout=60).json()
    patches = body["patches"]
    assert patches, "the demo has confirmed alerts"
    dates = [p["detection_date"] for p in patches]
    assert dates == sorted(dates, reverse=True), "newest first"
    big = [p for p in patches if p["pixels"] >= 20]
    assert big, "some patches are real clear-cuts"
    for p in big:
        row, col = _pixel_of(static_run, p["longitude"], p["latitude"])
        assert areas["disturbed"][row, col], f"patch centroid {p} is not in a ground-truth clear-cut"
        west, south, east, north = p["bbox"]
        assert west <= p["longitude"] <= east and south <= p["latitude"] <= north
    # The page lists the same patches; the first entry moves the map onto it.
    page.wait_for_selector("#newest button", timeout=20_000)
    page.locator("#newest button").first.click()
    page.wait_for_timeout(200)
    _wait_idle(page)
    lon, lat = page.evaluate("() => { const c = window.nrt.map.getCenter(); return [c.lng, c.lat]; }")
    first = patches[0]
    assert abs(lon - first["longitude"]) < 1e-4 and abs(lat - first["latitude"]) < 1e-4, (lon, lat, first)


def test_filters_never_break_the_map(browser_page) -> None:
    page, _ = browser_page
    page.evaluate(
        """() => { const el = document.getElementById('min-conf'); el.value = 50;
                   el.dispatchEvent(new Event('input')); }"""
    )
    page.wait_for_timeout(1500)
    _wait_idle(page)
    tiles = page.evaluate("() => window.nrt.map.getSource('alerts').tiles[0]")
    note = page.inner_text("#filter-note")
    # Either the server took the filter or the page said so and kept unfiltered tiles.
    assert "min_confidence=50" in tiles or ("min_confidence" not in tiles and note), (tiles, note)
    assert not page.inner_text("#status").startswith("Error")


def test_page_made_no_external_request(static_server: str, browser_page) -> None:
    page, requests = browser_page
    assert any("/layers/alerts/tiles/" in url for url in requests)
    outside = [u for u in requests if not u.startswith(f"{static_server}/") and not u.startswith(("data:", "blob:"))]
    assert not outside, outside
