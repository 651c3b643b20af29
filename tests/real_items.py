"""Time series cloned from real provider items: their own grids, keys, metadata and file formats, local pixels.

Each provider's real item (tests/data/real-stac/) is copied to one item per date with its JSON kept as the provider
writes it (no pystac round trip: STAC 1.0.0-beta.1, `proj:epsg` or `proj:code`, 9-element transforms stay as
they are); only ids, times, the footprint, `proj:shape` and the read assets' hrefs change. The read assets are
small files at the item's grid origin in the item's CRS, each at its own pixel size (10 m and 20 m assets of one
item stay 10 m and 20 m), GeoTIFF or JPEG 2000 as the provider serves them, holding synthetic reflectances encoded
with the item's own scale and offset: a forest, a planted clear-cut, and clouds its mask flags.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from pypgstac.db import PgstacDB
from pypgstac.load import Loader, Methods
from pypgstac.migrate import Migrate
from rasterio.transform import Affine
from rasterio.warp import transform_bounds

REAL = Path(__file__).parent / "data" / "real-stac"
SIZE = 32  # tile edge in px at the tile's resolution
CUT = (slice(8, 16), slice(8, 20))  # the planted clear-cut, rows x columns of the tile
CLOUD = (slice(24, 32), slice(0, 12))  # pixels the mask flags on CLOUDY_RUN dates, with cloud reflectances
FOREST = {"red": 0.04, "nir": 0.30}
CLEARED = {"red": 0.12, "nir": 0.18}
CLOUD_REFLECTANCE = {"red": 0.40, "nir": 0.42}

HISTORY = (dt.date(2021, 1, 1), dt.date(2022, 6, 30))
UNTIL = dt.date(2022, 12, 31)
CUT_DAY = dt.date(2022, 9, 1)


def dates() -> list[dt.date]:
    """About 40 dates: every 16 days over the history, every 10 days over the monitoring period."""
    days = [HISTORY[0] + dt.timedelta(days=16 * i) for i in range(34)]
    days = [d for d in days if d <= HISTORY[1]]
    return days + [dt.date(2022, 7, 5) + dt.timedelta(days=10 * i) for i in range(18)]


def cloudy(day: dt.date) -> bool:
    """Three monitoring dates in a row whose CLOUD pixels the mask flags: an unmasked cloud would be confirmed."""
    return dt.date(2022, 8, 1) <= day <= dt.date(2022, 8, 31)


@dataclass(frozen=True)
class Provider:
    """How one provider's item is cloned: the keys read, their format, the mask's values, the DN encoding."""

    name: str
    item_file: str
    preset: str
    red: str
    nir: str
    mask: str
    clear: int  # a clear mask value (SCL class or QA bits)
    cloud: int  # a cloudy one
    resolution: float  # of the tile grid
    driver: str = "GTiff"
    source_extra: str = ""  # more [source] lines (keys the preset does not know for this collection)
    # (scale, offset) the provider's DNs of `day` are encoded with, as its metadata states them.
    linear: Callable[[dt.date], tuple[float, float]] = lambda day: (0.0001, -0.1)
    edit: Callable[[dict[str, Any], dt.date], None] = lambda item, day: None  # per-date metadata (baseline)
    # check-source's asset lines: data type and pixel size of red, nir and mask, as the item states them.
    described: tuple[str, str, str] = ("uint16, 10 m", "uint16, 20 m", "uint8, 20 m")

    def raw(self) -> dict[str, Any]:
        return json.loads((REAL / self.item_file).read_text())


def _pc_baseline(item: dict[str, Any], day: dt.date) -> None:
    # The history crosses ESA's baseline 04.00 (25 January 2022): Planetary Computer states only the baseline.
    item["properties"]["s2:processing_baseline"] = "04.00" if day >= dt.date(2022, 1, 25) else "02.12"


PROVIDERS = [
    Provider(
        "planetary-computer",
        "S2B_MSIL2A_20190629T212529_R043_T06VVN_20201006T080531_raster_ext.json",
        "planetary-computer/sentinel-2-l2a",
        "B04",
        "B8A",
        "SCL",
        4,
        9,
        20.0,
        linear=lambda day: (0.0001, -0.1 if day >= dt.date(2022, 1, 25) else 0.0),
        edit=_pc_baseline,
    ),
    Provider(
        "usgs",
        "LC08_L2SP_028030_20200114_20200824_02_T1_SR.json",
        "usgs/landsat-c2l2-sr",
        "red",
        "nir08",
        "qa_pixel",
        21824,  # clear, no cloud bits
        22280,  # bit 3: cloud
        30.0,
        linear=lambda day: (0.0000275, -0.2),
        described=("?, 30 m", "?, 30 m", "?, 30 m"),  # no raster:bands; the item's proj:transform
    ),
    Provider(
        "cdse",
        "S2C_MSIL2A_20250330T100051_N0511_R122_T33UWP_20250330T145914_cdse_stac_v110.json",
        "cdse/sentinel-2-l2a",
        "B04_20m",
        "B8A_20m",
        "SCL_20m",
        4,
        9,
        20.0,
        driver="JP2OpenJPEG",
        described=("uint16, 20 m", "uint16, 20 m", "uint8, 20 m"),  # STAC 1.1: data_type on the asset
    ),
    Provider(
        "earth-search-c1",
        "S2B_T38XNF_20250422T091553_L2A_built.json",
        "earth-search/sentinel-2-c1-l2a",
        "red",
        "nir08",
        "scl",
        4,
        9,
        20.0,
    ),
    Provider(
        "earth-search-v0",
        "S2A_28QCH_20200714_0_L2A.json",
        "earth-search/sentinel-2-l2a",
        "B04",
        "B8A",
        "SCL",
        4,
        9,
        20.0,
        source_extra=(
            'collection = "sentinel-s2-l2a-cogs"\nmask_band = "SCL"\n'
            'bands = { red = "B04", nir = "B8A", green = "B03", swir16 = "B11" }\n'
        ),
        # No raster:bands: its product id's baseline (N0214) says no offset.
        linear=lambda day: (0.0001, 0.0),
        described=("?, 10 m", "?, 20 m", "?, 20 m"),  # no gsd on the assets: their 9-element proj:transform
    ),
]


def _grid(item: dict[str, Any], key: str) -> tuple[float, float, float]:
    """The asset's origin and pixel size from its own proj:transform (6 or 9 elements), else the item's."""
    transform = item["assets"][key].get("proj:transform") or item["properties"]["proj:transform"]
    return float(transform[2]), float(transform[5]), float(transform[0])


def crs_of(item: dict[str, Any]) -> str:
    """The item's CRS, from proj:code (STAC 1.1, on the assets at CDSE) or proj:epsg."""
    props = item["properties"]
    if "proj:epsg" in props:
        return f"EPSG:{props['proj:epsg']}"
    return next(a["proj:code"] for a in item["assets"].values() if a.get("proj:code"))


def reflectance(day: dt.date, role: str, rng: np.random.Generator) -> np.ndarray:
    """The tile's true reflectance of `role` on `day`: forest with a little noise, the cut after CUT_DAY, clouds."""
    values = np.full((SIZE, SIZE), FOREST[role], np.float64)
    values += rng.normal(0, 0.002, values.shape)
    if day >= CUT_DAY:
        values[CUT] = CLEARED[role]
    if cloudy(day):
        values[CLOUD] = CLOUD_REFLECTANCE[role]
    return values


def _write(path: Path, array: np.ndarray, crs: str, transform: Affine, driver: str) -> None:
    profile: dict[str, Any] = {"driver": driver, "width": array.shape[1], "height": array.shape[0], "count": 1}
    if driver == "JP2OpenJPEG":
        profile.update(QUALITY=100, REVERSIBLE="YES")  # lossless, as ESA's L2A JPEG 2000 files are
    else:
        profile.update(tiled=True, blockxsize=16, blockysize=16, compress="deflate")
    with rasterio.open(path, "w", **profile, dtype=array.dtype, crs=crs, transform=transform, nodata=0) as dst:
        dst.write(array, 1)


def clone_series(provider: Provider, folder: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The provider's item cloned to every date, with local assets; and the collection to load them into."""
    real = provider.raw()
    crs = crs_of(real)
    x0, y0, _ = _grid(real, provider.nir)
    res = provider.resolution
    west, south, east, north = transform_bounds(crs, "EPSG:4326", x0, y0 - SIZE * res, x0 + SIZE * res, y0)
    footprint = {
        "type": "Polygon",
        "coordinates": [[[west, south], [east, south], [east, north], [west, north], [west, south]]],
    }
    rng = np.random.default_rng(7)
    ext = "jp2" if provider.driver == "JP2OpenJPEG" else "tif"
    items = []
    for n, day in enumerate(dates()):
        item = copy.deepcopy(real)
        when = dt.datetime.combine(day, dt.time(10, 30), tzinfo=dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        item["id"] = f"{real['id']}-{day:%Y%m%d}"
        props = item["properties"]
        props["datetime"] = when
        for name in ("start_datetime", "end_datetime"):
            if name in props:
                props[name] = when
        props["eo:cloud_cover"] = 30.0 if cloudy(day) else 1.0
        provider.edit(item, day)
        item["geometry"], item["bbox"] = footprint, [west, south, east, north]
        item["links"] = [link for link in item.get("links", []) if link["rel"] not in ("self", "parent", "root")]
        scale, offset = provider.linear(day)
        truth = {role: reflectance(day, role, rng) for role in ("red", "nir")}
        for role, key in (("red", provider.red), ("nir", provider.nir), ("mask", provider.mask)):
            ax, ay, size = _grid(real, key)
            factor = round(res / size)  # 10 m assets of a 20 m tile: each tile pixel is factor x factor file pixels
            if role == "mask":
                data = np.full((SIZE, SIZE), provider.clear, np.uint16 if provider.clear > 255 else np.uint8)
                if cloudy(day):
                    data[CLOUD] = provider.cloud
            else:
                data = np.clip(np.round((truth[role] - offset) / scale), 1, 65535).astype(np.uint16)
            data = np.kron(data, np.ones((factor, factor), data.dtype)) if factor > 1 else data
            path = folder / f"{n:02d}_{key}.{ext}"
            _write(path, data, crs, Affine(size, 0, ax, 0, -size, ay), provider.driver)
            asset = item["assets"][key]
            asset["href"] = path.as_uri()
            asset.pop("alternate", None)  # the provider's other copy is not on this machine either
            if "proj:shape" in asset:
                asset["proj:shape"] = list(data.shape)
        if "proj:shape" in props:  # one grid for the whole item (Landsat: every band is 30 m)
            props["proj:shape"] = [SIZE, SIZE]
        items.append(item)
    collection = {
        "type": "Collection",
        "stac_version": "1.0.0",
        "id": real["collection"],
        "description": f"{provider.name} items cloned for tests",
        "license": "other",
        "links": [],
        "extent": {
            "spatial": {"bbox": [[-180, -90, 180, 90]]},
            "temporal": {"interval": [[None, None]]},
        },
    }
    return collection, items


def loader(collection: dict[str, Any], items: list[dict[str, Any]]) -> Callable[[str], None]:
    """Fill a fresh pgstac database with these dicts as they are (running_stac_api's `load`)."""

    def load(dsn: str) -> None:
        db = PgstacDB(dsn=dsn)
        try:
            Migrate(db).run_migration()
            Loader(db=db).load_collections(iter([collection]), Methods.insert)
            Loader(db=db).load_items(iter(copy.deepcopy(items)), Methods.insert)
        finally:
            db.close()

    return load


def write_config(folder: Path, provider: Provider, url: str, items: list[dict[str, Any]]) -> Path:
    """A deployment over the cloned tile, reading the STAC API with the provider's preset."""
    real = provider.raw()
    x0, y0, _ = _grid(real, provider.nir)
    res = provider.resolution
    config = folder / "nrt-alerts.toml"
    config.write_text(
        f'[area]\ncrs = "{crs_of(real)}"\nresolution = {res:g}\n'
        f"bounds = [{x0}, {y0 - SIZE * res}, {x0 + SIZE * res}, {y0}]\ntile_size = {SIZE}\n"
        f'[source]\npreset = "{provider.preset}"\nurl = "{url}"\nmax_cloud_cover = 100\nretries = 0\n'
        f"{provider.source_extra}"
        f'[monitor]\nalgorithm = "iqr"\nharmonic_order = 1\nsensitivity = 5\n'
        f"[history]\nstart = {HISTORY[0]}\nend = {HISTORY[1]}\n"
        f'[compute]\nexecutor = "serial"\n'
        f'[output]\ndir = "{folder / "output"}"\n'
    )
    return config
