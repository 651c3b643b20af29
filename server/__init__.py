"""nrt-alerts server package."""
