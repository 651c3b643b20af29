"""The published STAC catalog and its COGs as static files (range requests supported by Starlette)."""

from __future__ import annotations

from pathlib import Path

from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope


class CatalogFiles(StaticFiles):
    """Static files that never serve hidden names: locks and half-written temp files stay private."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        """Refuse dot-files and the parent folder, then serve as usual."""
        parts = Path(path).parts
        if any(part.startswith(".") for part in parts):
            raise HTTPException(status_code=404)
        return await super().get_response(path, scope)


def catalog_files(stac_dir: Path) -> CatalogFiles:
    """Static app over the STAC folder (created if absent so the server starts before the first run)."""
    stac_dir.mkdir(parents=True, exist_ok=True)
    return CatalogFiles(directory=stac_dir, check_dir=True)
