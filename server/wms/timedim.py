"""The WMS TIME dimension as GeoServer's WMS-T reads it: instants (nearest publication), ranges, lists, `current`."""

from __future__ import annotations

import calendar
import datetime as dt
import re
from dataclasses import dataclass

from catalog.store import Publication, PublicationIndex
from server.wms.errors import WMSException, echo

# Reduced precision (a year, a month, a day) stands for that whole period, as in GeoServer.
REDUCED = re.compile(r"([0-9]{4})(?:-([0-9]{2})(?:-([0-9]{2}))?)?|([0-9]{4})([0-9]{2})([0-9]{2})")
LATEST = ("", "current", "present", "now", "latest")
OPEN = ("..", "")
MAX_VALUES = 100  # a TIME list sizes the work (one detection window each)
DAY = dt.timedelta(days=1)
# A detection date is a day: it falls in a range when the day's noon (UTC) does, so ranges that share an end, as
# QGIS's animation frames do, never count one day twice, and a range of whole days counts exactly those days.
NOON = dt.time(12)

Window = tuple[dt.date | None, dt.date | None]  # detection days, both inclusive; None = open


def iso(value: dt.datetime) -> str:
    """A publication datetime as ISO 8601 in UTC with a Z."""
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def time_values(index: PublicationIndex) -> list[str]:
    """The distinct publication datetimes, oldest first: the values a client may ask for."""
    return list(dict.fromkeys(iso(p.datetime) for p in index.publications))


@dataclass(frozen=True)
class Span:
    """A time interval, both ends inclusive; None is an open end."""

    start: dt.datetime | None
    end: dt.datetime | None

    def window(self) -> Window:
        """The detection days whose noon (UTC) lies in the interval."""
        first = last = None
        if self.start:
            start = self.start.astimezone(dt.UTC)
            first = start.date() if start.time() <= NOON else start.date() + DAY
        if self.end:
            end = self.end.astimezone(dt.UTC)
            last = end.date() if end.time() >= NOON else end.date() - DAY
        return first, last


Term = dt.datetime | Span


@dataclass(frozen=True)
class TimeSelection:
    """What a TIME value selects: the publication to draw, and the detection windows that filter its alerts."""

    publication: Publication
    windows: tuple[Window, ...]  # empty: every alert of the publication
    explicit: bool  # False for TIME absent or `current`
    nearest: str | None  # the publication time used for an instant that is not one (the `Warning` header)


def _error(value: str, reason: str) -> WMSException:
    return WMSException("InvalidDimensionValue", f"TIME {echo(value)}: {reason}", locator="TIME")


def parse_period(text: str, value: str) -> tuple[dt.datetime, dt.datetime]:
    """The first and last instant a time value covers: a year, month or day, else one instant."""
    match = REDUCED.fullmatch(text)
    try:
        if match:
            groups = match.groups()
            year, month, day = groups[:3] if groups[0] else groups[3:]
            first = dt.datetime(int(year), int(month or 1), int(day or 1), tzinfo=dt.UTC)
            if day:
                following = first + DAY
            elif month:
                following = first + calendar.monthrange(first.year, first.month)[1] * DAY
            else:
                following = first.replace(year=first.year + 1)
            return first, following - dt.timedelta(microseconds=1)
        if "T" not in text.upper():
            raise ValueError
        instant = dt.datetime.fromisoformat(text)
    except (ValueError, OverflowError):
        raise _error(value, "not an ISO 8601 time (e.g. 2024-03-11T10:12:00Z, 2024-03, 2024)") from None
    instant = instant if instant.tzinfo else instant.replace(tzinfo=dt.UTC)
    return instant, instant


def parse_term(text: str, value: str) -> Term:
    """One list element: an instant, a reduced-precision period or a start/end range (`..` for an open end)."""
    parts = [part.strip() for part in text.split("/")]
    if len(parts) == 1:
        first, last = parse_period(parts[0], value)
        return first if first == last else Span(first, last)
    if len(parts) > 2:
        raise _error(value, "periods (start/end/P1D) are not supported; use start/end")
    start = None if parts[0] in OPEN else parse_period(parts[0], value)[0]
    end = None if parts[1] in OPEN or parts[1].lower() in LATEST else parse_period(parts[1], value)[1]
    if start and end and start > end:
        raise _error(value, "the range starts after it ends")
    return start if start and start == end else Span(start, end)  # t/t is the instant t


def parse_time(value: str | None) -> list[Term]:
    """The TIME value's terms, none for the default (absent, `current`, `latest`)."""
    if value is None or value.strip().lower() in LATEST:
        return []
    elements = value.split(",")
    if len(elements) > MAX_VALUES:
        raise _error(value, f"at most {MAX_VALUES} values in a list")
    return [parse_term(element.strip(), value) for element in elements]


def choose(publications: tuple[Publication, ...], term: Term) -> Publication:
    """An instant's nearest publication (the earlier on a tie); for a range, the first that saw its end."""
    if isinstance(term, dt.datetime):
        return min(publications, key=lambda p: (abs(p.datetime - term), p.datetime))
    if term.end is None:
        return publications[-1]
    return next((p for p in publications if p.datetime >= term.end), publications[-1])


def resolve_time(index: PublicationIndex, value: str | None) -> TimeSelection:
    """The publication and detection windows a TIME value selects (absent or `current`: the latest, unfiltered).

    An instant selects the nearest publication, as drawn. A range selects the alerts first detected within it,
    as the first publication after its end knows them. A list selects the newest of its publications and the
    alerts of any of its ranges (an instant adds everything its publication had detected).
    """
    latest = index.get(None)  # raises LayerNotFound before the first publication
    terms = parse_time(value)
    if not terms:
        return TimeSelection(latest, (), explicit=False, nearest=None)
    chosen = [choose(index.publications, term) for term in terms]
    publication = max(chosen, key=lambda p: p.datetime)
    if len(terms) == 1 and isinstance(terms[0], dt.datetime):
        nearest = iso(publication.datetime) if publication.datetime != terms[0] else None
        return TimeSelection(publication, (), explicit=True, nearest=nearest)
    windows = tuple(
        term.window() if isinstance(term, Span) else (None, p.datetime.astimezone(dt.UTC).date())
        for term, p in zip(terms, chosen, strict=True)
    )
    day = publication.datetime.astimezone(dt.UTC).date()
    if any(first is None and (last is None or last >= day) for first, last in windows):
        windows = ()  # one window holds every alert of the publication
    return TimeSelection(publication, windows, explicit=True, nearest=None)
