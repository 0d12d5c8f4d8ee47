"""MyLayer: the minimal trainable layer, a bias-free projection of the last axis."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from layerhub_mylayer._checks import checked_output_dim


@keras.saving.register_keras_serializable(package="layerhub_mylayer")
class MyLayer(keras.layers.Layer):
    """Projects the last axis with a trainable matrix: `output = x · kernel`.

    This is the smallest layer with a weight: no bias, no activation. It is
    the example Keras 2's guide to writing layers started from, kept here as
    a working Keras 3 layer that also accepts inputs of rank above 2 (the
    projection is applied at every position of the leading axes).

    Each position is mapped on its own, so a Keras mask (from
    `Embedding(mask_zero=True)` or `Masking`) passes through unchanged.

    Example:

    >>> import numpy as np
    >>> layer = MyLayer(output_dim=4)
    >>> x = np.ones((2, 3), dtype="float32")
    >>> tuple(layer(x).shape)
    (2, 4)
    >>> tuple(layer.kernel.shape)
    (3, 4)
    >>> tuple(MyLayer(output_dim=4)(np.ones((2, 5, 3), dtype="float32")).shape)
    (2, 5, 4)

    Args:
        output_dim: Positive integer, the size of the last output axis.
        kernel_initializer: Initializer for `kernel`, shape
            `(input_dim, output_dim)`. Defaults to `"uniform"`
            (`RandomUniform(-0.05, 0.05)`), as in the original example.
        **kwargs: Base layer keyword arguments, such as `name` and `dtype`.

    Call arguments:
        inputs: A tensor of shape `(batch_size, ..., input_dim)`, rank >= 2,
            with a known `input_dim`.

    Returns:
        A tensor of shape `(batch_size, ..., output_dim)`.
    """

    def __init__(self, output_dim: int, kernel_initializer: Any = "uniform", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.output_dim = checked_output_dim(output_dim)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.input_spec = keras.layers.InputSpec(min_ndim=2)
        # Each position is projected on its own, so a mask over positions stays valid.
        self.supports_masking = True

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        input_dim = input_shape[-1]
        if input_dim is None:
            raise ValueError(
                "The last axis of the input must have a known size. "
                f"Received: input_shape={tuple(input_shape)}"
            )
        self.input_spec = keras.layers.InputSpec(min_ndim=2, axes={-1: input_dim})
        self.kernel = self.add_weight(
            name="kernel",
            shape=(input_dim, self.output_dim),
            initializer=self.kernel_initializer,
        )

    def call(self, inputs: Any) -> Any:
        return ops.matmul(inputs, self.kernel)

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return (*tuple(input_shape[:-1]), self.output_dim)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "output_dim": self.output_dim,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            }
        )
        return config
