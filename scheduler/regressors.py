"""nrt's design matrices (nrt.utils.build_regressors), the same bits without pandas' date assembly.

nrt turns dates into decimal years by building each year's first and last day with `pd.to_datetime` from a dict of
columns: ~2 ms a call, paid for every date an update absorbs and every row block a fit fits, holding the GIL. The
same arithmetic on numpy's datetime64 is catalog/design.py's (the published models use it too).
"""

from __future__ import annotations

import functools

import numpy as np

from catalog.design import nrt_design


def build_regressors(dates: np.ndarray, trend: bool = True, harmonic_order: int = 3) -> np.ndarray:
    """nrt.utils.build_regressors for naive UTC datetime64 `dates` (any unit): (len(dates), 1 + trend + 2 order)."""
    return nrt_design(np.sort(np.asarray(dates, dtype="datetime64[ns]")), trend, harmonic_order)  # nrt sorts


@functools.lru_cache(maxsize=256)
def date_regressors(naive: np.datetime64, trend: bool, harmonic_order: int) -> np.ndarray:
    """The regressors of one date (BaseNrt._regressors), shared read-only by every row block and tile of that date."""
    regressors = build_regressors(np.array([naive], dtype="datetime64[ns]"), trend, harmonic_order)
    regressors.flags.writeable = False
    return regressors
