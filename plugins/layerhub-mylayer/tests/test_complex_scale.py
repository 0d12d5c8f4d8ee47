"""Tests for layerhub_mylayer.ComplexScale."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest
from keras import ops
from layerhub_mylayer import ComplexScale

from layerhub.testing import assert_training_reduces_loss, weight_gradients


def reference(
    x: np.ndarray, kernel: np.ndarray, alpha_real: float, alpha_imag: float
) -> list[np.ndarray]:
    x = x.astype("float64")
    return [alpha_real * float(kernel[0]) * x, alpha_imag * float(kernel[1]) * x]


def random_kernel(layer: ComplexScale, rng: np.random.Generator) -> np.ndarray:
    kernel = rng.uniform(-2.0, 2.0, size=(2,)).astype("float32")
    layer.set_weights([kernel])
    return kernel


@pytest.mark.parametrize("input_shape", [(5,), (4, 3), (2, 3, 4, 2)])
def test_matches_numpy_reference(input_shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=input_shape).astype("float32")
    layer = ComplexScale(alpha_real=1.5, alpha_imag=-0.75)
    layer.build(x.shape)
    kernel = random_kernel(layer, rng)
    outputs = [ops.convert_to_numpy(o) for o in layer(x)]
    for out, expected in zip(outputs, reference(x, kernel, 1.5, -0.75), strict=True):
        np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-6)


def test_kernel_layout_and_default_uniform_initializer() -> None:
    layer = ComplexScale(1.0, 2.0)
    layer.build((None, 8))
    assert [w.name for w in layer.weights] == ["kernel"]
    assert len(layer.trainable_weights) == 1
    kernel = ops.convert_to_numpy(layer.kernel)
    assert kernel.shape == (2,)
    assert np.all(np.abs(kernel) <= 0.05)


def test_gradients_match_analytic_and_are_nonzero() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4, 3)).astype("float32")
    up_real, up_imag = rng.normal(size=(2, 4, 3)).astype("float32")
    layer = ComplexScale(alpha_real=2.0, alpha_imag=-3.0)
    layer.build(x.shape)
    random_kernel(layer, rng)

    def loss(outputs: list[object]) -> object:
        real, imag = outputs
        return ops.sum(real * up_real) + ops.sum(imag * up_imag)

    (grad,) = weight_gradients(layer, x, loss)
    assert grad is not None
    assert np.count_nonzero(grad) == grad.size
    expected = [2.0 * np.sum(up_real * x), -3.0 * np.sum(up_imag * x)]
    np.testing.assert_allclose(grad, expected, rtol=1e-4, atol=1e-5)


def test_training_reduces_loss() -> None:
    keras.utils.set_random_seed(2)
    rng = np.random.default_rng(2)
    x = rng.normal(size=(64, 3)).astype("float32")
    targets = reference(x, np.array([0.8, -0.4]), 1.0, 2.0)
    inputs = keras.Input((3,))
    model = keras.Model(inputs, ComplexScale(alpha_real=1.0, alpha_imag=2.0)(inputs))
    assert_training_reduces_loss(
        model,
        x,
        targets,
        optimizer=keras.optimizers.SGD(0.05),
        loss=["mse", "mse"],
        epochs=5,
        batch_size=16,
        factor=0.5,
    )


def test_unknown_batch_size() -> None:
    layer = ComplexScale(alpha_real=0.5, alpha_imag=4.0)
    inputs = keras.Input((None, 3))
    real, imag = layer(inputs)
    assert tuple(real.shape) == tuple(imag.shape) == (None, None, 3)
    model = keras.Model(inputs, [real, imag])
    rng = np.random.default_rng(3)
    kernel = random_kernel(layer, rng)
    for shape in [(1, 1, 3), (6, 2, 3)]:
        x = rng.normal(size=shape).astype("float32")
        outputs = model.predict(x, verbose=0)
        for out, expected in zip(outputs, reference(x, kernel, 0.5, 4.0), strict=True):
            np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("input_shape", [(5,), (4, 3), (2, 3, 4, 2)])
def test_compute_output_shape_matches_call(input_shape: tuple[int, ...]) -> None:
    layer = ComplexScale(1.0, 1.0)
    outputs = layer(np.ones(input_shape, dtype="float32"))
    assert layer.compute_output_shape(input_shape) == [tuple(o.shape) for o in outputs]
    symbolic = layer(keras.Input(input_shape[1:]))
    assert layer.compute_output_shape((None, *input_shape[1:])) == [
        tuple(s.shape) for s in symbolic
    ]


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision(policy: str) -> None:
    # alpha_real alone is beyond the float16 range (65504); alpha * kernel is not.
    x = np.linspace(-2.0, 2.0, 12, dtype="float32").reshape(3, 4)
    layer = ComplexScale(alpha_real=1e5, alpha_imag=-0.5, dtype=policy)
    layer.build(x.shape)
    assert layer.kernel.dtype == "float32"
    kernel = np.array([1e-3, 1.25], dtype="float32")
    layer.set_weights([kernel])
    outputs = [ops.convert_to_numpy(o) for o in layer(x)]
    for out, expected in zip(outputs, reference(x, kernel, 1e5, -0.5), strict=True):
        assert out.dtype == np.dtype(policy.removeprefix("mixed_"))
        assert np.all(np.isfinite(out.astype("float32")))
        np.testing.assert_allclose(out.astype("float32"), expected, rtol=1e-2, atol=1e-2)


def test_jit_compile() -> None:
    rng = np.random.default_rng(4)
    x = rng.normal(size=(8, 3)).astype("float32")
    inputs = keras.Input((3,))
    layer = ComplexScale(alpha_real=2.0, alpha_imag=0.5)
    model = keras.Model(inputs, layer(inputs))
    kernel = random_kernel(layer, rng)
    model.compile(optimizer="sgd", loss=["mse", "mse"], jit_compile=True)
    assert model.jit_compile  # XLA really in use, not silently turned off
    outputs = model.predict(x, verbose=0)
    for out, expected in zip(outputs, reference(x, kernel, 2.0, 0.5), strict=True):
        np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-6)
    history = model.fit(x, [np.zeros_like(x), np.zeros_like(x)], epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


def test_get_config_round_trip() -> None:
    layer = ComplexScale(alpha_real=3, alpha_imag=-1.5, kernel_initializer="ones", name="cs")
    config = layer.get_config()
    assert (config["alpha_real"], config["alpha_imag"]) == (3.0, -1.5)
    clone = ComplexScale.from_config(config)
    assert clone.get_config() == config
    x = np.random.default_rng(5).normal(size=(2, 3)).astype("float32")
    for a, b in zip(layer(x), clone(x), strict=True):
        np.testing.assert_array_equal(ops.convert_to_numpy(a), ops.convert_to_numpy(b))


def test_registered_under_package_name() -> None:
    serialized = keras.saving.serialize_keras_object(ComplexScale(1.0, 2.0))
    assert serialized["registered_name"] == "layerhub_mylayer>ComplexScale"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"alpha_real": "1", "alpha_imag": 1.0}, "Received: alpha_real='1'"),
        ({"alpha_real": True, "alpha_imag": 1.0}, "Received: alpha_real=True"),
        ({"alpha_real": 1.0, "alpha_imag": float("inf")}, "Received: alpha_imag=inf"),
        ({"alpha_real": 1.0, "alpha_imag": None}, "Received: alpha_imag=None"),
    ],
)
def test_constructor_validation(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ComplexScale(**kwargs)


def test_check_layer(tmp_path: Path) -> None:
    # Fresh-interpreter save/load round trip and the other generic checks of the test kit.
    from layerhub.testing import check_layer

    check_layer(ComplexScale, {"alpha_real": 2.0, "alpha_imag": -1.0}, (2, 3), tmp_path=tmp_path)
