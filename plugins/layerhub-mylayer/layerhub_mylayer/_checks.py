"""Argument checks shared by the layers of this plugin."""

from __future__ import annotations

import math
import numbers


def is_positive_int(value: object) -> bool:
    # bool is an int subclass, but MyLayer(True) is a bug, not a size.
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and int(value) > 0


def is_finite_real(value: object) -> bool:
    return (
        isinstance(value, numbers.Real)
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )
