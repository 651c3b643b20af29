"""`/docs` and `/favicon.ico` are served from vendored files: the documentation renders with no internet."""

from __future__ import annotations

import io
import re

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from server.app import create_app
from server.settings import ServerSettings

from conftest import DemoRun


@pytest.fixture(scope="module")
def client(static_run: DemoRun) -> TestClient:
    """The static run's catalog served in process."""
    with TestClient(create_app(ServerSettings(stac_dir=static_run.cfg.output.stac_dir))) as c:
        yield c


def test_favicon_is_an_icon_linked_from_the_map(client: TestClient) -> None:
    response = client.get("/favicon.ico")
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/x-icon"
    icon = Image.open(io.BytesIO(response.content))
    assert icon.format == "ICO" and {(16, 16), (32, 32)} <= icon.info["sizes"]
    page = client.get("/").text
    assert re.search(r'<link rel="icon" href="favicon.ico"', page)


def test_docs_page_names_only_vendored_files(client: TestClient) -> None:
    html = client.get("/docs")
    assert html.status_code == 200 and "SwaggerUIBundle" in html.text
    urls = re.findall(r"""(?:href|src|url)\s*[:=]\s*['"]([^'"]+)['"]""", html.text)
    assert urls and not [u for u in urls if "://" in u or u.startswith("/")], urls
    for url in urls:
        assert client.get(f"/{url}").status_code == 200, url
    assert client.get("/redoc").status_code == 404  # FastAPI's ReDoc page loads from a CDN: not offered
