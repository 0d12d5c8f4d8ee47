"""Tests for layerhub_l2norm.L2Normalization."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest
from keras import ops
from layerhub_l2norm import L2Normalization

from layerhub.testing import assert_training_reduces_loss, input_gradients, weight_gradients


def reference(x: np.ndarray, gamma: np.ndarray, axis: int, epsilon: float) -> np.ndarray:
    """Float64 NumPy version of the layer, written from the formula."""
    x = x.astype("float64")
    squared_norm = np.sum(x**2, axis=axis, keepdims=True)
    normalised = x / np.sqrt(np.maximum(squared_norm, epsilon))
    shape = [1] * x.ndim
    shape[axis] = -1
    return normalised * gamma.astype("float64").reshape(shape)


def random_gamma(layer: L2Normalization, rng: np.random.Generator) -> np.ndarray:
    gamma = rng.uniform(0.5, 30.0, size=layer.gamma.shape).astype("float32")
    layer.set_weights([gamma])
    return gamma


@pytest.mark.parametrize(
    ("input_shape", "axis"),
    [((4, 8), -1), ((3, 5, 6, 8), -1), ((3, 8, 5, 6), 1), ((2, 7, 8), -2)],
)
def test_matches_numpy_reference(input_shape: tuple[int, ...], axis: int) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(scale=3.0, size=input_shape).astype("float32")
    layer = L2Normalization(axis=axis)
    layer.build(x.shape)
    gamma = random_gamma(layer, rng)
    out = ops.convert_to_numpy(layer(x))
    np.testing.assert_allclose(out, reference(x, gamma, axis, 1e-12), rtol=1e-5, atol=1e-5)


def test_initial_gamma_and_weight_layout() -> None:
    layer = L2Normalization(gamma_init=7.5)
    layer.build((None, 4, 4, 6))
    assert [w.name for w in layer.weights] == ["gamma"]
    assert len(layer.trainable_weights) == 1
    np.testing.assert_array_equal(ops.convert_to_numpy(layer.gamma), np.full(6, 7.5))
    x = np.array([[0.0, 3.0, 0.0, 4.0, 0.0, 0.0]], dtype="float32")
    out = ops.convert_to_numpy(L2Normalization(gamma_init=7.5)(x))
    np.testing.assert_allclose(out, 7.5 * x / 5.0, rtol=1e-6)


def test_epsilon_floors_the_squared_norm() -> None:
    epsilon = 1e-4
    x = np.array([[0.0, 0.0, 0.0], [1e-3, 2e-3, 0.0], [3.0, 0.0, 4.0]], dtype="float32")
    layer = L2Normalization(gamma_init=2.0, epsilon=epsilon)
    out = ops.convert_to_numpy(layer(x))
    np.testing.assert_allclose(out, reference(x, np.full(3, 2.0), -1, epsilon), rtol=1e-5)
    # The all-zero row stays zero instead of becoming NaN.
    np.testing.assert_array_equal(out[0], np.zeros(3))


def test_gradients_match_analytic_and_are_nonzero() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4, 3, 3, 5)).astype("float32")
    upstream = rng.normal(size=x.shape).astype("float32")
    x[0, 0, 0] = 0.0  # the epsilon floor must keep this gradient finite
    layer = L2Normalization()
    layer.build(x.shape)
    random_gamma(layer, rng)

    def loss(y: object) -> object:
        return ops.sum(y * upstream)

    (grad_gamma,) = weight_gradients(layer, x, loss)
    (grad_x,) = input_gradients(layer, x, loss)
    assert grad_gamma is not None
    assert grad_x is not None
    assert np.count_nonzero(grad_gamma) == grad_gamma.size
    assert np.all(np.isfinite(grad_x))
    normalised = reference(x, np.ones(5), -1, 1e-12)
    expected = np.sum(upstream * normalised, axis=(0, 1, 2))
    np.testing.assert_allclose(grad_gamma, expected, rtol=1e-4, atol=1e-5)


def test_training_reduces_loss() -> None:
    keras.utils.set_random_seed(2)
    rng = np.random.default_rng(2)
    x = rng.normal(size=(32, 6)).astype("float32")
    target_gamma = rng.uniform(1.0, 5.0, size=6).astype("float32")
    y = reference(x, target_gamma, -1, 1e-12).astype("float32")
    model = keras.Sequential([keras.Input((6,)), L2Normalization(gamma_init=10.0)])
    assert_training_reduces_loss(
        model, x, y, optimizer=keras.optimizers.SGD(0.5), epochs=5, batch_size=8, factor=0.5
    )


def test_unknown_batch_and_spatial_size() -> None:
    layer = L2Normalization()
    inputs = keras.Input((None, None, 4))
    outputs = layer(inputs)
    assert tuple(outputs.shape) == (None, None, None, 4)
    model = keras.Model(inputs, outputs)
    rng = np.random.default_rng(3)
    gamma = random_gamma(layer, rng)
    for shape in [(1, 2, 3, 4), (5, 7, 1, 4)]:
        x = rng.normal(size=shape).astype("float32")
        out = model.predict(x, verbose=0)
        assert out.shape == shape
        np.testing.assert_allclose(out, reference(x, gamma, -1, 1e-12), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("input_shape", [(2, 5), (3, 4, 4, 6), (1, 2, 3, 4, 5)])
def test_compute_output_shape_matches_call(input_shape: tuple[int, ...]) -> None:
    layer = L2Normalization(axis=1)
    x = np.ones(input_shape, dtype="float32")
    assert layer.compute_output_shape(input_shape) == tuple(layer(x).shape)
    assert layer.compute_output_shape((None, *input_shape[1:])) == (None, *input_shape[1:])


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision(policy: str) -> None:
    rng = np.random.default_rng(4)
    # Sums of squares far above the float16 maximum (65504): the norm must not overflow.
    x = rng.uniform(200.0, 400.0, size=(2, 3, 3, 64)).astype("float32")
    layer = L2Normalization(dtype=policy)
    out = layer(x)
    assert layer.compute_dtype == policy.removeprefix("mixed_")
    assert ops.convert_to_numpy(out).dtype == np.dtype(layer.compute_dtype)
    assert layer.gamma.dtype == "float32"
    gamma = random_gamma(layer, rng)
    out = ops.convert_to_numpy(layer(x)).astype("float32")
    assert np.all(np.isfinite(out))
    tolerance = 1e-2 if policy == "mixed_bfloat16" else 2e-3
    np.testing.assert_allclose(out, reference(x, gamma, -1, 1e-12), rtol=tolerance, atol=1e-2)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_trains(policy: str) -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(size=(16, 8)).astype("float32")
    y = reference(x, np.full(8, 3.0), -1, 1e-12).astype("float32")
    model = keras.Sequential([keras.Input((8,)), L2Normalization(dtype=policy)])
    assert_training_reduces_loss(
        model, x, y, optimizer=keras.optimizers.SGD(0.5), epochs=3, batch_size=8
    )


def test_jit_compile() -> None:
    rng = np.random.default_rng(6)
    x = rng.normal(size=(8, 4, 4, 3)).astype("float32")
    layer = L2Normalization()
    model = keras.Sequential([keras.Input((None, None, 3)), layer])
    gamma = random_gamma(layer, rng)
    model.compile(optimizer="sgd", loss="mse", jit_compile=True)
    assert model.jit_compile  # XLA really in use, not silently turned off
    out = model.predict(x, verbose=0)
    np.testing.assert_allclose(out, reference(x, gamma, -1, 1e-12), rtol=1e-5, atol=1e-5)
    history = model.fit(x, np.zeros_like(x), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


def test_get_config_round_trip() -> None:
    layer = L2Normalization(
        gamma_init=10,
        axis=1,
        epsilon=1e-6,
        gamma_regularizer=keras.regularizers.L2(0.01),
        gamma_constraint="non_neg",
        name="norm",
    )
    config = layer.get_config()
    assert config["gamma_init"] == 10.0
    assert config["axis"] == 1
    assert config["epsilon"] == 1e-6
    clone = L2Normalization.from_config(config)
    assert clone.get_config() == config
    assert isinstance(clone.gamma_regularizer, keras.regularizers.L2)
    assert isinstance(clone.gamma_constraint, keras.constraints.NonNeg)
    x = np.random.default_rng(7).normal(size=(2, 3, 4)).astype("float32")
    layer(x)
    clone(x)
    clone.set_weights(layer.get_weights())
    np.testing.assert_array_equal(ops.convert_to_numpy(layer(x)), ops.convert_to_numpy(clone(x)))


def test_registered_under_package_name() -> None:
    serialized = keras.saving.serialize_keras_object(L2Normalization())
    assert serialized["registered_name"] == "layerhub_l2norm>L2Normalization"
    assert isinstance(keras.saving.deserialize_keras_object(serialized), L2Normalization)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"gamma_init": "20"}, "Received: gamma_init='20'"),
        ({"gamma_init": float("nan")}, "Received: gamma_init=nan"),
        ({"axis": 1.0}, "Received: axis=1.0"),
        ({"epsilon": 0}, "Received: epsilon=0"),
        ({"epsilon": -1e-3}, "Received: epsilon=-0.001"),
    ],
)
def test_constructor_validation(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        L2Normalization(**kwargs)


@pytest.mark.parametrize(
    ("axis", "input_shape", "message"),
    [
        (3, (None, 4, 5), "Received: axis=3"),
        (-4, (None, 4, 5), "Received: axis=-4"),
        (0, (None, 4, 5), "batch axis.*Received: axis=0"),
        (-1, (None, 4, None), r"Received: input_shape=\(None, 4, None\)"),
    ],
)
def test_build_validation(axis: int, input_shape: tuple[int | None, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        L2Normalization(axis=axis).build(input_shape)


def test_check_layer(tmp_path: Path) -> None:
    # Fresh-interpreter save/load round trip and the other generic checks of the test kit.
    from layerhub.testing import check_layer

    check_layer(L2Normalization, {"gamma_init": 5.0}, (2, 4, 4, 3), tmp_path=tmp_path)


# -- masking ----------------------------------------------------------------------------------


def test_mask_passes_through() -> None:
    from layerhub.testing import assert_mask_passes_through

    assert_mask_passes_through(L2Normalization(gamma_init=2.0))


def test_normalising_over_positions_does_not_claim_the_mask() -> None:
    # The norm over axis 1 mixes padded positions into the others: the mask no longer holds.
    layer = L2Normalization(axis=1)
    layer.build((None, 4, 6))
    assert not layer.supports_masking
    assert L2Normalization().supports_masking


# -- NumPy integers ---------------------------------------------------------------------------


def test_numpy_integer_axis() -> None:
    x = np.random.default_rng(3).normal(size=(2, 3, 4)).astype("float32")
    layer = L2Normalization(gamma_init=1.5, axis=np.int64(1))
    config = layer.get_config()
    assert config["axis"] == 1
    assert type(config["axis"]) is int
    expected = reference(x, np.full(3, 1.5, "float32"), 1, 1e-12)
    np.testing.assert_allclose(ops.convert_to_numpy(layer(x)), expected, rtol=1e-5, atol=1e-6)


def test_bool_axis_is_still_rejected() -> None:
    with pytest.raises(ValueError, match="Received: axis=True"):
        L2Normalization(axis=True)
