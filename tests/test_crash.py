"""Exactly once under SIGKILL: kill `nrt-alerts update` at many points, restart, compare with an uninterrupted run.

Every case starts from the same deployment (fitted, updated to BASE_UNTIL, published), runs `update --until UNTIL`
in a forked child of tests/killer.py that SIGKILLs itself at the N-th hit of one kill point, then runs the same
update again to completion (another child, no kill point), and checks states and catalog against a reference
deployment that ran the update once without interruption.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import rasterio
from killer import POINTS

from catalog.atomic import is_temp
from catalog.store import CatalogLayout, read_index
from catalog.tree import linked_items
from catalog.validate import validate_tree
from scheduler.config import Config
from scheduler.demo import DemoArchive
from scheduler.pipeline import Pipeline
from scheduler.state import TileState, generations, load_state

from conftest import clone_workspace

BASE_UNTIL = "2023-05-31"  # the deployment every case starts from
UNTIL = "2023-06-15"  # the interrupted update: 3 acquisitions per tile, then one publication
GENERATIONS = 1  # state generations kept in the cases, so that every save also prunes one

# (kill point, hit number): the update runs tile r000c000 then r000c001, so hit 2 of a per-tile point is the
# second tile, after the first one has been committed.
CASES = [
    # loading
    ("load-state", 1),
    ("load-state-done", 2),
    ("search", 1),
    ("search-done", 2),
    ("load-index", 1),
    ("read-archive-cog", 3),
    ("odc-load-done", 2),
    # monitoring
    ("absorb", 1),
    ("absorb", 3),
    ("absorb-done", 5),
    ("nrt-monitor", 4),
    ("save-state", 1),
    ("netcdf-written", 1),
    ("keep-generation", 2),
    ("generation-linked", 1),
    ("fsync-state-temp", 2),
    ("replace-state", 1),
    ("state-replaced", 1),
    ("prune-generations", 1),
    ("prune-unlink", 2),
    ("save-state-done", 2),
    # report writing
    ("unpublished", 1),
    ("unpublished", 3),  # the publication's decision, after both tiles' items were written ahead
    ("staged", 1),  # the first tile's item written ahead, the second tile not done
    ("report-layers", 2),
    ("write-cog", 1),
    ("write-cog", 8),
    ("cog-translated", 3),
    ("cog-validated", 7),
    ("replace-cog", 2),
    ("cog-replaced", 12),
    ("series-chunk", 1),
    ("series-staged", 2),
    ("series-chunk-done", 2),
    ("thumbnail", 1),
    ("thumbnail-done", 2),
    # catalog writing
    ("item-json", 1),
    ("item-json-done", 1),
    ("item-json-done", 2),
    ("write-vrt", 1),
    ("vrt-replaced", 3),
    ("vrt-replaced", 6),
    ("collection", 1),
    ("collection-done", 1),
    ("replace-index", 1),
    ("index-replaced", 1),
    ("index-dir-synced", 2),
    ("run-log", 1),
    ("run-log-done", 1),
]


class Zygote:
    """tests/killer.py --serve: forks one child per command, so the imports are paid once."""

    def __init__(self, log: Path) -> None:
        self.log = log
        env = {
            **os.environ,
            "OPENBLAS_NUM_THREADS": "1",
            "OMP_NUM_THREADS": "1",
            "NRT_ALERTS_OUTPUT__STATE_GENERATIONS": str(GENERATIONS),
        }
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("killer.py")), "--serve"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )

    def run(self, argv: list[str], at: str | None = None) -> dict:
        """Run one command line in a child; how it ended."""
        self.proc.stdin.write(json.dumps({"at": at, "argv": argv, "log": str(self.log)}) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, f"killer.py died; see {self.log}"
        return json.loads(line)

    def close(self) -> None:
        """End the zygote (closing stdin ends its loop)."""
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


@dataclass
class Bench:
    """The shared starting deployment, the reference outcome and the zygote."""

    archive: DemoArchive
    base: Config
    reference: Config
    zygote: Zygote
    root: Path
    published: dict[str, np.ndarray] | None = None  # the reference's latest mosaics


def update_argv(cfg: Config, until: str) -> list[str]:
    """The command line of the update under test."""
    return ["--log-level", "warning", "update", "-c", str(cfg.output.dir.parent / "nrt-alerts.toml"), "--until", until]


def clone(bench: Bench, name: str) -> Config:
    """A fresh deployment in the starting state."""
    return clone_workspace(bench.root / name, bench.base, bench.archive)


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory, demo_archive: DemoArchive, fitted: Config) -> Iterator[Bench]:
    root = tmp_path_factory.mktemp("crash")
    base = clone_workspace(root / "base", fitted, demo_archive)  # conftest's fit, copied
    assert base.output.dir == root / "base" / "output"
    pipeline = Pipeline(base)
    pipeline.run_update(pipeline_until(BASE_UNTIL))
    zygote = Zygote(root / "children.log")
    try:
        b = Bench(demo_archive, base, base, zygote, root)
        b.reference = clone(b, "reference")
        assert zygote.run(update_argv(b.reference, UNTIL)) == {"killed": False, "code": 0}
        b.published = check_catalog(b.reference, b.base)
        yield b
    finally:
        zygote.close()


def pipeline_until(day: str):
    """The end of a day, as --until reads it."""
    from server.cli import _parse_until

    return _parse_until(day)


def assert_same_state(got: TileState, want: TileState) -> None:
    """Same acquisitions in the same order, each once, and bit-identical arrays."""
    assert got.absorbed == want.absorbed
    assert len(set(got.absorbed)) == len(got.absorbed), "an acquisition was absorbed twice"
    assert got.fingerprint == want.fingerprint and got.history_acquisitions == want.history_acquisitions
    mine, theirs = vars(got.monitor.monitor), vars(want.monitor.monitor)
    assert mine.keys() == theirs.keys()
    for key, value in mine.items():
        if isinstance(value, np.ndarray):
            assert value.dtype == theirs[key].dtype, key
            np.testing.assert_array_equal(value, theirs[key], err_msg=key)
        else:
            assert value == theirs[key], key
    for key, value in got.monitor.extras.items():
        np.testing.assert_array_equal(value, want.monitor.extras[key], err_msg=key)


def read_fully(path: Path) -> np.ndarray:
    """Read every pixel of a raster and of each of its overviews (a truncated file fails here)."""
    assert path.is_file(), path
    assert not is_temp(path), f"{path} is a temp file"
    with rasterio.open(path) as src:
        data = src.read(1)
        for factor in src.overviews(1):
            src.read(1, out_shape=(max(1, src.height // factor), max(1, src.width // factor)))
    return data


def check_catalog(cfg: Config, base: Config) -> dict[str, np.ndarray]:
    """Validate the catalog and open every file its new publications name; return the latest mosaics."""
    layout = CatalogLayout(cfg.output.stac_dir)
    validate_tree(layout.catalog_path)
    index = read_index(layout)
    before = read_index(CatalogLayout(base.output.stac_dir)).ids
    for publication in index.publications:
        if publication.id in before:
            continue  # copied from the starting deployment, untouched
        for item_id in publication.items.values():
            item_path = layout.item_path(item_id)
            item = json.loads(item_path.read_text(encoding="utf-8"))
            for asset in item["assets"].values():
                read_fully(item_path.parent / asset["href"])
        for rel in publication.mosaics.values():
            vrt = layout.collection_dir / rel
            for source in ET.parse(vrt).getroot().iter("SourceFilename"):
                assert not is_temp(Path(source.text)), f"{vrt} names a temp file"
            read_fully(vrt)
    latest = index.latest
    return {asset: read_fully(layout.collection_dir / rel) for asset, rel in latest.mosaics.items()}


def test_kill_points_cover_every_phase() -> None:
    used = {point for point, _ in CASES}
    assert len(CASES) >= 30 and used <= POINTS.keys()
    assert {POINTS[p].phase for p in used} == {"loading", "monitoring", "report", "catalog"}
    for phase in ("loading", "monitoring", "report", "catalog"):
        assert sum(POINTS[p].phase == phase for p, _ in CASES) >= 6, phase


@pytest.mark.parametrize(("point", "hit"), CASES, ids=[f"{p}:{n}" for p, n in CASES])
def test_sigkill_then_restart_equals_uninterrupted_run(bench: Bench, point: str, hit: int) -> None:
    cfg = clone(bench, f"{point}-{hit}")
    killed = bench.zygote.run(update_argv(cfg, UNTIL), at=f"{point}:{hit}")
    assert killed["killed"], f"kill point {point}:{hit} was never reached: {killed}"
    assert bench.zygote.run(update_argv(cfg, UNTIL)) == {"killed": False, "code": 0}

    pipeline, reference = Pipeline(cfg), Pipeline(bench.reference)
    for tile in pipeline.tiles:
        assert_same_state(load_state(pipeline.tile_state_path(tile)), load_state(reference.tile_state_path(tile)))
        kept = generations(pipeline.tile_state_path(tile))
        assert all(g.ok for g in kept)
        # Killed after a tile's new state landed but before its pruning (at that point, or on the other tile's
        # thread meanwhile): the restart's update of the tile prunes the extra generation.
        assert len(kept) - 1 == GENERATIONS
    layers = check_catalog(cfg, bench.base)
    for asset, array in bench.published.items():
        np.testing.assert_array_equal(layers[asset], array, err_msg=asset)
    # Published exactly once, under the same names as the uninterrupted run: no twin items, no extra versions.
    got, want = (read_index(CatalogLayout(c.output.stac_dir)) for c in (cfg, bench.reference))
    assert [p.id for p in got.publications] == [p.id for p in want.publications]
    assert got.latest.items == want.latest.items and got.latest.mosaics == want.latest.mosaics
    assert item_links(cfg) == item_links(bench.reference)
    # Nothing half-written is left behind: interrupted writes were cleaned up by the restart.
    leftovers = [p for d in (cfg.output.state_dir, cfg.output.stac_dir) for p in d.rglob("*") if is_temp(p)]
    assert leftovers == []
    shutil.rmtree(cfg.output.dir.parent)  # passed: free the space


def item_links(cfg: Config) -> list[str]:
    """The items the catalog's links lead to (collection -> month catalogs -> items)."""
    layout = CatalogLayout(cfg.output.stac_dir)
    return sorted(path.relative_to(layout.root.resolve()).as_posix() for path in linked_items(layout).values())
