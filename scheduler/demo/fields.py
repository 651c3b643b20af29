"""Smooth random fields and small mask operations, all plain vectorised numpy."""

from __future__ import annotations

import numpy as np


def smooth_field(rng: np.random.Generator, shape: tuple[int, int], sigma_px: float) -> np.ndarray:
    """Gaussian-filtered white noise scaled to zero mean and unit variance."""
    sigma_px = max(float(sigma_px), 0.5)
    # FFT filtering is periodic: pad by 3 sigma so blobs do not wrap from one edge to the opposite one.
    pad = int(np.ceil(3 * sigma_px))
    rows, cols = shape[0] + 2 * pad, shape[1] + 2 * pad
    noise = rng.standard_normal((rows, cols))
    fy = np.fft.fftfreq(rows)[:, None]
    fx = np.fft.rfftfreq(cols)[None, :]
    kernel = np.exp(-2.0 * (np.pi * sigma_px) ** 2 * (fx**2 + fy**2))
    field = np.fft.irfft2(np.fft.rfft2(noise) * kernel, s=(rows, cols))[pad : pad + shape[0], pad : pad + shape[1]]
    field -= field.mean()
    std = field.std()
    return (field / std if std > 0 else field).astype(np.float32)


def shift_mask(mask: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Move a boolean mask by (dy, dx) pixels, filling with False instead of wrapping around."""
    out = np.zeros_like(mask)
    rows, cols = mask.shape
    src_r = slice(max(0, -dy), min(rows, rows - dy))
    dst_r = slice(max(0, dy), min(rows, rows + dy))
    src_c = slice(max(0, -dx), min(cols, cols - dx))
    dst_c = slice(max(0, dx), min(cols, cols + dx))
    out[dst_r, dst_c] = mask[src_r, src_c]
    return out


def dilate(mask: np.ndarray) -> np.ndarray:
    """3x3 binary dilation."""
    out = mask.copy()
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            if dy or dx:
                out |= shift_mask(mask, dy, dx)
    return out
