"""Load a reference of known disturbances (a date raster, dated polygons or labelled points) onto the area grid.

Every reference becomes the same two arrays on the published grid: `day`, the disturbance date in days since
1970-01-01 (0 = undisturbed), and `labelled`, the pixels the reference says something about:

- raster (like the demo's ground_truth.tif): every pixel it covers, except its declared nodata (0 always
  means undisturbed, even when declared nodata: that is the format);
- polygons (GeoJSON, EPSG:4326, a `date` per feature): wall-to-wall, so every pixel whose centre lies in no
  disturbed polygon is undisturbed; `disturbance: false` (or `date: null`) features mark areas known to be
  undisturbed (drought, thinning) and are negatives; overlapping disturbed polygons keep the earliest date.
  The disturbance flag is read from `disturbance`, else `is_disturbance`, or from the property the user names
  (true/false, 1/0, "yes"/"no"); properties it does not read, and features lacking the flag, are warned about;
- points (GeoJSON Points): only the pixels holding a point, disturbed when it has a `date`, undisturbed with
  `date: null` or `disturbance: false`; points in one pixel merge (earliest date).

A pixel labelled both disturbed and undisturbed is ambiguous and left out. Which labelled pixels are then
evaluated (the monitored ones) is decided with the published status, in scheduler.evaluation.evaluate.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import rasterio
import shapely.geometry
from rasterio.enums import Resampling
from rasterio.errors import RasterioIOError
from rasterio.features import rasterize
from rasterio.warp import reproject, transform_geom

from catalog.encoding import DATE_EPOCH
from catalog.mosaic import AreaGrid
from scheduler.evaluation.errors import ReferenceDataError

log = logging.getLogger(__name__)

ReferenceKind = Literal["raster", "polygons", "points"]

VECTOR_SUFFIXES = (".geojson", ".json")
POLYGON_TYPES = ("Polygon", "MultiPolygon")
POINT_TYPES = ("Point", "MultiPoint")
MAX_DAY = 65535  # the uint16 encoding of the published date layer
DATE_PROPERTY = "date"
# Where the disturbance flag is looked for, in this order, unless the user names the property.
DISTURBANCE_PROPERTIES = ("disturbance", "is_disturbance")
# Descriptive properties (the demo's ground truth and common label files carry them): read by no one, never warned.
DESCRIPTIVE_PROPERTIES = frozenset(
    {"id", "name", "kind", "end", "area_ha", "n_pixels", "native_wkt", "crs", "detail", "description", "note"}
)
FLAG_WORDS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}
# Names the legacy GeoJSON `crs` member may give for plain longitude/latitude.
WGS84_NAMES = ("EPSG:4326", "CRS84", "EPSG::4326", "OGC:1.3:CRS84", "OGC::CRS84")


@dataclass(frozen=True)
class Reference:
    """Known disturbances on the area grid."""

    kind: ReferenceKind
    path: Path
    day: np.ndarray  # int32 days since 1970-01-01 of the disturbance, 0 = undisturbed
    labelled: np.ndarray  # bool: the reference says something about the pixel
    known_undisturbed: np.ndarray  # bool: a feature explicitly marks the pixel undisturbed
    summary: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        """The reference as the report shows it."""
        disturbed = self.labelled & (self.day > 0)
        days = self.day[disturbed]
        return {
            "kind": self.kind,
            "path": str(self.path),
            "labelled_pixels": int(self.labelled.sum()),
            "disturbed_pixels": int(disturbed.sum()),
            "known_undisturbed_pixels": int(self.known_undisturbed.sum()),
            "first_date": _iso_day(int(days.min())) if days.size else None,
            "last_date": _iso_day(int(days.max())) if days.size else None,
            **self.summary,
        }


def _iso_day(days: int) -> str:
    """Days since 1970-01-01 as an ISO date."""
    return (DATE_EPOCH + dt.timedelta(days=days)).isoformat()


def load_reference(path: Path | str, grid: AreaGrid, *, disturbance_property: str | None = None) -> Reference:
    """Load a raster or GeoJSON reference onto the grid; ReferenceDataError with one line on any problem.

    disturbance_property names the GeoJSON property holding the disturbance flag (default: `disturbance`, else
    `is_disturbance`). Warnings (ignored properties, features without the flag) are logged and kept in the
    reference's summary for the report.
    """
    path = Path(path).resolve()
    if not path.is_file():
        raise ReferenceDataError(f"reference file not found: {path}")
    if path.suffix.lower() in VECTOR_SUFFIXES:
        reference = _load_geojson(path, grid, disturbance_property)
    else:
        if disturbance_property is not None:
            log.warning("reference %s is a raster: --disturbance-property %s is not used", path, disturbance_property)
        reference = _load_raster(path, grid)
    for warning in reference.summary.get("warnings", []):
        log.warning("%s", warning)
    return reference


# -- raster ----------------------------------------------------------------------------------------------


def _load_raster(path: Path, grid: AreaGrid) -> Reference:
    """A raster of disturbance days, warped (nearest) onto the grid."""
    try:
        with rasterio.open(path) as src:
            if src.crs is None:
                raise ReferenceDataError(f"reference raster {path} has no CRS")
            dtype = np.dtype(src.dtypes[0])
            if not np.issubdtype(dtype, np.integer):
                raise ReferenceDataError(
                    f"reference raster {path} holds {dtype}; expected integer days since 1970-01-01 (0 = undisturbed)"
                )
            data = src.read(1).astype(np.int64)
            src_crs, src_transform, nodata = src.crs, src.transform, src.nodata
    except RasterioIOError as exc:
        raise ReferenceDataError(f"cannot read reference {path} as a raster or as GeoJSON (.geojson): {exc}") from exc
    # 0 means undisturbed in this format, so a declared nodata of 0 must not hide the undisturbed pixels.
    src_nodata = None if nodata in (None, 0) else int(nodata)
    if np.any((data < 0) & (data != (src_nodata if src_nodata is not None else 0))) or data.max() > MAX_DAY:
        raise ReferenceDataError(f"reference raster {path} has values outside 0..{MAX_DAY} (days since 1970-01-01)")
    out = np.full((grid.height, grid.width), -1, dtype=np.int32)
    reproject(
        data.astype(np.int32),
        out,
        src_transform=src_transform,
        src_crs=src_crs,
        src_nodata=src_nodata,
        dst_transform=grid.transform,
        dst_crs=grid.crs,
        dst_nodata=-1,
        resampling=Resampling.nearest,
    )
    labelled = out >= 0
    if not labelled.any():
        raise ReferenceDataError(f"reference raster {path} does not overlap the monitored area")
    day = np.where(labelled, out, 0).astype(np.int32)
    return Reference("raster", path, day, labelled, np.zeros_like(labelled))


# -- GeoJSON ---------------------------------------------------------------------------------------------


def _features(path: Path) -> list[dict]:
    """The features of a GeoJSON file, after checking it is longitude/latitude."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ReferenceDataError(f"cannot read reference {path}: not valid GeoJSON: {exc}") from exc
    kind = data.get("type") if isinstance(data, dict) else None
    if kind == "Feature":
        features = [data]
    elif kind == "FeatureCollection" and isinstance(data.get("features"), list):
        features = data["features"]
    else:
        raise ReferenceDataError(f"reference {path} is not a GeoJSON Feature or FeatureCollection")
    if not features:
        raise ReferenceDataError(f"reference {path} has no features")
    crs_name = str(((data.get("crs") or {}).get("properties") or {}).get("name", "EPSG:4326"))
    if not crs_name.upper().endswith(WGS84_NAMES):
        raise ReferenceDataError(
            f"reference {path} is in {crs_name}; GeoJSON references must be EPSG:4326 longitude/latitude (RFC 7946)"
        )
    return features


def _feature_name(feature: dict, i: int) -> str:
    """How errors name a feature: its index and id."""
    if not isinstance(feature, dict):
        return f"feature {i}"
    fid = feature.get("id", (feature.get("properties") or {}).get("id"))
    return f"feature {i}" + (f" (id {fid})" if fid is not None else "")


def _flag(value: object) -> bool | None:
    """A disturbance flag as true/false, 1/0 or "yes"/"no" (any case); None if it is none of those."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        return FLAG_WORDS.get(value.strip().lower())
    return None


def _feature_day(feature: dict, i: int, path: Path, flag_property: str | None) -> int:
    """The feature's disturbance day, or 0 for a feature labelled undisturbed."""
    props = feature.get("properties") or {}
    if flag_property is not None and flag_property in props:
        disturbance = _flag(props[flag_property])
        if disturbance is None:
            raise ReferenceDataError(
                f"reference {path}: {_feature_name(feature, i)}: {flag_property!r} must be true or false "
                f"(or 1/0, yes/no), not {props[flag_property]!r}"
            )
        if not disturbance:
            return 0
    if DATE_PROPERTY not in props:
        raise ReferenceDataError(
            f"reference {path}: {_feature_name(feature, i)} has no {DATE_PROPERTY!r} property "
            f"(give the disturbance date, or {flag_property or DISTURBANCE_PROPERTIES[0]}: false for an undisturbed "
            "area)"
        )
    value = props[DATE_PROPERTY]
    if value is None:
        return 0
    try:
        day = dt.datetime.fromisoformat(str(value)).date()
    except ValueError as exc:
        raise ReferenceDataError(
            f"reference {path}: {_feature_name(feature, i)}: date {value!r} is not an ISO date"
        ) from exc
    days = (day - DATE_EPOCH).days
    if not 0 < days <= MAX_DAY:
        raise ReferenceDataError(f"reference {path}: {_feature_name(feature, i)}: date {value} is out of range")
    return days


def _flag_property(path: Path, features: list[dict], requested: str | None) -> tuple[str | None, list[str]]:
    """Which property holds the disturbance flag, and warnings about the properties the features carry."""
    props = [(f.get("properties") or {}) if isinstance(f, dict) else {} for f in features]
    names = set().union(*(p.keys() for p in props))
    warnings = []
    if requested is not None:
        chosen: str | None = requested
        if requested not in names:
            warnings.append(
                f"reference {path}: no feature has the property {requested!r} (--disturbance-property): "
                "every dated feature counts as a disturbance"
            )
    else:
        found = [name for name in DISTURBANCE_PROPERTIES if name in names]
        chosen = found[0] if found else None
        if len(found) > 1:
            warnings.append(f"reference {path}: features carry both {' and '.join(found)}; reading {chosen!r}")
    if chosen is not None and chosen in names:
        missing = sum(chosen not in p for p in props)
        if missing:
            warnings.append(
                f"reference {path}: {missing} of {len(props)} features have no {chosen!r} property: "
                "they count as disturbances when dated"
            )
    unread = sorted(names - {DATE_PROPERTY, chosen, *DISTURBANCE_PROPERTIES} - DESCRIPTIVE_PROPERTIES)
    if unread:
        warnings.append(
            f"reference {path}: properties not read: {', '.join(unread)} (evaluate reads {DATE_PROPERTY!r} and "
            f"the disturbance flag {chosen or DISTURBANCE_PROPERTIES[0]!r}; name another flag with "
            "--disturbance-property)"
        )
    return chosen, warnings


def _lonlat_bounds(geometry: dict) -> tuple[float, float, float, float]:
    """Bounds of a GeoJSON geometry's coordinates (shapely checks their structure)."""
    return shapely.geometry.shape(geometry).bounds


def _load_geojson(path: Path, grid: AreaGrid, disturbance_property: str | None) -> Reference:
    """Dated polygons or labelled points, projected onto the grid."""
    labelled_features = []
    kinds = set()
    features = _features(path)
    flag_property, warnings = _flag_property(path, features, disturbance_property)
    for i, feature in enumerate(features):
        geometry = feature.get("geometry") if isinstance(feature, dict) else None
        if not isinstance(geometry, dict) or not geometry.get("coordinates"):
            raise ReferenceDataError(f"reference {path}: {_feature_name(feature, i)} has no geometry")
        if geometry.get("type") not in POLYGON_TYPES + POINT_TYPES:
            raise ReferenceDataError(
                f"reference {path}: {_feature_name(feature, i)} is a {geometry.get('type')}; "
                "expected Polygon or Point features"
            )
        try:
            minx, miny, maxx, maxy = _lonlat_bounds(geometry)
        except Exception as exc:  # shapely raises several kinds on malformed coordinates
            raise ReferenceDataError(f"reference {path}: {_feature_name(feature, i)}: bad coordinates") from exc
        if minx < -180 or maxx > 180 or miny < -90 or maxy > 90:
            raise ReferenceDataError(
                f"reference {path}: coordinates are not longitude/latitude; reproject it to EPSG:4326 (RFC 7946)"
            )
        kinds.add("points" if geometry["type"] in POINT_TYPES else "polygons")
        day = _feature_day(feature, i, path, flag_property)
        try:
            projected = transform_geom("EPSG:4326", grid.crs, geometry)
        except Exception as exc:  # GDAL/OGR raise several kinds on malformed coordinates
            raise ReferenceDataError(f"reference {path}: {_feature_name(feature, i)}: bad geometry: {exc}") from exc
        labelled_features.append((projected, day))
    if len(kinds) > 1:
        raise ReferenceDataError(f"reference {path} mixes points and polygons; give one kind per file")
    reference = (
        _points(path, grid, labelled_features) if kinds == {"points"} else _polygons(path, grid, labelled_features)
    )
    reference.summary.update(disturbance_property=flag_property, warnings=warnings)
    return reference


def _merge(
    path: Path, kind: ReferenceKind, earliest: np.ndarray, negative: np.ndarray, *, wall_to_wall: bool, **summary: Any
) -> Reference:
    """Combine disturbed days (0 = none) and undisturbed labels; pixels labelled both are left out."""
    positive = earliest > 0
    ambiguous = positive & negative
    # Wall to wall (polygons): the pixels no feature covers are undisturbed too.
    labelled = ~ambiguous if wall_to_wall else (positive | negative) & ~ambiguous
    summary["ambiguous_pixels"] = int(ambiguous.sum())
    day = np.where(labelled, earliest, 0).astype(np.int32)
    return Reference(kind, path, day, labelled, negative & labelled, summary)


def _polygons(path: Path, grid: AreaGrid, features: list[tuple[dict, int]]) -> Reference:
    """Rasterise (pixel centre inside) disturbed polygons by date and the undisturbed ones."""
    shape = (grid.height, grid.width)
    disturbed = sorted(((g, d) for g, d in features if d > 0), key=lambda f: -f[1])
    undisturbed = [(g, 1) for g, d in features if d == 0]
    # Later shapes overwrite earlier ones: latest date first, so overlapping polygons keep the earliest date.
    earliest = (
        rasterize(disturbed, out_shape=shape, transform=grid.transform, fill=0, dtype="int32")
        if disturbed
        else np.zeros(shape, np.int32)
    )
    negative = (
        rasterize(undisturbed, out_shape=shape, transform=grid.transform, fill=0, dtype="uint8").astype(bool)
        if undisturbed
        else np.zeros(shape, bool)
    )
    if not (earliest.any() or negative.any()):
        raise ReferenceDataError(f"reference {path}: no polygon covers a pixel centre of the monitored area")
    return _merge(
        path,
        "polygons",
        earliest,
        negative,
        wall_to_wall=True,
        features=len(features),
        disturbed_features=len(disturbed),
        undisturbed_features=len(undisturbed),
    )


def _points(path: Path, grid: AreaGrid, features: list[tuple[dict, int]]) -> Reference:
    """The pixel holding each point, with its label."""
    shape = (grid.height, grid.width)
    coords, days = [], []
    for geometry, day in features:
        points = [geometry["coordinates"]] if geometry["type"] == "Point" else geometry["coordinates"]
        coords.extend((p[0], p[1]) for p in points)
        days.extend([day] * len(points))
    xy = np.asarray(coords, dtype=float)
    cols, rows = ~grid.transform * (xy[:, 0], xy[:, 1])
    rows, cols = np.floor(rows).astype(np.int64), np.floor(cols).astype(np.int64)
    inside = (rows >= 0) & (rows < grid.height) & (cols >= 0) & (cols < grid.width)
    if not inside.any():
        raise ReferenceDataError(f"reference {path}: none of its {len(xy)} points lies in the monitored area")
    rows, cols, day = rows[inside], cols[inside], np.asarray(days, dtype=np.int32)[inside]
    earliest = np.full(shape, MAX_DAY + 1, dtype=np.int32)
    np.minimum.at(earliest, (rows[day > 0], cols[day > 0]), day[day > 0])
    earliest[earliest > MAX_DAY] = 0
    negative = np.zeros(shape, dtype=bool)
    negative[rows[day == 0], cols[day == 0]] = True
    return _merge(
        path,
        "points",
        earliest,
        negative,
        wall_to_wall=False,
        points=len(xy),
        disturbed_points=int((np.asarray(days) > 0).sum()),
        points_outside_area=int((~inside).sum()),
    )
