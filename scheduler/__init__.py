"""nrt-alerts scheduler package."""

from scheduler.nrt_import import defer_scipy_for_nrt

# Before any of the package's modules imports nrt: scipy.stats then loads only if a monitor needs it.
defer_scipy_for_nrt()
