"""nrt-alerts catalog package."""
