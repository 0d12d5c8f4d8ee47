"""Keras 2 backend functions whose numbers no single Keras 3 op reproduces.

``layerhub port`` copies this file into every plugin it writes, as ``<package>/_keras2.py``;
the ported code calls these where the translation table (``port/table.py``) names them. Each
function computes what Keras 2's TensorFlow backend computed, with ``keras.ops`` only, so the
plugin runs on every Keras 3 backend.
"""

from __future__ import annotations

import string
from typing import Any

import keras
import numpy as np
from keras import ops

__all__ = [
    "batch_dot",
    "batch_flatten",
    "bias_add",
    "cast_to_floatx",
    "constant",
    "dot",
    "hard_sigmoid",
    "image_dim_ordering",
    "l2_normalize",
    "output_shape",
    "repeat",
    "sqrt",
    "switch",
    "variable",
]


def dot(x: Any, y: Any) -> Any:
    """``K.dot``: x's last axis against y's second to last (a tensordot when y has rank > 2)."""
    y_rank = len(y.shape)
    if y_rank <= 2:
        return ops.matmul(x, y)
    return ops.tensordot(x, y, axes=[[len(x.shape) - 1], [y_rank - 2]])


def batch_dot(x: Any, y: Any, axes: int | list[int] | tuple[int, int] | None = None) -> Any:
    """``K.batch_dot``: a dot product per sample over one axis of each operand.

    The result keeps x's other axes, then y's; a rank-1 result becomes ``(batch, 1)``.
    """
    x_rank, y_rank = len(x.shape), len(y.shape)
    if x_rank < 2 or y_rank < 2:
        raise ValueError(
            f"batch_dot needs inputs of rank 2 or more. Received: ranks {x_rank} and {y_rank}"
        )
    if axes is None:
        axes = [x_rank - 1, y_rank - 1 if y_rank == 2 else y_rank - 2]
    elif isinstance(axes, int):
        axes = [axes, axes]
    x_axis = axes[0] % x_rank
    y_axis = axes[1] % y_rank
    if x_axis == 0 or y_axis == 0:
        raise ValueError(f"batch_dot cannot contract the batch axis. Received: axes={axes}")
    letters = iter(string.ascii_letters[2:])
    x_sub = ["a"] + [next(letters) for _ in range(x_rank - 1)]
    y_sub = ["a"] + [next(letters) for _ in range(y_rank - 1)]
    x_sub[x_axis] = y_sub[y_axis] = "b"
    out = ["a"] + [c for c in x_sub[1:] if c != "b"] + [c for c in y_sub[1:] if c != "b"]
    result = ops.einsum(f"{''.join(x_sub)},{''.join(y_sub)}->{''.join(out)}", x, y)
    if len(out) == 1:
        result = ops.expand_dims(result, 1)
    return result


def sqrt(x: Any) -> Any:
    """``K.sqrt``: negative inputs are clipped to 0 first, as Keras 2 did."""
    return ops.sqrt(ops.maximum(x, ops.zeros_like(x)))


def hard_sigmoid(x: Any) -> Any:
    """``K.hard_sigmoid``: ``clip(0.2 * x + 0.5, 0, 1)``."""
    return ops.clip(0.2 * x + 0.5, 0.0, 1.0)


def l2_normalize(x: Any, axis: Any = None) -> Any:
    """``K.l2_normalize``: ``x / sqrt(max(sum(x ** 2, axis), 1e-12))`` (TensorFlow's epsilon)."""
    square_sum = ops.sum(ops.square(x), axis=axis, keepdims=True)
    return x * ops.rsqrt(ops.maximum(square_sum, 1e-12))


def switch(condition: Any, then_expression: Any, else_expression: Any) -> Any:
    """``K.switch``: a condition of lower rank is expanded on the right to the values' rank."""
    then_value = then_expression() if callable(then_expression) else then_expression
    else_value = else_expression() if callable(else_expression) else else_expression
    condition = ops.convert_to_tensor(condition)
    target = max(len(ops.shape(then_value)), len(ops.shape(else_value)))
    while 0 < len(condition.shape) < target:
        condition = ops.expand_dims(condition, -1)
    return ops.where(condition, then_value, else_value)


def bias_add(x: Any, bias: Any, data_format: str | None = None) -> Any:
    """``K.bias_add``: the bias goes on the channels axis of ``data_format``."""
    data_format = data_format or keras.config.image_data_format()
    rank = len(x.shape)
    if data_format == "channels_first" and rank > 2 and len(bias.shape) == 1:
        return x + ops.reshape(bias, (1, -1) + (1,) * (rank - 2))
    return x + bias


def repeat(x: Any, n: int) -> Any:
    """``K.repeat``: ``(batch, dim)`` -> ``(batch, n, dim)``."""
    return ops.repeat(ops.expand_dims(x, 1), n, axis=1)


def batch_flatten(x: Any) -> Any:
    """``K.batch_flatten``: ``(batch, ...)`` -> ``(batch, prod(...))``."""
    return ops.reshape(x, (ops.shape(x)[0], -1))


def constant(value: Any, dtype: str | None = None) -> Any:
    """``K.constant``: a tensor of ``dtype``, floatx when not given."""
    return ops.convert_to_tensor(np.asarray(value), dtype=dtype or keras.config.floatx())


def cast_to_floatx(x: Any) -> Any:
    """``K.cast_to_floatx``: a NumPy array of floatx."""
    return np.asarray(x, dtype=keras.config.floatx())


def image_dim_ordering() -> str:
    """``K.image_dim_ordering``: ``"tf"`` for channels_last, ``"th"`` for channels_first."""
    return "tf" if keras.config.image_data_format() == "channels_last" else "th"


def output_shape(layer: Any, input_shape: Any) -> Any:
    """The shape ``layer.call`` gives for ``input_shape``, found by tracing it symbolically.

    Keras 2 (tf.keras) did this for a layer without ``compute_output_shape``; Keras 3 asks the
    layer for it. Shapes do not depend on the dtype, so the trace runs in the variable dtype.
    """
    # Keras 3 exposes no public function that traces a callable with symbolic tensors.
    from keras.src.backend import compute_output_spec

    several = (
        isinstance(input_shape, list)
        and bool(input_shape)
        and isinstance(input_shape[0], (list, tuple))
    )
    if not layer.built:
        layer.build(input_shape)
        layer.built = True
    dtype = layer.variable_dtype or keras.config.floatx()
    if several:
        inputs: Any = [keras.KerasTensor(tuple(s), dtype=dtype) for s in input_shape]
    else:
        inputs = keras.KerasTensor(tuple(input_shape), dtype=dtype)
    outputs = compute_output_spec(layer.call, inputs)
    if isinstance(outputs, (list, tuple)):
        return [tuple(o.shape) for o in outputs]
    return tuple(outputs.shape)


def variable(
    layer: Any,
    value: Any,
    *,
    name: str,
    dtype: str | None = None,
    constraint: Any = None,
    trainable: bool = True,
) -> Any:
    """``self.<name> = K.variable(value)``: a weight of ``layer`` whose initial value is ``value``.

    Keras 2 tracked such a variable once it was listed in ``trainable_weights``; Keras 3 tracks
    weights made by ``add_weight``, so the weight is made by it, with ``value`` as initializer.
    """
    initial = np.asarray(
        value
        if isinstance(value, (int, float, list, tuple, np.ndarray))
        else ops.convert_to_numpy(value)
    )

    def initializer(shape: Any, dtype: Any = None) -> Any:
        return ops.cast(ops.convert_to_tensor(initial), dtype)

    return layer.add_weight(
        name=name,
        shape=initial.shape,
        initializer=initializer,
        dtype=dtype,
        trainable=trainable,
        constraint=constraint,
    )
