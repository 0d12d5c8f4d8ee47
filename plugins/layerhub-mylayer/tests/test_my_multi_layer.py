"""Tests for layerhub_mylayer.MyMultiLayer."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest
from keras import ops
from layerhub_mylayer import MyMultiLayer

from layerhub.testing import assert_training_reduces_loss, input_gradients, weight_gradients


def reference(a: np.ndarray, b: np.ndarray, kernel: np.ndarray) -> list[np.ndarray]:
    a = a.astype("float64")
    b = b.astype("float64")
    return [np.einsum("...i,io->...o", a, kernel.astype("float64")) + b, b.mean(axis=-1)]


def random_kernel(layer: MyMultiLayer, rng: np.random.Generator) -> np.ndarray:
    kernel = rng.normal(size=layer.kernel.shape).astype("float32")
    layer.set_weights([kernel])
    return kernel


def random_inputs(
    rng: np.random.Generator, leading: tuple[int, ...], a_dim: int, output_dim: int
) -> tuple[np.ndarray, np.ndarray]:
    a = rng.normal(size=(*leading, a_dim)).astype("float32")
    b = rng.normal(size=(*leading, output_dim)).astype("float32")
    return a, b


@pytest.mark.parametrize("leading", [(4,), (2, 5), (2, 3, 2)])
def test_matches_numpy_reference(leading: tuple[int, ...]) -> None:
    rng = np.random.default_rng(0)
    a, b = random_inputs(rng, leading, 6, 3)
    layer = MyMultiLayer(output_dim=3)
    layer.build([a.shape, b.shape])
    kernel = random_kernel(layer, rng)
    outputs = [ops.convert_to_numpy(o) for o in layer([a, b])]
    for out, expected in zip(outputs, reference(a, b, kernel), strict=True):
        np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


def test_kernel_layout_and_default_uniform_initializer() -> None:
    layer = MyMultiLayer(output_dim=3)
    layer.build([(None, 10), (None, 3)])
    assert [w.name for w in layer.weights] == ["kernel"]
    kernel = ops.convert_to_numpy(layer.kernel)
    assert kernel.shape == (10, 3)
    assert np.all(np.abs(kernel) <= 0.05)


def test_gradients_match_analytic_and_are_nonzero() -> None:
    rng = np.random.default_rng(1)
    a, b = random_inputs(rng, (4,), 5, 3)
    up_sum = rng.normal(size=(4, 3)).astype("float32")
    up_mean = rng.normal(size=(4,)).astype("float32")
    layer = MyMultiLayer(output_dim=3)
    layer.build([a.shape, b.shape])
    random_kernel(layer, rng)

    def loss(outputs: list[object]) -> object:
        summed, mean = outputs
        return ops.sum(summed * up_sum) + ops.sum(mean * up_mean)

    (grad_kernel,) = weight_gradients(layer, [a, b], loss)
    _, grad_b = input_gradients(layer, [a, b], loss)
    assert grad_kernel is not None
    assert np.count_nonzero(grad_kernel) == grad_kernel.size
    np.testing.assert_allclose(grad_kernel, a.T @ up_sum, rtol=1e-4, atol=1e-5)
    # b reaches the loss through both outputs.
    np.testing.assert_allclose(grad_b, up_sum + up_mean[:, None] / 3, rtol=1e-4, atol=1e-5)


def test_training_reduces_loss() -> None:
    keras.utils.set_random_seed(2)
    rng = np.random.default_rng(2)
    a, b = random_inputs(rng, (64,), 4, 2)
    target = a @ rng.normal(size=(4, 2)).astype("float32") + b
    input_a, input_b = keras.Input((4,)), keras.Input((2,))
    summed, _ = MyMultiLayer(output_dim=2)([input_a, input_b])
    model = keras.Model([input_a, input_b], summed)
    assert_training_reduces_loss(
        model,
        [a, b],
        target,
        optimizer=keras.optimizers.SGD(0.1),
        epochs=5,
        batch_size=16,
        factor=0.5,
    )


def test_unknown_batch_size_in_a_functional_model() -> None:
    layer = MyMultiLayer(output_dim=3)
    input_a, input_b = keras.Input((None, 4)), keras.Input((None, 3))
    summed, mean = layer([input_a, input_b])
    assert tuple(summed.shape) == (None, None, 3)
    assert tuple(mean.shape) == (None, None)
    model = keras.Model([input_a, input_b], [summed, mean])
    rng = np.random.default_rng(3)
    kernel = random_kernel(layer, rng)
    for leading in [(1, 2), (5, 4)]:
        a, b = random_inputs(rng, leading, 4, 3)
        outputs = model.predict([a, b], verbose=0)
        for out, expected in zip(outputs, reference(a, b, kernel), strict=True):
            np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("leading", [(4,), (2, 5), (2, 3, 2)])
def test_compute_output_shape_matches_call(leading: tuple[int, ...]) -> None:
    a, b = random_inputs(np.random.default_rng(4), leading, 6, 3)
    layer = MyMultiLayer(output_dim=3)
    predicted = layer.compute_output_shape([a.shape, b.shape])
    assert predicted == [tuple(o.shape) for o in layer([a, b])]
    symbolic = layer([keras.Input(a.shape[1:]), keras.Input(b.shape[1:])])
    assert layer.compute_output_shape([(None, *a.shape[1:]), (None, *b.shape[1:])]) == [
        tuple(s.shape) for s in symbolic
    ]


def test_compute_output_shape_merges_known_sizes() -> None:
    layer = MyMultiLayer(output_dim=3)
    assert layer.compute_output_shape([(None, 5, 4), (2, None, 3)]) == [(2, 5, 3), (2, None)]


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision(policy: str) -> None:
    rng = np.random.default_rng(5)
    a, b = random_inputs(rng, (4,), 5, 3)
    layer = MyMultiLayer(output_dim=3, dtype=policy)
    layer.build([a.shape, b.shape])
    assert layer.kernel.dtype == "float32"
    kernel = random_kernel(layer, rng)
    outputs = [ops.convert_to_numpy(o) for o in layer([a, b])]
    tolerance = 5e-2 if policy == "mixed_bfloat16" else 1e-2
    for out, expected in zip(outputs, reference(a, b, kernel), strict=True):
        assert out.dtype == np.dtype(policy.removeprefix("mixed_"))
        np.testing.assert_allclose(out.astype("float32"), expected, rtol=tolerance, atol=tolerance)


def test_jit_compile() -> None:
    rng = np.random.default_rng(6)
    a, b = random_inputs(rng, (8,), 4, 2)
    input_a, input_b = keras.Input((4,)), keras.Input((2,))
    layer = MyMultiLayer(output_dim=2)
    summed, mean = layer([input_a, input_b])
    model = keras.Model([input_a, input_b], [summed, mean])
    kernel = random_kernel(layer, rng)
    model.compile(optimizer="sgd", loss=["mse", "mse"], jit_compile=True)
    assert model.jit_compile  # XLA really in use, not silently turned off
    outputs = model.predict([a, b], verbose=0)
    for out, expected in zip(outputs, reference(a, b, kernel), strict=True):
        np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    history = model.fit([a, b], [np.zeros((8, 2)), np.zeros(8)], epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


def test_get_config_round_trip() -> None:
    layer = MyMultiLayer(output_dim=3, kernel_initializer="zeros", name="multi")
    config = layer.get_config()
    assert config["output_dim"] == 3
    clone = MyMultiLayer.from_config(config)
    assert clone.get_config() == config
    a, b = random_inputs(np.random.default_rng(7), (2,), 4, 3)
    layer([a, b])
    clone([a, b])
    clone.set_weights([np.ones((4, 3), dtype="float32")])
    layer.set_weights(clone.get_weights())
    for x, y in zip(layer([a, b]), clone([a, b]), strict=True):
        np.testing.assert_array_equal(ops.convert_to_numpy(x), ops.convert_to_numpy(y))


def test_registered_under_package_name() -> None:
    serialized = keras.saving.serialize_keras_object(MyMultiLayer(2))
    assert serialized["registered_name"] == "layerhub_mylayer>MyMultiLayer"


def test_constructor_validation() -> None:
    with pytest.raises(ValueError, match="Received: output_dim=0"):
        MyMultiLayer(output_dim=0)


@pytest.mark.parametrize(
    ("input_shape", "message"),
    [
        ((None, 4), r"list of two inputs `\[a, b\]`. Received: input_shape=\(None, 4\)"),
        ([(None, 4)], r"Received: input_shape=\[\(None, 4\)\]"),
        ([(None, None), (None, 3)], r"Received: input_shape=\[\(None, None\), \(None, 3\)\]"),
        ([(None, 4), (None, 5)], r"output_dim=3 features. Received: input_shape="),
        ([(None, 2, 4), (None, 3)], r"rank of `a`"),
        ([(None, 2, 4), (None, 6, 3)], r"every axis but the last. Received: input_shape="),
    ],
)
def test_build_validation(input_shape: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MyMultiLayer(output_dim=3).build(input_shape)


def test_check_layer(tmp_path: Path) -> None:
    # Fresh-interpreter save/load round trip and the other generic checks of the test kit.
    from layerhub.testing import check_layer

    check_layer(MyMultiLayer, {"output_dim": 3}, [(2, 4), (2, 3)], tmp_path=tmp_path)
