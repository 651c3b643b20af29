"""Exceptions raised by the monitoring pipeline, with the CLI exit code each maps to."""


class NrtAlertsError(Exception):
    """Base class: a failure the operator should read as one line, not a traceback."""

    exit_code = 1


class ConfigError(NrtAlertsError):
    """The configuration file or environment is invalid."""

    exit_code = 2


class SourceError(NrtAlertsError):
    """The imagery source (STAC API, static catalog, asset) failed or answered nonsense."""

    exit_code = 3

    def __init__(self, message: str, *, acquisition: str | None = None, cause: str | None = None) -> None:
        super().__init__(message)
        self.acquisition = acquisition  # the acquisition(s) concerned, where known (for logs)
        self.cause = cause  # the underlying fault in one line, where known


class NothingFoundError(SourceError):
    """The source has no acquisition for a tile's period: collection, bbox, period or cloud limit do not match."""


class HistoryTooShortError(SourceError):
    """No pixel of a tile has enough clear acquisitions in the history period to be fitted."""


class StateError(NrtAlertsError):
    """A tile's monitor state is missing, corrupt or does not match the configuration."""

    exit_code = 4


class NotFittedError(StateError):
    """An update or fast-forward was asked for a tile that has no fitted state yet."""


class BusyError(NrtAlertsError):
    """Another process holds the lock for this work."""

    exit_code = 75  # EX_TEMPFAIL: try again later
