"""L2 normalisation with a learnable per-channel scale (ParseNet, SSD)."""

from __future__ import annotations

import math
import numbers
from typing import Any

import keras
from keras import ops

_HALF_DTYPES = ("float16", "bfloat16")


@keras.saving.register_keras_serializable(package="layerhub_l2norm")
class L2Normalization(keras.layers.Layer):
    """L2-normalises the input along one axis, then scales each channel.

    For every position, the vector along `axis` is divided by its Euclidean
    norm and multiplied element-wise by a learnable vector `gamma` with one
    entry per channel:

    `output = gamma * x / sqrt(max(sum(x ** 2, axis), epsilon))`

    ParseNet introduced this to bring feature maps of very different
    magnitudes onto a common scale before they are combined; SSD applies it
    to VGG16's `conv4_3` features with `gamma` starting at 20.

    The norm is always computed in float32 when the layer runs under a
    `mixed_float16` or `mixed_bfloat16` policy: a sum of squares of
    un-normalised activations easily exceeds the float16 range.

    With the default `axis=-1` each position is normalised on its own, so a
    Keras mask (from `Embedding(mask_zero=True)` or `Masking`) passes
    through unchanged. Normalising over any other axis mixes positions, so
    the layer then does not propagate a mask.

    Example:

    >>> import numpy as np
    >>> layer = L2Normalization(gamma_init=20.0)
    >>> x = np.array([[3.0, 4.0]], dtype="float32")
    >>> np.round(keras.ops.convert_to_numpy(layer(x)), 4).tolist()
    [[12.0, 16.0]]
    >>> images = np.ones((2, 4, 4, 8), dtype="float32")
    >>> tuple(L2Normalization()(images).shape)
    (2, 4, 4, 8)

    Args:
        gamma_init: Initial value of every entry of `gamma`. Defaults to
            `20.0`, the value SSD uses for `conv4_3`.
        axis: The channel axis: the axis normalised over and the axis
            `gamma` runs along. Must not be the batch axis. Defaults to `-1`
            (channels last).
        epsilon: Lower bound applied to the squared norm, so that an all-zero
            vector gives zeros instead of NaN. Defaults to `1e-12`, the value
            Keras 2's `K.l2_normalize` (used by the Keras SSD port) applied in
            the same way, so converted Keras 2 models give the same outputs.
        gamma_regularizer: Optional regularizer for `gamma`.
        gamma_constraint: Optional constraint for `gamma`.
        **kwargs: Base layer keyword arguments, such as `name` and `dtype`.

    Call arguments:
        inputs: A tensor of rank >= 2 whose size along `axis` is known.

    Returns:
        A tensor of the same shape as `inputs`.

    Reference:
        - [Liu et al., 2015, ParseNet: Looking Wider to See Better](
          https://arxiv.org/abs/1506.04579)
        - [Liu et al., 2016, SSD: Single Shot MultiBox Detector](
          https://arxiv.org/abs/1512.02325)
    """

    def __init__(
        self,
        gamma_init: float = 20.0,
        axis: int = -1,
        epsilon: float = 1e-12,
        gamma_regularizer: Any = None,
        gamma_constraint: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not _is_real(gamma_init) or not math.isfinite(gamma_init):
            raise ValueError(
                f"`gamma_init` must be a finite number. Received: gamma_init={gamma_init!r}"
            )
        # NumPy integers count, as they do for Keras' own layers.
        if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
            raise ValueError(f"`axis` must be an integer. Received: axis={axis!r}")
        if not _is_real(epsilon) or not epsilon > 0 or not math.isfinite(epsilon):
            raise ValueError(f"`epsilon` must be a positive number. Received: epsilon={epsilon!r}")
        self.gamma_init = float(gamma_init)
        self.axis = int(axis)
        self.epsilon = float(epsilon)
        self.gamma_regularizer = keras.regularizers.get(gamma_regularizer)
        self.gamma_constraint = keras.constraints.get(gamma_constraint)
        self.input_spec = keras.layers.InputSpec(min_ndim=2)
        # A Keras mask covers every axis but the last; see build().
        self.supports_masking = self.axis == -1

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        rank = len(input_shape)
        if not -rank <= self.axis < rank:
            raise ValueError(
                f"`axis` is out of range for inputs of rank {rank}. Received: axis={self.axis}"
            )
        axis = self.axis % rank
        # Normalising over the last axis maps each position on its own, so the mask stays
        # valid; over any other axis the norm mixes masked positions into unmasked ones.
        self.supports_masking = axis == rank - 1
        if axis == 0:
            raise ValueError(
                "`axis` must not be the batch axis: the layer normalises each sample "
                f"separately. Received: axis={self.axis}"
            )
        channels = input_shape[axis]
        if channels is None:
            raise ValueError(
                "The size of the channel axis must be known to create `gamma`. "
                f"Received: input_shape={tuple(input_shape)}"
            )
        self.input_spec = keras.layers.InputSpec(ndim=rank, axes={axis: channels})
        # Keeping gamma out of autocasting lets the float32 path below use its
        # full-precision value instead of a float16 copy.
        self.gamma = self.add_weight(
            name="gamma",
            shape=(channels,),
            initializer=keras.initializers.Constant(self.gamma_init),
            regularizer=self.gamma_regularizer,
            constraint=self.gamma_constraint,
            autocast=False,
        )
        # Trailing ones let gamma broadcast against the channel axis wherever it is.
        self._gamma_broadcast_shape = (channels,) + (1,) * (rank - 1 - axis)

    def call(self, inputs: Any) -> Any:
        dtype = "float32" if self.compute_dtype in _HALF_DTYPES else self.compute_dtype
        x = ops.cast(inputs, dtype)
        squared_norm = ops.sum(ops.square(x), axis=self.axis, keepdims=True)
        x = x * ops.rsqrt(ops.maximum(squared_norm, self.epsilon))
        gamma = ops.reshape(ops.cast(self.gamma, dtype), self._gamma_broadcast_shape)
        return ops.cast(x * gamma, self.compute_dtype)

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return tuple(input_shape)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "gamma_init": self.gamma_init,
                "axis": self.axis,
                "epsilon": self.epsilon,
                "gamma_regularizer": keras.regularizers.serialize(self.gamma_regularizer),
                "gamma_constraint": keras.constraints.serialize(self.gamma_constraint),
            }
        )
        return config


def _is_real(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)
