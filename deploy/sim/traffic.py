"""A day of traffic: a diurnal curve, a viral burst, seeded noise.

``rate(t)`` is the mean arrival rate (requests/s) at ``t`` seconds after midnight UTC; the
fleet draws Poisson counts from it with its own seeded generator. :meth:`Traffic.forecast` is
what predictive scaling could know a day ahead: the diurnal curve without the burst or noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["DAY_S", "Traffic"]

DAY_S = 86_400.0


@dataclass(frozen=True)
class Traffic:
    """Diurnal between ``trough`` (at ``trough_hour``) and ``peak`` 12 h later, times a burst
    that rises ``burst_factor``-fold in ``burst_rise_s``, holds ``burst_hold_s`` and decays
    linearly over ``burst_decay_s``; slow multiplicative noise (``noise`` std, 10-minute memory).
    """

    trough: float = 800.0
    peak: float = 6_000.0
    trough_hour: float = 4.0
    burst_at_s: float = 13 * 3600.0
    burst_factor: float = 10.0
    burst_rise_s: float = 120.0
    burst_hold_s: float = 900.0
    burst_decay_s: float = 1800.0
    noise: float = 0.05
    seed: int = 0

    def forecast(self, t: np.ndarray | float) -> np.ndarray:
        """The diurnal curve alone (requests/s)."""
        phase = 2 * math.pi * (np.asarray(t, float) / 3600.0 - self.trough_hour) / 24.0
        return self.trough + (self.peak - self.trough) * (1 - np.cos(phase)) / 2

    def burst(self, t: np.ndarray | float) -> np.ndarray:
        """The burst's multiplier (1 outside it)."""
        x = np.asarray(t, float) - self.burst_at_s
        up = np.clip(x / self.burst_rise_s, 0.0, 1.0)
        down = np.clip((x - self.burst_rise_s - self.burst_hold_s) / self.burst_decay_s, 0.0, 1.0)
        return 1 + (self.burst_factor - 1) * up * (1 - down)

    def rates(self, t: np.ndarray) -> np.ndarray:
        """Mean rate at each time in ``t`` (sorted, seconds), noise included (seeded)."""
        rng = np.random.default_rng(self.seed)
        minutes = int(np.max(t) // 60) + 2
        keep = math.exp(-1 / 10)  # AR(1) per minute, 10-minute memory
        shocks = rng.normal(0.0, self.noise * math.sqrt(1 - keep**2), minutes)
        walk = np.zeros(minutes)
        for i in range(1, minutes):
            walk[i] = keep * walk[i - 1] + shocks[i]
        noise = np.interp(np.asarray(t) / 60.0, np.arange(minutes), walk)
        return np.asarray(self.forecast(t) * self.burst(t) * np.exp(noise))
