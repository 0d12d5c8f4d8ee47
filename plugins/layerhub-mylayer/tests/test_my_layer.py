"""Tests for layerhub_mylayer.MyLayer."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest
from keras import ops
from layerhub_mylayer import MyLayer

from layerhub.testing import assert_training_reduces_loss, weight_gradients


def random_kernel(layer: MyLayer, rng: np.random.Generator) -> np.ndarray:
    kernel = rng.normal(size=layer.kernel.shape).astype("float32")
    layer.set_weights([kernel])
    return kernel


@pytest.mark.parametrize("input_shape", [(4, 3), (2, 5, 3), (2, 2, 4, 3)])
def test_matches_numpy_reference(input_shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=input_shape).astype("float32")
    layer = MyLayer(output_dim=6)
    layer.build(x.shape)
    kernel = random_kernel(layer, rng)
    out = ops.convert_to_numpy(layer(x))
    expected = np.einsum("...i,io->...o", x.astype("float64"), kernel.astype("float64"))
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


def test_kernel_layout_and_default_uniform_initializer() -> None:
    keras.utils.set_random_seed(1)
    layer = MyLayer(output_dim=8)
    layer.build((None, 16))
    assert [w.name for w in layer.weights] == ["kernel"]
    assert len(layer.trainable_weights) == 1
    kernel = ops.convert_to_numpy(layer.kernel)
    assert kernel.shape == (16, 8)
    # Keras' "uniform" is RandomUniform(-0.05, 0.05).
    assert np.all(np.abs(kernel) <= 0.05)
    assert np.unique(kernel).size > 100


def test_gradients_match_analytic_and_are_nonzero() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(4, 3, 5)).astype("float32")
    upstream = rng.normal(size=(4, 3, 2)).astype("float32")
    layer = MyLayer(output_dim=2)
    layer.build(x.shape)
    random_kernel(layer, rng)
    (grad,) = weight_gradients(layer, x, lambda y: ops.sum(y * upstream))
    assert grad is not None
    assert np.count_nonzero(grad) == grad.size
    np.testing.assert_allclose(grad, np.einsum("bti,bto->io", x, upstream), rtol=1e-4, atol=1e-5)


def test_training_reduces_loss() -> None:
    keras.utils.set_random_seed(3)
    rng = np.random.default_rng(3)
    x = rng.normal(size=(64, 4)).astype("float32")
    y = x @ rng.normal(size=(4, 2)).astype("float32")
    model = keras.Sequential([keras.Input((4,)), MyLayer(output_dim=2)])
    assert_training_reduces_loss(
        model, x, y, optimizer=keras.optimizers.SGD(0.1), epochs=5, batch_size=16, factor=0.5
    )


def test_unknown_batch_and_length() -> None:
    layer = MyLayer(output_dim=3)
    inputs = keras.Input((None, 4))
    outputs = layer(inputs)
    assert tuple(outputs.shape) == (None, None, 3)
    model = keras.Model(inputs, outputs)
    rng = np.random.default_rng(4)
    kernel = random_kernel(layer, rng)
    for shape in [(1, 2, 4), (3, 7, 4)]:
        x = rng.normal(size=shape).astype("float32")
        np.testing.assert_allclose(model.predict(x, verbose=0), x @ kernel, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("input_shape", [(4, 3), (2, 5, 3), (2, 2, 4, 3)])
def test_compute_output_shape_matches_call(input_shape: tuple[int, ...]) -> None:
    layer = MyLayer(output_dim=7)
    assert layer.compute_output_shape(input_shape) == tuple(
        layer(np.ones(input_shape, dtype="float32")).shape
    )
    symbolic = layer(keras.Input(input_shape[1:]))
    assert layer.compute_output_shape((None, *input_shape[1:])) == tuple(symbolic.shape)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision(policy: str) -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(size=(4, 6)).astype("float32")
    layer = MyLayer(output_dim=3, dtype=policy)
    layer.build(x.shape)
    assert layer.kernel.dtype == "float32"
    kernel = random_kernel(layer, rng)
    out = ops.convert_to_numpy(layer(x))
    assert out.dtype == np.dtype(policy.removeprefix("mixed_"))
    tolerance = 5e-2 if policy == "mixed_bfloat16" else 1e-2
    np.testing.assert_allclose(out.astype("float32"), x @ kernel, rtol=tolerance, atol=tolerance)

    model = keras.Sequential([keras.Input((6,)), MyLayer(output_dim=3, dtype=policy)])
    assert_training_reduces_loss(
        model, x, x @ kernel, optimizer=keras.optimizers.SGD(0.1), epochs=3
    )


def test_jit_compile() -> None:
    rng = np.random.default_rng(6)
    x = rng.normal(size=(8, 5, 4)).astype("float32")
    layer = MyLayer(output_dim=2)
    model = keras.Sequential([keras.Input((None, 4)), layer])
    kernel = random_kernel(layer, rng)
    model.compile(optimizer="sgd", loss="mse", jit_compile=True)
    assert model.jit_compile  # XLA really in use, not silently turned off
    np.testing.assert_allclose(model.predict(x, verbose=0), x @ kernel, rtol=1e-5, atol=1e-5)
    history = model.fit(x, np.zeros((8, 5, 2)), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


def test_get_config_round_trip() -> None:
    layer = MyLayer(output_dim=4, kernel_initializer="glorot_normal", name="mine")
    config = layer.get_config()
    assert config["output_dim"] == 4
    clone = MyLayer.from_config(config)
    assert clone.get_config() == config
    assert isinstance(clone.kernel_initializer, keras.initializers.GlorotNormal)
    x = np.random.default_rng(7).normal(size=(2, 3)).astype("float32")
    layer(x)
    clone(x)
    clone.set_weights(layer.get_weights())
    np.testing.assert_array_equal(ops.convert_to_numpy(layer(x)), ops.convert_to_numpy(clone(x)))


def test_from_keras2_style_config() -> None:
    layer = MyLayer.from_config(
        {"name": "my_layer_1", "trainable": True, "dtype": "float32", "output_dim": 5}
    )
    assert tuple(layer(np.ones((2, 3), dtype="float32")).shape) == (2, 5)


def test_registered_under_package_name() -> None:
    serialized = keras.saving.serialize_keras_object(MyLayer(2))
    assert serialized["registered_name"] == "layerhub_mylayer>MyLayer"
    assert isinstance(keras.saving.deserialize_keras_object(serialized), MyLayer)


@pytest.mark.parametrize(
    ("output_dim", "message"),
    [(0, "Received: output_dim=0"), (-2, "Received: output_dim=-2"), ("4", "output_dim='4'")],
)
def test_constructor_validation(output_dim: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MyLayer(output_dim=output_dim)


def test_build_validation() -> None:
    with pytest.raises(ValueError, match=r"Received: input_shape=\(None, 3, None\)"):
        MyLayer(2).build((None, 3, None))


def test_check_layer(tmp_path: Path) -> None:
    # Fresh-interpreter save/load round trip and the other generic checks of the test kit.
    from layerhub.testing import check_layer

    check_layer(MyLayer, {"output_dim": 3}, (2, 4), tmp_path=tmp_path)


# -- masking ----------------------------------------------------------------------------------


def test_mask_passes_through() -> None:
    from layerhub.testing import assert_mask_passes_through

    assert_mask_passes_through(
        MyLayer(3, kernel_initializer=keras.initializers.GlorotUniform(seed=1))
    )
