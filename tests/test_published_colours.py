"""The published files shown directly (no tile server): alerts in the legend's colours over transparency, both when
GDAL expands the mosaic VRT's colour table and when QGIS opens the VRT or the RGBA `visual` COG over HTTP."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import rasterio
from PIL import Image
from test_wms_qgis import probe, qgis_missing

from catalog.encoding import status_colormap
from catalog.store import CatalogLayout, read_index

from conftest import DemoRun

COLOURS = status_colormap()
SHOWN = sorted(code for code, rgba in COLOURS.items() if rgba[3] > 0)


def expected_rgba(status: np.ndarray) -> np.ndarray:
    """(rows, cols, 4): the legend colour of every status code, transparent where the legend hides the code."""
    table = np.zeros((256, 4), dtype=np.uint8)
    for code, rgba in COLOURS.items():
        table[code] = rgba
    return table[status]


@pytest.fixture(scope="module")
def layout(static_run: DemoRun) -> CatalogLayout:
    return CatalogLayout(static_run.cfg.output.stac_dir)


def latest_status(layout: CatalogLayout) -> tuple[Path, np.ndarray]:
    vrt = layout.collection_dir / read_index(layout).latest.mosaics["status"]
    with rasterio.open(vrt) as src:
        return vrt, src.read(1)


def test_the_mosaic_colour_table_carries_the_legend_alpha(layout: CatalogLayout) -> None:
    vrt, status = latest_status(layout)
    with rasterio.open(vrt) as src:
        table = src.colormap(1)
    assert table[0][3] == 0 and all(table[code] == COLOURS[code] for code in SHOWN)
    assert np.isin(status, SHOWN).sum() > 100 and (status == 0).mean() > 0.5


@pytest.mark.skipif(shutil.which("gdal_translate") is None, reason="gdal_translate (gdal-bin) is not installed")
def test_gdal_expanding_the_colour_table_shows_alerts_over_transparency(layout: CatalogLayout, tmp_path: Path) -> None:
    vrt, status = latest_status(layout)
    out = tmp_path / "expanded.tif"
    subprocess.run(["gdal_translate", "-q", "-expand", "rgba", str(vrt), str(out)], check=True, timeout=120)
    with rasterio.open(out) as src:
        rgba = np.moveaxis(src.read(), 0, -1)
    assert (rgba == expected_rgba(status)).all()
    opaque_black = (rgba[..., 3] > 0) & (rgba[..., :3] == 0).all(axis=-1)
    assert not opaque_black.any() and (rgba[..., 3] > 0).sum() == np.isin(status, SHOWN).sum()


def test_every_item_has_an_rgba_visual_cog(layout: CatalogLayout) -> None:
    index = read_index(layout)
    for item_id in index.latest.items.values():
        item = json.loads(layout.item_path(item_id).read_text())
        visual = item["assets"]["visual"]
        assert visual["roles"] == ["visual"] and "cloud-optimized" in visual["type"]
        with rasterio.open(layout.asset_path(item_id, "status")) as src:
            status = src.read(1)
        with rasterio.open(layout.item_path(item_id).parent / visual["href"]) as src:
            assert src.count == 4 and src.colorinterp[3].name == "alpha" and src.overviews(1)
            rgba = np.moveaxis(src.read(), 0, -1)
        assert (rgba == expected_rgba(status)).all()


@pytest.mark.qgis
@pytest.mark.slow
@pytest.mark.skipif(qgis_missing(), reason="/usr/bin/python3 cannot import qgis (python3-qgis)")
def test_qgis_add_raster_layer_shows_alerts_over_transparency(
    static_server: str, layout: CatalogLayout, tmp_path: Path
) -> None:
    vrt, status = latest_status(layout)
    index = read_index(layout)
    item_id = next(iter(index.latest.items.values()))
    with rasterio.open(layout.asset_path(item_id, "status")) as src:
        item_status = src.read(1)
    base = f"/vsicurl/{static_server}/stac/alerts"
    for source, truth in (
        (f"{base}/{index.latest.mosaics['status']}", status),
        (f"{base}/items/{item_id}/{item_id}_visual.tif", item_status),
    ):
        answer = probe({"action": "render", "source": source, "png": str(tmp_path / "render.png")})
        rendered = np.asarray(Image.open(answer["png"]).convert("RGBA"))
        assert rendered.shape[:2] == truth.shape, source
        shown = rendered[..., 3] > 0
        assert (shown == np.isin(truth, SHOWN)).all(), f"{source}: {int(shown.sum())} px drawn"
        assert not (shown & (rendered[..., :3] == 0).all(axis=-1)).any(), f"{source}: opaque black pixels"
        assert {tuple(int(v) for v in px) for px in rendered[shown]} <= {COLOURS[code] for code in SHOWN}
