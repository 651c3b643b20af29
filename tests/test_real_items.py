"""Real provider items through a STAC API into a fit and an update, each with its provider's preset.

Per provider (tests/real_items.py): ~40 clones of its real item in stac-fastapi-pgstac, as the provider writes them
(band-suffixed keys, eo:bands or STAC 1.1 bands, raster:bands or asset raster:scale/offset, proj:epsg or proj:code,
9-element transforms, 10 m and 20 m assets, GeoTIFF or JPEG 2000), read by `nrt-alerts fit` and `update`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import rasterio
from real_items import CLOUD, CUT, FOREST, HISTORY, PROVIDERS, UNTIL, Provider, clone_series, loader, write_config

from catalog.store import CatalogLayout, read_index
from scheduler.config import Config, load_config
from scheduler.grid import area_tiles
from scheduler.loading import load_index
from scheduler.sources import StacApiSource
from server.cli import main

from stac_api import require_postgres, running_stac_api

pytestmark = [pytest.mark.pgstac, pytest.mark.slow]

ALERTED = (3, 6)  # confirmed, low or high confidence
RAISED = (2, 3, 5, 6)  # provisional or confirmed


@dataclass
class Deployment:
    provider: Provider
    config: Path
    cfg: Config
    items: list[dict]


@pytest.fixture(scope="module", params=PROVIDERS, ids=[p.name for p in PROVIDERS])
def deployment(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """One provider's cloned series served by stac-fastapi-pgstac (one database at a time), and its config."""
    require_postgres()
    provider: Provider = request.param
    folder = tmp_path_factory.mktemp(provider.name)
    assets = folder / "assets"
    assets.mkdir()
    collection, items = clone_series(provider, assets)
    with running_stac_api(None, folder / "pgstac", load=loader(collection, items)) as url:
        config = write_config(folder, provider, url, items)
        yield Deployment(provider, config, load_config(config), items)


def test_the_preset_reads_each_date_with_the_items_scale_and_offset(deployment: Deployment) -> None:
    cfg = deployment.cfg
    [tile] = area_tiles(cfg.area)
    start = dt.datetime.combine(HISTORY[0], dt.time(), tzinfo=dt.UTC)
    end = dt.datetime.combine(HISTORY[1], dt.time(23, 59), tzinfo=dt.UTC)
    found = StacApiSource(cfg.source).search(tile.bounds_4326, start, end)
    assert len(found) == len([i for i in deployment.items if i["properties"]["datetime"] < "2022-07"])
    ndvi = load_index(found, tile, cfg).values
    expected = (FOREST["nir"] - FOREST["red"]) / (FOREST["nir"] + FOREST["red"])  # 0.765
    # Noise of 0.002 reflectance moves a pixel's NDVI by about 0.01; a wrong offset (0.1) by 0.2 or more.
    assert abs(float(np.nanmedian(ndvi)) - expected) < 0.005
    assert float(np.nanmax(np.abs(ndvi - expected))) < 0.05


def test_check_source_describes_the_items_assets_and_reads_the_newest(
    deployment: Deployment, capsys: pytest.CaptureFixture
) -> None:
    provider = deployment.provider
    assert main(["--log-level", "warning", "check-source", "-c", str(deployment.config)]) == 0
    out = capsys.readouterr().out.splitlines()
    roles = ("red", "nir", "mask")
    keys = (provider.red, provider.nir, provider.mask)
    assert out[2:5] == [f"  {r} = {k} ({d})" for r, k, d in zip(roles, keys, provider.described, strict=True)]
    assert out[-1].endswith("ndvi valid on 100.0% of the tile's pixels"), out


def test_fit_and_update_alert_the_planted_clear_cut_and_nothing_else(
    deployment: Deployment, capsys: pytest.CaptureFixture
) -> None:
    config = str(deployment.config)
    assert main(["--log-level", "warning", "fit", "-c", config]) == 0, capsys.readouterr().err
    assert main(["--log-level", "warning", "update", "-c", config, "--until", f"{UNTIL}"]) == 0, capsys.readouterr().err
    layout = CatalogLayout(deployment.cfg.output.stac_dir)
    with rasterio.open(layout.collection_dir / read_index(layout).latest.mosaics["status"]) as src:
        status = src.read(1)
    cut = np.zeros(status.shape, bool)
    cut[CUT] = True
    assert np.isin(status[cut], ALERTED).all(), np.unique(status[cut], return_counts=True)
    assert not np.isin(status[~cut], RAISED).any(), np.argwhere(np.isin(status, RAISED) & ~cut)
    assert (status[CLOUD] == 0).all()  # the masked clouds were not taken for a disturbance
