"""Gradients and short training runs: the numeric checks plugin tests share."""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from typing import Any

import keras
import numpy as np
from keras import ops

Loss = Callable[[Any], Any]


def _tensorflow() -> bool:
    """Whether TensorFlow's exact tools (tape, variable creator, tf.function) are available."""
    return bool(keras.backend.backend() == "tensorflow")


def weight_gradients(
    layer: Any, inputs: Any, loss: Loss | None = None, *, training: bool | None = None
) -> list[np.ndarray[Any, Any] | None]:
    """Gradients of a loss on ``layer(inputs)`` with respect to ``layer.trainable_weights``.

    Uses ``tf.GradientTape`` on the TensorFlow backend, ``jax.grad`` of the layer's
    ``stateless_call`` on JAX (where a weight the loss does not depend on gets zeros, not
    ``None``) and ``torch.autograd.grad`` on PyTorch (with respect to each Keras variable's
    ``.value``, the ``torch.nn.Parameter`` Keras' own torch trainer differentiates); on any
    other backend it calls ``pytest.skip``. An unbuilt layer is built by the
    call, so its weights are the ones the call creates.

    Example:

    >>> import numpy as np
    >>> from keras import layers, ops
    >>> from layerhub.testing import weight_gradients
    >>> layer = layers.Dense(1, kernel_initializer="ones")
    >>> x = np.array([[1.0, 2.0]], "float32")
    >>> kernel, bias = weight_gradients(layer, x, loss=lambda y: ops.sum(y))
    >>> kernel.ravel().tolist(), bias.tolist()
    ([1.0, 2.0], [1.0])

    Args:
        layer: the layer or model; any callable with ``trainable_weights``, a tf-keras layer
            included.
        inputs: what the layer is called on: an array, or a list of arrays for a layer with
            several inputs.
        loss: maps what the layer returns (a tensor, or a list of tensors) to a scalar, such as
            ``lambda y: ops.sum(y * upstream)`` (with a NumPy ``upstream``, on every backend).
            By default the sum of the squares of every floating-point output, computed in
            float32.
        training: the ``training`` argument of the call.

    Returns:
        One gradient per trainable weight, in the order of ``layer.trainable_weights``, as a
        NumPy array in the weight's dtype; ``None`` for a weight the loss does not depend on.

    Raises:
        ValueError: the layer has no floating-point output and no ``loss`` was given.
    """
    return _gradients(layer, inputs, loss, training)[0]


def input_gradients(
    layer: Any, inputs: Any, loss: Loss | None = None, *, training: bool | None = None
) -> list[np.ndarray[Any, Any] | None]:
    """Gradients of a loss on ``layer(inputs)`` with respect to the inputs.

    The same computation as ``weight_gradients``, with the same arguments, needs and defaults.

    Example:

    >>> import numpy as np
    >>> from keras import layers, ops
    >>> from layerhub.testing import input_gradients
    >>> layer = layers.Dense(1, kernel_initializer="ones")
    >>> (grad,) = input_gradients(layer, np.ones((1, 2), "float32"), lambda y: ops.sum(y))
    >>> grad.tolist()
    [[1.0, 1.0]]

    Args:
        layer: the layer or model.
        inputs: an array, or a (nested) list of arrays.
        loss: maps what the layer returns to a scalar; by default the sum of the squares of
            every floating-point output, in float32.
        training: the ``training`` argument of the call.

    Returns:
        One gradient per input array, in the order of ``keras.tree.flatten(inputs)``, as a
        NumPy array; ``None`` for an input that is not floating-point or that the loss does not
        depend on.

    Raises:
        ValueError: the layer has no floating-point output and no ``loss`` was given.
    """
    return _gradients(layer, inputs, loss, training)[1]


def _gradients(
    layer: Any, inputs: Any, loss: Loss | None, training: bool | None
) -> tuple[list[np.ndarray[Any, Any] | None], list[np.ndarray[Any, Any] | None]]:
    """Weight and input gradients, from one tape."""
    keras3_layer = isinstance(layer, keras.layers.Layer)
    if keras3_layer and keras.backend.backend() == "jax":
        return _jax_gradients(layer, inputs, loss, training)
    if keras3_layer and keras.backend.backend() == "torch":
        return _torch_gradients(layer, inputs, loss, training)
    # A tf-keras layer (a reference in parity tests) always runs on TensorFlow.
    if keras3_layer and not _tensorflow():
        import pytest

        pytest.skip(
            "layerhub.testing gradients need the TensorFlow, JAX or PyTorch backend; "
            f"the Keras backend is {keras.backend.backend()!r}"
        )
    import tensorflow as tf

    tensors = keras.tree.map_structure(tf.convert_to_tensor, inputs)
    flat = keras.tree.flatten(tensors)
    with tf.GradientTape() as tape:
        for tensor in flat:
            if tensor.dtype.is_floating:
                tape.watch(tensor)
        outputs = layer(tensors, training=training)
        value = _sum_of_squares(outputs) if loss is None else loss(outputs)
    # Read after the call, which builds an unbuilt layer; the tape saw every variable it read.
    weights = list(layer.trainable_weights)
    sources = [w.value if isinstance(w, keras.Variable) else w for w in weights]
    grads = tape.gradient(value, [*sources, *flat])
    arrays = [None if g is None else np.asarray(tf.convert_to_tensor(g)) for g in grads]
    return arrays[: len(weights)], arrays[len(weights) :]


def _jax_gradients(
    layer: Any, inputs: Any, loss: Loss | None, training: bool | None
) -> tuple[list[np.ndarray[Any, Any] | None], list[np.ndarray[Any, Any] | None]]:
    """The same gradients through ``jax.grad`` of the layer's pure ``stateless_call``."""
    import jax
    import jax.numpy as jnp

    kwargs = {} if training is None else {"training": training}
    if not layer.built:
        layer(inputs, **kwargs)
    flat = [jnp.asarray(x) for x in keras.tree.flatten(inputs)]
    floating = [bool(jnp.issubdtype(x.dtype, jnp.floating)) for x in flat]
    weights = list(layer.trainable_variables)
    frozen = [v.value for v in layer.non_trainable_variables]

    def objective(weight_values: list[Any], float_inputs: list[Any]) -> Any:
        given = iter(float_inputs)
        leaves = [next(given) if f else x for x, f in zip(flat, floating, strict=True)]
        args = keras.tree.pack_sequence_as(inputs, leaves)
        outputs, _ = layer.stateless_call(weight_values, frozen, args, **kwargs)
        return _sum_of_squares(outputs) if loss is None else loss(outputs)

    floats = [x for x, f in zip(flat, floating, strict=True) if f]
    by_weight, by_input = jax.grad(objective, argnums=(0, 1))([w.value for w in weights], floats)
    computed = iter(by_input)
    input_grads = [np.asarray(next(computed)) if f else None for f in floating]
    return [np.asarray(g) for g in by_weight], input_grads


def _torch_gradients(
    layer: Any, inputs: Any, loss: Loss | None, training: bool | None
) -> tuple[list[np.ndarray[Any, Any] | None], list[np.ndarray[Any, Any] | None]]:
    """The same gradients through ``torch.autograd.grad``, as Keras' torch trainer takes them.

    The sources are the inputs (as leaf tensors that require a gradient) and each trainable
    variable's ``.value``, the ``torch.nn.Parameter`` the layer reads; ``allow_unused`` gives
    ``None`` for a source the loss does not depend on, as the tape does.
    """
    torch = importlib.import_module("torch")  # typed Any: lint needs no torch

    kwargs = {} if training is None else {"training": training}
    # Through NumPy: an input may be a tf.Tensor (the data also given to a tf-keras reference).
    tensors = keras.tree.map_structure(
        lambda x: (
            ops.convert_to_tensor(x if isinstance(x, torch.Tensor) else np.asarray(x))
            .detach()
            .clone()
        ),
        inputs,
    )
    flat = keras.tree.flatten(tensors)
    for tensor in flat:
        if tensor.is_floating_point():
            tensor.requires_grad_(True)
    with torch.enable_grad():
        outputs = layer(tensors, **kwargs)
        if loss is None:
            value = _sum_of_squares(outputs)
        else:
            value = loss(keras.tree.map_structure(_numpy_operands, outputs))
        # Read after the call, which builds an unbuilt layer.
        weights = list(layer.trainable_weights)
        sources = [w.value if isinstance(w, keras.Variable) else w for w in weights]
        wanted = [*sources, *flat]
        differentiable = [i for i, t in enumerate(wanted) if t.requires_grad]
        found = torch.autograd.grad(
            ops.convert_to_tensor(value),
            [wanted[i] for i in differentiable],
            allow_unused=True,
        )
    grads: list[Any] = [None] * len(wanted)
    for index, grad in zip(differentiable, found, strict=True):
        grads[index] = grad
    arrays = [None if g is None else ops.convert_to_numpy(g.detach()) for g in grads]
    return arrays[: len(weights)], arrays[len(weights) :]


_NUMPY_FRIENDLY: list[Any] = []


def _numpy_operands(tensor: Any) -> Any:
    """``tensor`` (still on the autograd graph) with operators that take NumPy operands.

    A loss such as ``lambda y: ops.sum(y * upstream)`` with a NumPy ``upstream`` works on
    TensorFlow and JAX; on PyTorch, ``*`` between a tensor that requires a gradient and a NumPy
    array raises (``Can't call numpy() on Tensor that requires grad``). This subclass converts a
    NumPy operand of an arithmetic operator to a tensor on the same device, on either side
    (``__array_ufunc__ = None`` makes NumPy hand ``upstream * y`` over to ``y.__rmul__``).
    """
    torch = importlib.import_module("torch")  # typed Any: lint needs no torch

    if not isinstance(tensor, torch.Tensor):
        return tensor
    if not _NUMPY_FRIENDLY:
        tensor_class: Any = torch.Tensor

        class NumpyFriendlyTensor(tensor_class):  # type: ignore[misc]
            __array_ufunc__ = None

        def operator(name: str) -> Any:
            base = getattr(torch.Tensor, name)

            def apply(self: Any, other: Any) -> Any:
                if isinstance(other, (np.ndarray, np.generic)):
                    other = torch.as_tensor(other, device=self.device)
                return base(self, other)

            apply.__name__ = name
            return apply

        for name in (
            "__add__", "__radd__", "__sub__", "__rsub__", "__mul__", "__rmul__",
            "__truediv__", "__rtruediv__", "__pow__", "__rpow__", "__matmul__", "__rmatmul__",
        ):  # fmt: skip
            setattr(NumpyFriendlyTensor, name, operator(name))
        _NUMPY_FRIENDLY.append(NumpyFriendlyTensor)
    return tensor.as_subclass(_NUMPY_FRIENDLY[0])


def _sum_of_squares(outputs: Any) -> Any:
    floats = [
        o
        for o in keras.tree.flatten(outputs)
        if "float" in keras.backend.standardize_dtype(o.dtype)
    ]
    if not floats:
        raise ValueError("the layer has no floating-point output to differentiate: pass loss=")
    terms = [ops.sum(ops.square(ops.cast(o, "float32"))) for o in floats]
    return sum(terms[1:], terms[0])


def assert_training_reduces_loss(
    model: Any,
    x: Any,
    y: Any,
    *,
    optimizer: Any = "adam",
    loss: Any = "mse",
    epochs: int = 5,
    batch_size: int | None = None,
    factor: float = 1.0,
    jit_compile: bool | str = "auto",
) -> tuple[float, float]:
    """Compile ``model``, train it for a few epochs, and assert that its loss went down.

    The loss is measured with ``model.evaluate`` on ``(x, y)`` before and after
    ``model.fit(x, y, epochs=epochs, batch_size=batch_size)``; with several outputs it is the
    total loss. Seed the model's initial weights (``keras.utils.set_random_seed``) before
    building it to make the run repeatable.

    Example:

    >>> import keras
    >>> import numpy as np
    >>> from layerhub.testing import assert_training_reduces_loss
    >>> x = np.random.default_rng(0).normal(size=(32, 3)).astype("float32")
    >>> keras.utils.set_random_seed(0)
    >>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    >>> before, after = assert_training_reduces_loss(
    ...     model, x, x.sum(axis=1, keepdims=True), optimizer=keras.optimizers.SGD(0.1),
    ...     factor=0.5,
    ... )

    Args:
        model: an uncompiled or compiled Keras model; it is compiled again.
        x: the training inputs (an array, or a list of arrays).
        y: the targets (an array, or a list of arrays for several outputs).
        optimizer: the optimizer to compile with (a name or an instance).
        loss: the loss to compile with (one, or a list with one per output).
        epochs: training epochs.
        batch_size: the batch size of ``fit`` (Keras' default of 32 when ``None``).
        factor: the loss after training must be below ``factor`` times the loss before;
            ``0.5`` asks that training at least halves it.
        jit_compile: passed to ``model.compile``.

    Returns:
        The loss before and after training.

    Raises:
        AssertionError: the loss after training is not below ``factor`` times the loss before
            (or is not finite).
        ValueError: ``epochs`` is below 1 or ``factor`` is not positive.
    """
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive integer. Received: epochs={epochs!r}")
    if not factor > 0:
        raise ValueError(f"factor must be positive. Received: factor={factor!r}")
    model.compile(optimizer=optimizer, loss=loss, jit_compile=jit_compile)
    before = _total(model.evaluate(x, y, verbose=0))
    model.fit(x, y, epochs=epochs, batch_size=batch_size, verbose=0)
    after = _total(model.evaluate(x, y, verbose=0))
    if not (math.isfinite(after) and after < factor * before):
        wanted = "below the loss before" if factor == 1 else f"below {factor:g} x the loss before"
        raise AssertionError(
            f"{epochs} epoch(s) of training took the loss from {before:.6g} to {after:.6g}; "
            f"expected {wanted} ({factor * before:.6g})"
        )
    return before, after


def _total(result: Any) -> float:
    """The total loss from ``model.evaluate``: a scalar, or the first of several values."""
    return float(result[0] if isinstance(result, (list, tuple)) else result)
