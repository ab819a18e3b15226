"""Intervals over seeds: Student-t means and paired differences.

A study trains every model once per seed. A figure's uncertainty over seeds is the t interval
of its per-seed values; two models are compared by the per-seed differences of the same figure
on the same seed (paired), which cancels what the seed does to both (data order, evaluation
draws).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
ROUNDING = 1e-12  # relative to the figures: a mean difference this small is rounding


@dataclass(frozen=True)
class Interval:
    """Mean of per-seed values with its two-sided Student-t interval (None with one value)."""

    mean: float
    low: float | None
    high: float | None
    count: int
    standard_deviation: float | None

    def to_dict(self) -> dict:
        return asdict(self)

    def covers(self, value: float) -> bool:
        """Whether ``value`` lies inside the interval (True when there is no interval)."""
        if self.low is None or self.high is None:
            return True
        return self.low <= value <= self.high


def t_interval(values, confidence: float = CONFIDENCE, floor: float = 0.0) -> Interval:
    """Mean and ``confidence`` Student-t interval of ``values`` (seeds); finite values only.
    ``floor``: the least standard deviation the values can be said to have (see ``step``)."""
    data = np.asarray([value for value in values if value is not None], dtype=np.float64)
    data = data[np.isfinite(data)]
    if data.size == 0:
        raise ValueError("t_interval needs at least one finite value")
    mean = float(data.mean())
    if data.size == 1:
        return Interval(mean, None, None, 1, None)
    deviation = max(float(data.std(ddof=1)), floor)
    half_width = float(stats.t.ppf(0.5 + confidence / 2, data.size - 1)) * deviation / math.sqrt(
        data.size)
    return Interval(mean, mean - half_width, mean + half_width, int(data.size), deviation)


def step_deviation(step: float) -> float:
    """The standard deviation rounding to a grid of ``step`` adds (uniform over a step): a
    figure that moves in steps (a share of n examples: 1 / n) cannot show seeds a smaller
    spread, so identical values on two seeds do not make a zero-width interval."""
    return step / math.sqrt(12.0)


def paired_difference(first: dict, second: dict, confidence: float = CONFIDENCE,
                      step: float = 0.0) -> tuple[Interval, list[float]] | None:
    """Interval of first - second over the seeds both have a finite value for, and the
    per-seed differences; None if they share no seed. ``first`` and ``second`` map seed ->
    value; ``step``: the figures' step, if they move in steps (each rounds on its own)."""
    shared = sorted(seed for seed in first if seed in second
                    and _finite(first[seed]) and _finite(second[seed]))
    if not shared:
        return None
    differences = [float(first[seed]) - float(second[seed]) for seed in shared]
    interval = t_interval(differences, confidence, floor=math.sqrt(2.0) * step_deviation(step))
    # Differences that cancel (0.0028 + 0.0222 - 0.025) leave rounding noise: say 0, not 3.7e-17.
    scale = max(abs(float(values[seed])) for values in (first, second) for seed in shared)
    if abs(interval.mean) <= ROUNDING * scale:
        shift = interval.mean
        interval = replace(interval, mean=0.0,
                           low=None if interval.low is None else interval.low - shift,
                           high=None if interval.high is None else interval.high - shift)
    return interval, differences


def _finite(value) -> bool:
    return value is not None and math.isfinite(float(value))
