"""The baseline: nrt's deployment guide ("Deploying your own operational NRT system", docs/deploy.rst), as written.

One phase per invocation, like the guide's three scripts (fit, fast forward, daily `operational_monitoring.py`):

    python bench/baseline.py fit      --archive DIR --data DIR --geobox W,H,RES,X0,Y0,EPSG
    python bench/baseline.py forward  --archive DIR --data DIR --geobox ... --until ISO
    python bench/baseline.py update   --archive DIR --data DIR --geobox ... --until ISO

It follows the guide step by step: search the catalogue, `stac_load` the whole period with `chunks={'time': 1}`
(B04/B8A cubic, SCL nearest, `groupby='solar_day'`), `where(ds != 0)`, DN offset 1000, SCL in [4, 5, 6, 7], NDVI
with inf -> NaN, `.compute()`, fit on the history and `to_netcdf`; then `from_netcdf`, `monitor()` per date with a
processed-dates log, `report()` to GeoTIFF and `to_netcdf`. Deviations, all needed to run it here and to compare
the same computation (see bench/README.md): the demo's static catalog is filtered in Python (pystac-client cannot
search a static catalog) with the same cloud limit nrt-alerts uses; the demo's asset keys (red, nir08, scl); the
monitor settings nrt-alerts uses (IQR, trend, harmonic order 3, sensitivity 2.5, OLS); the report in uint16
(the guide's uint8 overflows dates) with the area's CRS; nrt 0.3.0's from_netcdf attribute bug worked around.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
from pathlib import Path

import numpy as np
import pystac
import rasterio
from affine import Affine
from nrt.monitor.iqr import IQR
from odc.geo.geobox import GeoBox
from odc.stac import stac_load
from rasterio.crs import CRS
from shapely.geometry import box, shape

MAX_CLOUD_COVER = 95
BANDS = ["red", "nir08", "scl"]
RESAMPLING = {"red": "cubic", "nir08": "cubic", "scl": "nearest"}


def search(catalog_path: Path, bbox: tuple, start: datetime.datetime, end: datetime.datetime) -> list[pystac.Item]:
    """What the guide's `catalog.search(bbox=..., datetime=[start, end], query=cloud cover)` returns."""
    catalog = pystac.Catalog.from_file(str(catalog_path))
    area = box(*bbox)
    found = []
    for item in catalog.get_items(recursive=True):
        when = item.datetime.replace(tzinfo=None)
        if not (start <= when <= end):
            continue
        if item.properties.get("eo:cloud_cover", 0) > MAX_CLOUD_COVER:
            continue
        if not shape(item.geometry).intersects(area):
            continue
        item.make_asset_hrefs_absolute()
        found.append(item)
    return found


def load_ndvi(items: list[pystac.Item], gbox: GeoBox):
    """Steps 3-5 of the guide: load, pre-process, NDVI, compute."""
    ds = stac_load(items, bands=BANDS, resampling=RESAMPLING, geobox=gbox, groupby="solar_day", chunks={"time": 1})
    ds = ds.where(ds != 0)
    ds["red"] = ds.red - 1000
    ds["nir08"] = ds.nir08 - 1000
    ds = ds.where(ds.scl.isin([4, 5, 6, 7]))
    ds = ds.drop_vars("scl")
    ndvi = (ds.nir08 - ds.red) / (ds.nir08 + ds.red)
    ndvi = ndvi.where(~np.isinf(ndvi), np.nan)
    ndvi = ndvi.sortby("time")
    return ndvi.compute()


def load_model(path: Path) -> IQR:
    """`IQR.from_netcdf`, with nrt 0.3.0's lost attribute types restored (else the second load fails)."""
    model = IQR.from_netcdf(str(path))
    for name in ("harmonic_order", "boundary"):
        setattr(model, name, int(getattr(model, name)))
    for name in ("trend", "update_mask", "save_fit_start"):
        if hasattr(model, name):
            setattr(model, name, bool(getattr(model, name)))
    model.sensitivity = float(model.sensitivity)
    return model


def fit(args: argparse.Namespace, gbox: GeoBox) -> dict:
    """The guide's "Fit the stable history period" snippet."""
    history_period = [datetime.datetime.fromisoformat(args.history_start), _day_end(args.history_end)]
    items = search(args.catalog, gbox.geographic_extent.boundingbox, *history_period)
    ndvi = load_ndvi(items, gbox)
    with rasterio.open(args.forest_mask) as src:
        mask = src.read(1)
    model = IQR(mask=mask, trend=True, harmonic_order=3, sensitivity=2.5, boundary=3)
    model.fit(ndvi, method="OLS")
    model.to_netcdf(str(args.data / "iqr_ndvi_fitted_state.nc"))
    return {"acquisitions": int(ndvi.sizes["time"])}


def forward(args: argparse.Namespace, gbox: GeoBox) -> dict:
    """The guide's "Fast forward" snippet."""
    date_log = args.data / "processed_dates.log"
    date_log.unlink(missing_ok=True)
    ff_period = [datetime.datetime.fromisoformat(args.history_end) + datetime.timedelta(days=1), _until(args.until)]
    model = load_model(args.data / "iqr_ndvi_fitted_state.nc")
    items = search(args.catalog, gbox.geographic_extent.boundingbox, *ff_period)
    n = _monitor_items(model, items, gbox, date_log)
    _report_and_save(model, args, gbox)
    return {"acquisitions": n}


def update(args: argparse.Namespace, gbox: GeoBox) -> dict:
    """The guide's `run_daily_monitoring()`."""
    date_log = args.data / "processed_dates.log"
    model = load_model(args.data / "iqr_ndvi_current_state.nc")
    lines = date_log.read_text().splitlines() if date_log.exists() else []
    last_date = datetime.datetime.fromisoformat(lines[-1].strip()) if lines else datetime.datetime(2023, 1, 1)
    start_date = last_date + datetime.timedelta(days=1)
    items = search(args.catalog, gbox.geographic_extent.boundingbox, start_date, _until(args.until))
    if not items:
        return {"acquisitions": 0}
    n = _monitor_items(model, items, gbox, date_log)
    if n:
        _report_and_save(model, args, gbox)
    return {"acquisitions": n}


def _monitor_items(model: IQR, items: list[pystac.Item], gbox: GeoBox, date_log: Path) -> int:
    """Load the period, then `monitor()` each date and log it."""
    if not items:
        return 0
    ndvi = load_ndvi(items, gbox)
    n = 0
    for date in ndvi.time.values.astype("M8[s]").astype(datetime.datetime):
        ndvi_slice = ndvi.sel(time=date, method="nearest").values
        if not np.isnan(ndvi_slice).all():
            model.monitor(array=ndvi_slice, date=date)
            with open(date_log, "a") as log:
                log.write(date.strftime("%Y-%m-%d") + "\n")
            n += 1
    return n


def _report_and_save(model: IQR, args: argparse.Namespace, gbox: GeoBox) -> None:
    """Report to GeoTIFF and save the state, as the guide does after each run."""
    model.report(
        filename=str(args.data / "nrt_report.tif"), layers=["mask", "detection_date"], dtype=np.uint16, crs=gbox.crs
    )
    model.to_netcdf(str(args.data / "iqr_ndvi_current_state.nc"))


def _day_end(value: str) -> datetime.datetime:
    return datetime.datetime.combine(datetime.date.fromisoformat(value), datetime.time(23, 59, 59))


def _until(value: str) -> datetime.datetime:
    when = datetime.datetime.fromisoformat(value)
    return when.replace(tzinfo=None) if when.tzinfo is None else when.astimezone(datetime.UTC).replace(tzinfo=None)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("phase", choices=["fit", "forward", "update"])
    p.add_argument("--catalog", type=Path, required=True, help="The archive's catalog.json")
    p.add_argument("--forest-mask", type=Path, required=True)
    p.add_argument("--data", type=Path, required=True, help="The guide's ./data folder")
    p.add_argument("--geobox", required=True, help="W,H,RES,X0,Y0,EPSG of the study area")
    p.add_argument("--history-start", default="2021-01-01")
    p.add_argument("--history-end", default="2022-12-31")
    p.add_argument("--until", help="End of the fast-forward / the daily run's 'now'")
    args = p.parse_args()
    w, h, res, x0, y0, epsg = args.geobox.split(",")
    transform = Affine(float(res), 0.0, float(x0), 0.0, -float(res), float(y0))
    gbox = GeoBox((int(h), int(w)), transform, CRS.from_epsg(int(epsg)))
    args.data.mkdir(parents=True, exist_ok=True)
    out = {"fit": fit, "forward": forward, "update": update}[args.phase](args, gbox)
    if os.environ.get("BASELINE_REPORT"):
        Path(os.environ["BASELINE_REPORT"]).write_text(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
