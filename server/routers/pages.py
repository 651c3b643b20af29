"""The map page at `/`, the API documentation at `/docs` and the favicon, all from vendored files (no internet)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse

from server.deps import SettingsDep

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
SWAGGER_UI = "static/vendor/swagger-ui-5.36.0"
# Swagger UI would otherwise ask validator.swagger.io to validate the document: no request leaves the server.
SWAGGER_PARAMETERS = {"validatorUrl": None}

router = APIRouter()


@router.get("/", include_in_schema=False)
def index() -> FileResponse:
    """The web map."""
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html", headers={"Cache-Control": "no-cache"})


@router.get("/favicon.ico", include_in_schema=False)
def favicon() -> FileResponse:
    """The icon browsers show in the tab (also linked from the map and the docs)."""
    return FileResponse(STATIC_DIR / "favicon.ico", media_type="image/x-icon")


@router.get("/docs", include_in_schema=False)
def docs(request: Request, settings: SettingsDep) -> HTMLResponse:
    """Swagger UI over the OpenAPI document, from the vendored Swagger UI."""
    if not request.app.openapi_url:
        raise HTTPException(404, "the OpenAPI document is disabled")
    # Relative URLs: resolved against /docs, they keep a proxy's path prefix.
    return get_swagger_ui_html(
        openapi_url=request.app.openapi_url.lstrip("/"),
        title=f"{settings.title}: API",
        swagger_js_url=f"{SWAGGER_UI}/swagger-ui-bundle.js",
        swagger_css_url=f"{SWAGGER_UI}/swagger-ui.css",
        swagger_favicon_url="favicon.ico",
        swagger_ui_parameters=SWAGGER_PARAMETERS,
    )
