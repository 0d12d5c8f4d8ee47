"""ComplexScale: two outputs from two constants and a trainable pair of weights."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from layerhub_mylayer._checks import is_finite_real


@keras.saving.register_keras_serializable(package="layerhub_mylayer")
class ComplexScale(keras.layers.Layer):
    """Scales the input into a "real" and an "imaginary" part.

    `output = [alpha_real * kernel[0] * x, alpha_imag * kernel[1] * x]`

    `alpha_real` and `alpha_imag` are fixed constants given to the
    constructor; `kernel` is a trainable vector of two numbers. It is the
    smallest example of a layer that combines constant arguments with
    trainable weights and returns a list of tensors, something a `Lambda`
    layer cannot do because it has no trainable weights.

    The layer does not propagate a Keras mask to its two outputs.

    Example:

    >>> import numpy as np
    >>> layer = ComplexScale(alpha_real=2.0, alpha_imag=-1.0, kernel_initializer="ones")
    >>> real, imag = layer(np.array([[1.0, 2.0]], dtype="float32"))
    >>> keras.ops.convert_to_numpy(real).tolist(), keras.ops.convert_to_numpy(imag).tolist()
    ([[2.0, 4.0]], [[-1.0, -2.0]])

    Args:
        alpha_real: Constant factor of the first output.
        alpha_imag: Constant factor of the second output.
        kernel_initializer: Initializer for the trainable `kernel` of shape
            `(2,)`. Defaults to `"uniform"` (`RandomUniform(-0.05, 0.05)`), as
            in the original example.
        **kwargs: Base layer keyword arguments, such as `name` and `dtype`.

    Call arguments:
        inputs: A tensor of any shape.

    Returns:
        A list of two tensors, each of the shape of `inputs`.
    """

    def __init__(
        self,
        alpha_real: float,
        alpha_imag: float,
        kernel_initializer: Any = "uniform",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not is_finite_real(alpha_real):
            raise ValueError(
                f"`alpha_real` must be a finite number. Received: alpha_real={alpha_real!r}"
            )
        if not is_finite_real(alpha_imag):
            raise ValueError(
                f"`alpha_imag` must be a finite number. Received: alpha_imag={alpha_imag!r}"
            )
        self.alpha_real = float(alpha_real)
        self.alpha_imag = float(alpha_imag)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        # Not autocast: alpha * kernel is formed at full precision, then cast
        # once, so a large alpha cannot overflow float16 on its own.
        self.kernel = self.add_weight(
            name="kernel",
            shape=(2,),
            initializer=self.kernel_initializer,
            autocast=False,
        )

    def call(self, inputs: Any) -> list[Any]:
        scale_real = ops.cast(self.alpha_real * self.kernel[0], self.compute_dtype)
        scale_imag = ops.cast(self.alpha_imag * self.kernel[1], self.compute_dtype)
        return [inputs * scale_real, inputs * scale_imag]

    def compute_output_shape(
        self, input_shape: tuple[int | None, ...]
    ) -> list[tuple[int | None, ...]]:
        return [tuple(input_shape), tuple(input_shape)]

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "alpha_real": self.alpha_real,
                "alpha_imag": self.alpha_imag,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            }
        )
        return config
