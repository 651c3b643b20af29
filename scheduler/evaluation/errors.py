"""Errors of the evaluation commands: one readable line each, mapped to exit codes by the CLI."""

from __future__ import annotations

from scheduler.errors import ConfigError, NrtAlertsError


class EvaluationError(NrtAlertsError):
    """The published alerts cannot be evaluated (nothing published, wrong grid, unknown version)."""


class ReferenceDataError(NrtAlertsError):
    """The reference file is missing, unreadable, in the wrong CRS or has features without a date."""


class SweepGridError(ConfigError):
    """The sweep's GRID.toml is invalid (names the run at fault)."""
