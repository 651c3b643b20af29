"""The completion marker root/demo-spec.json: the spec of a fully written archive, written last and atomically."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from pydantic import ValidationError

from catalog import atomic
from scheduler.demo.spec import DemoSpec

logger = logging.getLogger(__name__)

MARKER_NAME = "demo-spec.json"
# Bump when the generator's output changes for a given spec, so old archives get rebuilt.
# 2: swir22 asset, ground_truth_kind.tif, `end`/`disturbance` in the GeoJSON (version-1 pixels unchanged).
GENERATOR_VERSION = 2
VERSION_KEY = "generator_version"


def write_marker(root: Path, spec: DemoSpec) -> None:
    """Atomically write the spec (plus generator version) as the archive's completion marker."""
    payload = spec.model_dump(mode="json") | {VERSION_KEY: GENERATOR_VERSION}
    atomic.write_bytes(root / MARKER_NAME, json.dumps(payload, indent=1).encode("utf-8"))


def read_marker(root: Path) -> DemoSpec:
    """Spec of the complete archive in root; FileNotFoundError if there is none."""
    text = (root / MARKER_NAME).read_text(encoding="utf-8")
    # DemoSpec ignores unknown keys, so the version key does not get in the way.
    return DemoSpec.model_validate_json(text)


def marker_matches(root: Path, spec: DemoSpec) -> bool:
    """Tell whether root holds a complete archive of this spec made by this generator version."""
    try:
        payload = json.loads((root / MARKER_NAME).read_text(encoding="utf-8"))
        found = DemoSpec.model_validate(payload)
    except (OSError, ValueError, ValidationError) as exc:
        logger.debug("no usable marker in %s: %s", root, exc)
        return False
    return found == spec and payload.get(VERSION_KEY) == GENERATOR_VERSION
