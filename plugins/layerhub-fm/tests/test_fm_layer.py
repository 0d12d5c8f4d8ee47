"""Tests for layerhub_fm.FMLayer."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest
from keras import ops
from layerhub_fm import FMLayer

from layerhub.testing import assert_training_reduces_loss, weight_gradients


def brute_force_pairwise(x: np.ndarray, v: np.ndarray) -> np.ndarray:
    """sum_{i<j} <v_i, v_j> x_i x_j, one explicit term per feature pair."""
    x = x.astype("float64")
    v = v.astype("float64")
    total = np.zeros(x.shape[:-1])
    n = x.shape[-1]
    for i in range(n):
        for j in range(i + 1, n):
            total += np.dot(v[i], v[j]) * x[..., i] * x[..., j]
    return total


def reference(
    x: np.ndarray, w: np.ndarray, v: np.ndarray, b: np.ndarray, activation=None
) -> np.ndarray:
    out = x.astype("float64") @ w.astype("float64") + b.astype("float64")
    out = out + brute_force_pairwise(x, v)[..., None]
    if activation is not None:
        out = activation(out)
    return out


def random_weights(
    layer: FMLayer, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    weights = [rng.normal(scale=0.5, size=w.shape).astype("float32") for w in layer.weights]
    layer.set_weights(weights)
    return tuple(weights)


def test_weights_are_created_in_order_w_v_b() -> None:
    layer = FMLayer(output_dim=3, factor_order=4)
    layer.build((None, 6))
    assert [w.name for w in layer.weights] == ["kernel", "factor", "bias"]
    assert [tuple(w.shape) for w in layer.weights] == [(6, 3), (6, 4), (3,)]
    assert len(layer.trainable_weights) == 3


def test_pairwise_term_on_a_hand_computed_example() -> None:
    # x = (1, 2), v_1 = v_2 = (1,): the only pair contributes 1 * 1 * 2 = 2.
    # Leaving x·V unsquared (as the Keras 2 seed did) would give -1 here.
    layer = FMLayer(output_dim=2, factor_order=1)
    layer.build((None, 2))
    layer.set_weights([np.zeros((2, 2)), np.ones((2, 1)), np.zeros(2)])
    out = ops.convert_to_numpy(layer(np.array([[1.0, 2.0]], dtype="float32")))
    np.testing.assert_allclose(out, [[2.0, 2.0]])


def test_pairwise_term_matches_brute_force() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 9)).astype("float32")
    layer = FMLayer(output_dim=4, factor_order=5)
    layer.build(x.shape)
    _, v, _ = random_weights(layer, rng)
    layer.set_weights([np.zeros((9, 4)), v, np.zeros(4)])
    out = ops.convert_to_numpy(layer(x))
    expected = np.repeat(brute_force_pairwise(x, v)[:, None], 4, axis=1)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("activation", "numpy_activation"), [(None, None), ("tanh", np.tanh), ("relu", None)]
)
def test_matches_numpy_reference(activation, numpy_activation) -> None:
    if activation == "relu":

        def numpy_activation(a: np.ndarray) -> np.ndarray:
            return np.maximum(a, 0.0)

    rng = np.random.default_rng(1)
    x = rng.normal(size=(5, 7)).astype("float32")
    layer = FMLayer(output_dim=3, factor_order=4, activation=activation)
    layer.build(x.shape)
    w, v, b = random_weights(layer, rng)
    out = ops.convert_to_numpy(layer(x))
    np.testing.assert_allclose(out, reference(x, w, v, b, numpy_activation), rtol=1e-5, atol=1e-5)


def test_higher_rank_inputs_apply_per_position() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(2, 3, 6)).astype("float32")
    layer = FMLayer(output_dim=2, factor_order=3)
    layer.build(x.shape)
    w, v, b = random_weights(layer, rng)
    out = ops.convert_to_numpy(layer(x))
    assert out.shape == (2, 3, 2)
    np.testing.assert_allclose(out, reference(x, w, v, b), rtol=1e-5, atol=1e-5)


def test_gradients_match_analytic_and_are_nonzero() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(8, 5)).astype("float32")
    upstream = rng.normal(size=(8, 3)).astype("float32")
    layer = FMLayer(output_dim=3, factor_order=2)
    layer.build(x.shape)
    _, v, _ = random_weights(layer, rng)
    grads = weight_gradients(layer, x, lambda y: ops.sum(y * upstream))
    for weight, grad in zip(layer.trainable_weights, grads, strict=True):
        assert grad is not None, weight.name
        assert np.count_nonzero(grad) == grad.size, weight.name

    grad_w, grad_v, grad_b = grads
    np.testing.assert_allclose(grad_w, x.T @ upstream, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(grad_b, upstream.sum(axis=0), rtol=1e-4, atol=1e-5)
    # d/dV[i, f] of the pairwise term: x_i (x·V)_f - V[i, f] x_i^2, per sample.
    per_sample = upstream.sum(axis=1)
    xv = x @ v
    expected_v = (
        np.einsum("n,ni,nf->if", per_sample, x, xv)
        - v * np.einsum("n,ni->i", per_sample, x**2)[:, None]
    )
    np.testing.assert_allclose(grad_v, expected_v, rtol=1e-4, atol=1e-5)


def test_training_reduces_loss() -> None:
    keras.utils.set_random_seed(4)
    rng = np.random.default_rng(4)
    x = rng.normal(size=(64, 6)).astype("float32")
    teacher = FMLayer(output_dim=2, factor_order=3)
    teacher.build(x.shape)
    random_weights(teacher, rng)
    y = ops.convert_to_numpy(teacher(x))
    model = keras.Sequential([keras.Input((6,)), FMLayer(output_dim=2, factor_order=3)])
    assert_training_reduces_loss(
        model, x, y, optimizer=keras.optimizers.Adam(0.05), epochs=10, batch_size=16, factor=0.5
    )


def test_unknown_batch_size() -> None:
    layer = FMLayer(output_dim=3, factor_order=2)
    inputs = keras.Input((5,))
    outputs = layer(inputs)
    assert tuple(outputs.shape) == (None, 3)
    model = keras.Model(inputs, outputs)
    rng = np.random.default_rng(5)
    w, v, b = random_weights(layer, rng)
    for batch in (1, 7):
        x = rng.normal(size=(batch, 5)).astype("float32")
        out = model.predict(x, verbose=0)
        np.testing.assert_allclose(out, reference(x, w, v, b), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("input_shape", [(4, 6), (2, 3, 6), (2, 1, 3, 6)])
def test_compute_output_shape_matches_call(input_shape: tuple[int, ...]) -> None:
    layer = FMLayer(output_dim=5, factor_order=2)
    x = np.ones(input_shape, dtype="float32")
    assert layer.compute_output_shape(input_shape) == tuple(layer(x).shape)
    symbolic = layer(keras.Input(input_shape[1:]))
    assert layer.compute_output_shape((None, *input_shape[1:])) == tuple(symbolic.shape)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision(policy: str) -> None:
    rng = np.random.default_rng(6)
    x = rng.normal(size=(4, 8)).astype("float32")
    layer = FMLayer(output_dim=3, factor_order=4, dtype=policy)
    layer.build(x.shape)
    assert all(w.dtype == "float32" for w in layer.weights)
    w, v, b = random_weights(layer, rng)
    out = ops.convert_to_numpy(layer(x))
    assert out.dtype == np.dtype(policy.removeprefix("mixed_"))
    tolerance = 0.1 if policy == "mixed_bfloat16" else 2e-2
    np.testing.assert_allclose(
        out.astype("float32"), reference(x, w, v, b), rtol=tolerance, atol=tolerance
    )


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_trains(policy: str) -> None:
    keras.utils.set_random_seed(7)
    rng = np.random.default_rng(7)
    x = rng.normal(size=(32, 4)).astype("float32")
    y = rng.normal(size=(32, 2)).astype("float32")
    model = keras.Sequential(
        [keras.Input((4,)), FMLayer(output_dim=2, factor_order=2, dtype=policy)]
    )
    assert_training_reduces_loss(
        model, x, y, optimizer=keras.optimizers.Adam(0.05), epochs=5, batch_size=8
    )


def test_jit_compile() -> None:
    rng = np.random.default_rng(8)
    x = rng.normal(size=(16, 6)).astype("float32")
    layer = FMLayer(output_dim=2, factor_order=3, activation="sigmoid")
    model = keras.Sequential([keras.Input((6,)), layer])
    w, v, b = random_weights(layer, rng)
    model.compile(optimizer="sgd", loss="mse", jit_compile=True)
    assert model.jit_compile  # XLA really in use, not silently turned off
    out = model.predict(x, verbose=0)

    def sigmoid(a: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-a))

    np.testing.assert_allclose(out, reference(x, w, v, b, sigmoid), rtol=1e-5, atol=1e-5)
    history = model.fit(x, np.zeros((16, 2)), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


def test_get_config_round_trip() -> None:
    layer = FMLayer(
        output_dim=3,
        factor_order=2,
        activation="relu",
        kernel_initializer="he_normal",
        factor_initializer=keras.initializers.RandomNormal(stddev=0.01),
        bias_initializer="ones",
        kernel_regularizer="l2",
        factor_regularizer=keras.regularizers.L1(0.1),
        bias_regularizer="l1",
        kernel_constraint="max_norm",
        factor_constraint="unit_norm",
        bias_constraint="non_neg",
        activity_regularizer="l2",
        name="fm",
    )
    config = layer.get_config()
    assert config["output_dim"] == 3
    assert config["factor_order"] == 2
    assert config["activation"] == "relu"
    clone = FMLayer.from_config(config)
    assert clone.get_config() == config
    assert isinstance(clone.factor_initializer, keras.initializers.RandomNormal)
    assert isinstance(clone.factor_regularizer, keras.regularizers.L1)
    assert isinstance(clone.factor_constraint, keras.constraints.UnitNorm)
    x = np.random.default_rng(9).normal(size=(2, 4)).astype("float32")
    layer(x)
    clone(x)
    clone.set_weights(layer.get_weights())
    np.testing.assert_array_equal(ops.convert_to_numpy(layer(x)), ops.convert_to_numpy(clone(x)))


def test_from_minimal_keras2_style_config() -> None:
    layer = FMLayer.from_config(
        {"name": "fm_layer_3", "output_dim": 200, "factor_order": 100, "activation": None}
    )
    assert (layer.output_dim, layer.factor_order) == (200, 100)
    assert tuple(layer(np.ones((1, 250), dtype="float32")).shape) == (1, 200)


def test_registered_under_package_name() -> None:
    serialized = keras.saving.serialize_keras_object(FMLayer(2, 2))
    assert serialized["registered_name"] == "layerhub_fm>FMLayer"
    assert isinstance(keras.saving.deserialize_keras_object(serialized), FMLayer)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"output_dim": 0, "factor_order": 2}, "Received: output_dim=0"),
        ({"output_dim": -3, "factor_order": 2}, "Received: output_dim=-3"),
        ({"output_dim": 2.5, "factor_order": 2}, "Received: output_dim=2.5"),
        ({"output_dim": True, "factor_order": 2}, "Received: output_dim=True"),
        ({"output_dim": 2, "factor_order": 0}, "Received: factor_order=0"),
        ({"output_dim": 2, "factor_order": "4"}, "Received: factor_order='4'"),
    ],
)
def test_constructor_validation(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        FMLayer(**kwargs)


def test_numpy_integer_sizes_are_accepted() -> None:
    layer = FMLayer(np.int64(3), np.int32(2))
    assert layer.get_config()["output_dim"] == 3
    assert type(layer.get_config()["factor_order"]) is int


def test_unknown_feature_size_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"Received: input_shape=\(None, None\)"):
        FMLayer(2, 2).build((None, None))


def test_check_layer(tmp_path: Path) -> None:
    # Fresh-interpreter save/load round trip and the other generic checks of the test kit.
    from layerhub.testing import check_layer

    check_layer(FMLayer, {"output_dim": 3, "factor_order": 2}, (2, 6), tmp_path=tmp_path)


# -- masking ----------------------------------------------------------------------------------


def test_mask_passes_through() -> None:
    from layerhub.testing import assert_mask_passes_through

    assert_mask_passes_through(
        FMLayer(3, factor_order=2, kernel_initializer=keras.initializers.GlorotUniform(seed=1))
    )
