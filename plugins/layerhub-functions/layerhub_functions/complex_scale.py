"""complex_scale: multiply a complex tensor, held as two real tensors, by a complex constant."""

from __future__ import annotations

import math
import numbers
from typing import Any

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="layerhub_functions")
def complex_scale(x: Any, real: float = 1.0, imag: float = 0.0) -> list[Any]:
    """Multiplies ``x`` by the complex constant ``real + i * imag``; returns two real tensors.

    ``x`` is either one real tensor, or a pair ``[x_real, x_imag]`` holding the real and
    imaginary parts of a complex tensor. The product's parts come back as two tensors:

    ``[real * x_real - imag * x_imag, real * x_imag + imag * x_real]``

    (with ``x_imag = 0`` for a single tensor, which gives ``[real * x, imag * x]``). The output
    pair is again a valid input, so scalings chain. It is the function-only counterpart of
    ``layerhub_mylayer.ComplexScale``: the constants are fixed ``Lambda`` ``arguments`` and
    nothing is trained. A phase rotation by ``theta`` is
    ``arguments={"real": cos(theta), "imag": sin(theta)}``.

    Example:

    >>> import numpy as np
    >>> layer = keras.layers.Lambda(complex_scale, arguments={"real": 2.0, "imag": -1.0})
    >>> re, im = layer(np.array([[1.0, 3.0]], dtype="float32"))
    >>> keras.ops.convert_to_numpy(re).tolist(), keras.ops.convert_to_numpy(im).tolist()
    ([[2.0, 6.0]], [[-1.0, -3.0]])

    Args:
        x: A real tensor, or a list or tuple of two real tensors of the same shape (the real and
            the imaginary part).
        real: Real part of the constant. Defaults to ``1.0``.
        imag: Imaginary part of the constant. Defaults to ``0.0``.

    Returns:
        A list of two tensors shaped like the input: the real and the imaginary part.
    """
    for name, value in (("real", real), ("imag", imag)):
        if not _is_finite_real(value):
            raise ValueError(f"`{name}` must be a finite number. Received: {name}={value!r}")
    if isinstance(x, (list, tuple)):
        if len(x) != 2:
            raise ValueError(
                "`x` must be one tensor or a pair [real part, imaginary part]. "
                f"Received: a sequence of {len(x)} tensors"
            )
        x_real, x_imag = x
        if tuple(x_real.shape) != tuple(x_imag.shape):
            raise ValueError(
                "The real and imaginary parts must have the same shape. "
                f"Received: shapes {tuple(x_real.shape)} and {tuple(x_imag.shape)}"
            )
        return [
            ops.subtract(ops.multiply(x_real, real), ops.multiply(x_imag, imag)),
            ops.add(ops.multiply(x_imag, real), ops.multiply(x_real, imag)),
        ]
    return [ops.multiply(x, real), ops.multiply(x, imag)]


def _is_finite_real(value: object) -> bool:
    return (
        isinstance(value, numbers.Real)
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )
