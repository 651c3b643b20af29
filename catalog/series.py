"""Per-pixel time series in the output catalog: index values per acquisition ("chunks") and the fitted model.

A chunk holds the index values of the acquisitions one run absorbed (the history at fit time, or one update's new
acquisitions) as an int16 COG, one band per acquisition (value * 10000, nodata -32768, band description = the
acquisition key), pixel-interleaved in small blocks so that reading one pixel's series reads one block. Chunk names
are derived from the tile, the settings that determine the values and the acquisition keys: a re-run after a crash
finds the same name and reuses the file, so published chunks are never rewritten. The model asset of a report holds
the per-pixel model coefficients and the threshold band (offsets from the prediction); its form is in the tags.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numba
import numpy as np
import rasterio
import rasterio.shutil
from affine import Affine
from rasterio.crs import CRS
from rasterio.io import MemoryFile
from rasterio.windows import Window

from catalog.atomic import atomic_path, commit_temp, file_version, make_temp, remove_temps
from catalog.cog import check_cog
from catalog.design import ccdcnrt_design, nrt_design
from catalog.errors import PublishError

log = logging.getLogger(__name__)

SERIES_DIR = "series"  # under the collection folder: series/<tile>/<chunk>.tif
MODELS_DIR = "models"  # under the collection folder: models/<tile>/<tile>-<content hash>.tif, shared by items
SCALE = 1e-4
NODATA = -32768
DATES_TAG = "NRT_ALERTS_DATES"
MODEL_TAG = "NRT_ALERTS_MODEL"
SERIES_KEY = "series"  # the report layer that carries a SeriesExport from the scheduler to the publisher
MODEL_ASSET = "model"
SERIES_ROLE = "time-series"
MODEL_ROLE = "model"
# A point read decompresses one block of every band: keep a block of a chunk under this many bytes.
MAX_BLOCK_BYTES = 512 * 1024
DAY = dt.timedelta(days=1)
WRITE_VALUES = 4_000_000  # values quantised and written at once by a chunk writer (8 MB of int16)


@dataclass(frozen=True)
class ModelForm:
    """How to evaluate a published model: prediction(t) = design(t - lag_years) @ coefficients."""

    monitor: str
    trend: bool
    harmonic_order: int
    convention: str  # "nrt" (nrt.utils.build_regressors) or "ccdcnrt" (scheduler/ccdcnrt.py)
    lag_years: float = 0.0
    band: str = ""  # how lower/upper were derived, for humans

    @property
    def n_coef(self) -> int:
        """Coefficients per pixel."""
        return 1 + int(self.trend) + 2 * self.harmonic_order

    def coefficient_names(self) -> list[str]:
        """Band descriptions of the coefficients, in the convention's column order."""
        names = ["intercept"] + (["trend"] if self.trend else [])
        ks = range(1, self.harmonic_order + 1)
        if self.convention == "nrt":  # nrt puts every cosine first, then every sine
            return names + [f"cos{k}" for k in ks] + [f"sin{k}" for k in ks]
        return names + [name for k in ks for name in (f"cos{k}", f"sin{k}")]

    def describe(self) -> str:
        """The model's formula in words (published in the asset and the docs)."""
        if self.convention == "nrt":
            time = (
                "trend t = whole days since 1970-01-01 (nrt counts from 1970-01-01 plus 1970 ns, so a midnight "
                "date counts one day less); harmonics of d = year + (date - Jan 1) / (Dec 31 - Jan 1); columns "
                "1, t, cos(2 pi k d) for k = 1..K, then sin(2 pi k d) for k = 1..K"
            )
        else:
            time = "t = years of 365.25 days since 1970-01-01; columns 1, t, then cos(2 pi k t), sin(2 pi k t) per k"
        lag = f"; the expected value at t is the model at t - {self.lag_years:g} year" if self.lag_years else ""
        return f"{time}{lag}"

    def to_dict(self) -> dict:
        """JSON form."""
        return {
            "monitor": self.monitor,
            "trend": self.trend,
            "harmonic_order": self.harmonic_order,
            "convention": self.convention,
            "lag_years": self.lag_years,
            "coefficients": self.coefficient_names(),
            "formula": self.describe(),
            "band": self.band,
        }

    @classmethod
    def from_dict(cls, data: dict) -> ModelForm:
        """Parse the JSON form."""
        return cls(
            monitor=data["monitor"],
            trend=bool(data["trend"]),
            harmonic_order=int(data["harmonic_order"]),
            convention=data["convention"],
            lag_years=float(data.get("lag_years", 0.0)),
            band=data.get("band", ""),
        )

    def design(self, times: Sequence[dt.datetime]) -> np.ndarray:
        """The design matrix (len(times), n_coef) of naive UTC datetimes."""
        if self.convention == "nrt":
            return _nrt_design(times, self.trend, self.harmonic_order, self.lag_years)
        return _ccdcnrt_design(times, self.trend, self.harmonic_order, self.lag_years)

    def predict(self, coefficients: np.ndarray, times: Sequence[dt.datetime]) -> np.ndarray:
        """The model's values at times for one pixel's coefficients."""
        return self.design(times) @ np.asarray(coefficients, dtype=np.float64)


def _nrt_design(times: Sequence[dt.datetime], trend: bool, order: int, lag_years: float) -> np.ndarray:
    """Nrt's design (catalog/design.py) at `times`, each moved back by `lag_years` whole years."""
    if lag_years:
        times = [when.replace(year=when.year - int(lag_years)) for when in times]
    return nrt_design(np.array(list(times), dtype="datetime64[ns]"), trend, order)


def _ccdcnrt_design(times: Sequence[dt.datetime], trend: bool, order: int, lag_years: float) -> np.ndarray:
    """CCDC-NRT's design (catalog/design.py) at `times` less `lag_years` years of 365.25 days."""
    years = np.array([(t - dt.datetime(1970, 1, 1)) / dt.timedelta(days=365.25) for t in times]) - lag_years
    return ccdcnrt_design(years, trend, order)


@dataclass
class ModelExport:
    """A monitor's fitted model per pixel: coefficients (k, rows, cols) and the band as offsets from the prediction."""

    form: ModelForm
    coefficients: np.ndarray
    lower: np.ndarray
    upper: np.ndarray


@dataclass
class SeriesExport:
    """What a report publishes about series: the tile's chunk names (oldest first) and the current model."""

    chunks: list[str] = field(default_factory=list)
    model: ModelExport | None = None
    monitoring_start: str | None = None  # YYYY-MM-DD, the first day after the history


def tile_dir(collection_dir: Path, tile_id: str) -> Path:
    """The folder of a tile's chunks."""
    return collection_dir / SERIES_DIR / tile_id


def chunk_name(tile_id: str, keys: Sequence[str], data_key: str) -> str:
    """A chunk's file name: deterministic in the tile, the value-defining settings and the acquisitions."""
    digest = hashlib.sha256(json.dumps([data_key, list(keys)]).encode()).hexdigest()[:10]
    first, last = (k.replace("-", "").replace(":", "")[:15] for k in (keys[0], keys[-1]))
    return f"{tile_id}-{first}-{last}-{digest}.tif"


def _block(bands: int, rows: int, cols: int, itemsize: int) -> int:
    """The largest block side (16 .. 256, power of two) whose pixel-interleaved block stays under MAX_BLOCK_BYTES."""
    side = 256
    while side > 16 and side * side * bands * itemsize > MAX_BLOCK_BYTES:
        side //= 2
    return side


def _profile(bands: int, rows: int, cols: int, dtype: str, crs: CRS, transform: Affine, nodata: float) -> dict:
    """The staging GTiff's profile: tiled, pixel-interleaved, in blocks a point read decompresses at once."""
    side = _block(bands, rows, cols, np.dtype(dtype).itemsize)
    return {
        "driver": "GTiff",
        "width": cols,
        "height": rows,
        "count": bands,
        "dtype": dtype,
        "crs": crs,
        "transform": transform,
        "nodata": nodata,
        "interleave": "pixel",
        "tiled": True,
        "blockxsize": side,
        "blockysize": side,
    }


def _describe(
    dst: rasterio.io.DatasetWriter, descriptions: Sequence[str], tags: dict[str, str], scale: float | None
) -> None:
    """Band names, tags and scale.

    No overview: series files are only ever read one pixel at a time (/series), never displayed, and COG allows
    none (cog_validate only warns above 512 px); one cost 0.9 s and a quarter more bytes per 500 px history chunk.
    """
    for i, text in enumerate(descriptions, start=1):
        dst.set_band_description(i, text)
    if scale is not None:
        dst.scales = [scale] * dst.count
    dst.update_tags(**tags)


def _compression(dtype: str) -> dict[str, str | int]:
    """GTiff creation options of every series COG: ZSTD level 1 with the predictor that suits the dtype.

    ZSTD level 1: half deflate level 1's time on a history chunk, and 4 % smaller; index values are noisy and gain
    little from higher levels.
    """
    return {"COMPRESS": "ZSTD", "ZSTD_LEVEL": 1, "PREDICTOR": 2 if np.dtype(dtype).kind in "iu" else 3}


def _copy_as_cog(src: rasterio.io.DatasetReader, target: Path) -> None:
    """Copy a staged dataset to `target` as a validated COG, atomically."""
    side = src.block_shapes[0][0]
    with atomic_path(target) as tmp:
        # GTiff with COPY_SRC_OVERVIEWS writes the COG layout (what rio-cogeo does, without its per-window
        # warping, which took several times longer on 100-band chunks).
        rasterio.shutil.copy(
            src,
            str(tmp),
            driver="GTiff",
            COPY_SRC_OVERVIEWS="YES",
            TILED="YES",
            BLOCKXSIZE=side,
            BLOCKYSIZE=side,
            INTERLEAVE="PIXEL",
            **_compression(src.dtypes[0]),
        )
        check_cog(tmp, target.name)


def _publish_chunk(staging: Path, target: Path) -> None:
    """Publish a closed staging file as `target` once it passes cog_validate (fsync, os.replace, fsync the folder)."""
    check_cog(staging, target.name)
    commit_temp(staging, target)


def _write_cog(
    target: Path,
    array: np.ndarray,
    *,
    crs: CRS,
    transform: Affine,
    nodata: float,
    descriptions: Sequence[str],
    tags: dict[str, str],
    scale: float | None = None,
) -> None:
    """Write a small (bands, rows, cols) array as a pixel-interleaved ZSTD COG (no overview), atomically."""
    with MemoryFile() as mem:
        with mem.open(**_profile(*array.shape, array.dtype.name, crs, transform, nodata)) as dst:
            dst.write(array)
            _describe(dst, descriptions, tags, scale)
        with mem.open() as src:
            _copy_as_cog(src, target)


def _quantise(values: np.ndarray) -> np.ndarray:
    """Index values (time, rows, cols) as int16 * SCALE, NODATA where not finite."""
    scaled = np.empty(values.shape, dtype=np.int16)
    _quantise_into(np.ascontiguousarray(values, dtype=np.float32).reshape(-1), scaled.reshape(-1))
    return scaled


@numba.njit(cache=True, nogil=True)
def _quantise_into(values: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover - numba
    # numpy's float32 operations in numpy's order: rint(value / SCALE), clipped to int16 less NODATA (one pass, no
    # temporaries; tests/test_series.py checks it against the numpy expression bit for bit).
    scale = np.float32(SCALE)
    low, high = np.float32(NODATA + 1), np.float32(32767)
    for i in range(values.size):
        value = values[i]
        if np.isfinite(value):
            out[i] = np.int16(min(max(np.rint(value / scale), low), high))
        else:
            out[i] = NODATA


class ChunkWriter:
    """Writes a chunk block row by block row straight into its compressed COG, so memory follows the row block.

    Only one writer per tile at a time: callers hold the tile's lock (scheduler/pipeline.py).

    A fit streams the history through row blocks; each block's values go to disk at once, compressed, into a hidden
    temp file beside the chunk that `close()` validates and renames onto the chunk. GDAL's GTiff writer lays that file
    out as a COG by itself: the metadata is set before the first block, so the IFD goes at the start of the file with
    it (tags set later would move it to the end), and whole block rows arrive in order, so each tile is compressed
    once and appended after the previous one. Copying an uncompressed staging file as a COG instead cost twice
    the CPU. An existing chunk with the same name and dates is reused, never rewritten.
    """

    def __init__(
        self,
        collection_dir: Path,
        tile_id: str,
        keys: Sequence[str],
        *,
        width: int,
        height: int,
        crs: CRS,
        transform: Affine,
        data_key: str,
        index: str,
    ) -> None:
        if not keys:
            raise PublishError(f"tile {tile_id}: a chunk needs at least one acquisition")
        self.keys = list(keys)
        self.name = chunk_name(tile_id, self.keys, data_key)
        self.target = tile_dir(collection_dir, tile_id) / self.name
        self._tags = {DATES_TAG: json.dumps(self.keys), "NRT_ALERTS_TILE": tile_id, "NRT_ALERTS_INDEX": index}
        self._dst = None
        # The caller holds the tile's lock: leftovers of a killed writer of this tile's chunks can go.
        remove_temps(self.target.parent)
        if self.target.exists() and chunk_dates(self.target) == self.keys:
            return  # written by a run that crashed before its state was saved, or a refit: identical content
        profile = {**_profile(len(self.keys), height, width, "int16", crs, transform, NODATA), **_compression("int16")}
        self._side = profile["blockysize"]
        # Whole block rows per write, about WRITE_VALUES values: the int16 copy of a whole history block would double
        # a tile's load in memory.
        self._step = max(1, WRITE_VALUES // (len(self.keys) * width * self._side)) * self._side
        self._next = 0  # the first row neither written nor buffered
        self._pending = np.empty((len(self.keys), self._side, width), dtype=np.int16)  # rows of a partial block row
        self._filled = 0  # rows in _pending
        # A hidden temp name: never served, and removed by the next writer if a crash leaves it.
        self._staging = make_temp(self.target)
        self._dst = rasterio.open(self._staging, "w", **profile)
        _describe(self._dst, self.keys, self._tags, SCALE)  # before any block, so that the IFD stays first

    def write(self, top: int, values: np.ndarray) -> None:
        """Write the values (time, rows, cols) of the rows from `top`: row blocks of any height, in order."""
        if self._dst is None:
            return
        if values.shape[0] != len(self.keys):
            raise PublishError(f"{self.name}: {values.shape[0]} acquisitions in a block, {len(self.keys)} expected")
        if top != self._next:
            raise PublishError(f"{self.name}: rows written from {top}, row {self._next} expected next")
        rows, done = values.shape[1], 0
        while done < rows:
            left = rows - done
            last = self._next + left == self._dst.height  # the block row at the bottom may be partial
            if not self._filled and (left >= self._side or last):
                count = min(self._step, left if last else left - left % self._side)
                window = Window(0, self._next, self._dst.width, count)
                self._dst.write(_quantise(values[:, done : done + count]), window=window)
            else:
                # Part of a block row waits for the rest: under cache pressure GDAL would compress and append a tile
                # written in two parts twice, leaving the first copy as a hole out of the tiles' order.
                count = min(self._side - self._filled, left)
                self._pending[:, self._filled : self._filled + count] = _quantise(values[:, done : done + count])
                self._filled += count
            done += count
            self._next += count
            if self._filled == self._side or (self._filled and self._next == self._dst.height):
                self._flush()

    def _flush(self) -> None:
        """Write the buffered rows: a whole block row, or the last rows written."""
        rows = np.ascontiguousarray(self._pending[:, : self._filled])
        self._dst.write(rows, window=Window(0, self._next - self._filled, self._dst.width, self._filled))
        self._filled = 0

    def close(self) -> str:
        """Publish the chunk (atomically, validated) and return its name."""
        if self._dst is not None:
            try:
                with self._dst:  # closing writes the last tiles, and their offsets into the IFD in place
                    if self._filled:
                        self._flush()  # rows never written stay nodata, as GDAL fills missing tiles
                _publish_chunk(self._staging, self.target)
            finally:
                self._dst = None
                self._staging.unlink(missing_ok=True)  # gone already once published
        return self.name


def write_chunk(
    collection_dir: Path,
    tile_id: str,
    keys: Sequence[str],
    values: np.ndarray,
    *,
    crs: CRS,
    transform: Affine,
    data_key: str,
    index: str,
) -> str:
    """Publish values (time, rows, cols) of the acquisitions `keys` as a chunk; return its name (reused if present)."""
    if len(keys) != values.shape[0] or not keys:
        raise PublishError(f"tile {tile_id}: a chunk needs one band per acquisition ({len(keys)} keys)")
    _, rows, cols = values.shape
    writer = ChunkWriter(
        collection_dir,
        tile_id,
        keys,
        width=cols,
        height=rows,
        crs=crs,
        transform=transform,
        data_key=data_key,
        index=index,
    )
    writer.write(0, values)
    return writer.close()


def chunk_dates(path: Path) -> list[str]:
    """The acquisition keys of a chunk, in band order."""
    return list(_chunk_dates(str(path), file_version(path)))


@functools.lru_cache(maxsize=4096)
def _chunk_dates(path: str, _version: tuple[int, int, int]) -> tuple[str, ...]:
    """The chunk's dates, read once per file version (catalog.atomic.file_version).

    Every publication lists every chunk of each tile it publishes, and a tile's chunks accumulate with its updates.
    """
    with rasterio.open(path) as src:
        return tuple(json.loads(src.tags().get(DATES_TAG, "[]")))


def write_model(target: Path, model: ModelExport, *, crs: CRS, transform: Affine) -> None:
    """Publish a model: coefficient bands, then band_lower and band_upper (float32, NaN = not fitted)."""
    array = np.concatenate(
        [np.asarray(model.coefficients, np.float32), model.lower[np.newaxis], model.upper[np.newaxis]]
    ).astype(np.float32)
    names = [*model.form.coefficient_names(), "band_lower", "band_upper"]
    tags = {MODEL_TAG: json.dumps(model.form.to_dict())}
    _write_cog(target, array, crs=crs, transform=transform, nodata=float("nan"), descriptions=names, tags=tags)


def model_name(tile_id: str, model: ModelExport, crs: CRS, transform: Affine) -> str:
    """A model file's name from its content: the same fitted model keeps one file over every publication."""
    digest = hashlib.blake2b(digest_size=8)
    digest.update(json.dumps([model.form.to_dict(), crs.to_wkt(), list(transform)[:6]]).encode())
    for array in (model.coefficients, model.lower, model.upper):
        digest.update(np.ascontiguousarray(array, np.float32).reshape(-1).view(np.uint8))  # no copy of the bytes
    return f"{tile_id}-{digest.hexdigest()}.tif"


def publish_model(collection_dir: Path, tile_id: str, model: ModelExport, *, crs: CRS, transform: Affine) -> Path:
    """The tile's model COG, written only if this model was not published before; call it holding the publish lock.

    The model changes only when a tile is fitted again (coefficients, band), while every update publishes a new
    item: writing it once saves most of an update's publishing time (a float32 band per coefficient).
    """
    folder = collection_dir / MODELS_DIR / tile_id
    target = folder / model_name(tile_id, model, crs, transform)
    if not target.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        remove_temps(folder)  # a killed publisher's leftovers; the publish lock makes them nobody's
        write_model(target, model, crs=crs, transform=transform)
    return target


@dataclass(frozen=True)
class PixelModel:
    """One pixel's model: its form, coefficients, and the band offsets (lower <= 0 <= upper)."""

    form: ModelForm
    coefficients: np.ndarray
    lower: float
    upper: float


def read_model(path: Path, row: int, col: int) -> PixelModel | None:
    """The model at a pixel, None where it was not fitted."""
    with rasterio.open(path) as src:
        form = ModelForm.from_dict(json.loads(src.tags()[MODEL_TAG]))
        values = src.read(window=Window(col, row, 1, 1))[:, 0, 0].astype(np.float64)
    if not np.isfinite(values).all():
        return None
    return PixelModel(form, values[:-2], float(values[-2]), float(values[-1]))


def read_observations(paths: Iterable[Path], row: int, col: int) -> list[tuple[str, float]]:
    """A pixel's clear observations over chunks, sorted by date; a date in two chunks counts once (the later chunk)."""
    by_key: dict[str, float | None] = {}
    for path in paths:
        with rasterio.open(path) as src:
            keys = json.loads(src.tags().get(DATES_TAG, "[]"))
            values = src.read(window=Window(col, row, 1, 1))[:, 0, 0]
        for key, value in zip(keys, values, strict=True):
            by_key[key] = None if int(value) == NODATA else round(float(value) * SCALE, 4)
    return [(key, value) for key, value in sorted(by_key.items()) if value is not None]


def parse_key(key: str) -> dt.datetime:
    """An acquisition key as a naive UTC datetime."""
    return dt.datetime.fromisoformat(key).replace(tzinfo=None)


COG_MEDIA_TYPE = "image/tiff; application=geotiff; profile=cloud-optimized"


def series_assets(
    folder: Path, item_id: str, tile_id: str, series: SeriesExport | None, crs: CRS, transform: Affine
) -> dict[str, dict]:
    """Write a report's model COG into its item folder; return the item assets of the model and of every chunk."""
    if series is None:
        return {}
    assets: dict[str, dict] = {}
    collection_dir = folder.parent.parent
    if series.model is not None:
        model_path = publish_model(collection_dir, tile_id, series.model, crs=crs, transform=transform)
        assets[MODEL_ASSET] = {
            "href": f"../../{model_path.relative_to(collection_dir).as_posix()}",  # item folder: items/<item>/
            "type": COG_MEDIA_TYPE,
            "roles": ["data", MODEL_ROLE],
            "title": "Fitted model and threshold band",
            "description": "Per-pixel model coefficients (float32, one band each), then band_lower and band_upper: "
            "the threshold band as offsets from the prediction. NaN where no model was fitted.",
            "nrt:model": series.model.form.to_dict(),
            "nrt:monitoring_start": series.monitoring_start,
        }
    for n, name in enumerate(series.chunks):
        path = tile_dir(collection_dir, tile_id) / name
        if not path.is_file():
            # A state restored or copied without its catalog: publish the alerts, never a dangling href.
            log.warning("tile %s: series chunk %s named by the state is missing; not referenced", tile_id, name)
            continue
        keys = chunk_dates(path)
        assets[f"{SERIES_KEY}-{n:04d}"] = {
            "href": f"../../{path.relative_to(collection_dir).as_posix()}",  # item folder: items/<item>/
            "type": COG_MEDIA_TYPE,
            "roles": ["data", SERIES_ROLE],
            "title": f"Index values {keys[0][:10]} .. {keys[-1][:10]} ({len(keys)} acquisitions)",
            "nrt:series_start": keys[0],
            "nrt:series_end": keys[-1],
            "nrt:series_count": len(keys),
        }
    return assets


def item_series(item: dict, item_dir: Path) -> tuple[Path | None, list[Path]]:
    """The model file and chunk files an item references (paths resolved beside the item JSON)."""
    model = None
    chunks = []
    for _key, asset in sorted(item.get("assets", {}).items()):
        roles = asset.get("roles", [])
        if MODEL_ROLE in roles:
            model = (item_dir / asset["href"]).resolve()
        elif SERIES_ROLE in roles:
            chunks.append((item_dir / asset["href"]).resolve())
    return model, chunks
