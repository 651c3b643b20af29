"""Sigma monitors (nrt's EWMA, CuSum, MoSum): a control statistic confirms; we count single anomalies ourselves."""

from __future__ import annotations

import numpy as np

from scheduler import nrt_boundary
from scheduler.config import CuSumConfig, EWMAConfig, MoSumConfig
from scheduler.monitors.nrtbase import NrtMonitor

# These monitors have no per-observation outlier test of their own; an observation beyond this many residual
# sigmas counts as anomalous for the first/provisional stages.
ANOMALY_SIGMAS = 3.0


class SigmaMonitor(NrtMonitor):
    """First and provisional stages from our run of observations beyond ANOMALY_SIGMAS sigma; nrt confirms."""

    models = {CuSumConfig: nrt_boundary.CuSum, MoSumConfig: nrt_boundary.MoSum}
    parameters = {CuSumConfig: ("sensitivity",), MoSumConfig: ("sensitivity", "h")}

    def spread(self) -> np.ndarray:
        """Nrt's sigma of the history residuals."""
        return self.model.sigma

    def limits(self) -> tuple[None, np.ndarray]:
        """No lower limit; |residual| beyond ANOMALY_SIGMAS sigma."""
        return None, ANOMALY_SIGMAS * self.sigma()

    def band_offsets(self) -> tuple[np.ndarray, np.ndarray, str]:
        """Our first-detection band: CuSum's and MoSum's boundary is on a sum, not on single observations."""
        model = self.model
        half = ANOMALY_SIGMAS * np.asarray(model.sigma)
        return (
            -half,
            half,
            (
                f"approximation: +/- {ANOMALY_SIGMAS:g} sigma (our first-detection test). {type(model).__name__}'s "
                "real boundary is on the cumulative sum of scaled residuals (sensitivity is its significance level), "
                "so a break can be confirmed inside this band or not yet outside it"
            ),
        )


class EWMAMonitor(SigmaMonitor):
    """nrt's EWMA: its control limits bound the exponentially weighted mean of the residuals."""

    models = {EWMAConfig: nrt_boundary.EWMA}
    parameters = {EWMAConfig: ("sensitivity", "lambda_", "threshold_outlier")}

    def band_offsets(self) -> tuple[np.ndarray, np.ndarray, str]:
        """EWMA's control limits."""
        model = self.model
        half = np.asarray(model.boundary)
        return (
            -half,
            half,
            (
                f"EWMA control limits +/- {model.sensitivity:g} sigma sqrt(lambda / (2 - lambda)), lambda "
                f"{model.lambda_:g}: they bound the exponentially weighted mean of the residuals, not single "
                "observations"
            ),
        )
