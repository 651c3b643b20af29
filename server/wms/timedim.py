"""The WMS TIME dimension: publication datetimes, and the publication a TIME value selects."""

from __future__ import annotations

import datetime as dt
import re

from catalog.store import Publication, PublicationIndex
from server.wms.errors import WMSException, echo

DATE_ONLY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
LATEST = ("", "current", "present", "now")


def iso(value: dt.datetime) -> str:
    """A publication datetime as ISO 8601 in UTC with a Z."""
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def time_values(index: PublicationIndex) -> list[str]:
    """The distinct publication datetimes, oldest first: the values a client may ask for."""
    return list(dict.fromkeys(iso(p.datetime) for p in index.publications))


def parse_instant(value: str) -> dt.datetime:
    """An ISO date or datetime; a date alone stands for its whole day (UTC), so its end."""
    text = value.strip()
    try:
        if DATE_ONLY.fullmatch(text):
            day = dt.date.fromisoformat(text)
            return dt.datetime.combine(day, dt.time.max, tzinfo=dt.UTC)
        instant = dt.datetime.fromisoformat(text)
    except ValueError:
        raise WMSException(
            "InvalidDimensionValue", f"TIME {echo(value)} is not an ISO 8601 date or datetime", locator="TIME"
        ) from None
    return instant if instant.tzinfo else instant.replace(tzinfo=dt.UTC)


def resolve_time(index: PublicationIndex, value: str | None) -> Publication:
    """The latest publication whose datetime is at or before TIME (nearest preceding); absent or 'current' = latest.

    An interval start/end selects by its end, as a client showing a time range wants the state at its end.
    """
    latest = index.get(None)  # raises LayerNotFound before the first publication
    if value is None or value.strip().lower() in LATEST:
        return latest
    if "," in value:
        raise WMSException("InvalidDimensionValue", "one TIME value per request, not a list", locator="TIME")
    text = value.split("/")[1] if value.count("/") in (1, 2) else value
    instant = parse_instant(text)
    chosen = None
    for publication in index.publications:
        if publication.datetime <= instant:
            chosen = publication
    if chosen is None:
        first = iso(index.publications[0].datetime)
        raise WMSException(
            "InvalidDimensionValue", f"TIME {echo(value)} is before the first publication ({first})", locator="TIME"
        )
    return chosen
