"""Tests for the DANet position attention module (PAM)."""

from __future__ import annotations

import inspect
import re

import keras
import numpy as np
import pytest
from layerhub_pam.pam_layer import PAM

from layerhub.testing import (
    assert_training_reduces_loss,
    check_layer,
    input_gradients,
    weight_gradients,
)

CHANNELS = 16


# --------------------------------------------------------------------------- helpers


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def pam_reference(x, wq, bq, wk, wv, bv, gamma):
    """DANet PAM written out in NumPy (float64), channels-last, 1x1 convs as matmuls."""
    x = np.asarray(x, dtype=np.float64)
    b, h, w, c = x.shape
    a = x.reshape(b, h * w, c)
    q = a @ wq + bq  # (b, N, C')
    k = a @ wk  # (b, N, C')
    v = a @ wv + bv  # (b, N, C)
    attention = _softmax(q @ k.transpose(0, 2, 1))  # (b, N, N), rows sum to 1
    # out_i = sum_j attention[i, j] * v_j, written as an explicit loop-free einsum.
    out = np.einsum("bij,bjc->bic", attention, v)
    return gamma * out.reshape(b, h, w, c) + x


def randomize(layer: PAM, seed: int = 0) -> dict[str, np.ndarray]:
    """Give every weight a random non-zero value; returns them for the reference."""
    rng = np.random.default_rng(seed)
    c = layer.value_conv.kernel.shape[-1]
    ck = layer.query_conv.kernel.shape[-1]
    values = {
        "wq": rng.normal(0, 0.5, (c, ck)),
        "bq": rng.normal(0, 0.5, (ck,)),
        "wk": rng.normal(0, 0.5, (c, ck)),
        "wv": rng.normal(0, 0.5, (c, c)),
        "bv": rng.normal(0, 0.5, (c,)),
        "gamma": np.array([0.7]),
    }
    layer.query_conv.kernel.assign(values["wq"].reshape(1, 1, c, ck))
    layer.query_conv.bias.assign(values["bq"])
    layer.key_conv.kernel.assign(values["wk"].reshape(1, 1, c, ck))
    layer.value_conv.kernel.assign(values["wv"].reshape(1, 1, c, c))
    layer.value_conv.bias.assign(values["bv"])
    layer.gamma.assign(values["gamma"])
    return values


def built_layer(input_shape=(None, None, None, CHANNELS), seed=0, **kwargs):
    layer = PAM(**kwargs)
    layer.build(input_shape)
    return layer, randomize(layer, seed)


@pytest.fixture
def x():
    return np.random.default_rng(42).normal(size=(2, 5, 6, CHANNELS)).astype("float32")


# --------------------------------------------------------------------------- numerics


def test_matches_numpy_reference(x):
    layer, w = built_layer()
    expected = pam_reference(x, **w)
    actual = keras.ops.convert_to_numpy(layer(x))
    # The check must not be trivially satisfied by the residual path.
    assert np.abs(expected - x).max() > 0.1
    np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-4)


def test_reduction_controls_query_key_channels(x):
    layer, w = built_layer(reduction=4)
    assert tuple(layer.query_conv.kernel.shape) == (1, 1, CHANNELS, 4)
    assert tuple(layer.key_conv.kernel.shape) == (1, 1, CHANNELS, 4)
    assert tuple(layer.value_conv.kernel.shape) == (1, 1, CHANNELS, CHANNELS)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(layer(x)), pam_reference(x, **w), rtol=1e-4, atol=1e-4
    )


def test_gamma_starts_at_zero_so_layer_starts_as_identity(x):
    layer = PAM()
    y = keras.ops.convert_to_numpy(layer(x))
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer.gamma), [0.0])
    np.testing.assert_allclose(y, x, rtol=0, atol=0)


def test_weights_and_shapes():
    layer, _ = built_layer()
    shapes = {w.path.split("/", 1)[1]: tuple(w.shape) for w in layer.weights}
    assert shapes == {
        "gamma": (1,),
        "query_conv/kernel": (1, 1, CHANNELS, 2),
        "query_conv/bias": (2,),
        # No key bias: it would add a per-row constant that the softmax removes.
        "key_conv/kernel": (1, 1, CHANNELS, 2),
        "value_conv/kernel": (1, 1, CHANNELS, CHANNELS),
        "value_conv/bias": (CHANNELS,),
    }
    no_bias = PAM(use_bias=False)
    no_bias.build((None, 4, 4, CHANNELS))
    assert len(no_bias.weights) == 4


def test_key_bias_would_be_inert(x):
    # Why the key projection has no bias: shifting every key by one vector adds a
    # per-row constant to the scores, which the softmax removes.
    _, w = built_layer()
    b, h, wd, c = x.shape
    a = x.reshape(b, h * wd, c).astype(np.float64)
    q = a @ w["wq"] + w["bq"]
    k = a @ w["wk"] + np.random.default_rng(3).normal(size=w["wk"].shape[1])
    v = a @ w["wv"] + w["bv"]
    with_key_bias = w["gamma"] * (_softmax(q @ k.transpose(0, 2, 1)) @ v).reshape(x.shape) + x
    np.testing.assert_allclose(with_key_bias, pam_reference(x, **w), rtol=1e-10, atol=1e-10)


# --------------------------------------------------------------------------- shapes


def test_unknown_batch_and_spatial_size():
    layer, w = built_layer()
    inputs = keras.Input((None, None, CHANNELS))
    outputs = layer(inputs)
    assert tuple(outputs.shape) == (None, None, None, CHANNELS)
    model = keras.Model(inputs, outputs)
    rng = np.random.default_rng(1)
    for shape in [(1, 3, 4, CHANNELS), (3, 7, 2, CHANNELS)]:
        x = rng.normal(size=shape).astype("float32")
        y = model.predict(x, verbose=0)
        assert y.shape == shape
        np.testing.assert_allclose(y, pam_reference(x, **w), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    "input_shape", [(2, 5, 6, CHANNELS), (None, 5, 6, CHANNELS), (None, None, None, CHANNELS)]
)
def test_compute_output_shape_matches_call(input_shape):
    layer = PAM()
    assert layer.compute_output_shape(input_shape) == input_shape
    symbolic = layer(keras.Input(batch_shape=input_shape))
    assert tuple(symbolic.shape) == input_shape
    concrete = tuple(d or 3 for d in input_shape)
    real = layer(np.ones(concrete, "float32"))
    assert tuple(real.shape) == layer.compute_output_shape(concrete)


# --------------------------------------------------------------------------- build-only weights


def test_weights_are_created_in_build_only(x):
    layer, _ = built_layer()
    first = keras.ops.convert_to_numpy(layer(x))
    weights = list(layer.weights)
    second = keras.ops.convert_to_numpy(layer(x))
    layer(keras.Input((None, None, CHANNELS)))
    assert len(layer.weights) == len(weights) == 6
    assert all(a is b for a, b in zip(layer.weights, weights, strict=True))
    # Fresh convolutions on every call (the seed's bug) would change the output.
    np.testing.assert_array_equal(first, second)


# --------------------------------------------------------------------------- compile / dtype


def test_jit_compile(x):
    layer, w = built_layer()
    inputs = keras.Input((None, None, CHANNELS))
    model = keras.Model(inputs, layer(inputs))
    model.compile(optimizer="sgd", loss="mse", jit_compile=True)
    np.testing.assert_allclose(
        model.predict(x, verbose=0), pam_reference(x, **w), rtol=1e-4, atol=1e-4
    )
    history = model.fit(x, np.zeros_like(x), epochs=2, batch_size=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision(policy, x):
    compute = policy.split("_")[1]
    layer, w = built_layer(dtype=policy)
    for sub in (layer.query_conv, layer.key_conv, layer.value_conv):
        assert sub.compute_dtype == compute
        assert sub.kernel.dtype == "float32"
    assert layer.gamma.dtype == "float32"
    y = layer(x)
    assert keras.backend.standardize_dtype(y.dtype) == compute
    y = keras.ops.convert_to_numpy(keras.ops.cast(y, "float32"))
    tol = 5e-2 if compute == "float16" else 2e-1
    np.testing.assert_allclose(y, pam_reference(x, **w), rtol=tol, atol=tol)


def test_float16_scores_do_not_overflow():
    # Large activations push query . key past float16's maximum of 65504; the scores
    # are formed in float32, so the output stays finite.
    layer, w = built_layer(dtype="mixed_float16")
    x = np.random.default_rng(7).normal(0, 100, size=(1, 6, 6, CHANNELS)).astype("float16")
    a = x.reshape(-1, CHANNELS).astype(np.float64)
    scores = (a @ w["wq"] + w["bq"]) @ (a @ w["wk"]).T
    assert np.abs(scores).max() > 65504
    y = keras.ops.convert_to_numpy(keras.ops.cast(layer(x), "float32"))
    assert np.all(np.isfinite(y))


def test_mixed_precision_global_policy(x):
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        inputs = keras.Input((None, None, CHANNELS))
        model = keras.Model(inputs, PAM(gamma_initializer="ones")(inputs))
        model.compile(optimizer="adam", loss="mse", jit_compile=True)
        history = model.fit(x, x * 0.5, epochs=2, verbose=0)
    finally:
        keras.config.set_dtype_policy(previous)
    assert np.all(np.isfinite(history.history["loss"]))


# --------------------------------------------------------------------------- training


def test_every_trainable_weight_gets_a_gradient(x):
    # randomize() sets gamma to 0.7. With the default gamma=0 the attention branch is
    # multiplied by zero, so query/key/value weights would get exactly zero gradient
    # (see test_zero_gamma_only_trains_gamma); that is DANet's design, not a bug.
    layer, _ = built_layer()
    grads = weight_gradients(layer, x)
    for weight, grad in zip(layer.trainable_weights, grads, strict=True):
        assert grad is not None, weight.path
        assert np.abs(grad).max() > 1e-6, weight.path


def test_zero_gamma_only_trains_gamma(x):
    layer = PAM()
    layer.build(x.shape)
    paths = [w.path for w in layer.trainable_weights]
    grads = dict(zip(paths, weight_gradients(layer, x), strict=True))
    assert np.abs(grads[layer.gamma.path]).max() > 1e-6
    for path, grad in grads.items():
        if path != layer.gamma.path:
            assert grad is None or np.abs(grad).max() == 0.0, path


def test_optimizer_steps_reduce_loss(x):
    keras.utils.set_random_seed(0)
    target_layer, _ = built_layer(seed=5)
    target = keras.ops.convert_to_numpy(target_layer(x))
    inputs = keras.Input((None, None, CHANNELS))
    model = keras.Model(inputs, PAM(reduction=4)(inputs))
    assert_training_reduces_loss(
        model, x, target, optimizer=keras.optimizers.Adam(0.05), epochs=10, batch_size=2, factor=0.9
    )


def test_regularizers_and_constraints_reach_every_weight(x):
    layer = PAM(
        kernel_regularizer="l2",
        bias_regularizer="l1",
        gamma_regularizer="l2",
        kernel_constraint="non_neg",
        bias_constraint="non_neg",
        gamma_constraint="non_neg",
    )
    layer(x)
    # 3 kernels + 2 biases + gamma.
    assert len(layer.losses) == 6
    assert all(w.constraint is not None for w in layer.weights)


# --------------------------------------------------------------------------- config / saving


NON_DEFAULT_KWARGS = {
    "reduction": 4,
    "use_bias": False,
    "kernel_initializer": "he_normal",
    "bias_initializer": "ones",
    "kernel_regularizer": {"class_name": "L2", "config": {"l2": 0.01}},
    "bias_regularizer": "l1",
    "kernel_constraint": "max_norm",
    "bias_constraint": "non_neg",
    "gamma_initializer": "ones",
    "gamma_regularizer": "l2",
    "gamma_constraint": "non_neg",
    "attention_chunk_size": 64,
}


def test_get_config_holds_every_constructor_argument():
    layer = PAM(**NON_DEFAULT_KWARGS, name="my_pam")
    config = layer.get_config()
    params = set(inspect.signature(PAM.__init__).parameters) - {"self", "kwargs"}
    assert params <= set(config)
    assert set(NON_DEFAULT_KWARGS) == params
    assert config["reduction"] == 4
    assert config["use_bias"] is False
    restored = PAM.from_config(config)
    assert restored.get_config() == config
    assert isinstance(restored.kernel_regularizer, keras.regularizers.L2)
    assert restored.kernel_regularizer.l2 == pytest.approx(0.01)


def test_registered_under_plugin_package():
    assert keras.saving.get_registered_name(PAM) == "layerhub_pam>PAM"
    assert keras.saving.get_registered_object("layerhub_pam>PAM") is PAM


def test_keras_file_round_trip_in_process(tmp_path, x):
    layer, _ = built_layer()
    inputs = keras.Input((None, None, CHANNELS))
    model = keras.Model(inputs, layer(inputs))
    path = tmp_path / "pam.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


@pytest.mark.slow
def test_check_layer_conformance(tmp_path):
    # gamma="ones": with the default gamma=0 the projection weights have zero gradient.
    check_layer(PAM, {"reduction": 4, "gamma_initializer": "ones"}, (2, 5, 6, 8), tmp_path=tmp_path)


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize("reduction", [0, -1, 1.5, True, "8", None])
def test_invalid_reduction(reduction):
    with pytest.raises(ValueError, match=f"Received: reduction={reduction!r}"):
        PAM(reduction=reduction)


def test_numpy_integer_reduction_accepted():
    layer = PAM(reduction=np.int64(4))
    assert type(layer.get_config()["reduction"]) is int


def test_invalid_use_bias():
    with pytest.raises(ValueError, match="Received: use_bias='yes'"):
        PAM(use_bias="yes")


def test_too_few_channels_for_reduction():
    with pytest.raises(ValueError, match="Received: channels=4"):
        PAM()(np.zeros((1, 3, 3, 4), "float32"))
    with pytest.raises(ValueError, match="Received: channels=4"):
        PAM(reduction=5).build((None, None, None, 4))
    PAM(reduction=4).build((None, None, None, 4))  # exactly enough: one key channel


def test_unknown_channels_rejected():
    with pytest.raises(ValueError, match=r"Received: input_shape=\(None, 4, 4, None\)"):
        PAM().build((None, 4, 4, None))


def test_wrong_rank_rejected():
    with pytest.raises(ValueError, match="ndim=4"):
        PAM()(keras.Input((10, CHANNELS)))


# --------------------------------------------------------------------------- docs


# --------------------------------------------------------------------------- initial weights


def _projection_kernels(layer: PAM) -> list[np.ndarray]:
    return [
        keras.ops.convert_to_numpy(conv.kernel)
        for conv in (layer.query_conv, layer.key_conv, layer.value_conv)
    ]


@pytest.mark.parametrize(
    "initializer",
    [
        "glorot_uniform",
        keras.initializers.GlorotUniform(seed=3),
        keras.initializers.RandomNormal(seed=keras.random.SeedGenerator(1)),
    ],
    ids=["unseeded", "int-seed", "seed-generator"],
)
def test_projections_start_from_different_kernels(initializer):
    # With reduction=1 all three kernels have one shape; one shared initializer instance
    # returned the same values for each, so query and key started equal.
    layer = PAM(reduction=1, kernel_initializer=initializer)
    layer.build((None, 4, 4, CHANNELS))
    query, key, value = _projection_kernels(layer)
    assert not np.allclose(query, key)
    assert not np.allclose(query, value)
    assert not np.allclose(key, value)


def test_projection_biases_start_different_with_a_random_initializer():
    layer = PAM(reduction=1, bias_initializer=keras.initializers.RandomUniform(seed=4))
    layer.build((None, 4, 4, CHANNELS))
    query_bias = keras.ops.convert_to_numpy(layer.query_conv.bias)
    value_bias = keras.ops.convert_to_numpy(layer.value_conv.bias)
    assert not np.allclose(query_bias, value_bias)


def test_seeded_initializer_stays_reproducible_and_in_the_config():
    initializer = keras.initializers.GlorotUniform(seed=3)
    first, second = PAM(kernel_initializer=initializer), PAM(kernel_initializer=initializer)
    first.build((None, 4, 4, CHANNELS))
    second.build((None, 4, 4, CHANNELS))
    for a, b in zip(_projection_kernels(first), _projection_kernels(second), strict=True):
        np.testing.assert_array_equal(a, b)
    # The per-projection copies are internal: the config keeps the initializer as given.
    assert first.get_config()["kernel_initializer"]["config"]["seed"] == 3
    assert PAM.from_config(first.get_config()).get_config() == first.get_config()


def _assert_close(actual, expected, rtol=1e-5):
    # Relative to the largest entry: gradients sum over N positions and reach ~1e2.
    expected = np.asarray(expected)
    np.testing.assert_allclose(
        actual, expected, rtol=rtol, atol=rtol * max(1.0, float(np.abs(expected).max()))
    )


def _numeric_gradient(f, value, eps=1e-6):
    """Central differences of the float64 function ``f`` at every entry of ``value``."""
    value = np.array(value, dtype=np.float64)
    grad = np.empty_like(value)
    for i in np.ndindex(value.shape):
        saved = value[i]
        value[i] = saved + eps
        up = f(value)
        value[i] = saved - eps
        grad[i] = (up - f(value)) / (2 * eps)
        value[i] = saved
    return grad


@pytest.mark.parametrize("shape", [(2, 5, 6, CHANNELS), (1, 3, 4, CHANNELS)])
def test_dense_gradients_match_finite_differences_of_the_reference(shape):
    # The dense path writes its gradient out (delta = rowsum(dO * O)), so it is checked
    # against the NumPy reference differentiated numerically, not against autodiff.
    layer, w = built_layer(attention_chunk_size=None)
    rng = np.random.default_rng(sum(shape))
    x = rng.normal(size=shape).astype("float32")
    upstream = rng.normal(size=shape)

    def reference_loss(**changed):
        return float(np.sum(pam_reference(changed.pop("x", x), **{**w, **changed}) * upstream))

    def loss(y):
        return keras.ops.sum(y * upstream.astype("float32"))

    names = {"query_conv/kernel": "wq", "query_conv/bias": "bq", "key_conv/kernel": "wk"}
    names |= {"value_conv/kernel": "wv", "value_conv/bias": "bv", "gamma": "gamma"}
    grads = weight_gradients(layer, x, loss)
    for weight, got in zip(layer.trainable_weights, grads, strict=True):
        name = names[weight.path.split("/", 1)[1]]
        want = _numeric_gradient(lambda v, n=name: reference_loss(**{n: v}), w[name])
        _assert_close(got.reshape(want.shape), want, rtol=1e-4)
    (got,) = input_gradients(layer, x, loss)
    _assert_close(got, _numeric_gradient(lambda v: reference_loss(x=v), x), rtol=1e-4)


# --------------------------------------------------------------------------- chunked attention


def _pair(chunk, input_shape=(None, None, None, CHANNELS), seed=0, **kwargs):
    """A dense PAM and a chunked one with the same random non-zero weights."""
    dense, w = built_layer(input_shape, seed=seed, attention_chunk_size=None, **kwargs)
    chunked = PAM(attention_chunk_size=chunk, **kwargs)
    chunked.build(input_shape)
    chunked.set_weights(dense.get_weights())
    return dense, chunked, w


@pytest.mark.parametrize(
    ("shape", "chunk"),
    [
        ((2, 5, 6, CHANNELS), 7),  # N = 30, not a multiple of the chunk: padded last chunk
        ((2, 8, 8, CHANNELS), 16),  # N = 64, a multiple
        ((1, 9, 7, CHANNELS), 1),  # one query per chunk
        ((2, 3, 3, CHANNELS), 100),  # one chunk bigger than the map
        ((1, 16, 17, CHANNELS), 50),  # N = 272, 6 chunks evened out to 46
    ],
)
def test_chunked_equals_dense_outputs_and_gradients(shape, chunk):
    dense, chunked, w = _pair(chunk)
    rng = np.random.default_rng(sum(shape) + chunk)
    x = rng.normal(size=shape).astype("float32")
    upstream = rng.normal(size=shape).astype("float32")

    def loss(y):
        return keras.ops.sum(y * upstream)

    expected = keras.ops.convert_to_numpy(dense(x))
    _assert_close(keras.ops.convert_to_numpy(chunked(x)), expected)
    np.testing.assert_allclose(expected, pam_reference(x, **w), rtol=1e-4, atol=1e-4)
    for got, want in zip(
        weight_gradients(chunked, x, loss), weight_gradients(dense, x, loss), strict=True
    ):
        assert np.abs(want).max() > 1e-3
        _assert_close(got, want)
    (got,) = input_gradients(chunked, x, loss)
    (want,) = input_gradients(dense, x, loss)
    _assert_close(got, want)


@pytest.mark.parametrize("jit_compile", [False, True])
def test_chunked_with_unknown_spatial_size(jit_compile):
    # Traced with None height and width, the chunk count is a tensor: the loops are
    # keras.ops.scan, and N = 7 * 5 = 35 is not a multiple of the chunk of 8.
    dense, chunked, _ = _pair(8)
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, 7, 5, CHANNELS)).astype("float32")
    y = rng.normal(size=x.shape).astype("float32")

    def train_step(layer, jit):
        inputs = keras.Input((None, None, CHANNELS))
        model = keras.Model(inputs, layer(inputs))
        model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse", jit_compile=jit)
        return model

    reference = train_step(dense, False)
    model = train_step(chunked, jit_compile)
    _assert_close(model.predict(x, verbose=0), reference.predict(x, verbose=0))
    model.train_on_batch(x, y)
    reference.train_on_batch(x, y)
    for got, want in zip(chunked.get_weights(), dense.get_weights(), strict=True):
        _assert_close(got, want)


def test_chunked_gradients_under_unknown_spatial_size_tensorflow():
    # tf.function with a None-shaped signature: the chunk plan is computed in the graph.
    if keras.backend.backend() != "tensorflow":
        pytest.skip("a traced unknown spatial size exists only on TensorFlow (JAX specialises)")
    import tensorflow as tf

    dense, chunked, _ = _pair(4)
    x = np.random.default_rng(4).normal(size=(1, 3, 5, CHANNELS)).astype("float32")

    def grads(layer):
        @tf.function(input_signature=[tf.TensorSpec((None, None, None, CHANNELS))])
        def run(inputs):
            with tf.GradientTape() as tape:
                tape.watch(inputs)
                loss = tf.reduce_sum(tf.square(layer(inputs)))
            return tape.gradient(loss, [inputs, *[w.value for w in layer.trainable_weights]])

        return [g.numpy() for g in run(x)]

    for got, want in zip(grads(chunked), grads(dense), strict=True):
        _assert_close(got, want)


def test_chunked_jit_compile_trains():
    dense, chunked, _ = _pair(16, input_shape=(None, 6, 6, CHANNELS))
    x = np.random.default_rng(5).normal(size=(4, 6, 6, CHANNELS)).astype("float32")
    inputs = keras.Input((6, 6, CHANNELS))
    model = keras.Model(inputs, chunked(inputs))
    model.compile(optimizer="sgd", loss="mse", jit_compile=True)
    _assert_close(model.predict(x, verbose=0), keras.ops.convert_to_numpy(dense(x)))
    history = model.fit(x, np.zeros_like(x), epochs=2, batch_size=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_chunked_mixed_precision(policy, x):
    compute = policy.split("_")[1]
    layer, w = built_layer(dtype=policy, attention_chunk_size=7)
    y = layer(x)
    assert keras.backend.standardize_dtype(y.dtype) == compute
    y = keras.ops.convert_to_numpy(keras.ops.cast(y, "float32"))
    tol = 5e-2 if compute == "float16" else 2e-1
    np.testing.assert_allclose(y, pam_reference(x, **w), rtol=tol, atol=tol)
    grads = weight_gradients(layer, x)
    assert all(g is not None and np.all(np.isfinite(g)) for g in grads)


def test_auto_picks_dense_for_small_maps_and_chunks_for_large():
    layer = PAM()
    assert layer.attention_chunk_size == "auto"
    assert layer._chunk_for(64 * 64) is None
    assert layer._chunk_for(64 * 64 + 1) == 1024
    assert layer._chunk_for(128 * 128) == 1024
    assert layer._chunk_for(None) == 1024  # unknown while tracing
    assert PAM(attention_chunk_size=None)._chunk_for(10**6) is None
    assert PAM(attention_chunk_size=32)._chunk_for(4) == 32


@pytest.mark.parametrize("value", ["auto", None, 1, 512, np.int64(256)])
def test_attention_chunk_size_round_trips_through_config(value):
    config = PAM(attention_chunk_size=value).get_config()
    expected = value if value is None or isinstance(value, str) else int(value)
    assert config["attention_chunk_size"] == expected
    assert type(config["attention_chunk_size"]) is type(expected)
    restored = PAM.from_config(config)
    assert restored.attention_chunk_size == expected
    assert restored.get_config() == config


@pytest.mark.parametrize("value", [0, -3, 2.5, True, "dense", "", [8]])
def test_invalid_attention_chunk_size(value):
    with pytest.raises(ValueError, match=re.escape(f"Received: attention_chunk_size={value!r}")):
        PAM(attention_chunk_size=value)


def test_config_saved_before_attention_chunk_size_loads(tmp_path, x):
    layer, _ = built_layer()
    inputs = keras.Input((None, None, CHANNELS))
    model = keras.Model(inputs, layer(inputs))
    config = model.get_config()
    for entry in config["layers"]:
        if entry["class_name"] == "PAM" or entry.get("registered_name") == "layerhub_pam>PAM":
            del entry["config"]["attention_chunk_size"]
            old_layer_config = entry["config"]
    restored = keras.Model.from_config(config)
    restored.set_weights(model.get_weights())
    assert restored.layers[-1].attention_chunk_size == "auto"
    np.testing.assert_array_equal(restored.predict(x, verbose=0), model.predict(x, verbose=0))
    assert PAM.from_config(old_layer_config).attention_chunk_size == "auto"
