"""Write a corpus of real Keras 2 architectures, as tf-keras saved them, with reference arrays.

Run as a script under tf-keras (``TF_USE_LEGACY_KERAS=1``), never imported by the Keras 3 tests:

    TF_USE_LEGACY_KERAS=1 python tests/keras2_corpus.py OUT_DIR

Every model is built from tf-keras' built-in layers only (the subclassed model aside), so that
tf-keras itself reloads each file without ``custom_objects``. For each model ``NAME`` the script
writes, after giving every weight a non-trivial random value:

- ``NAME.h5`` (``save_format="h5"``) and ``NAME_savedmodel/`` (``save_format="tf"``; the
  application models without traces, see ``UNTRACED``);
- the inputs ``NAME.x0.npy``, ``NAME.x1.npy``, ... and the outputs ``NAME.y0.npy``, ... that
  ``model(x, training=False)`` gave in tf-keras (outputs flattened as ``tf.nest`` flattens them:
  lists in order, dicts by sorted key);
- ``NAME.weights.json``: the model's weights (name, shape, dtype, in ``model.weights`` order), the
  weight names stored per layer in the ``.h5`` file, and the SavedModel checkpoint's variables.

``index.json`` is written last; a reader that finds it knows every other file is complete. Each
index entry says how many inputs and outputs there are, the input keys when the model takes a
dict, the formats written, and why a format could not be written.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import h5py
import numpy as np
import tensorflow as tf
import tf_keras as keras

RNG = np.random.default_rng(20240524)
L = keras.layers


def randomise(model):
    """Give every floating-point weight a random value of the scale its role expects.

    The scales keep a 100-layer network's activations finite (a misplaced weight must show up in
    the outputs, not drown in inf or a saturated softmax): kernels about 1/sqrt(fan-in),
    BatchNormalization and Normalization variances positive, gammas near one.
    """
    for weight in model.weights:
        if not weight.dtype.is_floating:
            continue  # Normalization's count
        name = weight.name.split("/")[-1].partition(":")[0]
        shape = tuple(weight.shape)
        if "variance" in name:
            value = RNG.uniform(0.5, 2.0, size=shape)
        elif name == "gamma":
            value = RNG.uniform(0.5, 1.5, size=shape)
        elif name in ("beta", "bias", "moving_mean", "mean") or len(shape) < 2:
            value = RNG.normal(scale=0.2, size=shape)
        else:
            fan_in = int(np.prod(shape[:-1]))
            if "depthwise" in name:
                fan_in = int(np.prod(shape[:-2]))
            value = RNG.normal(scale=1.0 / np.sqrt(fan_in), size=shape)
        weight.assign(value.astype(weight.dtype.as_numpy_dtype))


def normal(*shape):
    return RNG.normal(size=shape).astype("float32")


def token_ids(batch, steps, vocabulary):
    """Post-padded id sequences of different lengths (one full row), zero meaning padding."""
    ids = RNG.integers(1, vocabulary, size=(batch, steps)).astype("int32")
    for row, length in enumerate(np.linspace(steps, 1, batch).astype(int)):
        ids[row, length:] = 0
    return ids


# -- the corpus ------------------------------------------------------------------------------------


def nested_sequential_bn():
    inner = keras.Sequential(
        [L.Dense(6, activation="relu"), L.BatchNormalization(), L.Dense(5)], name="inner"
    )
    inputs = keras.Input((4,))
    x = L.Dense(4)(inputs)
    x = inner(x)
    outputs = L.Dense(3)(L.BatchNormalization()(x))
    return keras.Model(inputs, outputs), [normal(3, 4)]


def nested_norm_stack():
    # Past the first Dense, every weight of the inner model is a vector of 6: variables taken in
    # the checkpoint's order (layer by layer) instead of Keras' (trainable first) fit every slot,
    # so a reader that places them by position loads wrong numbers without any error.
    inner = keras.Sequential(
        [
            L.Dense(6),
            L.BatchNormalization(),
            L.ReLU(),
            L.LayerNormalization(),
            L.BatchNormalization(),
        ],
        name="norms",
    )
    inputs = keras.Input((4,))
    return keras.Model(inputs, L.Dense(3)(inner(inputs))), [normal(3, 4)]


def nested_functional_bn():
    # BatchNormalization at three depths: the outer model, the middle one, the innermost one.
    deep_in = keras.Input((6,))
    deep = L.BatchNormalization()(L.Dense(6, activation="tanh")(deep_in))
    innermost = keras.Model(deep_in, L.Dense(5)(deep), name="innermost")
    mid_in = keras.Input((4,))
    mid = L.BatchNormalization()(L.Dense(6)(mid_in))
    middle = keras.Model(mid_in, innermost(mid), name="middle")
    inputs = keras.Input((4,))
    x = L.BatchNormalization()(middle(inputs))
    return keras.Model(inputs, L.Dense(2)(x)), [normal(3, 4)]


def shared_dense():
    left, right = keras.Input((5,), name="left"), keras.Input((5,), name="right")
    shared = L.Dense(4, activation="tanh", name="shared")
    merged = L.Concatenate()([shared(left), shared(right)])
    outputs = L.Dense(2)(L.Subtract()([merged, L.Dense(8)(left)]))
    return keras.Model([left, right], outputs), [normal(3, 5), normal(3, 5)]


def dict_io():
    a = keras.Input((4,), name="a")
    b = keras.Input((3, 2), name="b")
    flat_b = L.Flatten()(b)
    joined = L.Concatenate()([L.Dense(5)(a), L.Dense(5)(flat_b)])
    hidden = L.BatchNormalization()(L.Dense(6, activation="relu")(joined))
    score = L.Dense(1, name="score")(hidden)
    label = L.Dense(3, activation="softmax", name="label")(hidden)
    model = keras.Model({"a": a, "b": b}, [score, label])
    return model, {"a": normal(4, 4), "b": normal(4, 3, 2)}


def time_distributed():
    inputs = keras.Input((5, 4))
    x = L.TimeDistributed(L.Dense(6, activation="tanh"))(inputs)
    x = L.TimeDistributed(L.Dense(3))(x)
    return keras.Model(inputs, L.Dense(2)(L.Flatten()(x))), [normal(2, 5, 4)]


def bidirectional_lstm():
    inputs = keras.Input((6, 3))
    x = L.Bidirectional(L.LSTM(4, return_sequences=True), merge_mode="sum")(inputs)
    return keras.Model(inputs, L.Dense(2)(L.Flatten()(x))), [normal(3, 6, 3)]


def bidirectional_gru():
    inputs = keras.Input((6, 3))
    x = L.Bidirectional(L.GRU(4))(inputs)
    return keras.Model(inputs, L.Dense(2)(x)), [normal(3, 6, 3)]


def embedding_mask_lstm():
    inputs = keras.Input((7,), dtype="int32")
    x = L.Embedding(20, 5, mask_zero=True)(inputs)
    x = L.LSTM(4)(x)
    return keras.Model(inputs, L.Dense(2)(x)), [token_ids(4, 7, 20)]


def embedding_mask_gru():
    inputs = keras.Input((7,), dtype="int32")
    x = L.Embedding(20, 5, mask_zero=True)(inputs)
    x = L.GRU(4)(x)
    return keras.Model(inputs, L.Dense(2)(x)), [token_ids(4, 7, 20)]


def conv1d_gru():
    inputs = keras.Input((12, 3))
    x = L.Conv1D(6, 3, activation="relu")(inputs)
    x = L.MaxPooling1D(2)(x)
    x = L.GRU(5)(x)
    return keras.Model(inputs, L.Dense(2)(x)), [normal(3, 12, 3)]


def mixed_float16():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        inputs = keras.Input((6,))
        x = L.Dense(8, activation="relu")(inputs)
        x = L.BatchNormalization()(x)
        x = L.Dense(8, activation="tanh")(x)
        outputs = L.Dense(3, dtype="float32")(x)
        model = keras.Model(inputs, outputs)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    return model, [normal(4, 6)]


def twin_submodels():
    # The same function builds both: Keras 2 auto-names them "model" and "model_1", and their
    # layers "dense", "dense_1" / "dense_2", "dense_3".
    def block():
        inputs = keras.Input((4,))
        hidden = L.Dense(5, activation="tanh")(inputs)
        return keras.Model(inputs, L.Dense(4)(hidden))

    first, second = block(), block()
    inputs = keras.Input((4,))
    outputs = L.Dense(2)(second(first(inputs)))
    return keras.Model(inputs, outputs), [normal(3, 4)]


class Subclassed(keras.Model):
    """A subclassed model with get_config/from_config; tf-keras cannot write it as ``.h5``."""

    def __init__(self, units=5, classes=3, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.classes = classes
        self.hidden = L.Dense(units, activation="relu")
        self.norm = L.BatchNormalization()
        self.head = L.Dense(classes)

    def call(self, inputs, training=None):
        return self.head(self.norm(self.hidden(inputs), training=training))

    def get_config(self):
        return {"units": self.units, "classes": self.classes, "name": self.name}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def subclassed():
    model = Subclassed()
    model(np.zeros((1, 4), "float32"))
    return model, [normal(3, 4)]


def mobilenet_v2():
    model = keras.applications.MobileNetV2(
        alpha=0.35, input_shape=(32, 32, 3), weights=None, classes=10, classifier_activation=None
    )
    return model, [normal(2, 32, 32, 3)]


def densenet121():
    model = keras.applications.DenseNet121(
        input_shape=(32, 32, 3), weights=None, classes=10, classifier_activation=None
    )
    return model, [normal(2, 32, 32, 3)]


def efficientnet_b0():
    model = keras.applications.EfficientNetB0(
        input_shape=(32, 32, 3), weights=None, classes=10, classifier_activation=None
    )
    # Pixel-range inputs: the model rescales by 1/255 and then normalises itself.
    return model, [RNG.uniform(0.0, 255.0, size=(2, 32, 32, 3)).astype("float32")]


BUILDERS = {
    "nested_sequential_bn": nested_sequential_bn,
    "nested_norm_stack": nested_norm_stack,
    "nested_functional_bn": nested_functional_bn,
    "shared_dense": shared_dense,
    "dict_io": dict_io,
    "time_distributed": time_distributed,
    "bidirectional_lstm": bidirectional_lstm,
    "bidirectional_gru": bidirectional_gru,
    "embedding_mask_lstm": embedding_mask_lstm,
    "embedding_mask_gru": embedding_mask_gru,
    "conv1d_gru": conv1d_gru,
    "mixed_float16": mixed_float16,
    "twin_submodels": twin_submodels,
    "subclassed": subclassed,
    "mobilenet_v2": mobilenet_v2,
    "densenet121": densenet121,
    "efficientnet_b0": efficientnet_b0,
}
# Tracing every layer's call functions takes tf-keras 10 to 30 s per application model, most of
# the generator's time; their SavedModels are written with save_traces=False (the keras_metadata.pb
# and the checkpoint hold the same configs and variables; saved_model.pb holds no layer functions,
# so its object graph is smaller). LAYERHUB_KERAS2_CORPUS_TRACES=all traces them too.
UNTRACED = ("mobilenet_v2", "densenet121", "efficientnet_b0")
TRACES_ENV = "LAYERHUB_KERAS2_CORPUS_TRACES"
# Compiled, and trained one step, before saving: the optimizer (a LossScaleOptimizer under
# mixed_float16) and its state go into the files.
TRAINED = ("mixed_float16",)


def train_one_step(model, inputs):
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    target = np.asarray(model(inputs, training=False))
    model.fit(inputs, target + 0.1, batch_size=len(target), epochs=1, verbose=0)


def h5_weight_names(path):
    """The weight names stored per layer in a Keras 2 ``.h5`` file, with their shapes."""
    stored = {}
    with h5py.File(path, "r") as h5:
        group = h5["model_weights"]
        for layer in group.attrs["layer_names"]:
            layer = layer.decode() if isinstance(layer, bytes) else layer
            names = group[layer].attrs["weight_names"]
            names = [n.decode() if isinstance(n, bytes) else n for n in names]
            stored[layer] = [[n, list(group[layer][n].shape)] for n in names]
    return stored


def checkpoint_variables(directory):
    prefix = str(Path(directory) / "variables" / "variables")
    return [[name, list(shape)] for name, shape in tf.train.list_variables(prefix)]


def write(out, name, build):
    keras.backend.clear_session()  # names as a fresh script gets them: "model", "dense", ...
    model, inputs = build()
    randomise(model)
    keys = sorted(inputs) if isinstance(inputs, dict) else None
    if name in TRAINED:
        train_one_step(model, inputs)
    feed = inputs if keys else (inputs if len(inputs) > 1 else inputs[0])
    outputs = [np.asarray(y) for y in tf.nest.flatten(model(feed, training=False))]
    assert all(np.isfinite(y).all() for y in outputs), name
    entry = {"inputs": len(keys or inputs), "outputs": len(outputs), "input_keys": keys}
    entry["mixed_precision"] = model.dtype_policy.name == "mixed_float16"
    entry["formats"], entry["not_written"] = [], {}
    weights = {
        "model": [[w.name, list(w.shape), w.dtype.name] for w in model.weights],
    }
    try:
        model.save(out / f"{name}.h5", save_format="h5")
    except Exception as error:  # the reason goes into the index
        entry["not_written"]["h5"] = f"{type(error).__name__}: {str(error).splitlines()[0]}"
    else:
        entry["formats"].append("h5")
        weights["h5"] = h5_weight_names(out / f"{name}.h5")
    traces = name not in UNTRACED or os.environ.get(TRACES_ENV) == "all"
    entry["save_traces"] = traces
    model.save(out / f"{name}_savedmodel", save_format="tf", save_traces=traces)
    entry["formats"].append("savedmodel")
    weights["savedmodel"] = checkpoint_variables(out / f"{name}_savedmodel")
    xs = [inputs[k] for k in keys] if keys else inputs
    for i, x in enumerate(xs):
        np.save(out / f"{name}.x{i}.npy", x)
    for i, y in enumerate(outputs):
        np.save(out / f"{name}.y{i}.npy", y)
    (out / f"{name}.weights.json").write_text(json.dumps(weights, indent=1))
    return entry


def main(out_dir, only=()):
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    written, seconds = {}, {}
    for name, build in BUILDERS.items():
        if only and name not in only:
            continue
        begun = time.perf_counter()
        written[name] = write(out, name, build)
        seconds[name] = round(time.perf_counter() - begun, 2)
        print(f"{name}: {seconds[name]:.1f} s", flush=True)
    total = round(time.perf_counter() - started, 2)
    print(f"corpus written in {total:.1f} s", flush=True)
    (out / "index.json").write_text(
        json.dumps(
            {
                "keras": keras.__version__,
                "tensorflow": tf.__version__,
                "seconds": {"total": total, **seconds},
                "models": written,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main(sys.argv[1], tuple(sys.argv[2:]))
