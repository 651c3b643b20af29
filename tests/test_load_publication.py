"""A short load during publication: zero 5xx, and every image is wholly the old or wholly the new version."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from scheduler.demo import DemoArchive

from conftest import TEST_SPEC


def load_bench():
    """bench/load_publication.py as a module (bench/ is not a package)."""
    path = Path(__file__).resolve().parent.parent / "bench" / "load_publication.py"
    spec = importlib.util.spec_from_file_location("load_publication", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module


def test_load_while_a_publication_lands(tmp_path: Path, demo_archive: DemoArchive) -> None:
    bench = load_bench()
    config = bench.prepare(tmp_path / "ws", TEST_SPEC.width, TEST_SPEC.height, archive=demo_archive.root)
    candidates = bench.image_requests(config)
    assert sum(r.kind == "tile" for r in candidates) >= 20 and sum(r.kind == "wms" for r in candidates) == 5
    # Only images the new version changes are loaded, so each one tells which version it came from.
    requests = bench.changing_requests(config, candidates)
    assert sum(r.kind == "tile" for r in requests) >= 15 and sum(r.kind == "wms" for r in requests) == 5
    result = bench.run_load(
        config,
        duration_s=12,
        n_clients=4,
        max_requests=3000,
        publish_after_s=2,
        tail_s=2,
        workdir=tmp_path,
        requests=requests,
    )
    assert result.problems == [], result
    assert result.old_version != result.new_version and result.new_version > result.old_version
    assert result.status_5xx == 0 and result.errors == 0 and result.images_mixed == 0
    # Both versions were served during the run, and every request was answered with one of them.
    assert result.images_old > 0 and result.images_new > 0
    assert result.images_old + result.images_new == result.requests > 50
    assert result.distinct_images == len(requests) and result.unchanged_requests == []
    assert result.publication_visible_s is not None and result.publication_visible_s > result.publication_started_s
    assert result.duration_s <= bench.MAX_DURATION_S + 5
