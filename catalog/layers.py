"""The layers every report publishes: one COG asset each, and the named layer the server exposes for it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from catalog.encoding import DATE_NODATA, STATUS_NODATA


@dataclass(frozen=True)
class LayerSpec:
    """One published layer: its asset key, server-side name, type and meaning."""

    asset: str
    name: str
    dtype: str
    nodata: int | float
    title: str
    description: str
    unit: str | None = None

    @property
    def fill(self) -> np.ndarray:
        """The nodata value as a numpy scalar of the layer's dtype."""
        return np.array(self.nodata, dtype=self.dtype)


STATUS = LayerSpec(
    asset="status",
    name="alerts",
    dtype="uint8",
    nodata=STATUS_NODATA,
    title="Alert status",
    description="Alert status codes (see classification:classes); 255 = nodata.",
)
DATE = LayerSpec(
    asset="date",
    name="alert-date",
    dtype="uint16",
    nodata=DATE_NODATA,
    title="Detection date",
    description=(
        "Date of the first anomalous observation of the run of anomalies that led to the alert (a lone outlier "
        "before that run, or a passing cloud, does not date it), in days since 1970-01-01; 0 = no alert."
    ),
    unit="days since 1970-01-01",
)
CONFIRMED = LayerSpec(
    asset="confirmed",
    name="alert-confirmed",
    dtype="uint16",
    nodata=DATE_NODATA,
    title="Confirmation date",
    description=(
        "Date of the observation that confirmed the alert (completed its run of anomalies), in days since "
        "1970-01-01; 0 = not confirmed."
    ),
    unit="days since 1970-01-01",
)
MAGNITUDE = LayerSpec(
    asset="magnitude",
    name="alert-magnitude",
    dtype="float32",
    nodata=float("nan"),
    title="Alert magnitude",
    description="Mean difference observed - expected of the vegetation index over the alert's observations.",
)
CONFIDENCE = LayerSpec(
    asset="confidence",
    name="alert-confidence",
    dtype="float32",
    nodata=float("nan"),
    title="Alert confidence",
    description="Mean |observed - expected| / the pixel's residual spread over the alert's observations.",
)

DATE_CONF = LayerSpec(
    asset="date_conf",
    name="alert-date-conf",
    dtype="uint16",
    nodata=0,
    title="GFW-style date and confidence",
    description="confidence * 10000 + days since 2014-12-31, as GFW integrated alerts: confidence 2 = "
    "provisional, 3 = confirmed (low confidence), 4 = confirmed (high confidence); 0 = no alert.",
)

PUBLISHED_LAYERS: tuple[LayerSpec, ...] = (STATUS, DATE, CONFIRMED, MAGNITUDE, CONFIDENCE, DATE_CONF)
LAYERS_BY_NAME: dict[str, LayerSpec] = {layer.name: layer for layer in PUBLISHED_LAYERS}
LAYERS_BY_ASSET: dict[str, LayerSpec] = {layer.asset: layer for layer in PUBLISHED_LAYERS}
