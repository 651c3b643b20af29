"""The acquisition key: an acquisition's identity, its solar-day timestamp as ISO 8601 text to the second."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from scheduler.clock import utc

# Keys are compared as text (state, series chunks, skip lists, periods), so every writer uses this one format.
KEY_FORMAT = "%Y-%m-%dT%H:%M:%S"


def key_text(when: dt.datetime) -> str:
    """A datetime written as a key, as it is (no time-zone conversion)."""
    return when.strftime(KEY_FORMAT)


def utc_key(when: dt.datetime) -> str:
    """A datetime's key in UTC (naive values are taken as UTC)."""
    return key_text(utc(when))


def acquisition_key(time: np.datetime64) -> str:
    """The identity of an acquisition: its solar-day timestamp, ISO 8601 to the second."""
    return pd.Timestamp(time).strftime(KEY_FORMAT)
