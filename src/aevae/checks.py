"""Small predicates the argument checks share."""

from __future__ import annotations

import numbers

import numpy as np


def is_whole(value) -> bool:
    """A whole number of any integer type (numpy's too), not a bool: 3 and np.int64(3) are,
    3.0, "3" and True are not."""
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))
