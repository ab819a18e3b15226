"""Schedules for the weight on a model's KL term, as a function of the training step.

The training loop owns the schedule and passes ``kl_weight`` to ``model.loss``; models only
multiply. A schedule is any callable ``step -> weight``; these are the common ones.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Constant:
    weight: float = 1.0

    def __call__(self, step: int) -> float:
        return self.weight


@dataclass(frozen=True)
class LinearWarmup:
    """KL annealing: the weight rises linearly from ``start`` to 1 over ``steps`` steps."""

    steps: int
    start: float = 0.0

    def __post_init__(self):
        if self.steps < 1:
            raise ValueError(f"warm-up steps must be at least 1, got {self.steps}")
        if not 0.0 <= self.start <= 1.0:  # NaN too: min(1.0, nan) would read as 1
            raise ValueError(f"warm-up start must be a weight in [0, 1], got {self.start}")

    def __call__(self, step: int) -> float:
        return min(1.0, self.start + (1.0 - self.start) * step / self.steps)


@dataclass(frozen=True)
class Cyclical:
    """Cyclical annealing (Fu et al. 2019): within each cycle of ``period`` steps the weight
    rises linearly over the first ``ramp_fraction`` of the cycle, then stays at 1."""

    period: int
    ramp_fraction: float = 0.5

    def __post_init__(self):
        if self.period < 1 or not 0 < self.ramp_fraction <= 1:
            raise ValueError("cyclical schedule needs period >= 1 and 0 < ramp_fraction <= 1")

    def __call__(self, step: int) -> float:
        position = (step % self.period) / self.period
        return min(1.0, position / self.ramp_fraction)


def make_schedule(spec: str | float | None):
    """Parse a schedule from text: ``1``, ``linear:5000``, ``cyclical:2000`` or
    ``cyclical:2000:0.5``."""
    if spec is None:
        return Constant()
    if isinstance(spec, (int, float)):
        if not (math.isfinite(spec) and spec >= 0):
            raise ValueError(f"bad KL schedule {spec!r}: a constant weight is a number >= 0")
        return Constant(float(spec))
    kind, _, rest = str(spec).partition(":")
    try:
        arguments = [float(part) for part in rest.split(":") if part]
        if kind == "linear":
            return LinearWarmup(int(arguments[0]), *arguments[1:])
        if kind == "cyclical":
            return Cyclical(int(arguments[0]), *arguments[1:])
        if not rest and math.isfinite(float(kind)) and float(kind) >= 0:
            return Constant(float(kind))  # a negative weight would reward a larger KL
    except (IndexError, TypeError, ValueError, OverflowError):
        pass
    raise ValueError(
        f"bad KL schedule {spec!r}; use a number, linear:STEPS or cyclical:PERIOD[:RAMP_FRACTION]"
    )
