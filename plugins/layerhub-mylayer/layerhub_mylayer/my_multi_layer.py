"""MyMultiLayer: a layer with two inputs and two outputs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
from keras import ops

from layerhub_mylayer._checks import checked_output_dim

Shape = tuple[int | None, ...]


@keras.saving.register_keras_serializable(package="layerhub_mylayer")
class MyMultiLayer(keras.layers.Layer):
    """Two inputs, two outputs: `[a · kernel + b, mean(b, axis=-1)]`.

    The first output projects `a` to `output_dim` features with a trainable
    matrix and adds `b` to it; the second is the mean of `b` over its last
    axis. It shows how a layer receives a list of tensors and returns a list
    of tensors, with `compute_output_shape` returning one shape per output.

    `b` must have the same rank as `a` and `output_dim` features, so the sum
    is element-wise and both outputs have predictable shapes.

    The layer does not propagate Keras masks to its outputs.

    Example:

    >>> import numpy as np
    >>> layer = MyMultiLayer(output_dim=3)
    >>> a = np.ones((2, 5), dtype="float32")
    >>> b = np.ones((2, 3), dtype="float32")
    >>> summed, mean = layer([a, b])
    >>> tuple(summed.shape), tuple(mean.shape)
    ((2, 3), (2,))
    >>> layer.compute_output_shape([(None, 5), (None, 3)])
    [(None, 3), (None,)]

    Args:
        output_dim: Positive integer, the number of features of `b` and of
            the first output.
        kernel_initializer: Initializer for `kernel`, shape
            `(a_dim, output_dim)`. Defaults to `"uniform"`
            (`RandomUniform(-0.05, 0.05)`), as in the original example.
        **kwargs: Base layer keyword arguments, such as `name` and `dtype`.

    Call arguments:
        inputs: A list `[a, b]`: `a` of shape `(batch_size, ..., a_dim)`,
            rank >= 2, with a known `a_dim`; `b` of shape
            `(batch_size, ..., output_dim)`, same rank as `a`.

    Returns:
        A list of two tensors: `a · kernel + b`, of shape
        `(batch_size, ..., output_dim)`, and `mean(b, axis=-1)`, of shape
        `(batch_size, ...)`.
    """

    def __init__(self, output_dim: int, kernel_initializer: Any = "uniform", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.output_dim = checked_output_dim(output_dim)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.input_spec = [keras.layers.InputSpec(min_ndim=2), keras.layers.InputSpec(min_ndim=2)]

    def build(self, input_shape: Sequence[Shape]) -> None:
        shape_a, shape_b = _split_shapes(input_shape)
        if shape_a[-1] is None:
            raise ValueError(
                "The last axis of `a` must have a known size. "
                f"Received: input_shape={_show(input_shape)}"
            )
        if len(shape_b) != len(shape_a) or shape_b[-1] not in (None, self.output_dim):
            raise ValueError(
                f"`b` must have the rank of `a` and output_dim={self.output_dim} features. "
                f"Received: input_shape={_show(input_shape)}"
            )
        if any(
            da != db
            for da, db in zip(shape_a[:-1], shape_b[:-1], strict=True)
            if None not in (da, db)
        ):
            raise ValueError(
                "`a` and `b` must agree on every axis but the last. "
                f"Received: input_shape={_show(input_shape)}"
            )
        self.input_spec = [
            keras.layers.InputSpec(ndim=len(shape_a), axes={-1: shape_a[-1]}),
            keras.layers.InputSpec(ndim=len(shape_b), axes={-1: self.output_dim}),
        ]
        self.kernel = self.add_weight(
            name="kernel",
            shape=(shape_a[-1], self.output_dim),
            initializer=self.kernel_initializer,
        )

    def call(self, inputs: Sequence[Any]) -> list[Any]:
        a, b = inputs
        return [ops.matmul(a, self.kernel) + b, ops.mean(b, axis=-1)]

    def compute_output_shape(self, input_shape: Sequence[Shape]) -> list[Shape]:
        shape_a, shape_b = _split_shapes(input_shape)
        # Take each leading size from whichever input knows it.
        leading = tuple(
            db if da is None else da for da, db in zip(shape_a[:-1], shape_b[:-1], strict=False)
        )
        return [(*leading, self.output_dim), tuple(shape_b[:-1])]

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "output_dim": self.output_dim,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            }
        )
        return config


def _split_shapes(input_shape: Sequence[Shape]) -> tuple[Shape, Shape]:
    if (
        not isinstance(input_shape, (list, tuple))
        or len(input_shape) != 2
        or not all(isinstance(s, (list, tuple)) for s in input_shape)
    ):
        raise ValueError(
            "MyMultiLayer expects a list of two inputs `[a, b]`. "
            f"Received: input_shape={_show(input_shape)}"
        )
    return tuple(input_shape[0]), tuple(input_shape[1])


def _show(input_shape: Any) -> Any:
    if isinstance(input_shape, (list, tuple)) and all(
        isinstance(s, (list, tuple)) for s in input_shape
    ):
        return [tuple(s) for s in input_shape]
    return input_shape
