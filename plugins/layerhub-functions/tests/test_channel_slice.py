"""Tests for layerhub_functions.channel_slice."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from keras import ops
from layerhub_functions import channel_slice

from layerhub.testing import input_gradients

RNG = np.random.default_rng(3)


def reference(x: np.ndarray, index: int, axis: int = -1) -> np.ndarray:
    return np.take(x, [index], axis=axis)


@pytest.mark.parametrize(
    ("shape", "index", "axis"),
    [
        ((2, 4, 2), 0, -1),
        ((2, 4, 2), 1, -1),
        ((2, 4, 2), -1, -1),
        ((3, 5), 4, -1),
        ((2, 3, 4, 5), 2, 1),
        ((2, 3, 4, 5), -3, 2),
    ],
)
def test_matches_numpy(shape: tuple[int, ...], index: int, axis: int) -> None:
    x = RNG.normal(size=shape).astype("float32")
    got = ops.convert_to_numpy(channel_slice(x, index, axis=axis))
    expected = reference(x, index, axis)
    assert got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)


def test_is_the_tutorial_slice_with_the_axis_kept() -> None:
    x = np.array([[[1, 2], [2, 3], [3, 4], [4, 5]]], dtype="float32")
    got = ops.convert_to_numpy(channel_slice(x, 1))
    np.testing.assert_array_equal(got, x[:, :, 1:2])


def test_in_a_lambda_layer_with_arguments_and_unknown_batch() -> None:
    inputs = keras.Input((4, 3))
    layer = keras.layers.Lambda(channel_slice, arguments={"index": 2})
    outputs = layer(inputs)
    assert tuple(outputs.shape) == (None, 4, 1)
    assert layer.compute_output_shape((None, 4, 3)) == (None, 4, 1)
    model = keras.Model(inputs, outputs)
    for batch in (1, 5):
        x = RNG.normal(size=(batch, 4, 3)).astype("float32")
        np.testing.assert_array_equal(ops.convert_to_numpy(model(x)), reference(x, 2))


def test_under_jit_compile() -> None:
    inputs = keras.Input((6,))
    outputs = keras.layers.Lambda(channel_slice, arguments={"index": -2})(inputs)
    model = keras.Model(inputs, outputs)
    model.compile(jit_compile=True)
    x = RNG.normal(size=(4, 6)).astype("float32")
    np.testing.assert_array_equal(model.predict(x, verbose=0), reference(x, -2))


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_under_mixed_precision(policy: str) -> None:
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        layer = keras.layers.Lambda(channel_slice, arguments={"index": 1})
        x = RNG.normal(size=(2, 3, 4)).astype("float32")
        y = layer(x)
    finally:
        keras.config.set_dtype_policy(previous)
    assert keras.backend.standardize_dtype(y.dtype) == layer.compute_dtype
    np.testing.assert_array_equal(
        ops.convert_to_numpy(ops.cast(y, "float32")),
        reference(ops.convert_to_numpy(ops.cast(ops.cast(x, layer.compute_dtype), "float32")), 1),
    )


def test_gradient_flows_to_the_selected_channel_only() -> None:
    layer = keras.layers.Lambda(channel_slice, arguments={"index": 1})
    x = RNG.normal(size=(2, 3)).astype("float32")
    (grad,) = input_gradients(layer, x, lambda y: keras.ops.sum(y))
    np.testing.assert_array_equal(grad, np.tile([0.0, 1.0, 0.0], (2, 1)))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"index": 3}, r"`index` is out of range for an axis of size 3\. Received: index=3"),
        ({"index": -4}, r"Received: index=-4"),
        ({"index": True}, r"`index` must be an integer\. Received: index=True"),
        ({"index": 1.0}, r"Received: index=1\.0"),
        ({"index": 0, "axis": 0}, r"non-batch axis .* Received: axis=0"),
        ({"index": 0, "axis": 2}, r"Received: axis=2"),
    ],
)
def test_rejects_bad_arguments(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        channel_slice(np.zeros((2, 3), "float32"), **kwargs)  # type: ignore[arg-type]
