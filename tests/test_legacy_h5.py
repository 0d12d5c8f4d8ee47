"""Keras 2 ``.h5`` files and SavedModel directories, written by tf-keras, loaded in Keras 3.

One tf-keras interpreter (``keras2_models.py``, session scoped) writes every file with reference
inputs and outputs; the tests load them here, in Keras 3, and compare.
"""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import h5py
import keras
import numpy as np
import pytest
from layerhub_fm import FMLayer
from layerhub_l2norm import L2Normalization
from layerhub_mylayer import MyLayer, MyMultiLayer
from layerhub_scale import Scale

import layerhub
from layerhub import MissingPluginError, UnsafeModelError, registry
from layerhub._private.formats.hdf5 import open_hdf5
from layerhub._private.guard import checks, config_tree
from layerhub.testing import run_in_fresh_interpreter

GENERATOR = Path(__file__).with_name("keras2_models.py")
# The generator starts TensorFlow with tf-keras once per session: every test that needs its
# files is slow, and marked keras2 so that a run can keep the files and select these tests
# alone (mutation testing does, with LAYERHUB_KERAS2_FILES).
FILES_ENV = "LAYERHUB_KERAS2_FILES"
Test = TypeVar("Test", bound=Callable[..., None])


def keras2(test: Test) -> Test:
    marked: Test = pytest.mark.slow(pytest.mark.keras2(test))
    return marked


Arrays = tuple[list[np.ndarray], list[np.ndarray]]


@pytest.fixture(scope="session")
def keras2_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every Keras 2 model file with its reference arrays, written by one tf-keras interpreter."""
    if importlib.util.find_spec("tf_keras") is None:
        pytest.skip("tf-keras (a test dependency) is not installed")
    kept = os.environ.get(FILES_ENV)
    out = Path(kept) if kept else tmp_path_factory.mktemp("keras2")
    if not (out / "index.json").is_file():  # the generator writes its index last
        out.mkdir(parents=True, exist_ok=True)
        run_in_fresh_interpreter(
            GENERATOR.read_text(), str(out), env={"TF_USE_LEGACY_KERAS": "1"}, timeout=300
        )
    return out


@pytest.fixture(scope="session")
def reference(keras2_dir: Path) -> Callable[[str], Arrays]:
    index = json.loads((keras2_dir / "index.json").read_text())["models"]

    def arrays(name: str) -> Arrays:
        counts = index[name]
        xs = [np.load(keras2_dir / f"{name}.x{i}.npy") for i in range(counts["inputs"])]
        ys = [np.load(keras2_dir / f"{name}.y{i}.npy") for i in range(counts["outputs"])]
        return xs, ys

    return arrays


def predict(model: Any, xs: list[np.ndarray]) -> list[np.ndarray]:
    outputs = model(xs if len(xs) > 1 else xs[0], training=False)
    return [keras.ops.convert_to_numpy(y) for y in keras.tree.flatten(outputs)]


def assert_same_outputs(model: Any, arrays: Arrays) -> None:
    xs, expected = arrays
    got = predict(model, xs)
    assert len(got) == len(expected)
    for y, want in zip(got, expected, strict=True):
        assert y.shape == want.shape
        assert float(np.max(np.abs(y.astype("float64") - want))) < 1e-5


def layer_types(model: Any) -> list[type]:
    return [type(layer) for layer in model.layers]


# -- models of plugin layers -----------------------------------------------------------------------


@keras2
def test_sequential_model_gives_its_keras2_outputs(
    keras2_dir: Path, reference: Callable[[str], Arrays]
) -> None:
    model = layerhub.load_model(keras2_dir / "sequential.h5")
    assert layer_types(model) == [
        keras.layers.Dense,
        Scale,
        MyLayer,
        keras.layers.BatchNormalization,
        FMLayer,
    ]
    scale = model.layers[1]
    assert (scale.axis, scale.momentum) == (-1, 0.5)
    assert_same_outputs(model, reference("sequential"))


@keras2
def test_compiled_keras2_model_loads_compiled(
    keras2_dir: Path, reference: Callable[[str], Arrays]
) -> None:
    # Saved with loss="mse", an alias Keras 3 alone cannot read back from an .h5 file.
    model = layerhub.load_model(keras2_dir / "sequential.h5")
    assert isinstance(model.optimizer, keras.optimizers.Adam)
    assert float(model.optimizer.learning_rate) == pytest.approx(1e-3)
    assert model.loss is keras.losses.mean_squared_error
    (x,), (y,) = reference("sequential")
    target = np.ones_like(y)
    loss = model.evaluate(x, target, verbose=0, batch_size=len(x))
    assert loss == pytest.approx(float(np.mean((y - target) ** 2)), rel=1e-5)


@keras2
def test_functional_model_gives_its_keras2_outputs(
    keras2_dir: Path, reference: Callable[[str], Arrays]
) -> None:
    model = layerhub.load_model(keras2_dir / "functional.h5")
    used = set(layer_types(model))
    assert {Scale, L2Normalization, MyLayer, FMLayer} <= used
    l2 = next(layer for layer in model.layers if isinstance(layer, L2Normalization))
    assert l2.gamma_init == 20.0
    assert l2.axis == -1  # the Keras 2 layer's axis 3 of channels-last 4D input
    fm = model.get_layer("fm")
    assert (fm.output_dim, fm.factor_order) == (2, 3)
    assert fm.activation is keras.activations.sigmoid
    assert_same_outputs(model, reference("functional"))


@keras2
def test_weights_are_read_in_the_order_keras2_created_them(keras2_dir: Path) -> None:
    path = keras2_dir / "functional.h5"
    model = layerhub.load_model(path)
    scale = next(layer for layer in model.layers if isinstance(layer, Scale))
    expected = {
        model.get_layer("fm"): ["W", "V", "b"],
        scale: ["gamma", "beta"],
        next(layer for layer in model.layers if isinstance(layer, L2Normalization)): ["gamma"],
        next(layer for layer in model.layers if isinstance(layer, MyLayer)): ["kernel"],
    }
    with h5py.File(path, "r") as h5:
        for layer, names in expected.items():
            group = h5["model_weights"][layer.name]
            paths = [n.decode() if isinstance(n, bytes) else n for n in group.attrs["weight_names"]]
            saved = {Path(n).name.partition(":")[0]: np.asarray(group[n]) for n in paths}
            assert sorted(saved) == sorted(names)
            for weight, name in zip(layer.weights, names, strict=True):
                np.testing.assert_array_equal(keras.ops.convert_to_numpy(weight), saved[name])


@keras2
def test_registered_keras2_class_resolves_by_the_name_after_the_package(
    keras2_dir: Path, reference: Callable[[str], Arrays]
) -> None:
    path = keras2_dir / "registered.h5"
    assert "Custom>Scale" in config_tree.class_names(open_hdf5(path).config)
    model = layerhub.load_model(path)
    assert isinstance(model.layers[-1], Scale)
    assert_same_outputs(model, reference("registered"))


IMPORTED_PLUGINS = """
import json, sys
import keras
import layerhub

model = layerhub.load_model(sys.argv[1])
plugins = sorted(m for m in sys.modules if m.startswith("layerhub_") and "." not in m)
bare = sorted(name for name in keras.saving.get_custom_objects() if ">" not in name)
print(json.dumps({"plugins": plugins, "bare": bare}))
"""


@keras2
@pytest.mark.parametrize(
    ("name", "plugins"),
    [
        ("registered", ["layerhub_scale"]),
        ("functional", ["layerhub_fm", "layerhub_l2norm", "layerhub_mylayer", "layerhub_scale"]),
    ],
)
def test_loading_imports_only_the_plugins_the_file_needs(
    keras2_dir: Path, name: str, plugins: list[str]
) -> None:
    done = run_in_fresh_interpreter(IMPORTED_PLUGINS, str(keras2_dir / f"{name}.h5"))
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["plugins"] == plugins
    # Bare Keras 2 names went to that one load call, never into Keras' global registry.
    assert result["bare"] == []


@keras2
def test_registry_custom_objects_serve_plain_keras_without_touching_its_registry(
    keras2_dir: Path, reference: Callable[[str], Arrays]
) -> None:
    before = dict(keras.saving.get_custom_objects())
    objects = registry.custom_objects()
    assert objects["Scale"] is Scale
    assert objects["L2Normalization"] is L2Normalization
    assert objects["FMLayer"] is FMLayer
    assert objects["MyLayer"] is MyLayer
    assert all(">" not in name for name in objects)
    model = keras.saving.load_model(keras2_dir / "functional.h5", custom_objects=objects)
    assert_same_outputs(model, reference("functional"))
    # compile=False: Keras 3 cannot read Keras 2's loss="mse" back (layerhub.load_model can).
    model = keras.saving.load_model(
        keras2_dir / "sequential.h5", custom_objects=objects, compile=False
    )
    assert_same_outputs(model, reference("sequential"))
    after = keras.saving.get_custom_objects()
    assert [name for name in after if name not in before and ">" not in name] == []


# -- Lambda layers ---------------------------------------------------------------------------------


@keras2
@pytest.mark.parametrize(
    ("name", "parts"),
    [("lambda_bytecode", "function and output_shape"), ("lambda_function", "function")],
)
def test_keras2_lambda_bytecode_is_refused_under_safe_mode(
    keras2_dir: Path, name: str, parts: str
) -> None:
    with pytest.raises(UnsafeModelError) as caught:
        layerhub.load_model(keras2_dir / f"{name}.h5")
    message = str(caught.value)
    assert "\n" not in message
    assert f"holds Python bytecode in its {parts}" in message
    assert "would run as code" in message  # why
    assert "load it with safe_mode=False" in message  # how to opt in
    assert "Keras 2 saved every Python function" in message


@keras2
@pytest.mark.parametrize("name", ["lambda_bytecode", "lambda_function"])
def test_keras2_lambda_bytecode_loads_with_safe_mode_off(
    keras2_dir: Path, reference: Callable[[str], Arrays], name: str
) -> None:
    # lambda_bytecode also has an output_shape lambda, which Keras 3 alone takes for a shape.
    model = layerhub.load_model(keras2_dir / f"{name}.h5", safe_mode=False)
    assert_same_outputs(model, reference(name))


@keras2
def test_keras2_lambda_naming_a_plugin_function_loads_under_safe_mode(
    keras2_dir: Path, reference: Callable[[str], Arrays], tmp_path: Path
) -> None:
    from layerhub_functions import channel_slice

    path = keras2_dir / "lambda_by_name.h5"
    assert config_tree.lambda_function_names(open_hdf5(path).config) == {"channel_slice"}
    model = layerhub.load_model(path)
    lam = next(layer for layer in model.layers if isinstance(layer, keras.layers.Lambda))
    assert lam.function is channel_slice
    assert lam.arguments == {"index": 2}
    assert_same_outputs(model, reference("lambda_by_name"))
    # Saved again, the model names the registered function and still loads under safe_mode.
    saved = layerhub.save_model(model, tmp_path / "migrated.keras")
    assert_same_outputs(layerhub.load_model(saved), reference("lambda_by_name"))


@keras2
def test_migrating_a_keras2_lambda_model_to_a_file_that_loads_safely(
    keras2_dir: Path, reference: Callable[[str], Arrays], tmp_path: Path
) -> None:
    from layerhub_functions import channel_slice

    old = layerhub.load_model(keras2_dir / "lambda_function.h5", safe_mode=False)
    inputs = keras.Input(old.input_shape[1:])
    x = keras.layers.Lambda(channel_slice, arguments={"index": 1})(inputs)
    x = keras.layers.Flatten()(x)
    new = keras.Model(inputs, keras.layers.Dense(2)(x))
    new.set_weights(old.get_weights())
    path = layerhub.save_model(new, tmp_path / "new.keras")
    assert_same_outputs(layerhub.load_model(path), reference("lambda_function"))


def test_bytecode_in_any_keras2_lambda_slot_is_refused(tmp_path: Path) -> None:
    # A named output_shape function beside a lambda one: the bytecode still counts.
    lam = {
        "name": "shape_only",
        "function": "channel_slice",
        "function_type": "function",
        "output_shape": ["4wEAAAA=", None, None],
        "output_shape_type": "lambda",
    }
    config = {
        "class_name": "Sequential",
        "config": {"layers": [{"class_name": "Lambda", "config": lam}]},
    }
    with pytest.raises(
        UnsafeModelError, match="layer 'shape_only' holds Python bytecode in its output_shape"
    ):
        checks.refuse_bytecode(tmp_path / "m.h5", config)


# -- missing plugins -------------------------------------------------------------------------------


class Swish2(keras.layers.Layer):
    """The Keras 3 rewrite a user would pass for the unknown Keras 2 layer."""

    def call(self, x: Any) -> Any:
        return x * keras.ops.sigmoid(2.0 * x)


@keras2
def test_class_no_plugin_provides_raises_a_one_line_missing_plugin_error(
    keras2_dir: Path, reference: Callable[[str], Arrays]
) -> None:
    path = keras2_dir / "unknown_layer.h5"
    with pytest.raises(MissingPluginError) as caught:
        layerhub.load_model(path)
    assert caught.value.names == ("Swish2",)
    assert caught.value.pip_command is None
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(
        "the model needs Swish2, which neither Keras nor any installed layerhub plugin provides"
    )
    assert "custom_objects" in message
    # The user's own class, given for this one call, completes the model.
    model = layerhub.load_model(path, custom_objects={"Swish2": Swish2})
    assert_same_outputs(model, reference("unknown_layer"))


@keras2
def test_custom_object_scope_resolves_a_class_no_plugin_provides(
    keras2_dir: Path, reference: Callable[[str], Arrays]
) -> None:
    with keras.saving.custom_object_scope({"Swish2": Swish2}):
        model = layerhub.load_model(keras2_dir / "unknown_layer.h5")
    assert_same_outputs(model, reference("unknown_layer"))


USER_REGISTERED = """
    import sys
    import keras, numpy as np
    import layerhub

    @keras.saving.register_keras_serializable(package="myplug")
    class Twice(keras.layers.Layer):
        def call(self, x):
            return 2.0 * x

    path, x, y = sys.argv[1:4]
    model = layerhub.load_model(path)
    got = model.predict(np.load(x), verbose=0)
    print(float(np.max(np.abs(got - np.load(y)))))
"""


@keras2
def test_a_class_the_users_own_code_registered_loads(keras2_dir: Path) -> None:
    # Keras 2 saved it as "myplug>Twice"; no plugin provides it, Keras' registry does.
    with pytest.raises(MissingPluginError, match=r"myplug>Twice.*import the module"):
        layerhub.load_model(keras2_dir / "user_registered.h5")
    files = [str(keras2_dir / f"user_registered.{part}") for part in ("h5", "x0.npy", "y0.npy")]
    done = run_in_fresh_interpreter(USER_REGISTERED, *files)
    assert float(done.stdout.split()[-1]) < 1e-6


def my_loss(y_true: Any, y_pred: Any) -> Any:
    return keras.ops.mean(keras.ops.abs(y_true - y_pred))


@keras2
def test_compiled_file_with_a_custom_loss_says_how_to_load_it(keras2_dir: Path) -> None:
    path = keras2_dir / "custom_loss.h5"
    with pytest.raises(MissingPluginError) as caught:
        layerhub.load_model(path)
    message = str(caught.value)
    assert caught.value.names == ("my_loss",)  # "mae", a Keras metric, is not reported
    assert "\n" not in message
    assert "training configuration" in message
    assert "compile=False" in message
    assert "custom_objects" in message
    assert not layerhub.load_model(path, compile=False).compiled
    compiled = layerhub.load_model(path, custom_objects={"my_loss": my_loss})
    assert compiled.loss is my_loss


@keras2
def test_keras2_mixed_precision_file_keeps_its_policy(
    keras2_dir: Path, reference: Callable[[str], Arrays]
) -> None:
    model = layerhub.load_model(keras2_dir / "mixed_precision.h5")
    policies = [layer.dtype_policy.name for layer in model.layers]
    assert policies == ["mixed_float16", "float32"]
    xs, ys = reference("mixed_precision")
    # float16 activations: Keras 2 and Keras 3 round differently in the last bits.
    np.testing.assert_allclose(predict(model, xs)[0], ys[0], rtol=1e-2, atol=1e-2)


def test_keras_builtins_come_from_keras_own_tables() -> None:
    from layerhub._private.keras2 import translation as translation

    for name in ("Dense", "GlorotUniform", "L2", "MaxNorm", "relu", "Adam", "Policy"):
        assert translation.builtin(name), name
    assert not translation.builtin("Swish2")
    assert not translation.builtin("MyLayer")


# -- Keras 2 SavedModel directories ---------------------------------------------------------------


@keras2
@pytest.mark.parametrize("name", ["sequential", "functional", "nested"])
def test_keras2_savedmodel_directory_loads_with_keras2_outputs(
    keras2_dir: Path, reference: Callable[[str], Arrays], name: str
) -> None:
    model = layerhub.load_model(keras2_dir / f"{name}_savedmodel", compile=False)
    assert_same_outputs(model, reference(name))
    # A real Keras 3 model, trainable, with the plugin layers in it.
    assert isinstance(model, keras.Model)
    assert model.trainable_weights


@keras2
def test_savedmodel_and_h5_of_one_model_load_to_the_same_layers(keras2_dir: Path) -> None:
    from_dir = layerhub.load_model(keras2_dir / "sequential_savedmodel", compile=False)
    from_h5 = layerhub.load_model(keras2_dir / "sequential.h5", compile=False)
    assert (
        layer_types(from_dir)
        == layer_types(from_h5)
        == [
            keras.layers.Dense,
            Scale,
            MyLayer,
            keras.layers.BatchNormalization,
            FMLayer,
        ]
    )
    for a, b in zip(from_dir.weights, from_h5.weights, strict=True):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b))


@keras2
def test_keras2_nested_model_h5_loads(keras2_dir: Path, reference: Callable[[str], Arrays]) -> None:
    # Keras 2 numbered a nested model's calls from 1; plain Keras 3 cannot rebuild this file.
    with pytest.raises(ValueError, match="disconnected nodes"):
        keras.saving.load_model(
            keras2_dir / "nested.h5", custom_objects=registry.custom_objects(), compile=False
        )
    assert_same_outputs(layerhub.load_model(keras2_dir / "nested.h5"), reference("nested"))


@keras2
def test_savedmodel_lambda_bytecode_obeys_safe_mode(
    keras2_dir: Path, reference: Callable[[str], Arrays]
) -> None:
    path = keras2_dir / "lambda_bytecode_savedmodel"
    with pytest.raises(UnsafeModelError, match="holds Python bytecode"):
        layerhub.load_model(path)
    assert_same_outputs(layerhub.load_model(path, safe_mode=False), reference("lambda_bytecode"))


@keras2
def test_subclassed_savedmodel_is_refused_in_one_line(keras2_dir: Path) -> None:
    with pytest.raises(layerhub.ModelFileError) as caught:
        layerhub.load_model(keras2_dir / "subclassed_savedmodel")
    assert str(caught.value) == (
        f"{keras2_dir / 'subclassed_savedmodel'} holds a subclassed Keras 2 model (Subclassed) "
        "whose layers exist only in its Python code, which the directory does not carry; "
        "layerhub cannot rebuild it: recreate the class in Keras 3 and load the weights from "
        "its checkpoint"
    )


@keras2
@pytest.mark.parametrize("suffix", [".h5", "_savedmodel"])
def test_compiled_keras2_optimizer_configuration_is_recovered(
    keras2_dir: Path, suffix: str
) -> None:
    from layerhub._private.keras2.translation import OptimizerStateWarning

    with pytest.warns(OptimizerStateWarning, match=r"SGD\(.*momentum=0.9, nesterov=True\)"):
        model = layerhub.load_model(keras2_dir / f"sgd_momentum{suffix}")
    config = model.optimizer.get_config()
    assert (config["momentum"], config["nesterov"]) == (pytest.approx(0.9), True)
    assert config["learning_rate"] == pytest.approx(0.05)


def test_a_directory_that_is_no_savedmodel_says_what_loads(tmp_path: Path) -> None:
    def said() -> str:
        with pytest.raises(layerhub.ModelFileError) as caught:
            layerhub.load_model(tmp_path)
        return str(caught.value)

    assert said() == (
        f"{tmp_path} is a directory but no SavedModel; layerhub loads .keras archives, "
        "Keras 2 .h5 files and Keras 2 SavedModel directories"
    )
    (tmp_path / "saved_model.pb").write_bytes(b"")
    assert said() == (
        f"{tmp_path} is a TensorFlow SavedModel without Keras metadata (exported, not saved "
        "with model.save); Keras 3 can only serve it as keras.layers.TFSMLayer"
    )
    (tmp_path / "keras_metadata.pb").write_bytes(b"\x0a\x05garbage")
    assert said() == (
        f"{tmp_path}: its keras_metadata.pb is corrupt: ValueError: unsupported wire type 7"
    )
    (tmp_path / "keras_metadata.pb").write_bytes(b"")
    assert said() == f"{tmp_path}: its keras_metadata.pb describes no model"


# -- layerhub convert ------------------------------------------------------------------------------


@keras2
@pytest.mark.parametrize("name", ["functional.h5", "sequential_savedmodel"])
def test_convert_writes_a_keras_file_that_reloads_with_equal_predictions(
    keras2_dir: Path, reference: Callable[[str], Arrays], tmp_path: Path, name: str
) -> None:
    done = layerhub.convert(keras2_dir / name, tmp_path / "new.keras", compile=False)
    assert done.ok
    assert done.max_difference <= 1e-5
    assert done.target == tmp_path / "new.keras"
    assert "layerhub_scale>Scale" in done.plugin_layers
    model = layerhub.load_model(done.target)
    assert done.weights == model.count_params()
    stem = name.removesuffix(".h5").removesuffix("_savedmodel")
    assert_same_outputs(model, reference(stem))


@keras2
def test_convert_command_prints_what_it_did_and_fails_beyond_atol(
    keras2_dir: Path, tmp_path: Path
) -> None:
    import subprocess
    import sysconfig

    layerhub_cmd = str(Path(sysconfig.get_path("scripts")) / "layerhub")
    target = tmp_path / "seq.keras"
    result = subprocess.run(
        [layerhub_cmd, "convert", str(keras2_dir / "sequential.h5"), str(target), "--no-compile"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    assert "plugin objects: layerhub_fm>FMLayer x1" in result.stdout
    assert "max |difference|" in result.stdout
    assert target.exists()
    # A negative tolerance no difference can meet: the exit status says so.
    failing = subprocess.run(
        [layerhub_cmd, "convert", str(keras2_dir / "sequential.h5"), str(target), "--atol=-1"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert failing.returncode == 1, failing.stderr
    assert "DIFFERENT" in failing.stdout


# -- .h5 files written by Keras 3 ------------------------------------------------------------------


def test_keras3_h5_file_of_plugin_layers_loads(tmp_path: Path) -> None:
    # Keras 3 writes registered names, DTypePolicy and __keras_tensor__ entries, and MyMultiLayer
    # has no Keras 2 name: it must be found by its registered name.
    a, b = keras.Input((4,)), keras.Input((3,))
    summed, mean = MyMultiLayer(output_dim=3)([Scale(beta_initializer="ones")(a), b])
    model = keras.Model([a, b], [summed, mean])
    model.compile(optimizer="adam", loss="mse")
    path = tmp_path / "keras3.h5"
    keras.saving.save_model(model, path)
    xs = [np.ones((2, 4), "float32"), np.ones((2, 3), "float32")]
    loaded = layerhub.load_model(path)
    for got, want in zip(predict(loaded, xs), predict(model, xs), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def test_keras3_h5_file_keeps_its_optimizer_state_without_a_warning(tmp_path: Path) -> None:
    # Keras 3 restores the optimizer state of its own .h5 files; 0.1 took them for Keras 2 ones
    # and warned that the state was lost.
    import warnings

    from layerhub._private.keras2.translation import OptimizerStateWarning

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    # A loss object: Keras 3 cannot read "mse" back from its own .h5 training config.
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss=keras.losses.MeanSquaredError())
    model.fit(np.ones((8, 3), "float32"), np.zeros((8, 2), "float32"), epochs=2, verbose=0)
    path = tmp_path / "trained.h5"
    keras.saving.save_model(model, path)
    with warnings.catch_warnings():
        warnings.simplefilter("error", OptimizerStateWarning)
        loaded = layerhub.load_model(path)
    plain = keras.saving.load_model(path)
    assert int(loaded.optimizer.iterations) == int(plain.optimizer.iterations) == 2
    for mine, theirs in zip(loaded.optimizer.variables, plain.optimizer.variables, strict=True):
        np.testing.assert_array_equal(np.asarray(mine), np.asarray(theirs))
