"""Sensor blur (point-spread function) and co-registration jitter: edges smear differently in every scene."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from scheduler.demo.surface import Reflectance


def blur_and_shift(refl: Reflectance, rng: np.random.Generator, psf_sigma_px: float, jitter_px: float) -> None:
    """Blur every band with a Gaussian PSF and shift the scene by one random sub-pixel offset, in place."""
    offset = rng.normal(0.0, jitter_px, 2) if jitter_px > 0 else np.zeros(2)
    for key, band in refl.items():
        out = ndimage.gaussian_filter(band, psf_sigma_px, mode="nearest") if psf_sigma_px > 0 else band
        if offset.any():
            # Bilinear resampling, as a processing chain resamples onto its output grid.
            out = ndimage.shift(out, offset, order=1, mode="nearest")
        refl[key] = out.astype(np.float32)
