"""Per-pixel codes shared by nrt's monitors, CCDC-NRT and our layers: nrt's mask codes and our alert stages."""

from __future__ import annotations

# nrt's mask codes (CCDC-NRT uses the same).
NOT_MONITORED = 0  # outside the forest mask
MONITORED = 1
UNSTABLE = 2  # nrt's stable-history fits (CCDC-stable, ROC) found no stable period
BREAK = 3  # a confirmed break (CCDC-NRT: a finished alert); no longer monitored
SHORT = 4  # too few clear observations in the history to fit

# The stages of an alert (Monitor.stage), which the status codes publish with a confidence class.
STAGE_NONE, STAGE_FIRST, STAGE_PROVISIONAL, STAGE_CONFIRMED, STAGE_FINISHED = 0, 1, 2, 3, 4
