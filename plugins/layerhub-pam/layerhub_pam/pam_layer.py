"""DANet position attention module (PAM) for Keras 3."""

from __future__ import annotations

import numbers
from typing import Any

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="layerhub_pam")
class PAM(keras.layers.Layer):
    """Position attention module from DANet (Fu et al., 2019).

    Every spatial position attends to every other position of the same feature
    map. For channels-last input `A` of shape `(batch, H, W, C)`, with
    `N = H * W` positions flattened:

    ```
    Q = conv1x1_q(A)          # (batch, N, C // reduction)
    K = conv1x1_k(A)          # (batch, N, C // reduction)
    V = conv1x1_v(A)          # (batch, N, C)
    S = softmax(Q @ K^T)      # (batch, N, N), softmax over the last axis
    out = gamma * (S @ V) + A # reshaped back to (batch, H, W, C)
    ```

    `gamma` is a learnable scalar that starts at zero, so the layer begins as
    the identity and learns how much attention to mix in. Note that while
    `gamma` is exactly zero the query, key and value weights receive zero
    gradient; they start learning once `gamma` has moved.

    Every position attends to all others, masked or not, so the layer does
    not take or propagate a Keras mask.

    The key projection has no bias even when `use_bias=True`: a key bias adds
    `q_i . b_k` to every score of row `i`, which the softmax cancels, so it
    would be a weight that never affects the output and never gets a gradient.

    Reference: Fu et al., "Dual Attention Network for Scene Segmentation",
    CVPR 2019, https://arxiv.org/abs/1809.02983.

    Example:

    >>> import numpy as np
    >>> import keras
    >>> from layerhub_pam import PAM
    >>> x = np.random.rand(2, 8, 8, 16).astype("float32")
    >>> y = PAM(reduction=8)(x)
    >>> tuple(y.shape)
    (2, 8, 8, 16)
    >>> bool(np.allclose(keras.ops.convert_to_numpy(y), x))  # gamma starts at 0
    True

    Args:
        reduction: Positive integer. The query and key projections have
            `channels // reduction` channels. Defaults to `8`, as in DANet.
        use_bias: Boolean, whether the query and value projections have a
            bias (the key projection never has one, see above). Defaults to
            `True`.
        kernel_initializer: Initializer for the three projection kernels.
            Defaults to `"glorot_uniform"`.
        bias_initializer: Initializer for the projection biases. Defaults to
            `"zeros"`.
        kernel_regularizer: Optional regularizer for the projection kernels.
        bias_regularizer: Optional regularizer for the projection biases.
        kernel_constraint: Optional constraint for the projection kernels.
        bias_constraint: Optional constraint for the projection biases.
        gamma_initializer: Initializer for the scalar `gamma`. Defaults to
            `"zeros"`.
        gamma_regularizer: Optional regularizer for `gamma`.
        gamma_constraint: Optional constraint for `gamma`.
        **kwargs: Base layer keyword arguments, such as `name` and `dtype`.

    Call arguments:
        inputs: A 4D channels-last tensor `(batch, height, width, channels)`.
            Batch, height and width may be unknown; `channels` must be known
            and at least `reduction`.

    Returns:
        A tensor with the same shape as `inputs`.
    """

    def __init__(
        self,
        reduction: int = 8,
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        kernel_regularizer: Any = None,
        bias_regularizer: Any = None,
        kernel_constraint: Any = None,
        bias_constraint: Any = None,
        gamma_initializer: Any = "zeros",
        gamma_regularizer: Any = None,
        gamma_constraint: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if (
            isinstance(reduction, bool)
            or not isinstance(reduction, numbers.Integral)
            or reduction < 1
        ):
            raise ValueError(
                f"`reduction` must be a positive integer. Received: reduction={reduction!r}"
            )
        if not isinstance(use_bias, bool):
            raise ValueError(f"`use_bias` must be a boolean. Received: use_bias={use_bias!r}")
        self.reduction = int(reduction)
        self.use_bias = use_bias
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)
        self.kernel_constraint = keras.constraints.get(kernel_constraint)
        self.bias_constraint = keras.constraints.get(bias_constraint)
        self.gamma_initializer = keras.initializers.get(gamma_initializer)
        self.gamma_regularizer = keras.regularizers.get(gamma_regularizer)
        self.gamma_constraint = keras.constraints.get(gamma_constraint)
        self.input_spec = keras.layers.InputSpec(ndim=4)

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        if len(input_shape) != 4:
            raise ValueError(
                "PAM expects a 4D channels-last input (batch, height, width, channels). "
                f"Received: input_shape={tuple(input_shape)}"
            )
        channels = input_shape[-1]
        if channels is None:
            raise ValueError(
                "PAM needs the channel dimension (last axis) to be known. "
                f"Received: input_shape={tuple(input_shape)}"
            )
        if channels // self.reduction < 1:
            raise ValueError(
                f"PAM with reduction={self.reduction} needs at least {self.reduction} "
                "input channels so that the query and key projections keep at least "
                f"one channel. Received: channels={channels}"
            )
        self._channels = channels
        self._key_channels = channels // self.reduction

        # Sublayers are created here, never in call(), so their weights exist
        # once, are tracked, and are restored when a saved model is loaded.
        # They share this layer's dtype policy so mixed precision applies.
        # Each projection gets an initializer of its own (index = its seed offset), so the
        # query and key kernels do not start equal.
        self.query_conv = self._projection("query_conv", self._key_channels, self.use_bias, 0)
        self.key_conv = self._projection("key_conv", self._key_channels, False, 1)
        self.value_conv = self._projection("value_conv", channels, self.use_bias, 2)
        conv_input_shape = (None, None, None, channels)
        for conv in (self.query_conv, self.key_conv, self.value_conv):
            conv.build(conv_input_shape)

        self.gamma = self.add_weight(
            name="gamma",
            shape=(1,),
            initializer=self.gamma_initializer,
            regularizer=self.gamma_regularizer,
            constraint=self.gamma_constraint,
        )
        self.input_spec = keras.layers.InputSpec(ndim=4, axes={-1: channels})

    def call(self, inputs: Any) -> Any:
        shape = ops.shape(inputs)
        batch = shape[0]
        query = ops.reshape(self.query_conv(inputs), (batch, -1, self._key_channels))
        key = ops.reshape(self.key_conv(inputs), (batch, -1, self._key_channels))
        value = ops.reshape(self.value_conv(inputs), (batch, -1, self._channels))

        # Scores are sums over channels of unnormalised features and can exceed
        # the float16 range, so the scores and the softmax use float32.
        energy = ops.matmul(
            ops.cast(query, "float32"),
            ops.transpose(ops.cast(key, "float32"), (0, 2, 1)),
        )
        attention = ops.cast(ops.softmax(energy, axis=-1), self.compute_dtype)

        out = ops.reshape(ops.matmul(attention, value), shape)
        gamma = ops.cast(self.gamma, self.compute_dtype)
        return gamma * out + inputs

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return tuple(input_shape)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "reduction": self.reduction,
                "use_bias": self.use_bias,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
                "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
                "bias_regularizer": keras.regularizers.serialize(self.bias_regularizer),
                "kernel_constraint": keras.constraints.serialize(self.kernel_constraint),
                "bias_constraint": keras.constraints.serialize(self.bias_constraint),
                "gamma_initializer": keras.initializers.serialize(self.gamma_initializer),
                "gamma_regularizer": keras.regularizers.serialize(self.gamma_regularizer),
                "gamma_constraint": keras.constraints.serialize(self.gamma_constraint),
            }
        )
        return config

    def _projection(
        self, name: str, filters: int, use_bias: bool, index: int
    ) -> keras.layers.Conv2D:
        return keras.layers.Conv2D(
            filters,
            kernel_size=1,
            use_bias=use_bias,
            kernel_initializer=_own_initializer(self.kernel_initializer, index),
            bias_initializer=_own_initializer(self.bias_initializer, index),
            kernel_regularizer=self.kernel_regularizer,
            bias_regularizer=self.bias_regularizer,
            kernel_constraint=self.kernel_constraint,
            bias_constraint=self.bias_constraint,
            dtype=self.dtype_policy,
            name=name,
        )


def _own_initializer(initializer: Any, index: int) -> Any:
    """A copy of ``initializer`` for the ``index``-th projection, drawing values of its own.

    A Keras initializer returns the same values on every call (an unseeded one fixes a random
    seed when it is created), so one instance shared by the three projections would start them
    equal, and equal query and key projections make every attention map symmetric.
    """
    if not isinstance(initializer, keras.initializers.Initializer):
        return initializer
    config = initializer.get_config()
    seed = config.get("seed")
    if isinstance(seed, dict):
        # A SeedGenerator advances on every call, so sharing it already gives new values; a
        # copy rebuilt from its config would restart it and repeat them.
        return initializer
    if isinstance(seed, numbers.Integral) and not isinstance(seed, bool):
        # Reproducible for a given seed, and different for each projection.
        config["seed"] = int(seed) + index
    # An unseeded copy picks a new seed when it is created (from Keras' seeded Python RNG, so
    # keras.utils.set_random_seed still makes it reproducible).
    return initializer.__class__.from_config(config)
