"""Tests for the DANet channel attention module (CAM)."""

from __future__ import annotations

import inspect

import keras
import numpy as np
import pytest
from layerhub_pam.cam_layer import CAM

from layerhub.testing import assert_training_reduces_loss, check_layer, weight_gradients

CHANNELS = 8
GAMMA = 0.7


# --------------------------------------------------------------------------- helpers


def cam_attention_branch(x):
    """DANet CAM without the residual, in NumPy float64: returns attention . A, channels-last."""
    x = np.asarray(x, dtype=np.float64)
    b, h, w, c = x.shape
    a = x.reshape(b, h * w, c).transpose(0, 2, 1)  # (b, C, N), as in DANet
    energy = a @ a.transpose(0, 2, 1)  # (b, C, C)
    energy_new = energy.max(axis=-1, keepdims=True) - energy
    e = np.exp(energy_new - energy_new.max(axis=-1, keepdims=True))
    attention = e / e.sum(axis=-1, keepdims=True)
    out = attention @ a  # (b, C, N)
    return out.transpose(0, 2, 1).reshape(b, h, w, c)


def cam_reference(x, gamma):
    return gamma * cam_attention_branch(x) + np.asarray(x, dtype=np.float64)


def built_layer(input_shape=(None, None, None, CHANNELS), gamma=GAMMA, **kwargs):
    layer = CAM(**kwargs)
    layer.build(input_shape)
    layer.gamma.assign([gamma])
    return layer


@pytest.fixture
def x():
    # Small values keep the softmax away from one-hot, so every entry matters.
    return np.random.default_rng(42).normal(0, 0.3, size=(2, 5, 6, CHANNELS)).astype("float32")


# --------------------------------------------------------------------------- numerics


def test_matches_numpy_reference(x):
    layer = built_layer()
    expected = cam_reference(x, GAMMA)
    actual = keras.ops.convert_to_numpy(layer(x))
    assert np.abs(expected - x).max() > 0.05  # not satisfied by the residual alone
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5)


def test_max_subtracted_softmax_is_not_plain_softmax(x):
    # Guards the DANet formulation: softmax(max - energy) differs from softmax(energy).
    a = x.reshape(2, -1, CHANNELS).transpose(0, 2, 1).astype(np.float64)
    energy = a @ a.transpose(0, 2, 1)
    e = np.exp(energy - energy.max(axis=-1, keepdims=True))
    plain = GAMMA * (e / e.sum(-1, keepdims=True) @ a).transpose(0, 2, 1).reshape(x.shape) + x
    actual = keras.ops.convert_to_numpy(built_layer()(x))
    assert np.abs(actual - plain).max() > 1e-2


def test_gamma_starts_at_zero_so_layer_starts_as_identity(x):
    layer = CAM()
    y = keras.ops.convert_to_numpy(layer(x))
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer.gamma), [0.0])
    np.testing.assert_allclose(y, x, rtol=0, atol=0)


def test_single_weight():
    layer = built_layer()
    assert [(w.path, tuple(w.shape)) for w in layer.weights] == [(layer.gamma.path, (1,))]


# --------------------------------------------------------------------------- shapes


def test_unknown_batch_and_spatial_size():
    layer = built_layer()
    inputs = keras.Input((None, None, CHANNELS))
    outputs = layer(inputs)
    assert tuple(outputs.shape) == (None, None, None, CHANNELS)
    model = keras.Model(inputs, outputs)
    rng = np.random.default_rng(1)
    for shape in [(1, 3, 4, CHANNELS), (3, 7, 2, CHANNELS)]:
        x = rng.normal(0, 0.3, size=shape).astype("float32")
        y = model.predict(x, verbose=0)
        assert y.shape == shape
        np.testing.assert_allclose(y, cam_reference(x, GAMMA), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "input_shape", [(2, 5, 6, CHANNELS), (None, 5, 6, CHANNELS), (None, None, None, CHANNELS)]
)
def test_compute_output_shape_matches_call(input_shape):
    layer = CAM()
    assert layer.compute_output_shape(input_shape) == input_shape
    symbolic = layer(keras.Input(batch_shape=input_shape))
    assert tuple(symbolic.shape) == input_shape
    concrete = tuple(d or 3 for d in input_shape)
    real = layer(np.ones(concrete, "float32"))
    assert tuple(real.shape) == layer.compute_output_shape(concrete)


def test_weights_are_created_in_build_only(x):
    layer = built_layer()
    first = keras.ops.convert_to_numpy(layer(x))
    weights = list(layer.weights)
    second = keras.ops.convert_to_numpy(layer(x))
    layer(keras.Input((None, None, CHANNELS)))
    assert len(layer.weights) == len(weights) == 1
    assert layer.weights[0] is weights[0]
    np.testing.assert_array_equal(first, second)


# --------------------------------------------------------------------------- compile / dtype


def test_jit_compile(x):
    layer = built_layer()
    inputs = keras.Input((None, None, CHANNELS))
    model = keras.Model(inputs, layer(inputs))
    model.compile(optimizer="sgd", loss="mse", jit_compile=True)
    np.testing.assert_allclose(
        model.predict(x, verbose=0), cam_reference(x, GAMMA), rtol=1e-5, atol=1e-5
    )
    history = model.fit(x, np.zeros_like(x), epochs=2, batch_size=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision(policy, x):
    compute = policy.split("_")[1]
    layer = built_layer(dtype=policy)
    assert layer.gamma.dtype == "float32"
    y = layer(x)
    assert keras.backend.standardize_dtype(y.dtype) == compute
    y = keras.ops.convert_to_numpy(keras.ops.cast(y, "float32"))
    tol = 1e-2 if compute == "float16" else 5e-2
    np.testing.assert_allclose(y, cam_reference(x, GAMMA), rtol=tol, atol=tol)


def test_float16_energy_does_not_overflow():
    # 1024 positions with activations around 10 give channel energies near 1e5,
    # beyond float16's maximum of 65504: the energy must be formed in float32.
    x = np.random.default_rng(7).normal(0, 10, size=(1, 32, 32, CHANNELS))
    x16 = x.astype("float16")
    assert (x16.astype(np.float64) ** 2).sum(axis=(1, 2)).max() > 65504
    layer = built_layer(dtype="mixed_float16")
    y = keras.ops.convert_to_numpy(keras.ops.cast(layer(x16), "float32"))
    assert np.all(np.isfinite(y))
    expected = cam_reference(x16.astype(np.float64), GAMMA)
    np.testing.assert_allclose(y, expected, rtol=1e-2, atol=0.1)


def test_mixed_precision_global_policy(x):
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        inputs = keras.Input((None, None, CHANNELS))
        model = keras.Model(inputs, CAM()(inputs))
        model.compile(optimizer="adam", loss="mse", jit_compile=True)
        history = model.fit(x, x * 0.5, epochs=2, verbose=0)
    finally:
        keras.config.set_dtype_policy(previous)
    assert np.all(np.isfinite(history.history["loss"]))


# --------------------------------------------------------------------------- training


def test_gamma_gradient_matches_reference(x):
    # d/dgamma sum(y^2) = sum(2 * y * branch), with y = gamma * branch + x; sum(y^2) is
    # weight_gradients' default loss.
    layer = built_layer()
    (grad,) = weight_gradients(layer, x)
    branch = cam_attention_branch(x)
    expected = np.sum(2 * (GAMMA * branch + x) * branch)
    assert abs(expected) > 1e-3
    np.testing.assert_allclose(grad, [expected], rtol=1e-4)


def test_every_trainable_weight_gets_a_gradient(x):
    # gamma is CAM's only weight; unlike PAM's projections it gets a gradient even at gamma=0.
    for gamma in (0.0, GAMMA):
        layer = built_layer(gamma=gamma)
        grads = weight_gradients(layer, x)
        assert len(grads) == len(layer.trainable_weights) == 1
        assert all(g is not None and np.abs(g).max() > 1e-6 for g in grads)


def test_optimizer_steps_reduce_loss(x):
    target = cam_reference(x, 0.5).astype("float32")
    inputs = keras.Input((None, None, CHANNELS))
    layer = CAM()
    model = keras.Model(inputs, layer(inputs))
    assert_training_reduces_loss(
        model, x, target, optimizer=keras.optimizers.Adam(0.05), epochs=5, batch_size=2, factor=0.5
    )
    assert float(keras.ops.convert_to_numpy(layer.gamma)[0]) > 0.1


def test_regularizer_and_constraint(x):
    layer = CAM(gamma_initializer="ones", gamma_regularizer="l2", gamma_constraint="non_neg")
    layer(x)
    assert len(layer.losses) == 1
    assert layer.gamma.constraint is not None


# --------------------------------------------------------------------------- config / saving

NON_DEFAULT_KWARGS = {
    "gamma_initializer": {"class_name": "Constant", "config": {"value": 0.25}},
    "gamma_regularizer": {"class_name": "L1", "config": {"l1": 0.02}},
    "gamma_constraint": "non_neg",
}


def test_get_config_holds_every_constructor_argument():
    layer = CAM(**NON_DEFAULT_KWARGS, name="my_cam")
    config = layer.get_config()
    params = set(inspect.signature(CAM.__init__).parameters) - {"self", "kwargs"}
    assert params == set(NON_DEFAULT_KWARGS)
    assert params <= set(config)
    restored = CAM.from_config(config)
    assert restored.get_config() == config
    restored.build((None, 2, 2, CHANNELS))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(restored.gamma), [0.25])


def test_registered_under_plugin_package():
    assert keras.saving.get_registered_name(CAM) == "layerhub_pam>CAM"
    assert keras.saving.get_registered_object("layerhub_pam>CAM") is CAM


def test_keras_file_round_trip_in_process(tmp_path, x):
    inputs = keras.Input((None, None, CHANNELS))
    model = keras.Model(inputs, built_layer()(inputs))
    path = tmp_path / "cam.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


@pytest.mark.slow
def test_check_layer_conformance(tmp_path):
    check_layer(CAM, {"gamma_initializer": "ones"}, (2, 5, 6, CHANNELS), tmp_path=tmp_path)


# --------------------------------------------------------------------------- validation


def test_unknown_channels_rejected():
    with pytest.raises(ValueError, match=r"Received: input_shape=\(None, 4, 4, None\)"):
        CAM().build((None, 4, 4, None))


def test_wrong_rank_rejected():
    with pytest.raises(ValueError, match="ndim=4"):
        CAM()(keras.Input((10, CHANNELS)))
    with pytest.raises(ValueError, match=r"Received: input_shape=\(None, 10, 8\)"):
        CAM().build((None, 10, CHANNELS))


def test_invalid_initializer_rejected():
    with pytest.raises(ValueError, match="no_such_initializer"):
        CAM(gamma_initializer="no_such_initializer")


# --------------------------------------------------------------------------- docs
