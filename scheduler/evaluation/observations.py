"""Count the clear observations between a reference date and a detection date, with the pipeline's own loader."""

from __future__ import annotations

import datetime as dt
import logging

import numpy as np

from catalog.encoding import DATE_EPOCH
from scheduler.loading import load_index
from scheduler.pipeline import Pipeline

log = logging.getLogger(__name__)


def _day_start(days: int) -> dt.datetime:
    """00:00 UTC of a day given in days since 1970-01-01."""
    return dt.datetime.combine(DATE_EPOCH + dt.timedelta(days=days), dt.time.min, tzinfo=dt.UTC)


def _day_end(days: int) -> dt.datetime:
    """The last instant of a day given in days since 1970-01-01."""
    return dt.datetime.combine(DATE_EPOCH + dt.timedelta(days=days), dt.time.max, tzinfo=dt.UTC)


def count_between(
    observation_days: np.ndarray, clear: np.ndarray, reference_day: np.ndarray, detection_day: np.ndarray
) -> np.ndarray:
    """Per pixel: clear observations in (reference, detection], negative count in (detection, reference].

    observation_days is (time,), clear is (time, pixels) and the two day arrays are (pixels,).
    """
    t = np.asarray(observation_days, dtype=np.int64)[:, None]
    ref = np.asarray(reference_day, dtype=np.int64)[None, :]
    det = np.asarray(detection_day, dtype=np.int64)[None, :]
    after = clear & (t > ref) & (t <= det)
    before = clear & (t > det) & (t <= ref)  # only with a tolerance: detected before the reference date
    return after.sum(axis=0) - before.sum(axis=0)


def observation_lags(
    pipeline: Pipeline, rows: np.ndarray, cols: np.ndarray, reference_day: np.ndarray, detection_day: np.ndarray
) -> np.ndarray:
    """Lag in clear observations of each pixel (area grid rows and cols), tile by tile over the period needed."""
    lags = np.zeros(rows.size, dtype=np.int64)
    size = pipeline.cfg.area.tile_size
    for tile in pipeline.tiles:
        row0, col0 = tile.row * size, tile.col * size
        sel = (rows >= row0) & (rows < row0 + tile.height) & (cols >= col0) & (cols < col0 + tile.width)
        if not sel.any():
            continue
        ref, det = reference_day[sel], detection_day[sel]
        start = _day_start(int(min(ref.min(), det.min())))
        end = _day_end(int(max(ref.max(), det.max())))
        items = pipeline.source.search(tile.bounds_4326, start, end)
        if not items:
            continue  # no acquisition at all: every lag stays 0
        data = load_index(items, tile, pipeline.cfg)
        days = data.time.values.astype("datetime64[D]").astype(np.int64)
        clear = np.isfinite(data.values[:, rows[sel] - row0, cols[sel] - col0])
        lags[sel] = count_between(days, clear, ref, det)
        log.debug(
            "tile %s: counted clear observations of %d pixel(s) in %d acquisitions", tile.id, sel.sum(), len(days)
        )
    return lags
