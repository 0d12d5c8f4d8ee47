"""Every built-in tf-keras layer's config translates to Keras 3, or is refused by name.

One tf-keras interpreter (``TF_USE_LEGACY_KERAS=1``) builds every public layer class of
``tf_keras.layers`` (and its ``experimental`` namespaces), with defaults or with the arguments
below, plus variants that make tf-keras write the keys it writes only for a feature in use, and
dumps each config as tf-keras writes it into a model file. Here, in Keras 3, each key must be
taken by the Keras 3 class, or be in the table of ``layer_keys``; then every translated config
must construct with Keras 3's legacy loader, and every refused one must fail with a
``ModelFileError`` naming the layer and the setting. A key tf-keras grows that nobody handled
fails the first test.
"""

from __future__ import annotations

import copy
import importlib.util
import inspect
import json
import warnings
from pathlib import Path
from typing import Any

import keras
import pytest

import layerhub
from layerhub._private.errors import ModelFileError
from layerhub._private.guard import checks, config_tree
from layerhub._private.keras2 import layer_keys, translation
from layerhub.testing import run_in_fresh_interpreter

pytestmark = [pytest.mark.slow, pytest.mark.keras2]

# Runs under tf-keras. Each case: a label, the call that makes it, whether Keras 3 must refuse it.
DUMP = r"""
import inspect, json, os, sys
os.environ["TF_USE_LEGACY_KERAS"] = "1"
import tensorflow as tf
import tf_keras as k
from tf_keras.src.saving.legacy import serialization as legacy
from tf_keras.src.saving.legacy.saved_model import json_utils

L, X = k.layers, k.layers.experimental
ABC = ["a", "b", "c"]
ARGS = {
    "Activation": lambda: L.Activation("relu"),
    "AlphaDropout": lambda: L.AlphaDropout(0.1),
    "Bidirectional": lambda: L.Bidirectional(L.LSTM(2)),
    "CategoryEncoding": lambda: L.CategoryEncoding(num_tokens=4),
    "CenterCrop": lambda: L.CenterCrop(2, 2),
    "Conv1D": lambda: L.Conv1D(2, 3),
    "Conv2D": lambda: L.Conv2D(2, 3),
    "Conv3D": lambda: L.Conv3D(2, 3),
    "Conv1DTranspose": lambda: L.Conv1DTranspose(2, 3),
    "Conv2DTranspose": lambda: L.Conv2DTranspose(2, 3),
    "Conv3DTranspose": lambda: L.Conv3DTranspose(2, 3),
    "ConvLSTM1D": lambda: L.ConvLSTM1D(2, 3),
    "ConvLSTM2D": lambda: L.ConvLSTM2D(2, 3),
    "ConvLSTM3D": lambda: L.ConvLSTM3D(2, 3),
    "Dense": lambda: L.Dense(2),
    "Discretization": lambda: L.Discretization(bin_boundaries=[0.0, 1.0]),
    "DenseFeatures": lambda: L.DenseFeatures([tf.feature_column.numeric_column("x")]),
    "DepthwiseConv1D": lambda: L.DepthwiseConv1D(3),
    "DepthwiseConv2D": lambda: L.DepthwiseConv2D(3),
    "Dot": lambda: L.Dot(axes=1),
    "Dropout": lambda: L.Dropout(0.5),
    "DynamicEmbedding": lambda: X.DynamicEmbedding(3, 2, initial_vocabulary=tf.constant(ABC)),
    "DynamicLookup": lambda: X.DynamicLookup(3, initial_vocabulary=tf.constant(ABC)),
    "EinsumDense": lambda: L.EinsumDense("ab,bc->ac", output_shape=2),
    "Embedding": lambda: L.Embedding(5, 2),
    "GRU": lambda: L.GRU(2),
    "GRUCell": lambda: L.GRUCell(2),
    "GaussianDropout": lambda: L.GaussianDropout(0.1),
    "GaussianNoise": lambda: L.GaussianNoise(0.1),
    "HashedCrossing": lambda: L.HashedCrossing(4),
    "Hashing": lambda: L.Hashing(4),
    "InputLayer": lambda: L.InputLayer(input_shape=(3,)),
    "LSTM": lambda: L.LSTM(2),
    "LSTMCell": lambda: L.LSTMCell(2),
    "Lambda": lambda: L.Lambda(lambda x: x + 1.0),
    "LocallyConnected1D": lambda: L.LocallyConnected1D(2, 3),
    "LocallyConnected2D": lambda: L.LocallyConnected2D(2, 3),
    "MultiHeadAttention": lambda: L.MultiHeadAttention(2, 3),
    "Permute": lambda: L.Permute((2, 1)),
    "RNN": lambda: L.RNN(L.LSTMCell(2)),
    "RandomBrightness": lambda: L.RandomBrightness(0.1),
    "RandomContrast": lambda: L.RandomContrast(0.1),
    "RandomCrop": lambda: L.RandomCrop(2, 2),
    "RandomFourierFeatures": lambda: X.RandomFourierFeatures(2),
    "RandomHeight": lambda: L.RandomHeight(0.1),
    "RandomRotation": lambda: L.RandomRotation(0.1),
    "RandomTranslation": lambda: L.RandomTranslation(0.1, 0.1),
    "RandomWidth": lambda: L.RandomWidth(0.1),
    "RandomZoom": lambda: L.RandomZoom(0.1),
    "RepeatVector": lambda: L.RepeatVector(2),
    "Rescaling": lambda: L.Rescaling(0.5),
    "Reshape": lambda: L.Reshape((2, 3)),
    "Resizing": lambda: L.Resizing(2, 2),
    "SeparableConv1D": lambda: L.SeparableConv1D(2, 3),
    "SeparableConv2D": lambda: L.SeparableConv2D(2, 3),
    "SimpleRNN": lambda: L.SimpleRNN(2),
    "SimpleRNNCell": lambda: L.SimpleRNNCell(2),
    "SpatialDropout1D": lambda: L.SpatialDropout1D(0.1),
    "SpatialDropout2D": lambda: L.SpatialDropout2D(0.1),
    "SpatialDropout3D": lambda: L.SpatialDropout3D(0.1),
    "SpectralNormalization": lambda: L.SpectralNormalization(L.Dense(2)),
    "StackedRNNCells": lambda: L.StackedRNNCells([L.LSTMCell(2), L.GRUCell(2)]),
    "TimeDistributed": lambda: L.TimeDistributed(L.Dense(2)),
}


def built_mha():
    layer = L.MultiHeadAttention(2, 3)
    layer(tf.zeros((1, 4, 5)), tf.zeros((1, 6, 5)))  # tf-keras writes the build shapes
    return layer


# Keys tf-keras writes only when a feature is used: (label, make, the key refused or False).
VARIANTS = [
    ("LSTM time_major=True", lambda: L.LSTM(2, time_major=True), "time_major"),
    ("GRU time_major=True", lambda: L.GRU(2, time_major=True), "time_major"),
    ("Lambda mask", lambda: L.Lambda(lambda x: x, mask=lambda x, m: m), "mask"),
    ("SimpleRNN unroll=True", lambda: L.SimpleRNN(2, unroll=True), False),
    ("LSTM implementation=1", lambda: L.LSTM(2, implementation=1), False),
    ("GRU reset_after=False", lambda: L.GRU(2, reset_after=False), False),
    ("RNN zero_output_for_mask", lambda: L.RNN(L.GRUCell(2), zero_output_for_mask=True), False),
    ("Bidirectional backward_layer", lambda: L.Bidirectional(
        L.LSTM(2, return_sequences=True),
        backward_layer=L.GRU(2, go_backwards=True, return_sequences=True)), False),
    ("TimeDistributed Lambda", lambda: L.TimeDistributed(L.Lambda(lambda x: x * 2.0)), False),
    ("TimeDistributed Dense input_shape", lambda: L.TimeDistributed(
        L.Dense(2, input_shape=(3,)), input_shape=(4, 3)), False),
    ("Dense input_shape", lambda: L.Dense(2, input_shape=(3,)), False),
    ("Embedding input_length", lambda: L.Embedding(5, 2, input_length=4), False),
    ("MultiHeadAttention built", built_mha, False),
    ("MultiHeadAttention robust",
     lambda: L.MultiHeadAttention(2, 3, softmax_robust_masking=True), False),
    ("Softmax robust_masking", lambda: L.Softmax(robust_masking=True), False),
    ("Attention concat", lambda: L.Attention(score_mode="concat"), False),
    ("LeakyReLU alpha", lambda: L.LeakyReLU(0.2), False),
    ("ThresholdedReLU theta", lambda: L.ThresholdedReLU(0.5), False),
    ("BatchNormalization renorm", lambda: L.BatchNormalization(renorm=True), False),
    ("BatchNormalization synchronized", lambda: L.BatchNormalization(synchronized=True), False),
    ("BatchNormalization virtual_batch_size",
     lambda: L.BatchNormalization(virtual_batch_size=2), "virtual_batch_size"),
    ("Conv2D groups=2", lambda: L.Conv2D(4, 3, groups=2), False),
    ("InputLayer sparse", lambda: L.InputLayer(input_shape=(3,), sparse=True), False),
    ("Dropout noise_shape", lambda: L.Dropout(0.5, noise_shape=(None, 1)), False),
    ("RandomFlip stateless", lambda: L.RandomFlip(rng_type="stateless"), False),
]
ABSTRACT = {"Layer", "Wrapper", "AbstractRNNCell", "PreprocessingLayer"}

classes = {}
for module in (L, X, X.preprocessing):
    for name in dir(module):
        obj = getattr(module, name)
        if inspect.isclass(obj) and issubclass(obj, k.layers.Layer) and name not in ABSTRACT:
            classes.setdefault(obj, set()).add(name)
cases = []
for cls, names in sorted(classes.items(), key=lambda item: item[0].__name__):
    make = next((ARGS[n] for n in sorted(names) if n in ARGS), cls)
    cases.append((cls.__name__, make, False))
cases += VARIANTS
dumped = []
for label, make, refused in cases:
    try:
        # The form tf-keras writes into an .h5 model_config (and a SavedModel's metadata).
        serialized = legacy.serialize_keras_object(make())
        entry = json.loads(json.dumps(serialized, default=json_utils.get_json_type))
    except Exception as error:
        entry = {"error": f"{type(error).__name__}: {error}"}
    dumped.append({"label": label, "refused": refused, "entry": entry})
exported = {cls.__name__: sorted(names) for cls, names in classes.items()}
with open(sys.argv[1], "w") as f:
    json.dump({"cases": dumped, "exported": exported}, f)
"""

# Base keys every Keras 3 layer takes through ``Layer.__init__``'s keywords; the legacy loader
# turns a layer's ``batch_input_shape`` into ``input_shape`` (and translate() drops it for a
# wrapped layer).
BASE_KEYS = {
    "name",
    "trainable",
    "dtype",
    "autocast",
    "activity_regularizer",
    "input_dim",
    "input_shape",
    "batch_input_shape",
}
# Keys Keras 3 takes without naming them in a signature: the class pops them from ``**kwargs``
# (its own get_config writes them too), or the legacy loader removes them before the class
# sees them (a Keras 2 Lambda's; translate() does it for a wrapped Lambda).
KWARGS_KERAS3_TAKES = {
    ("IntegerLookup", "vocabulary_size"),
    ("StringLookup", "vocabulary_size"),
    ("TextVectorization", "vocabulary_size"),
    *(("Lambda", key) for key in layer_keys.LAMBDA_KERAS2_ONLY),
}


@pytest.fixture(scope="module")
def dumped(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    if importlib.util.find_spec("tf_keras") is None:
        pytest.skip("tf-keras (a test dependency) is not installed")
    out = tmp_path_factory.mktemp("keras2_layers") / "configs.json"
    run_in_fresh_interpreter(DUMP, str(out), env={"TF_USE_LEGACY_KERAS": "1"}, timeout=300)
    data: dict[str, Any] = json.loads(out.read_text())
    return data


def cases(dumped: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = dumped["cases"]
    return found


def keras3_class(class_name: str) -> type | None:
    replaced = layer_keys.REPLACED.get(class_name)
    found = getattr(keras.layers, replaced.class_name if replaced else class_name, None)
    return found if isinstance(found, type) else None


def accepted_keys(cls: type) -> set[str]:
    """The keywords Keras 3's constructor takes, following ``**kwargs`` up to ``Layer``."""
    keys: set[str] = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        parameters = inspect.signature(init).parameters.values()
        keys |= {p.name for p in parameters if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
        if klass is keras.layers.Layer:
            keys |= BASE_KEYS
        if not any(p.kind is p.VAR_KEYWORD for p in parameters):
            break
    return keys - {"self"}


def nested_entries(entry: dict[str, Any]) -> list[dict[str, Any]]:
    """The entry and every layer entry a wrapper or RNN nests in it."""
    found, stack = [], [entry]
    while stack:
        item = stack.pop()
        if not isinstance(item, dict) or not isinstance(item.get("class_name"), str):
            continue
        found.append(item)
        inner = item.get("config", {})
        stack += [inner.get(k) for k in layer_keys.NESTED_ONE]
        stack += [c for k in layer_keys.NESTED_MANY for c in inner.get(k) or []]
    return found


def plugin_objects() -> dict[str, Any]:
    from layerhub_locally_connected import LocallyConnected1D, LocallyConnected2D

    return {"LocallyConnected1D": LocallyConnected1D, "LocallyConnected2D": LocallyConnected2D}


def test_every_public_tf_keras_layer_class_was_built(dumped: dict[str, Any]) -> None:
    failed = {c["label"]: c["entry"]["error"] for c in cases(dumped) if "error" in c["entry"]}
    assert failed == {}
    # The walk found the layers (not an empty namespace): these are a sample, not the list.
    assert {"LSTM", "DepthwiseConv2D", "Normalization", "TimeDistributed"} <= set(
        dumped["exported"]
    )
    assert len(dumped["exported"]) > 100


def test_every_key_is_accepted_translated_dropped_or_refused(dumped: dict[str, Any]) -> None:
    unhandled: set[str] = set()
    for case in cases(dumped):
        for entry in nested_entries(case["entry"]):
            name = entry["class_name"]
            if name in layer_keys.REMOVED:
                continue
            cls = keras3_class(name)
            assert cls is not None, f"{name}: no Keras 3 class and not in REMOVED or REPLACED"
            table = layer_keys.RULES.get(name, {})
            unhandled |= {
                f"{name}.{key}"
                for key in set(entry["config"]) - accepted_keys(cls) - set(table)
                if (name, key) not in KWARGS_KERAS3_TAKES
            }
    assert sorted(unhandled) == []


def test_every_rule_of_the_table_is_met_by_a_tf_keras_config(dumped: dict[str, Any]) -> None:
    # A rule no tf-keras config exercises is a guess, or a stale entry.
    seen = {
        (entry["class_name"], key)
        for case in cases(dumped)
        for entry in nested_entries(case["entry"])
        for key in entry["config"]
    }
    unused = {
        (name, key)
        for name, rules in layer_keys.RULES.items()
        for key in rules
        if (name, key) not in seen and name != "SyncBatchNormalization"
    }
    assert unused == {("Bidirectional", "num_constants")} | {
        (rnn, "num_constants")
        for rnn in ("LSTM", "GRU", "SimpleRNN", "RNN", "ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D")
    }  # constants need a cell that takes them; tf-keras has none built in


def build(entry: dict[str, Any], objects: dict[str, Any]) -> Any:
    """The layer Keras 3's legacy loader builds from a translated entry, as load_model does."""
    from keras.src.legacy.saving import saving_options, saving_utils
    from keras.src.saving import serialization_lib

    with (
        saving_options.keras_option_scope(use_legacy_config=True),
        serialization_lib.SafeModeScope(False),
        warnings.catch_warnings(),
    ):
        # A deprecated argument Keras 3 still takes, with a warning, is one translate() missed.
        warnings.filterwarnings("error", message=r"(?i).*(deprecated|argument `)")
        return saving_utils.model_from_config(copy.deepcopy(entry), custom_objects=objects)


def test_every_translated_config_constructs_in_keras3(dumped: dict[str, Any]) -> None:
    objects = plugin_objects()
    built: dict[str, str] = {}
    for case in cases(dumped):
        entry, label = case["entry"], case["label"]
        if case["refused"] or (
            entry["class_name"] in layer_keys.REMOVED and entry["class_name"] not in objects
        ):
            continue
        fixed = translation.translate(entry, objects.__contains__, safe_mode=False) or entry
        layer = build(fixed, objects)
        expected = objects.get(entry["class_name"]) or keras3_class(entry["class_name"])
        assert type(layer) is expected, label
        built[label] = type(layer).__name__
    assert len(built) > 100


def test_keras2_settings_keras3_lacks_are_refused_by_layer_and_setting(
    dumped: dict[str, Any],
) -> None:
    refused = [c for c in cases(dumped) if c["refused"]]
    assert len(refused) == 4
    for case in refused:
        entry, key = case["entry"], case["refused"]
        with pytest.raises(ModelFileError) as caught:
            translation.translate(entry, lambda name: False, safe_mode=False)
        said = str(caught.value)
        assert f"'{entry['config']['name']}' ({entry['class_name']})" in said
        assert f"{key}=" in said
        assert "no equivalent" in said


@pytest.mark.parametrize(
    "name", sorted(set(layer_keys.REMOVED) - {"LocallyConnected1D", "LocallyConnected2D"})
)
def test_a_class_keras3_lacks_is_refused_unless_something_provides_it(
    dumped: dict[str, Any], name: str
) -> None:
    entry = next(c["entry"] for c in cases(dumped) if c["label"] == name)
    with pytest.raises(ModelFileError, match=f"\\({name}\\) has no Keras 3 class"):
        translation.translate(entry, lambda _: False, safe_mode=True)
    # A plugin or custom object resolving the name gets the config as tf-keras wrote it.
    assert translation.translate(entry, {name}.__contains__, safe_mode=True) is None


def test_wrapped_and_nested_layers_are_translated_at_any_depth(dumped: dict[str, Any]) -> None:
    lstm = next(c["entry"] for c in cases(dumped) if c["label"] == "LSTM")
    entry: dict[str, Any] = copy.deepcopy(lstm)
    # As deep as the checks let a config be: deeper than recursion over it would go in Python.
    while config_tree.depth(entry) < checks.MAX_CONFIG_DEPTH:
        wrapper = "Bidirectional" if config_tree.depth(entry) % 4 else "TimeDistributed"
        entry = {"class_name": wrapper, "config": {"name": "w", "layer": entry}}
    assert config_tree.depth(entry) == checks.MAX_CONFIG_DEPTH
    fixed = translation.translate(entry, lambda _: False, safe_mode=True)
    assert fixed is not None
    inner = fixed
    while inner["class_name"] != "LSTM":
        inner = inner["config"]["layer"]
    assert "time_major" not in inner["config"]
    assert "implementation" not in inner["config"]
    assert "time_major" in lstm["config"]  # the caller's config is left as it was


def test_a_class_resolved_by_the_user_keeps_its_keras2_keys(dumped: dict[str, Any]) -> None:
    lstm = next(c["entry"] for c in cases(dumped) if c["label"] == "LSTM time_major=True")
    # custom_objects={"LSTM": TheirLSTM}: their class reads its own config.
    assert translation.translate(lstm, {"LSTM"}.__contains__, safe_mode=True) is None


def test_load_model_names_the_refused_layer(dumped: dict[str, Any], tmp_path: Path) -> None:
    import h5py
    import numpy as np

    lstm = next(c["entry"] for c in cases(dumped) if c["label"] == "LSTM time_major=True")
    head = {"class_name": "InputLayer", "config": {"batch_input_shape": [None, 4, 3]}}
    model = {"class_name": "Sequential", "config": {"name": "s", "layers": [head, lstm]}}
    path = tmp_path / "rnn.h5"
    with h5py.File(path, "w") as h5:
        h5.attrs["keras_version"] = "2.15.0"
        h5.attrs["backend"] = "tensorflow"
        h5.attrs["model_config"] = json.dumps(model)
        h5.create_group("model_weights").attrs["layer_names"] = np.array([], dtype="S1")
    said = rf"the Keras 2 layer '{lstm['config']['name']}' \(LSTM\) sets time_major=True"
    with pytest.raises(ModelFileError, match=said):
        layerhub.load_model(path)


# -- real tf-keras models ----------------------------------------------------------------------

# Runs under tf-keras: each model saved as NAME.h5 (and a SavedModel directory NAME, unless
# told not to) with its input and tf-keras' output.
MODELS = r"""
import os, sys
os.environ["TF_USE_LEGACY_KERAS"] = "1"
import numpy as np
import tf_keras as keras

out = sys.argv[1]
rng = np.random.default_rng(24)


def save(name, model, x, savedmodel=True):
    model.save(os.path.join(out, name + ".h5"))
    if savedmodel:
        model.save(os.path.join(out, name), save_format="tf")
    np.save(os.path.join(out, name + ".x.npy"), x)
    np.save(os.path.join(out, name + ".y.npy"), np.asarray(model(x, training=False), "float32"))


images = rng.normal(size=(2, 32, 32, 3)).astype("float32")
save("mobilenetv2", keras.applications.MobileNetV2(
    alpha=0.35, weights=None, input_shape=(32, 32, 3)), images)
# EfficientNet rescales 0..255 pixels itself.
save("efficientnetb0", keras.applications.EfficientNetB0(
    weights=None, input_shape=(32, 32, 3)), images * 40.0 + 128.0)

tokens = keras.Input((6,), dtype="int32")
x = keras.layers.Embedding(10, 4, mask_zero=True)(tokens)
x = keras.layers.Bidirectional(keras.layers.LSTM(3, return_sequences=True))(x)
x = keras.layers.GRU(3, return_sequences=True)(x)
x = keras.layers.TimeDistributed(keras.layers.Dense(2))(x)
x = keras.layers.SimpleRNN(2)(x)
save("rnn", keras.Model(tokens, x), rng.integers(0, 10, size=(3, 6)).astype("int32"))

keras.mixed_precision.set_global_policy("mixed_float16")
inputs = keras.Input((4,))
hidden = keras.layers.Dense(8, activation="relu")(inputs)
model = keras.Model(inputs, keras.layers.Dense(2, dtype="float32")(hidden))
model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
features = rng.normal(size=(8, 4)).astype("float32")
model.fit(features, rng.normal(size=(8, 2)).astype("float32"), epochs=1, batch_size=8, verbose=0)
save("mixed_float16", model, features, savedmodel=False)
"""


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if importlib.util.find_spec("tf_keras") is None:
        pytest.skip("tf-keras (a test dependency) is not installed")
    out = tmp_path_factory.mktemp("keras2_models")
    run_in_fresh_interpreter(MODELS, str(out), env={"TF_USE_LEGACY_KERAS": "1"}, timeout=600)
    return out


def outputs(model: Any, x: Any) -> Any:
    import numpy as np

    return np.asarray(keras.ops.convert_to_numpy(model(x, training=False)), dtype="float32")


@pytest.mark.parametrize("suffix", [".h5", ""], ids=["h5", "savedmodel"])
@pytest.mark.parametrize("name", ["mobilenetv2", "efficientnetb0", "rnn"])
def test_keras2_applications_and_rnns_load_and_predict_as_tf_keras(
    models: Path, name: str, suffix: str
) -> None:
    import numpy as np

    model = layerhub.load_model(models / f"{name}{suffix}", compile=False)
    x, y = np.load(models / f"{name}.x.npy"), np.load(models / f"{name}.y.npy")
    np.testing.assert_allclose(outputs(model, x), y, rtol=0, atol=1e-4)


# float16 keeps 11 significant bits: tf-keras and Keras 3 may round differently, by a few units
# in the last place of values of order 1.
MIXED_ATOL = 5e-3


def test_a_mixed_float16_model_loads_compiled_with_a_loss_scale_optimizer(models: Path) -> None:
    import numpy as np

    with pytest.warns(
        translation.OptimizerStateWarning, match=r"restored as LossScaleOptimizer\(Adam"
    ):
        model = layerhub.load_model(models / "mixed_float16.h5", compile=True)
    x, y = np.load(models / "mixed_float16.x.npy"), np.load(models / "mixed_float16.y.npy")
    np.testing.assert_allclose(outputs(model, x), y, rtol=0, atol=MIXED_ATOL)
    assert model.layers[1].dtype_policy.name == "mixed_float16"
    optimizer = model.optimizer
    assert isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
    assert isinstance(optimizer.inner_optimizer, keras.optimizers.Adam)
    assert float(optimizer.learning_rate) == pytest.approx(0.01)
    assert (optimizer.initial_scale, optimizer.dynamic_growth_steps) == (2.0**15, 2000)
    # It trains: a step changes the weights.
    before = [np.array(w) for w in model.trainable_weights]
    model.train_on_batch(x, np.zeros_like(y))
    assert any(
        not np.array_equal(a, np.array(w))
        for a, w in zip(before, model.trainable_weights, strict=True)
    )
