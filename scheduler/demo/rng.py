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
    # One stream per scenario beyond clear-cuts, so adding a scenario never shifts another one's draws.
    DEGRADATION = 1_000_005
    SELECTIVE_LOGGING = 1_000_006
    FIRE = 1_000_007
    DROUGHT = 1_000_008
    HAZE = 1_000_009
    NON_FOREST = 1_000_010
    # The hard suite's own streams (its clear-cuts, fires and logging draw from the streams of their scenarios).
    HARD_DROUGHT = 1_000_011
    DUPLICATES = 1_000_012
    SMOKE = 1_000_013


# Salt of the per-acquisition streams of bands added after the first release.
BAND_NOISE_SALT = 2_000_000


class Nuisance(IntEnum):
    """Salts of the per-acquisition streams of the optional nuisances: turning one on shifts no other draw."""

    LEAKED_CLOUDS = 3_000_001
    OPTICS = 3_000_002


def stream_rng(seed: int, stream: Stream) -> np.random.Generator:
    """Return the generator for one static part of the scene (land cover, events, ...)."""
    return np.random.default_rng([seed, int(stream)])


def acquisition_rng(seed: int, index: int) -> np.random.Generator:
    """Return the generator for one acquisition, so each scene is reproducible on its own."""
    return np.random.default_rng([seed, index])


def band_noise_rng(seed: int, index: int, band: int) -> np.random.Generator:
    """Return the noise generator of a late-added band (by band number) in one acquisition."""
    return np.random.default_rng([seed, index, BAND_NOISE_SALT + band])


def nuisance_rng(seed: int, index: int, nuisance: Nuisance) -> np.random.Generator:
    """Return the generator of one optional nuisance in one acquisition."""
    return np.random.default_rng([seed, index, int(nuisance)])
