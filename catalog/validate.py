"""Validate the published STAC tree offline, with the core schemas pystac bundles and our vendored extension schemas."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pystac
from pystac.validation import validate_dict
from pystac.validation.stac_validator import JsonSchemaSTACValidator

from catalog.errors import CatalogError

SCHEMA_DIR = Path(__file__).parent / "schemas"


@functools.cache
def offline_validator() -> JsonSchemaSTACValidator:
    """A validator whose schema cache already holds every extension schema we declare."""
    validator = JsonSchemaSTACValidator()
    for path in sorted(SCHEMA_DIR.rglob("schema.json")):
        schema = json.loads(path.read_text(encoding="utf-8"))
        uri = schema["$id"].rstrip("#")
        validator.schema_cache[uri] = schema
        validator.schema_cache[uri + "#"] = schema
    return validator


def validate_object(obj: dict, href: str | None = None) -> None:
    """Validate one STAC dict (core and extensions); raise CatalogError naming the object."""
    try:
        validate_dict(obj, href=href, validator=offline_validator())
    except pystac.STACValidationError as exc:
        raise CatalogError(f"{href or obj.get('id')}: invalid STAC: {exc}") from exc


def validate_tree(catalog_path: Path) -> int:
    """Validate a catalog, its children and items, following relative links; return the object count."""
    seen: set[Path] = set()
    pending = [catalog_path.resolve()]
    while pending:
        path = pending.pop()
        if path in seen:
            continue
        seen.add(path)
        obj = json.loads(path.read_text(encoding="utf-8"))
        validate_object(obj, href=str(path))
        for link in obj.get("links", []):
            if link.get("rel") in ("child", "item") and "://" not in link["href"]:
                pending.append((path.parent / link["href"]).resolve())
        for asset in obj.get("assets", {}).values():
            href = asset["href"]
            if "://" not in href and not (path.parent / href).exists():
                raise CatalogError(f"{path}: asset {href} does not exist")
    return len(seen)
