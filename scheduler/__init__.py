"""nrt-alerts scheduler package."""
