"""LocallyConnected1D/2D against tf-keras's layers, which are the reference here."""

from __future__ import annotations

import itertools
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from layerhub_locally_connected import _base
from layerhub_locally_connected.locally_connected1d import LocallyConnected1D
from layerhub_locally_connected.locally_connected2d import LocallyConnected2D

from layerhub.testing import assert_training_reduces_loss, input_gradients, weight_gradients

tf_keras = pytest.importorskip("tf_keras")

RNG = np.random.default_rng(11)
OURS = {1: LocallyConnected1D, 2: LocallyConnected2D}
THEIRS = {1: tf_keras.layers.LocallyConnected1D, 2: tf_keras.layers.LocallyConnected2D}
# channels_last spatial input shapes, odd sizes so windows do not tile evenly.
SPATIAL = {1: (9,), 2: (7, 6)}
KERNEL = {1: 3, 2: (3, 2)}


def _input(rank: int, data_format: str, batch: int = 3, channels: int = 2) -> np.ndarray:
    spatial = SPATIAL[rank]
    shape = (batch, *spatial, channels)
    if data_format == "channels_first":
        shape = (batch, channels, *spatial)
    return RNG.normal(size=shape).astype("float32")


def _pair(rank: int, x: np.ndarray, **kwargs: object) -> tuple[keras.layers.Layer, object]:
    """Our layer, built and holding the weights of a freshly called tf-keras layer."""
    theirs = THEIRS[rank](**kwargs, bias_initializer="random_normal")
    theirs(x)
    ours = OURS[rank](**kwargs)
    ours.build(x.shape)
    ours.set_weights(theirs.get_weights())
    return ours, theirs


@pytest.fixture(params=["dense", "local"])
def path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Force one of the two compute paths (the layer picks one by size at build)."""
    monkeypatch.setattr(_base, "_DENSE_MIN_DENSITY", 0.0 if request.param == "dense" else 2.0)
    return str(request.param)


CASES = [
    (rank, implementation, padding, data_format, strides)
    for rank, implementation, padding, data_format, strides in itertools.product(
        (1, 2), (1, 2, 3), ("valid", "same"), ("channels_last", "channels_first"), (1, 2)
    )
    if not (implementation == 1 and padding == "same")
]


@pytest.mark.parametrize(("rank", "implementation", "padding", "data_format", "strides"), CASES)
def test_matches_tf_keras(
    path: str, rank: int, implementation: int, padding: str, data_format: str, strides: int
) -> None:
    x = _input(rank, data_format)
    kwargs = {
        "filters": 4,
        "kernel_size": KERNEL[rank],
        "strides": strides if rank == 1 else (strides, 1),
        "padding": padding,
        "data_format": data_format,
        "implementation": implementation,
    }
    ours, theirs = _pair(rank, x, **kwargs)
    assert ours._dense_path == (path == "dense")
    expected = theirs(x).numpy()
    got = keras.ops.convert_to_numpy(ours(x))
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() < 1e-5
    assert tuple(ours.compute_output_shape(x.shape)) == expected.shape
    assert tuple(ours.compute_output_shape((None, *x.shape[1:]))) == (None, *expected.shape[1:])
    assert [w.path.split("/")[-1] for w in ours.weights] == ["kernel", "bias"]
    assert [tuple(w.shape) for w in ours.weights] == [tuple(w.shape) for w in theirs.weights]
    if implementation == 2:
        np.testing.assert_array_equal(ours.kernel_mask, theirs.kernel_mask)
    if implementation == 3:
        np.testing.assert_array_equal(ours.kernel_idxs, np.array(theirs.kernel_idxs))


@pytest.mark.parametrize(
    ("rank", "implementation", "padding", "data_format"),
    [
        (2, 1, "valid", "channels_last"),
        (2, 2, "same", "channels_first"),
        (2, 3, "same", "channels_last"),
        (1, 2, "valid", "channels_last"),
        (1, 3, "valid", "channels_first"),
    ],
)
def test_gradients_match_tf_keras(
    path: str, rank: int, implementation: int, padding: str, data_format: str
) -> None:
    x = tf.constant(_input(rank, data_format))
    kwargs = {
        "filters": 3,
        "kernel_size": KERNEL[rank],
        "strides": 2,
        "padding": padding,
        "data_format": data_format,
        "implementation": implementation,
        "activation": "tanh",
    }
    ours, theirs = _pair(rank, x.numpy(), **kwargs)
    upstream = RNG.normal(size=theirs(x).shape).astype("float32")

    def their_loss(y: object) -> object:  # tf-keras runs on TensorFlow whatever the backend
        return tf.reduce_sum(y * upstream)

    def our_loss(y: object) -> object:
        return keras.ops.sum(y * upstream)

    # d/dx first, then d/dkernel and d/dbias; the same helper serves the tf-keras layer.
    expected = [*input_gradients(theirs, x, their_loss), *weight_gradients(theirs, x, their_loss)]
    got = [*input_gradients(ours, x, our_loss), *weight_gradients(ours, x, our_loss)]
    assert len(got) == len(expected) == 3
    for g, e in zip(got, expected, strict=True):
        assert g is not None
        assert e is not None
        assert np.abs(e).max() > 0
        assert np.abs(g - e).max() < 1e-5
    if implementation == 2:
        # Weights outside the receptive fields are masked out: no gradient.
        assert not got[1][np.broadcast_to(ours.kernel_mask, got[1].shape) == 0].any()


def test_defaults_and_config_match_tf_keras() -> None:
    for rank in (1, 2):
        ours, theirs = OURS[rank](5, 3), THEIRS[rank](5, 3)
        ours_config, theirs_config = ours.get_config(), theirs.get_config()
        assert set(theirs_config) - {"batch_input_shape"} <= set(ours_config)
        for key in ("filters", "kernel_size", "strides", "padding", "data_format"):
            assert tuple(np.atleast_1d(ours_config[key])) == tuple(
                np.atleast_1d(theirs_config[key])
            )
        assert (ours.use_bias, ours.implementation) == (True, 1)
        assert ours_config["activation"] == "linear"


def test_config_round_trip_and_keras2_config() -> None:
    layer = LocallyConnected2D(
        4,
        (3, 2),
        strides=(2, 1),
        padding="same",
        data_format="channels_first",
        activation="relu",
        use_bias=False,
        kernel_initializer="he_normal",
        kernel_regularizer=keras.regularizers.L2(0.01),
        bias_regularizer="l1",
        activity_regularizer="l2",
        kernel_constraint="max_norm",
        bias_constraint="non_neg",
        implementation=3,
        name="lc",
    )
    config = layer.get_config()
    clone = LocallyConnected2D.from_config(config)
    assert clone.get_config() == config
    assert config["kernel_size"] == (3, 2)
    assert config["implementation"] == 3

    # A tf-keras (Keras 2) config, with its own serialisation of initializers etc.
    theirs = tf_keras.layers.LocallyConnected1D(
        3, 2, padding="same", implementation=2, kernel_regularizer="l2", activation="tanh"
    )
    ours = LocallyConnected1D.from_config(theirs.get_config())
    assert (ours.kernel_size, ours.padding, ours.implementation) == ((2,), "same", 2)
    assert isinstance(ours.kernel_regularizer, keras.regularizers.L2)


def test_data_format_defaults_to_keras_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(keras.config, "image_data_format", lambda: "channels_first")
    assert LocallyConnected2D(2, 3).data_format == "channels_first"


@pytest.mark.parametrize(
    ("cls", "kwargs", "shape", "message"),
    [
        (LocallyConnected2D, {"filters": 0, "kernel_size": 3}, None, "Received: filters=0"),
        (LocallyConnected1D, {"filters": 2.5, "kernel_size": 3}, None, "Received: filters=2.5"),
        (
            LocallyConnected2D,
            {"filters": 2, "kernel_size": (3, 3, 3)},
            None,
            "kernel_size=(3, 3, 3)",
        ),
        (LocallyConnected1D, {"filters": 2, "kernel_size": "3"}, None, "Received: kernel_size='3'"),
        (LocallyConnected2D, {"filters": 2, "kernel_size": 3, "strides": 0}, None, "strides=0"),
        (
            LocallyConnected1D,
            {"filters": 2, "kernel_size": 3, "padding": "causal"},
            None,
            "'causal'",
        ),
        (
            LocallyConnected2D,
            {"filters": 2, "kernel_size": 3, "padding": "same"},
            None,
            "implementation=1.*Received: padding='same'",
        ),
        (
            LocallyConnected2D,
            {"filters": 2, "kernel_size": 3, "data_format": "NHWC"},
            None,
            "Received: data_format='NHWC'",
        ),
        (LocallyConnected1D, {"filters": 2, "kernel_size": 3, "implementation": 4}, None, "=4"),
        (LocallyConnected1D, {"filters": 2, "kernel_size": 3, "implementation": 2.0}, None, "=2.0"),
        (
            LocallyConnected1D,
            {"filters": 2, "kernel_size": 3, "implementation": True},
            None,
            "=True",
        ),
        (LocallyConnected2D, {"filters": 2, "kernel_size": 3}, (2, None, 5, 3), "None, 5, 3"),
        (LocallyConnected1D, {"filters": 2, "kernel_size": 3}, (2, 8), "input_shape=(2, 8)"),
        (LocallyConnected1D, {"filters": 2, "kernel_size": 5}, (2, 4, 3), "input_shape=(2, 4, 3)"),
    ],
)
def test_bad_arguments(
    cls: type, kwargs: dict[str, object], shape: tuple[int | None, ...] | None, message: str
) -> None:
    escaped = message.replace("(", r"\(").replace(")", r"\)")
    with pytest.raises(ValueError, match=escaped):
        cls(**kwargs).build(shape)


def test_numpy_integer_arguments() -> None:
    x = np.random.default_rng(5).normal(size=(2, 6, 3)).astype("float32")
    layer = LocallyConnected1D(
        np.int64(2), np.int32(3), strides=(np.int64(1),), implementation=np.int64(2)
    )
    config = layer.get_config()
    for key, value in [("filters", 2), ("kernel_size", (3,)), ("implementation", 2)]:
        assert config[key] == value
    assert type(config["implementation"]) is int
    reference = LocallyConnected1D(2, 3, implementation=2)
    reference.build(x.shape)
    layer.build(x.shape)
    layer.set_weights(reference.get_weights())
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(layer(x)), keras.ops.convert_to_numpy(reference(x)), rtol=1e-6
    )


@pytest.mark.parametrize("implementation", [1, 2, 3])
def test_gradients_non_zero_and_training(path: str, implementation: int) -> None:
    x = RNG.normal(size=(16, 8, 8, 2)).astype("float32")
    y = RNG.normal(size=(16, 6, 6, 3)).astype("float32")
    layer = LocallyConnected2D(3, 3, implementation=implementation, bias_initializer="ones")
    grads = weight_gradients(layer, x, lambda out: keras.ops.mean((out - y) ** 2))
    assert len(grads) == 2
    assert all(g is not None and np.abs(g).max() > 0 for g in grads)

    model = keras.Sequential([keras.Input((8, 8, 2)), layer])
    # Five full-batch steps, as five train_on_batch calls would take.
    assert_training_reduces_loss(
        model,
        x,
        y,
        optimizer=keras.optimizers.SGD(0.1),
        epochs=5,
        batch_size=len(x),
        jit_compile=True,
    )


@pytest.mark.parametrize(("rank", "implementation"), [(2, 1), (2, 3), (1, 2)])
def test_jit_compile_and_unknown_batch(path: str, rank: int, implementation: int) -> None:
    x = _input(rank, "channels_last", batch=5)
    padding = "valid" if implementation == 1 else "same"
    layer = OURS[rank](3, KERNEL[rank], padding=padding, implementation=implementation)
    inputs = keras.Input(x.shape[1:])
    outputs = layer(inputs)
    assert outputs.shape == layer.compute_output_shape((None, *x.shape[1:]))
    model = keras.Model(inputs, outputs)
    eager = keras.ops.convert_to_numpy(model(x))
    model.compile(jit_compile=True)
    compiled = model.predict(x, batch_size=2, verbose=0)  # a last partial batch too
    np.testing.assert_allclose(compiled, eager, atol=1e-5)
    if keras.backend.backend() == "tensorflow":
        jitted = tf.function(layer.__call__, jit_compile=True)
        np.testing.assert_allclose(jitted(x).numpy(), eager, atol=1e-5)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
@pytest.mark.parametrize(("implementation", "padding"), [(1, "valid"), (2, "same"), (3, "same")])
def test_mixed_precision(path: str, policy: str, implementation: int, padding: str) -> None:
    x = _input(2, "channels_last", channels=3)
    kwargs = {"filters": 4, "kernel_size": 3, "padding": padding, "implementation": implementation}
    reference = LocallyConnected2D(**kwargs)
    expected = keras.ops.convert_to_numpy(reference(x))
    layer = LocallyConnected2D(**kwargs, dtype=policy)
    layer.build(x.shape)
    layer.set_weights(reference.get_weights())
    got = layer(x)
    assert keras.backend.standardize_dtype(got.dtype) == policy.removeprefix("mixed_")
    assert all(w.dtype == "float32" for w in layer.weights)
    tolerance = 2e-2 if policy == "mixed_float16" else 1e-1
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(keras.ops.cast(got, "float32")), expected, atol=tolerance
    )


def test_regularizers_and_constraints_apply() -> None:
    layer = LocallyConnected1D(
        2,
        3,
        implementation=3,
        kernel_regularizer=keras.regularizers.L2(0.5),
        activity_regularizer=keras.regularizers.L1(0.25),
        kernel_constraint=keras.constraints.NonNeg(),
    )
    x = RNG.normal(size=(4, 6, 2)).astype("float32")
    y = keras.ops.convert_to_numpy(layer(x))
    kernel = keras.ops.convert_to_numpy(layer.kernel)
    losses = sorted(float(v) for v in layer.losses)
    expected = sorted([0.5 * float(np.sum(kernel**2)), 0.25 * float(np.abs(y).sum()) / len(x)])
    np.testing.assert_allclose(losses, expected, rtol=1e-5)
    constrained = layer.kernel_constraint(keras.ops.convert_to_tensor([-1.0, 2.0]))
    assert keras.ops.convert_to_numpy(constrained).min() == 0


def test_keras_archive_round_trip(tmp_path: Path) -> None:
    x = _input(2, "channels_first")
    model = keras.Sequential(
        [
            keras.Input(x.shape[1:]),
            LocallyConnected2D(
                3, 2, implementation=2, padding="same", data_format="channels_first"
            ),
            LocallyConnected2D(2, 2, implementation=3, data_format="channels_first"),
        ]
    )
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.layers[0].__class__ is LocallyConnected2D
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)
    assert keras.saving.get_registered_name(LocallyConnected2D) == (
        "layerhub_locally_connected>LocallyConnected2D"
    )


@pytest.fixture
def keras2_h5(tmp_path: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    """A tf-keras (Keras 2) model with both layers and all implementations, as `.h5`."""
    x = RNG.normal(size=(4, 10, 3)).astype("float32")
    inputs = tf_keras.Input((10, 3))
    h = tf_keras.layers.LocallyConnected1D(4, 3, implementation=1, activation="tanh")(inputs)
    h = tf_keras.layers.LocallyConnected1D(4, 3, padding="same", implementation=3)(h)
    h = tf_keras.layers.Reshape((8, 4, 1))(h)
    h = tf_keras.layers.LocallyConnected2D(
        2, (3, 2), strides=(2, 1), padding="same", implementation=2, bias_initializer="ones"
    )(h)
    outputs = tf_keras.layers.LocallyConnected2D(
        3, 2, data_format="channels_first", implementation=1, bias_initializer="random_normal"
    )(h)
    model = tf_keras.Model(inputs, outputs)
    model.compile(optimizer="adam", loss="mse")
    path = tmp_path / "keras2.h5"
    model.save(path, save_format="h5")
    return path, x, model.predict(x, verbose=0)


def test_keras2_h5_loads_with_legacy_names(keras2_h5: tuple[Path, np.ndarray, np.ndarray]) -> None:
    import layerhub_locally_connected

    path, x, expected = keras2_h5
    legacy = layerhub_locally_connected.layerhub_legacy_names()
    assert legacy == {
        "LocallyConnected1D": LocallyConnected1D,
        "LocallyConnected2D": LocallyConnected2D,
    }
    model = keras.saving.load_model(path, custom_objects=legacy, compile=False)
    assert np.abs(model.predict(x, verbose=0) - expected).max() < 1e-5


def test_keras2_h5_loads_through_layerhub(keras2_h5: tuple[Path, np.ndarray, np.ndarray]) -> None:
    layerhub = pytest.importorskip("layerhub")
    if not hasattr(layerhub, "Registry") or not hasattr(layerhub, "load_model"):
        pytest.skip("layerhub core without Registry/load_model")
    import layerhub_locally_connected

    registry = layerhub.Registry(autoload=False)
    registry.register(layerhub_locally_connected)
    path, x, expected = keras2_h5
    model = layerhub.load_model(path, registry=registry, compile=False)
    assert isinstance(model.layers[-1], LocallyConnected2D)
    assert np.abs(model.predict(x, verbose=0) - expected).max() < 1e-5
    # Bare names go to Keras for that one call only, never to the global registry.
    assert keras.saving.get_registered_object("LocallyConnected2D") is None


def test_check_layer_kit() -> None:
    from importlib import metadata

    from layerhub.testing import check_layer

    try:
        metadata.distribution("layerhub-locally-connected")
        skip: tuple[int, ...] = ()
    except metadata.PackageNotFoundError:
        # Rules 2 and 7 need the plugin installed (tox installs it as a wheel).
        skip = (2, 7)
    check_layer(LocallyConnected2D, {"filters": 3, "kernel_size": 3}, (2, 6, 6, 2), skip=skip)
    check_layer(
        LocallyConnected1D,
        {"filters": 3, "kernel_size": 3, "padding": "same", "implementation": 3},
        (2, 7, 2),
        skip=skip,
    )
    check_layer(
        LocallyConnected2D,
        {"filters": 2, "kernel_size": 2, "implementation": 2, "data_format": "channels_first"},
        (2, 3, 5, 4),
        skip=skip,
    )
