"""LocallyConnected2D: a 2D convolution with unshared weights (tf-keras compatible)."""

from __future__ import annotations

import keras

from layerhub_locally_connected._base import BaseLocallyConnected


@keras.saving.register_keras_serializable(package="layerhub_locally_connected")
class LocallyConnected2D(BaseLocallyConnected):
    """Locally-connected layer for 2D inputs (a Conv2D with unshared weights).

    Works like `Conv2D`, except that a different set of filters is applied at
    every output position: `y[b, i, j, :] = x_patch(b, i, j) @ W[i, j] + bias[i, j]`,
    where `x_patch(b, i, j)` is the `kernel_size` window of the input under
    output position `(i, j)`. Same arguments, defaults, weight shapes and
    numerics as `tf_keras.layers.LocallyConnected2D`, so Keras 2 weights load.

    Each output position reads a window of input positions, so a Keras mask
    over the input does not apply to the output and is not propagated.

    Example:

    >>> import numpy as np
    >>> layer = LocallyConnected2D(8, (3, 3), implementation=2, padding="same")
    >>> tuple(layer(np.zeros((2, 16, 16, 3), "float32")).shape)
    (2, 16, 16, 8)
    >>> tuple(layer.kernel.shape)
    (16, 16, 3, 16, 16, 8)

    Args:
        filters: Positive integer, the number of output filters.
        kernel_size: An integer or tuple of 2 integers, the height and width of
            the window.
        strides: An integer or tuple of 2 integers, the strides along height
            and width. Defaults to `(1, 1)`.
        padding: `"valid"` (no padding, default) or `"same"` (output of size
            `ceil(input / strides)`; each window starts `kernel_size // 2`
            before `position * strides` and taps outside the input read zero).
            `"same"` requires `implementation` 2 or 3, as in tf-keras.
        data_format: `"channels_last"` (`(batch, rows, cols, channels)`) or
            `"channels_first"` (`(batch, channels, rows, cols)`). Defaults to
            `keras.config.image_data_format()`.
        activation: Activation function. Defaults to no activation.
        use_bias: Whether to add a per-position bias of shape
            `(new_rows, new_cols, filters)`.
        kernel_initializer: Initializer for `kernel`.
        bias_initializer: Initializer for `bias`.
        kernel_regularizer: Regularizer for `kernel`.
        bias_regularizer: Regularizer for `bias`.
        activity_regularizer: Regularizer for the output.
        kernel_constraint: Constraint for `kernel`.
        bias_constraint: Constraint for `bias`.
        implementation: How `kernel` is stored (the result is identical):
            `1`: `(new_rows * new_cols, kh * kw * channels, filters)`, compact;
            `2`: a dense, masked `(rows, cols, channels, new_rows, new_cols,
            filters)` (channels_last) or `(channels, rows, cols, filters,
            new_rows, new_cols)` (channels_first) matrix, large;
            `3`: the `nnz` connected values as a flat vector, in the order of
            `kernel_idxs`. Defaults to `1`.
        **kwargs: Base `Layer` arguments (`name`, `dtype`, `trainable`, ...).

    Call arguments:
        inputs: A 4D tensor `(batch, rows, cols, channels)` (channels_last) or
            `(batch, channels, rows, cols)` (channels_first), with known
            `rows`, `cols` and `channels`.

    Returns:
        A 4D tensor `(batch, new_rows, new_cols, filters)` (channels_last) or
        `(batch, filters, new_rows, new_cols)` (channels_first).
    """

    def __init__(
        self,
        filters,
        kernel_size,
        strides=(1, 1),
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
            2,
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
