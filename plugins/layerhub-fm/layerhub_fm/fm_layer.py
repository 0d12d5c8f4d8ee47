"""Factorization machine layer."""

from __future__ import annotations

import numbers
from typing import Any, ClassVar

import keras
from keras import ops

_HALF_DTYPES = ("float16", "bfloat16")


@keras.saving.register_keras_serializable(package="layerhub_fm")
class FMLayer(keras.layers.Layer):
    """Second-order factorization machine over the last axis.

    Each input feature `i` has a weight row `W[i]` and a latent factor
    vector `v_i = V[i]`. The layer returns a linear part plus all pairwise
    feature interactions, each weighted by the dot product of the two
    features' factor vectors:

    `output = activation(x·W + b + sum_{i<j} <v_i, v_j> x_i x_j)`

    The pairwise sum is computed in linear time with Rendle's identity

    `sum_{i<j} <v_i, v_j> x_i x_j = 1/2 * sum_f [(x·V)_f ** 2 - (x**2 · V**2)_f]`

    and, being a single number per sample, is added to every one of the
    `output_dim` outputs.

    Under a `mixed_float16` or `mixed_bfloat16` policy the pairwise term is
    computed in float32: it is a difference of two large, nearly equal sums,
    which half precision would mostly cancel to rounding noise.

    With inputs of rank 3 or more, each position of the leading axes is
    mapped on its own, so a Keras mask over positions (from
    `Embedding(mask_zero=True)` or `Masking`) passes through unchanged.

    Example:

    >>> import numpy as np
    >>> layer = FMLayer(output_dim=4, factor_order=3)
    >>> x = np.random.default_rng(0).normal(size=(2, 10)).astype("float32")
    >>> tuple(layer(x).shape)
    (2, 4)
    >>> [w.name for w in layer.weights]
    ['kernel', 'factor', 'bias']

    Args:
        output_dim: Positive integer, the size of the last output axis.
        factor_order: Positive integer, the size `k` of each feature's latent
            factor vector.
        activation: Activation applied to the output. Defaults to `None`
            (linear).
        kernel_initializer: Initializer for `W`, shape
            `(input_dim, output_dim)`. Defaults to `"glorot_uniform"`.
        factor_initializer: Initializer for `V`, shape
            `(input_dim, factor_order)`. Defaults to `"glorot_uniform"`.
        bias_initializer: Initializer for `b`, shape `(output_dim,)`.
            Defaults to `"zeros"`.
        kernel_regularizer: Optional regularizer for `W`.
        factor_regularizer: Optional regularizer for `V`.
        bias_regularizer: Optional regularizer for `b`.
        kernel_constraint: Optional constraint for `W`.
        factor_constraint: Optional constraint for `V`.
        bias_constraint: Optional constraint for `b`.
        **kwargs: Base layer keyword arguments, such as `name`, `dtype` and
            `activity_regularizer`.

    Call arguments:
        inputs: A tensor of shape `(batch_size, ..., input_dim)` with a known
            `input_dim`. Leading axes other than the last are kept.

    Returns:
        A tensor of shape `(batch_size, ..., output_dim)`.

    Reference:
        - [Rendle, 2010, Factorization Machines](
          https://doi.org/10.1109/ICDM.2010.127)
    """

    # Keras 2 files of this layer name its weights W, V and b; layerhub places them by name.
    keras2_weight_names: ClassVar[dict[str, str]] = {"W": "kernel", "V": "factor", "b": "bias"}

    def __init__(
        self,
        output_dim: int,
        factor_order: int,
        activation: Any = None,
        kernel_initializer: Any = "glorot_uniform",
        factor_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        kernel_regularizer: Any = None,
        factor_regularizer: Any = None,
        bias_regularizer: Any = None,
        kernel_constraint: Any = None,
        factor_constraint: Any = None,
        bias_constraint: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not _is_positive_int(output_dim):
            raise ValueError(
                f"`output_dim` must be a positive integer. Received: output_dim={output_dim!r}"
            )
        if not _is_positive_int(factor_order):
            raise ValueError(
                "`factor_order` must be a positive integer. "
                f"Received: factor_order={factor_order!r}"
            )
        self.output_dim = int(output_dim)
        self.factor_order = int(factor_order)
        self.activation = keras.activations.get(activation)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.factor_initializer = keras.initializers.get(factor_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.factor_regularizer = keras.regularizers.get(factor_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)
        self.kernel_constraint = keras.constraints.get(kernel_constraint)
        self.factor_constraint = keras.constraints.get(factor_constraint)
        self.bias_constraint = keras.constraints.get(bias_constraint)
        self.input_spec = keras.layers.InputSpec(min_ndim=2)
        # Only the feature axis is reduced; each position is mapped on its own, so a mask
        # over positions stays valid.
        self.supports_masking = True

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        input_dim = input_shape[-1]
        if input_dim is None:
            raise ValueError(
                "The last axis of the input (the features) must have a known size. "
                f"Received: input_shape={tuple(input_shape)}"
            )
        self.input_spec = keras.layers.InputSpec(min_ndim=2, axes={-1: input_dim})
        self.kernel = self.add_weight(
            name="kernel",
            shape=(input_dim, self.output_dim),
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
        )
        # Not autocast, so the float32 pairwise path sees full-precision factors.
        self.factor = self.add_weight(
            name="factor",
            shape=(input_dim, self.factor_order),
            initializer=self.factor_initializer,
            regularizer=self.factor_regularizer,
            constraint=self.factor_constraint,
            autocast=False,
        )
        self.bias = self.add_weight(
            name="bias",
            shape=(self.output_dim,),
            initializer=self.bias_initializer,
            regularizer=self.bias_regularizer,
            constraint=self.bias_constraint,
        )

    def call(self, inputs: Any) -> Any:
        linear = ops.add(ops.matmul(inputs, self.kernel), self.bias)

        dtype = "float32" if self.compute_dtype in _HALF_DTYPES else self.compute_dtype
        x = ops.cast(inputs, dtype)
        factor = ops.cast(self.factor, dtype)
        square_of_sum = ops.square(ops.matmul(x, factor))
        sum_of_squares = ops.matmul(ops.square(x), ops.square(factor))
        pairwise = 0.5 * ops.sum(square_of_sum - sum_of_squares, axis=-1, keepdims=True)

        # keepdims leaves a size-1 last axis that broadcasts over output_dim.
        outputs = linear + ops.cast(pairwise, self.compute_dtype)
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return (*tuple(input_shape[:-1]), self.output_dim)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "output_dim": self.output_dim,
                "factor_order": self.factor_order,
                "activation": keras.activations.serialize(self.activation),
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "factor_initializer": keras.initializers.serialize(self.factor_initializer),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
                "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
                "factor_regularizer": keras.regularizers.serialize(self.factor_regularizer),
                "bias_regularizer": keras.regularizers.serialize(self.bias_regularizer),
                "kernel_constraint": keras.constraints.serialize(self.kernel_constraint),
                "factor_constraint": keras.constraints.serialize(self.factor_constraint),
                "bias_constraint": keras.constraints.serialize(self.bias_constraint),
            }
        )
        return config


def _is_positive_int(value: object) -> bool:
    # bool is an int subclass, but FMLayer(True, 2) is a bug, not a size.
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and int(value) > 0
