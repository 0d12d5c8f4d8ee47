"""LocallyConnected1D: a 1D convolution with unshared weights (tf-keras compatible)."""

from __future__ import annotations

import keras

from layerhub_locally_connected._base import BaseLocallyConnected


@keras.saving.register_keras_serializable(package="layerhub_locally_connected")
class LocallyConnected1D(BaseLocallyConnected):
    """Locally-connected layer for 1D inputs (a Conv1D with unshared weights).

    Works like `Conv1D`, except that a different set of filters is applied at
    every output step: `y[b, t, :] = x_window(b, t) @ W[t] + bias[t]`, where
    `x_window(b, t)` is the `kernel_size` window of the input under output
    step `t`. Same arguments, defaults, weight shapes and numerics as
    `tf_keras.layers.LocallyConnected1D`, so Keras 2 weights load.

    Each output step reads a window of input steps, so a Keras mask over the
    input steps does not apply to the output and is not propagated.

    Example:

    >>> import numpy as np
    >>> layer = LocallyConnected1D(4, 3, strides=2)
    >>> tuple(layer(np.zeros((2, 10, 5), "float32")).shape)
    (2, 4, 4)
    >>> tuple(layer.kernel.shape)
    (4, 15, 4)

    Args:
        filters: Positive integer, the number of output filters.
        kernel_size: An integer or tuple of 1 integer, the window length.
        strides: An integer or tuple of 1 integer, the stride. Defaults to `1`.
        padding: `"valid"` (no padding, default) or `"same"` (output of length
            `ceil(steps / strides)`; each window starts `kernel_size // 2`
            before `step * strides` and taps outside the input read zero).
            `"same"` requires `implementation` 2 or 3, as in tf-keras.
        data_format: `"channels_last"` (`(batch, steps, channels)`) or
            `"channels_first"` (`(batch, channels, steps)`). Defaults to
            `keras.config.image_data_format()`.
        activation: Activation function. Defaults to no activation.
        use_bias: Whether to add a per-step bias of shape `(new_steps, filters)`.
        kernel_initializer: Initializer for `kernel`.
        bias_initializer: Initializer for `bias`.
        kernel_regularizer: Regularizer for `kernel`.
        bias_regularizer: Regularizer for `bias`.
        activity_regularizer: Regularizer for the output.
        kernel_constraint: Constraint for `kernel`.
        bias_constraint: Constraint for `bias`.
        implementation: How `kernel` is stored (the result is identical):
            `1`: `(new_steps, kernel_size * channels, filters)`, compact;
            `2`: a dense, masked `(steps, channels, new_steps, filters)`
            (channels_last) or `(channels, steps, filters, new_steps)`
            (channels_first) matrix, large;
            `3`: the `nnz` connected values as a flat vector, in the order of
            `kernel_idxs`. Defaults to `1`.
        **kwargs: Base `Layer` arguments (`name`, `dtype`, `trainable`, ...).

    Call arguments:
        inputs: A 3D tensor `(batch, steps, channels)` (channels_last) or
            `(batch, channels, steps)` (channels_first), with known `steps`
            and `channels`.

    Returns:
        A 3D tensor `(batch, new_steps, filters)` (channels_last) or
        `(batch, filters, new_steps)` (channels_first).
    """

    def __init__(
        self,
        filters,
        kernel_size,
        strides=1,
        padding="valid",
        data_format=None,
        activation=None,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        bias_constraint=None,
        implementation=1,
        **kwargs,
    ):
        super().__init__(
            1,
            filters,
            kernel_size,
            strides=strides,
            padding=padding,
            data_format=data_format,
            activation=activation,
            use_bias=use_bias,
            kernel_initializer=kernel_initializer,
            bias_initializer=bias_initializer,
            kernel_regularizer=kernel_regularizer,
            bias_regularizer=bias_regularizer,
            activity_regularizer=activity_regularizer,
            kernel_constraint=kernel_constraint,
            bias_constraint=bias_constraint,
            implementation=implementation,
            **kwargs,
        )
