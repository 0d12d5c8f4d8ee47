"""DANet channel attention module (CAM) for Keras 3."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="layerhub_pam")
class CAM(keras.layers.Layer):
    """Channel attention module from DANet (Fu et al., 2019).

    Every channel attends to every other channel of the same feature map, with
    affinities computed directly from the features (no projections). For
    channels-last input of shape `(batch, H, W, C)`, let `A` be the input
    reshaped to `(batch, C, N)` with `N = H * W` positions:

    ```
    energy = A @ A^T                                   # (batch, C, C)
    energy_new = max(energy, axis=-1, keepdims=True) - energy
    attention = softmax(energy_new, axis=-1)
    out = gamma * (attention @ A) + A                  # reshaped back to (batch, H, W, C)
    ```

    The max-subtracted energy is DANet's own formulation (as in the authors'
    code), kept for fidelity: it gives the largest weight to the channels
    that are *least* similar in raw dot product.

    `gamma` is a learnable scalar that starts at zero, so the layer begins as
    the identity and learns how much attention to mix in.

    The channel affinities sum over all positions, masked or not, so the
    layer does not take or propagate a Keras mask.

    Reference: Fu et al., "Dual Attention Network for Scene Segmentation",
    CVPR 2019, https://arxiv.org/abs/1809.02983.

    Example:

    >>> import numpy as np
    >>> import keras
    >>> from layerhub_pam import CAM
    >>> x = np.random.rand(2, 8, 8, 16).astype("float32")
    >>> y = CAM()(x)
    >>> tuple(y.shape)
    (2, 8, 8, 16)
    >>> bool(np.allclose(keras.ops.convert_to_numpy(y), x))  # gamma starts at 0
    True

    Args:
        gamma_initializer: Initializer for the scalar `gamma`. Defaults to
            `"zeros"`.
        gamma_regularizer: Optional regularizer for `gamma`.
        gamma_constraint: Optional constraint for `gamma`.
        **kwargs: Base layer keyword arguments, such as `name` and `dtype`.

    Call arguments:
        inputs: A 4D channels-last tensor `(batch, height, width, channels)`.
            Any dimension other than `channels` may be unknown.

    Returns:
        A tensor with the same shape as `inputs`.
    """

    def __init__(
        self,
        gamma_initializer: Any = "zeros",
        gamma_regularizer: Any = None,
        gamma_constraint: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.gamma_initializer = keras.initializers.get(gamma_initializer)
        self.gamma_regularizer = keras.regularizers.get(gamma_regularizer)
        self.gamma_constraint = keras.constraints.get(gamma_constraint)
        self.input_spec = keras.layers.InputSpec(ndim=4)

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        if len(input_shape) != 4:
            raise ValueError(
                "CAM expects a 4D channels-last input (batch, height, width, channels). "
                f"Received: input_shape={tuple(input_shape)}"
            )
        if input_shape[-1] is None:
            raise ValueError(
                "CAM needs the channel dimension (last axis) to be known. "
                f"Received: input_shape={tuple(input_shape)}"
            )
        self._channels = input_shape[-1]
        self.gamma = self.add_weight(
            name="gamma",
            shape=(1,),
            initializer=self.gamma_initializer,
            regularizer=self.gamma_regularizer,
            constraint=self.gamma_constraint,
        )
        self.input_spec = keras.layers.InputSpec(ndim=4, axes={-1: self._channels})

    def call(self, inputs: Any) -> Any:
        shape = ops.shape(inputs)
        # (batch, N, C): channels stay last, so A = flat^T and A @ A^T = flat^T @ flat.
        flat = ops.reshape(inputs, (shape[0], -1, self._channels))

        # The energy sums N squared activations and easily overflows float16,
        # so the energy and the softmax are computed in float32.
        flat32 = ops.cast(flat, "float32")
        energy = ops.matmul(ops.transpose(flat32, (0, 2, 1)), flat32)
        energy_new = ops.max(energy, axis=-1, keepdims=True) - energy
        attention = ops.cast(ops.softmax(energy_new, axis=-1), self.compute_dtype)

        # out[n, c] = sum_d attention[c, d] * A[d, n], i.e. flat @ attention^T.
        out = ops.matmul(flat, ops.transpose(attention, (0, 2, 1)))
        out = ops.reshape(out, shape)
        gamma = ops.cast(self.gamma, self.compute_dtype)
        return gamma * out + inputs

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return tuple(input_shape)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "gamma_initializer": keras.initializers.serialize(self.gamma_initializer),
                "gamma_regularizer": keras.regularizers.serialize(self.gamma_regularizer),
                "gamma_constraint": keras.constraints.serialize(self.gamma_constraint),
            }
        )
        return config
