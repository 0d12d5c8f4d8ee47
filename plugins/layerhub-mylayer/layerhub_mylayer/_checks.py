"""Argument checks shared by the layers of this plugin."""

from __future__ import annotations

import math
import numbers


def is_positive_int(value: object) -> bool:
    # bool is an int subclass, but MyLayer(True) is a bug, not a size.
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and int(value) > 0


def checked_output_dim(output_dim: object) -> int:
    """``output_dim`` as an int, or a Keras-style ``ValueError``."""
    if not is_positive_int(output_dim):
        raise ValueError(
            f"`output_dim` must be a positive integer. Received: output_dim={output_dim!r}"
        )
    return int(output_dim)


def is_finite_real(value: object) -> bool:
    return (
        isinstance(value, numbers.Real)
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )
