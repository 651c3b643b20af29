"""The web map as an analyst's tool, and the offline API docs, in headless Chromium against the real server."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Route, sync_playwright
from test_web_map import CHROMIUM, FLAGS, VIEWPORT

pytestmark = pytest.mark.browser


def test_docs_render_offline(static_server: str, tmp_path: Path) -> None:
    outside: list[str] = []

    def loopback_only(route: Route) -> None:
        if route.request.url.startswith(f"{static_server}/"):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=CHROMIUM, headless=True, args=FLAGS, viewport=VIEWPORT
        )
        try:
            context.route("**/*", loopback_only)
            page = context.pages[0] if context.pages else context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda err: errors.append(str(err)))
            page.goto(f"{static_server}/docs", wait_until="load")
            page.wait_for_selector(".swagger-ui .opblock", timeout=60_000)
            title = page.inner_text(".swagger-ui .info .title")
            paths = page.locator(".swagger-ui .opblock-summary-path").all_inner_texts()
            icon = page.evaluate("() => document.querySelector('link[rel*=icon]').href")
        finally:
            context.close()
    assert title.startswith("nrt-alerts"), title
    assert {"/healthz", "/alerts/newest", "/point/{lon},{lat}"} <= {p.replace("\u200b", "") for p in paths}, paths
    assert icon == f"{static_server}/favicon.ico"
    assert not errors, errors
    assert not outside, outside
