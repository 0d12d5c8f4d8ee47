"""The Scale layer: a learnable per-channel affine transform."""

from __future__ import annotations

import numbers
from typing import Any

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="layerhub_scale")
class Scale(keras.layers.Layer):
    """Multiplies by a learnable ``gamma`` and adds a learnable ``beta``, per channel.

    ``output = inputs * gamma + beta``, where ``gamma`` and ``beta`` have one entry per position
    of the chosen axis (or axes) and broadcast over every other axis. It is the affine half of
    batch normalisation without the statistics, as used after normalisation in ResNet and
    DenseNet ports from Caffe.

    The layer is element-wise, so a Keras mask (from
    ``Embedding(mask_zero=True)`` or ``Masking``) passes through unchanged.

    Example:

    >>> import numpy as np
    >>> layer = Scale(axis=-1)
    >>> y = layer(np.ones((2, 3), dtype="float32"))
    >>> tuple(y.shape)
    (2, 3)

    Args:
        axis: the axis, or list of axes, that gets its own ``gamma`` and ``beta``. Defaults to
            the last axis (channels last).
        momentum: unused; accepted so that configs written by the Keras 2 version of this layer,
            which took the argument without using it, still load.
        gamma_initializer: initializer of ``gamma``. Defaults to ``"ones"``.
        beta_initializer: initializer of ``beta``. Defaults to ``"zeros"``.
        gamma_regularizer: optional regularizer of ``gamma``.
        beta_regularizer: optional regularizer of ``beta``.
        gamma_constraint: optional constraint of ``gamma``.
        beta_constraint: optional constraint of ``beta``.
        **kwargs: base layer arguments such as ``name`` and ``dtype``. The Keras 2 (DenseNet)
            spellings are accepted too, so that ported code runs unchanged: ``gamma_init`` and
            ``beta_init`` for the initializers (``"one"`` and ``"zero"`` meaning ``"ones"`` and
            ``"zeros"``), and ``weights``, a ``[gamma, beta]`` list set when the layer is built.
            They are never saved: the config holds the Keras 3 names only.

    Call arguments:
        inputs: a tensor of any rank that has every axis in ``axis``.

    Returns:
        A tensor of the same shape as ``inputs``.
    """

    def __init__(
        self,
        axis: int | list[int] | tuple[int, ...] = -1,
        momentum: float = 0.9,
        gamma_initializer: Any = "ones",
        beta_initializer: Any = "zeros",
        gamma_regularizer: Any = None,
        beta_regularizer: Any = None,
        gamma_constraint: Any = None,
        beta_constraint: Any = None,
        **kwargs: Any,
    ) -> None:
        gamma_initializer = _keras2_alias(
            kwargs, "gamma_init", "gamma_initializer", gamma_initializer, "ones"
        )
        beta_initializer = _keras2_alias(
            kwargs, "beta_init", "beta_initializer", beta_initializer, "zeros"
        )
        self._initial_weights = kwargs.pop("weights", None)
        super().__init__(**kwargs)
        axes = _axis_list(axis)
        if not axes:
            raise ValueError(
                f"`axis` must be an int or a non-empty list of ints. Received: axis={axis}"
            )
        # Stored as Python ints: NumPy integers are accepted but are not JSON serialisable.
        self.axis = axes[0] if _is_int(axis) else axes
        self._axes = axes
        self.momentum = momentum
        self.gamma_initializer = keras.initializers.get(gamma_initializer)
        self.beta_initializer = keras.initializers.get(beta_initializer)
        self.gamma_regularizer = keras.regularizers.get(gamma_regularizer)
        self.beta_regularizer = keras.regularizers.get(beta_regularizer)
        self.gamma_constraint = keras.constraints.get(gamma_constraint)
        self.beta_constraint = keras.constraints.get(beta_constraint)
        self.supports_masking = True

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        rank = len(input_shape)
        axes = sorted({a % rank if -rank <= a < rank else a for a in self._axes})
        if any(not 0 <= a < rank for a in axes):
            raise ValueError(
                f"`axis` is out of range for inputs of rank {rank}. Received: axis={self.axis}"
            )
        if any(input_shape[a] is None for a in axes):
            raise ValueError(
                f"The axes in `axis` must have a known size. Received: input_shape={input_shape}"
            )
        param_shape = tuple(int(input_shape[a]) for a in axes)  # type: ignore[arg-type]
        self._broadcast_shape = [
            int(input_shape[d]) if d in axes else 1
            for d in range(rank)  # type: ignore[arg-type]
        ]
        # Weight order matters: Keras 2 files store gamma first, then beta.
        self.gamma = self.add_weight(
            name="gamma",
            shape=param_shape,
            initializer=self.gamma_initializer,
            regularizer=self.gamma_regularizer,
            constraint=self.gamma_constraint,
        )
        self.beta = self.add_weight(
            name="beta",
            shape=param_shape,
            initializer=self.beta_initializer,
            regularizer=self.beta_regularizer,
            constraint=self.beta_constraint,
        )
        self.input_spec = keras.layers.InputSpec(ndim=rank, axes={a: input_shape[a] for a in axes})
        if self._initial_weights is not None:
            self.set_weights(self._initial_weights)
            self._initial_weights = None

    def call(self, inputs: Any) -> Any:
        gamma = ops.reshape(ops.cast(self.gamma, self.compute_dtype), self._broadcast_shape)
        beta = ops.reshape(ops.cast(self.beta, self.compute_dtype), self._broadcast_shape)
        return inputs * gamma + beta

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return tuple(input_shape)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "axis": self.axis,
                "momentum": self.momentum,
                "gamma_initializer": keras.initializers.serialize(self.gamma_initializer),
                "beta_initializer": keras.initializers.serialize(self.beta_initializer),
                "gamma_regularizer": keras.regularizers.serialize(self.gamma_regularizer),
                "beta_regularizer": keras.regularizers.serialize(self.beta_regularizer),
                "gamma_constraint": keras.constraints.serialize(self.gamma_constraint),
                "beta_constraint": keras.constraints.serialize(self.beta_constraint),
            }
        )
        return config


def _is_int(value: object) -> bool:
    # NumPy integers count, as they do for Keras' own layers; bool is an int subclass but a bug.
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _axis_list(axis: object) -> list[int] | None:
    """``axis`` (an int or a sequence of ints) as a list of Python ints, or None if invalid."""
    if _is_int(axis):
        return [int(axis)]  # type: ignore[call-overload]
    try:
        items = list(axis)  # type: ignore[call-overload]
    except TypeError:
        return None
    if not all(_is_int(a) for a in items):
        return None
    return [int(a) for a in items]


# Keras 1 and 2 initializer names that Keras 3 spells differently.
_KERAS2_INITIALIZERS = {"one": "ones", "zero": "zeros"}


def _keras2_alias(kwargs: dict[str, Any], old: str, new: str, value: Any, default: Any) -> Any:
    """The value of argument ``new``, taking its Keras 2 spelling ``old`` from ``kwargs``."""
    if old not in kwargs:
        return value
    given = kwargs.pop(old)
    if value != default:
        raise ValueError(
            f"`{old}` is the Keras 2 name of `{new}`; pass one of them. "
            f"Received: {old}={given!r}, {new}={value!r}"
        )
    return _KERAS2_INITIALIZERS.get(given, given) if isinstance(given, str) else given
