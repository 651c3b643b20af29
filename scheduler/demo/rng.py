"""Independent, reproducible random streams derived from the spec's seed."""

from __future__ import annotations

from enum import IntEnum

import numpy as np


class Stream(IntEnum):
    """Stream ids for the static parts of the scene; far above any acquisition index so they never collide."""

    SCHEDULE = 1_000_001
    LANDCOVER = 1_000_002
    EVENTS = 1_000_003
    OVERCAST = 1_000_004


def stream_rng(seed: int, stream: Stream) -> np.random.Generator:
    """Return the generator for one static part of the scene (land cover, events, ...)."""
    return np.random.default_rng([seed, int(stream)])


def acquisition_rng(seed: int, index: int) -> np.random.Generator:
    """Return the generator for one acquisition, so each scene is reproducible on its own."""
    return np.random.default_rng([seed, index])
