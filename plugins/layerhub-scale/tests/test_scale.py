from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pytest
from keras import ops
from layerhub_scale import Scale

from layerhub.testing import assert_training_reduces_loss, check_layer, weight_gradients

RNG = np.random.default_rng(7)


def reference(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, axes: list[int]) -> np.ndarray:
    shape = [x.shape[d] if d in axes else 1 for d in range(x.ndim)]
    return x * gamma.reshape(shape) + beta.reshape(shape)


@pytest.mark.parametrize(
    ("shape", "axis", "axes"),
    [((4, 5), -1, [1]), ((2, 3, 4, 5), 1, [1]), ((2, 3, 4, 5), [1, 3], [1, 3])],
)
def test_matches_numpy(shape: tuple[int, ...], axis: int | list[int], axes: list[int]) -> None:
    x = RNG.normal(size=shape).astype("float32")
    layer = Scale(axis=axis)
    layer.build(shape)
    gamma = RNG.normal(size=layer.gamma.shape).astype("float32")
    beta = RNG.normal(size=layer.beta.shape).astype("float32")
    layer.set_weights([gamma, beta])
    np.testing.assert_allclose(
        ops.convert_to_numpy(layer(x)), reference(x, gamma, beta, axes), rtol=1e-6, atol=1e-6
    )


def test_weights_in_keras2_order_and_defaults() -> None:
    layer = Scale()
    layer.build((None, 6))
    assert [w.path.split("/")[-1] for w in layer.weights] == ["gamma", "beta"]
    np.testing.assert_array_equal(layer.gamma.numpy(), np.ones(6))
    np.testing.assert_array_equal(layer.beta.numpy(), np.zeros(6))


def test_config_keeps_keras2_keys_and_rebuilds() -> None:
    layer = Scale(
        axis=[1, 2], momentum=0.5, gamma_initializer="random_normal", gamma_regularizer="l2"
    )
    config = layer.get_config()
    assert config["momentum"] == 0.5
    assert config["axis"] == [1, 2]
    clone = Scale.from_config(config)
    assert clone.get_config() == config


def test_gradients_reach_every_weight_and_training_lowers_loss() -> None:
    x = RNG.normal(size=(16, 3)).astype("float32")
    target = x * np.array([2.0, -1.0, 0.5], "float32") + 1.0
    layer = Scale()
    grads = weight_gradients(layer, x, lambda y: ops.mean(ops.square(ops.subtract(y, target))))
    assert len(grads) == 2
    assert all(g is not None and np.abs(g).max() > 0 for g in grads)
    model = keras.Sequential([keras.Input((3,)), layer])
    # Ten full-batch steps, as ten train_on_batch calls would take.
    assert_training_reduces_loss(
        model, x, target, optimizer=keras.optimizers.SGD(0.1), epochs=10, batch_size=len(x)
    )


@pytest.mark.parametrize(
    ("kwargs", "shape", "message"),
    [
        ({"axis": []}, None, "Received: axis=[]"),
        ({"axis": "channels"}, None, "Received: axis=channels"),
        ({"axis": 3}, (2, 3), "Received: axis=3"),
        ({"axis": 1}, (2, None), "Received: input_shape=(2, None)"),
    ],
)
def test_bad_arguments(
    kwargs: dict[str, object], shape: tuple[int | None, ...] | None, message: str
) -> None:
    with pytest.raises(
        ValueError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")
    ):
        Scale(**kwargs).build(shape) if shape else Scale(**kwargs)


def test_conformance(tmp_path: Path) -> None:
    check_layer(Scale, {"gamma_initializer": "random_normal"}, (2, 3, 4), tmp_path=tmp_path)
    check_layer(Scale, {"axis": [1, 2]}, (2, 3, 4), tmp_path=tmp_path)


# -- masking ----------------------------------------------------------------------------------


def test_mask_passes_through() -> None:
    from layerhub.testing import assert_mask_passes_through

    assert_mask_passes_through(
        Scale(gamma_initializer=keras.initializers.Constant(2.0), beta_initializer="ones")
    )


# -- NumPy integers ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("axis", "expected_config", "axes"),
    [
        (np.int64(-1), -1, [3]),
        (np.int32(1), 1, [1]),
        ([np.int64(1), 3], [1, 3], [1, 3]),
        (np.array([1, 3]), [1, 3], [1, 3]),
    ],
)
def test_numpy_integer_axis(axis: object, expected_config: object, axes: list[int]) -> None:
    x = RNG.normal(size=(2, 3, 4, 5)).astype("float32")
    layer = Scale(axis=axis)
    config = layer.get_config()
    assert config["axis"] == expected_config
    json.dumps(config)  # NumPy integers would not serialise
    layer.build(x.shape)
    gamma = RNG.normal(size=layer.gamma.shape).astype("float32")
    beta = RNG.normal(size=layer.beta.shape).astype("float32")
    layer.set_weights([gamma, beta])
    np.testing.assert_allclose(
        ops.convert_to_numpy(layer(x)), reference(x, gamma, beta, axes), rtol=1e-6, atol=1e-6
    )


@pytest.mark.parametrize("axis", [True, 1.0, [], [1, "2"], "1"])
def test_rejects_non_integer_axis(axis: object) -> None:
    with pytest.raises(ValueError, match="Received: axis="):
        Scale(axis=axis)


# -- Keras 2 argument names --------------------------------------------------------------------


def test_densenet_keras2_constructor_runs_unchanged() -> None:
    # DenseNet-Keras builds its Scale layers exactly like this.
    x = RNG.normal(size=(2, 4, 4, 3)).astype("float32")
    layer = Scale(axis=3, momentum=0.9, beta_init="zero", gamma_init="one", weights=None)
    np.testing.assert_allclose(ops.convert_to_numpy(layer(x)), x, rtol=1e-6)
    config = layer.get_config()
    assert "gamma_init" not in config
    assert "beta_init" not in config
    assert "weights" not in config
    assert config["gamma_initializer"]["class_name"] == "Ones"
    assert config["beta_initializer"]["class_name"] == "Zeros"


def test_keras2_weights_argument_sets_gamma_and_beta_on_build() -> None:
    x = RNG.normal(size=(2, 3)).astype("float32")
    gamma = RNG.normal(size=(3,)).astype("float32")
    beta = RNG.normal(size=(3,)).astype("float32")
    layer = Scale(weights=[gamma, beta])
    np.testing.assert_allclose(
        ops.convert_to_numpy(layer(x)), reference(x, gamma, beta, [1]), rtol=1e-6, atol=1e-6
    )


def test_keras2_and_keras3_names_for_one_argument_conflict() -> None:
    with pytest.raises(ValueError, match="Received: gamma_init='one', gamma_initializer='zeros'"):
        Scale(gamma_init="one", gamma_initializer="zeros")
