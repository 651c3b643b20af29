"""The published alert encoding: status codes, colours, date epoch. One source of truth for COGs, STAC and tiles."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import IntEnum

import numpy as np


class Status(IntEnum):
    """Alert status codes of the `status` layer, in the spirit of OPERA DIST-ALERT."""

    NONE = 0
    FIRST_LOW = 1
    PROVISIONAL_LOW = 2
    CONFIRMED_LOW = 3
    FIRST_HIGH = 4
    PROVISIONAL_HIGH = 5
    CONFIRMED_HIGH = 6
    FINISHED_LOW = 7
    FINISHED_HIGH = 8
    NOT_MONITORED = 250
    UNSTABLE_HISTORY = 251
    INSUFFICIENT_HISTORY = 252
    NODATA = 255


@dataclass(frozen=True)
class StatusClass:
    """How one status code is named, described and drawn."""

    code: Status
    name: str
    description: str
    rgba: tuple[int, int, int, int]


# No alert and the not-monitored classes are transparent so the alert layer overlays any base map.
STATUS_CLASSES: tuple[StatusClass, ...] = (
    StatusClass(Status.NONE, "none", "Monitored, no disturbance", (0, 0, 0, 0)),
    StatusClass(Status.FIRST_LOW, "first-low", "First anomalous observation, low confidence", (255, 255, 153, 255)),
    StatusClass(Status.PROVISIONAL_LOW, "provisional-low", "Provisional alert, low confidence", (255, 178, 102, 255)),
    StatusClass(Status.CONFIRMED_LOW, "confirmed-low", "Confirmed disturbance, low confidence", (237, 28, 36, 255)),
    StatusClass(Status.FIRST_HIGH, "first-high", "First anomalous observation, high confidence", (255, 221, 0, 255)),
    StatusClass(Status.PROVISIONAL_HIGH, "provisional-high", "Provisional alert, high confidence", (255, 127, 0, 255)),
    StatusClass(Status.CONFIRMED_HIGH, "confirmed-high", "Confirmed disturbance, high confidence", (153, 0, 13, 255)),
    StatusClass(
        Status.FINISHED_LOW, "finished-low", "Confirmed earlier, disturbance over, low confidence", (158, 154, 200, 255)
    ),
    StatusClass(
        Status.FINISHED_HIGH,
        "finished-high",
        "Confirmed earlier, disturbance over, high confidence",
        (84, 39, 143, 255),
    ),
    StatusClass(Status.NOT_MONITORED, "not-monitored", "Outside the forest mask", (0, 0, 0, 0)),
    StatusClass(Status.UNSTABLE_HISTORY, "unstable-history", "History too unstable to monitor", (0, 0, 0, 0)),
    StatusClass(
        Status.INSUFFICIENT_HISTORY, "insufficient-history", "Too few clear observations in the history", (0, 0, 0, 0)
    ),
    StatusClass(Status.NODATA, "nodata", "No data", (0, 0, 0, 0)),
)

STATUS_NODATA = int(Status.NODATA)
ALERT_CODES = tuple(int(c) for c in range(1, 9))
CONFIRMED_CODES = (int(Status.CONFIRMED_LOW), int(Status.CONFIRMED_HIGH))

# Detection dates: days since 1970-01-01 (nrt's own epoch) in uint16, 0 = no date. Lasts until 2149.
DATE_EPOCH = dt.date(1970, 1, 1)
DATE_NODATA = 0


FIRST_CODES = (int(Status.FIRST_LOW), int(Status.FIRST_HIGH))


def status_colormap(*, first_detections: bool = False) -> dict[int, tuple[int, int, int, int]]:
    """The RGBA colours of the status layer (GeoTIFF palettes drop the alpha, so tiles apply this).

    First detections (a single anomalous observation) are transparent by default: about 1 % of stable
    pixels carry one on any date, which would speckle every map; style `alerts-all` shows them.
    """
    colours = {int(c.code): c.rgba for c in STATUS_CLASSES}
    if not first_detections:
        colours.update({code: (0, 0, 0, 0) for code in FIRST_CODES})
    return colours


def visible_colours(colours: dict[int, tuple[int, int, int, int]]) -> dict[int, tuple[int, int, int, int]]:
    """Only the colours that show: rio-tiler draws unlisted codes transparent, and each listed one costs a pass."""
    return {code: rgba for code, rgba in colours.items() if rgba[3] > 0}


def classification_classes() -> list[dict]:
    """The status classes as STAC `classification:classes`."""
    return [
        {
            "value": int(c.code),
            "name": c.name,
            "description": c.description,
            **({"color_hint": "{:02X}{:02X}{:02X}".format(*c.rgba[:3])} if c.rgba[3] else {}),
        }
        for c in STATUS_CLASSES
    ]


def days_since_epoch(value: dt.date | dt.datetime) -> int:
    """Encode a date as days since DATE_EPOCH."""
    day = value.date() if isinstance(value, dt.datetime) else value
    return (day - DATE_EPOCH).days


def date_from_days(days: int) -> dt.date | None:
    """Decode a detection-date value (None for DATE_NODATA)."""
    return None if days == DATE_NODATA else DATE_EPOCH + dt.timedelta(days=int(days))


def is_alert(status: np.ndarray) -> np.ndarray:
    """Boolean array: the pixel carries any alert (first, provisional, confirmed or finished)."""
    return (status >= 1) & (status <= 8)


def context_colormap() -> dict[int, tuple[int, int, int, int]]:
    """A background style of the status layer: monitored forest green, the rest neutral (for maps offline)."""
    forest = (120, 170, 110, 255)
    colours = {code: forest for code in range(0, 9)}
    colours[int(Status.NOT_MONITORED)] = (236, 230, 214, 255)
    colours[int(Status.UNSTABLE_HISTORY)] = (190, 190, 190, 255)
    colours[int(Status.INSUFFICIENT_HISTORY)] = (190, 190, 190, 255)
    colours[int(Status.NODATA)] = (0, 0, 0, 0)
    return colours


# GFW integrated-alerts style single band: confidence * 10000 + days since 2014-12-31 (uint16, 0 = none).
GFW_EPOCH = dt.date(2014, 12, 31)
GFW_LOW, GFW_HIGH, GFW_HIGHEST = 2, 3, 4


def gfw_date_conf(status: np.ndarray, date: np.ndarray) -> np.ndarray:
    """Encode alerts as GFW's date_conf, so styles made for GFW alerts work.

    Provisional alerts are GFW 'low' (2), confirmed low-confidence ones 'high' (3), confirmed high-confidence
    ones 'highest' (4). Days count from 2014-12-31, so the encoding overflows in 2042, as GFW's does.
    """
    conf = np.zeros(status.shape, dtype=np.uint16)
    conf[np.isin(status, (Status.PROVISIONAL_LOW, Status.PROVISIONAL_HIGH))] = GFW_LOW
    conf[status == Status.CONFIRMED_LOW] = GFW_HIGH
    conf[status == Status.CONFIRMED_HIGH] = GFW_HIGHEST
    offset = (GFW_EPOCH - DATE_EPOCH).days
    days = date.astype(np.int32) - offset
    valid = (conf > 0) & (date != DATE_NODATA) & (days > 0) & (days < 10000)
    return np.where(valid, conf.astype(np.int32) * 10000 + days, 0).astype(np.uint16)
