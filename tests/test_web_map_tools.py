"""The web map as an analyst's tool, and the offline API docs, in headless Chromium against the real server."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import parse_qs

import httpx
import numpy as np
import pytest
from playwright.sync_api import Route, sync_playwright
from rasterio.warp import transform_bounds
from test_web_map import (  # noqa: F401 (areas: a fixture)
    CHROMIUM,
    FLAGS,
    VIEWPORT,
    _grid,
    _project,
    _sample,
    _screenshot,
    _wait_idle,
    areas,
)

from conftest import DemoRun

pytestmark = pytest.mark.browser
# The background's colours (map.js BG).
LAND, SEA, OUTLINE = np.array([244, 242, 236]), np.array([219, 230, 236]), np.array([46, 91, 42])


def _loopback_only(base: str, outside: list[str]):
    """A route handler that lets requests to the server through and blocks (and records) any other."""

    def handle(route: Route) -> None:
        if route.request.url.startswith(f"{base}/"):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    return handle


class MapBrowser:
    """Headless Chromium on a fresh profile, offline but for the server; opens map pages."""

    def __init__(self, context, base: str, outside: list[str]) -> None:
        self.context, self.base, self.outside = context, base, outside
        self.errors: list[str] = []

    def open(self, hash_: str = ""):
        """A new tab on the map (with a view in the hash), once the map is ready and its tiles drawn."""
        page = self.context.new_page()
        page.on("pageerror", lambda err: self.errors.append(str(err)))
        page.goto(f"{self.base}/{hash_}", wait_until="load")
        page.wait_for_function("window.nrt && window.nrt.ready === true", timeout=60_000)
        _wait_idle(page)
        return page


@pytest.fixture(scope="module")
def browser(static_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MapBrowser]:
    """The browser; afterwards, no page threw and no request left loopback."""
    outside: list[str] = []
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-tools")),
            executable_path=CHROMIUM,
            headless=True,
            args=FLAGS,
            viewport=VIEWPORT,
        )
        context.route("**/*", _loopback_only(static_server, outside))
        opened = MapBrowser(context, static_server, outside)
        try:
            yield opened
        finally:
            context.close()
    assert not opened.errors, opened.errors
    assert not outside, outside


def _newest(base: str, **params: str) -> list[dict]:
    response = httpx.get(f"{base}/alerts/newest", params={"limit": 20, **params}, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()["patches"]


def _listed(page) -> list[str]:
    return page.locator("#newest button").all_inner_texts()


def _expected_entries(patches: list[dict]) -> list[str]:
    return [f"{p['detection_date']} · {p['area_ha']:.2f} ha" for p in patches]


def _set_slider(page, element_id: str, value: int) -> None:
    page.evaluate(
        """([id, value]) => { const el = document.getElementById(id); el.value = value;
                              el.dispatchEvent(new Event('input')); }""",
        [element_id, value],
    )


def _tiles(page) -> str:
    return page.evaluate("() => window.nrt.map.getSource('alerts').tiles[0]")


def test_click_places_a_marker_on_the_pixel(static_run: DemoRun, browser: MapBrowser, areas) -> None:  # noqa: F811
    page = browser.open()
    xy, lon, lat = _sample(static_run, page, areas["hit"], 1, seed=7)
    x, y = float(xy[0, 0]), float(xy[0, 1])
    assert page.locator("#click-marker").count() == 0
    page.mouse.click(x, y)
    page.wait_for_selector("#panel:not([hidden]) dd", timeout=20_000)
    box = page.locator("#click-marker").bounding_box()
    # The pin's tip is where the click was: centred on it, the tip about 6 px above the pin's shadow at the bottom.
    assert abs(box["x"] + box["width"] / 2 - x) <= 2 and 0 <= box["y"] + box["height"] - y <= 8, (box, x, y)
    terms, values = page.locator("#panel dt").all_inner_texts(), page.locator("#panel dd").all_inner_texts()
    fields = dict(zip(terms, values, strict=True))
    assert fields["status"].startswith("confirmed"), fields
    marker_lon, marker_lat = page.evaluate("() => window.nrt.marker.getLngLat().toArray()")
    assert abs(marker_lon - lon[0]) < 1e-4 and abs(marker_lat - lat[0]) < 1e-4
    page.click("#panel-close")
    assert page.locator("#click-marker").count() == 0
    page.close()


def test_newest_list_gives_hectares_and_follows_the_filters(browser: MapBrowser) -> None:
    page = browser.open()
    every = _newest(browser.base)
    # 20 m pixels: 0.04 ha each, e.g. "2024-06-20 · 1.24 ha".
    assert _listed(page) == _expected_entries(every)
    assert all(abs(p["area_ha"] - 0.04 * p["pixels"]) < 1e-4 for p in every)
    dates = sorted({p["detection_date"] for p in every})
    after = dates[len(dates) // 2]
    filtered = _newest(browser.base, detected_after=after)
    assert filtered != every
    day = page.evaluate("(iso) => Math.floor(Date.parse(iso) / 86400000)", after)
    _set_slider(page, "after", day)
    # The hash is written once the list has been reloaded with the filter.
    page.wait_for_function("(a) => location.hash.includes('after=' + a)", arg=after, timeout=20_000)
    assert f"detected_after={after}" in _tiles(page)
    assert _listed(page) == _expected_entries(filtered)
    page.close()


def test_the_view_in_the_url_restores_on_another_tab(browser: MapBrowser) -> None:
    page = browser.open()
    every = _newest(browser.base)
    after = sorted({p["detection_date"] for p in every})[1]
    day = page.evaluate("(iso) => Math.floor(Date.parse(iso) / 86400000)", after)
    _set_slider(page, "after", day)
    _set_slider(page, "min-conf", 12)
    page.wait_for_function("() => location.hash.includes('conf=12')", timeout=20_000)
    # Pan by dragging and zoom in by a wheel step, as an analyst does.
    page.mouse.move(400, 400)
    page.mouse.down()
    page.mouse.move(300, 350, steps=5)
    page.mouse.up()
    page.mouse.wheel(0, -300)
    page.wait_for_timeout(500)
    _wait_idle(page)
    url = page.url
    view = parse_qs(url.split("#", 1)[1])
    assert view["after"] == [after] and view["conf"] == ["12"] and "version" not in view, view
    zoom, lat, lon = (float(v) for v in view["map"][0].split("/"))
    centre = page.evaluate("() => { const c = window.nrt.map.getCenter(); return [c.lng, c.lat]; }")
    assert abs(centre[0] - lon) < 1e-5 and abs(centre[1] - lat) < 1e-5
    assert abs(page.evaluate("() => window.nrt.map.getZoom()") - zoom) < 0.01
    listed, tiles = _listed(page), _tiles(page)

    other = browser.open("#" + url.split("#", 1)[1])
    restored = other.evaluate("() => { const c = window.nrt.map.getCenter(); return [c.lng, c.lat]; }")
    assert abs(restored[0] - lon) < 1e-5 and abs(restored[1] - lat) < 1e-5, (restored, lon, lat)
    assert abs(other.evaluate("() => window.nrt.map.getZoom()") - zoom) < 0.01
    assert other.input_value("#after") == str(day) and other.input_value("#min-conf") == "12"
    assert _tiles(other) == tiles and _listed(other) == listed
    page.close()
    other.close()


def test_an_earlier_publication_can_be_chosen_and_shared(browser: MapBrowser) -> None:
    page = browser.open()
    versions = httpx.get(f"{browser.base}/layers", timeout=60).json()[0]["versions"]
    earlier = versions[-2]
    options = page.locator("#version option").evaluate_all("(os) => os.map((o) => o.value)")
    assert options == ["", *reversed(versions)]
    page.select_option("#version", earlier)
    page.wait_for_function("(v) => location.hash.includes('version=' + v)", arg=earlier, timeout=20_000)
    _wait_idle(page)
    assert f"version={earlier}" in _tiles(page)
    assert page.inner_text("#status").startswith(f"Earlier publication {earlier}")
    assert _listed(page) == _expected_entries(_newest(browser.base, version=earlier))
    assert _newest(browser.base, version=earlier) != _newest(browser.base)
    shared = browser.open("#" + page.url.split("#", 1)[1])
    assert shared.input_value("#version") == earlier and f"version={earlier}" in _tiles(shared)
    # Back to latest: the newest publication again, and the hash no longer pins a version.
    page.select_option("#version", "")
    page.wait_for_function("() => !location.hash.includes('version=')", timeout=20_000)
    assert f"version={versions[-1]}" in _tiles(page)
    page.close()
    shared.close()


def test_docs_render_offline(browser: MapBrowser) -> None:
    # The module's browser blocks and records any request that leaves loopback (checked at its teardown too).
    page = browser.context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    page.goto(f"{browser.base}/docs", wait_until="load")
    page.wait_for_selector(".swagger-ui .opblock", timeout=60_000)
    title = page.inner_text(".swagger-ui .info .title")
    paths = page.locator(".swagger-ui .opblock-summary-path").all_inner_texts()
    icon = page.evaluate("() => document.querySelector('link[rel*=icon]').href")
    page.close()
    assert title.startswith("nrt-alerts"), title
    assert {"/healthz", "/alerts/newest", "/point/{lon},{lat}"} <= {p.replace("\u200b", "") for p in paths}, paths
    assert icon == f"{browser.base}/favicon.ico"
    assert not errors, errors
    assert not browser.outside, browser.outside


def test_offline_background_shows_where_the_area_is(static_run: DemoRun, browser: MapBrowser) -> None:
    page = browser.open()
    page.wait_for_function("() => window.nrt.background === true", timeout=20_000)
    # The monitored area's outline: a dark green line along its western edge, at the fitted view.
    with _grid(static_run) as src:
        west, south, east, north = transform_bounds(src.crs, "EPSG:4326", *src.bounds)
    _wait_idle(page)
    image = _screenshot(page)
    ((x, y),) = _project(page, np.array([west]), np.array([(south + north) / 2]))
    window = image[int(y), int(x) - 3 : int(x) + 4]
    assert (np.abs(window - OUTLINE).max(axis=1) <= 24).any(), window
    # Zoomed out to the region: land and sea from the vendored Natural Earth data, the 10-degree graticule.
    page.evaluate("() => window.nrt.map.jumpTo({ center: [15, 45], zoom: 4 })")
    page.wait_for_timeout(200)
    _wait_idle(page)
    image = _screenshot(page)
    places = {"land": (12.5, 51.5), "sea": (18.5, 36.5), "meridian": (10, 47.5)}
    xy = _project(page, np.array([p[0] for p in places.values()]), np.array([p[1] for p in places.values()]))
    at = {name: image[int(py), int(px)] for name, (px, py) in zip(places, xy, strict=True)}
    assert np.abs(at["land"] - LAND).max() <= 6, at
    assert np.abs(at["sea"] - SEA).max() <= 6, at
    # A 1 px line: at least half a pixel of it lands on one of the two columns nearest the meridian.
    mx, my = xy[2]
    row = image[int(my), int(mx) - 1 : int(mx) + 2]
    assert (LAND.sum() - row.sum(axis=1) >= 3 * 15).any(), row
    assert np.abs(image[int(my), int(mx) + 8] - LAND).max() <= 6  # and land beside it
    page.close()
