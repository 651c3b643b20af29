"""The alert filter of a WMS TIME range: alerts first detected within any of some day windows."""

from __future__ import annotations

import dataclasses

import numpy as np

from catalog.encoding import days_since_epoch
from server.filters import AlertFilter
from server.wms.timedim import Window


@dataclasses.dataclass(frozen=True)
class WindowedFilter(AlertFilter):
    """An AlertFilter that also keeps only the alerts first detected in one of `windows` (days, inclusive)."""

    windows: tuple[Window, ...] = ()

    @property
    def needs_date(self) -> bool:
        """True: the windows read the first-detection date layer."""
        return True

    def key(self) -> tuple:
        """The filter in normal form, for ETags."""
        return (*super().key(), self.windows)

    def keep(
        self, status: np.ma.MaskedArray | None, date: np.ma.MaskedArray | None, confidence: np.ma.MaskedArray | None
    ) -> np.ndarray:
        """The vendor filter's pixels that were also first detected within a window."""
        keep = super().keep(status, date, confidence)
        if date is None:  # needs_date is True: the reader always passes the date layer
            raise ValueError("a TIME range filters on the first-detection date layer")
        days = np.ma.filled(date.astype("int64"), 0)
        inside = np.zeros(days.shape, dtype=bool)
        for first, last in self.windows:
            window = np.ones(days.shape, dtype=bool)
            if first is not None:
                window &= days >= days_since_epoch(first)
            if last is not None:
                window &= days <= days_since_epoch(last)
            inside |= window
        return keep & inside & ~np.ma.getmaskarray(date) & (days > 0)


def with_windows(alert_filter: AlertFilter | None, windows: tuple[Window, ...]) -> AlertFilter | None:
    """The vendor filter narrowed to the TIME windows (unchanged without windows)."""
    if not windows:
        return alert_filter
    base = alert_filter or AlertFilter()
    values = {field.name: getattr(base, field.name) for field in dataclasses.fields(AlertFilter)}
    return WindowedFilter(**values, windows=windows)
