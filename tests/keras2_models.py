"""Write Keras 2 ``.h5`` models, as tf-keras saved them, with reference inputs and outputs.

Run as a script under tf-keras (``TF_USE_LEGACY_KERAS=1``), never imported by the Keras 3 tests:

    TF_USE_LEGACY_KERAS=1 python tests/keras2_models.py OUT_DIR

The layer classes below are written the way Keras 2 users wrote them (``keras.layers.Layer``
subclasses saved under their bare class names), not copied from the layerhub plugins: the files
are what users have on disk. For each model ``NAME`` the script writes ``NAME.h5``, the inputs
``NAME.x0.npy``, ``NAME.x1.npy``, ... and the outputs ``NAME.y0.npy``, ... it gave in Keras 2.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf
import tf_keras as keras
from tf_keras import backend as K

RNG = np.random.default_rng(2024)


class Scale(keras.layers.Layer):
    """x * gamma + beta along ``axis``; ``momentum`` is accepted and unused, as in Keras 2."""

    def __init__(self, axis=-1, momentum=0.9, **kwargs):
        super().__init__(**kwargs)
        self.axis = axis
        self.momentum = momentum

    def build(self, input_shape):
        shape = (int(input_shape[self.axis]),)
        self.gamma = self.add_weight(name="gamma", shape=shape, initializer="ones")
        self.beta = self.add_weight(name="beta", shape=shape, initializer="zeros")
        super().build(input_shape)

    def call(self, x):
        broadcast = [1] * len(x.shape)
        broadcast[self.axis] = x.shape[self.axis]
        return K.reshape(self.gamma, broadcast) * x + K.reshape(self.beta, broadcast)

    def get_config(self):
        config = {"axis": self.axis, "momentum": self.momentum}
        base = super().get_config()
        return dict(list(base.items()) + list(config.items()))


class L2Normalization(keras.layers.Layer):
    """SSD's layer: channels-last 4D input normalised over axis 3, times a per-channel gamma."""

    def __init__(self, gamma_init=20, **kwargs):
        self.axis = 3
        self.gamma_init = gamma_init
        super().__init__(**kwargs)

    def build(self, input_shape):
        self.input_spec = [keras.layers.InputSpec(shape=input_shape)]
        self.gamma = self.add_weight(
            name="gamma",
            shape=(input_shape[self.axis],),
            initializer=keras.initializers.Constant(self.gamma_init),
        )
        super().build(input_shape)

    def call(self, x, mask=None):
        return K.l2_normalize(x, self.axis) * self.gamma

    def get_config(self):
        config = {"gamma_init": self.gamma_init}
        base = super().get_config()
        return dict(list(base.items()) + list(config.items()))


class FMLayer(keras.layers.Layer):
    """Second-order factorization machine with the pairwise term squared as Rendle defines it."""

    def __init__(self, output_dim, factor_order, activation=None, **kwargs):
        super().__init__(**kwargs)
        self.output_dim = output_dim
        self.factor_order = factor_order
        self.activation = keras.activations.get(activation)

    def build(self, input_shape):
        input_dim = input_shape[1]
        self.w = self.add_weight(
            name="W", shape=(input_dim, self.output_dim), initializer="glorot_uniform"
        )
        self.v = self.add_weight(
            name="V", shape=(input_dim, self.factor_order), initializer="glorot_uniform"
        )
        self.b = self.add_weight(name="b", shape=(self.output_dim,), initializer="zeros")
        super().build(input_shape)

    def call(self, inputs):
        x_square = K.square(inputs)
        xv = K.square(K.dot(inputs, self.v))
        xw = K.dot(inputs, self.w)
        p = 0.5 * K.sum(xv - K.dot(x_square, K.square(self.v)), 1, keepdims=True)
        return self.activation(xw + self.b + p)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.output_dim)

    def get_config(self):
        config = {
            "output_dim": self.output_dim,
            "factor_order": self.factor_order,
            "activation": keras.activations.serialize(self.activation),
        }
        base = super().get_config()
        return dict(list(base.items()) + list(config.items()))


class MyLayer(keras.layers.Layer):
    """The Keras 2 guide's example: a bias-free projection ``x . kernel``."""

    def __init__(self, output_dim, **kwargs):
        self.output_dim = output_dim
        super().__init__(**kwargs)

    def build(self, input_shape):
        self.kernel = self.add_weight(
            name="kernel", shape=(input_shape[1], self.output_dim), initializer="uniform"
        )
        super().build(input_shape)

    def call(self, x):
        return K.dot(x, self.kernel)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.output_dim)

    def get_config(self):
        config = {"output_dim": self.output_dim}
        base = super().get_config()
        return dict(list(base.items()) + list(config.items()))


# A user who registered the class: Keras 2 saves it as "Custom>Scale", not as "Scale".
@keras.saving.register_keras_serializable(package="Custom", name="Scale")
class RegisteredScale(Scale):
    pass


class Swish2(keras.layers.Layer):
    """A custom layer no layerhub plugin provides."""

    def call(self, x):
        return x * K.sigmoid(2.0 * x)


@keras.saving.register_keras_serializable(package="myplug")
class Twice(keras.layers.Layer):
    """A layer the user's own code registered: Keras 2 saved it as ``myplug>Twice``."""

    def call(self, x):
        return 2.0 * x


def my_loss(y_true, y_pred):
    """A custom loss no plugin provides: Keras 2 saved it by name in the training config."""
    return K.mean(K.abs(y_true - y_pred))


def channel_slice(x, index):
    # The tutorial's slice, for any rank, keeping the sliced axis with size one.
    return x[..., index : index + 1]


class NamedCallable:
    """Keras 2 saved a Lambda function by ``__name__`` ("function_type": "function") only for
    callables that are not Python functions (builtins, NumPy ufuncs, objects like this one)."""

    def __init__(self, fn):
        self._fn = fn
        self.__name__ = fn.__name__

    def __call__(self, *args, **kwargs):
        return self._fn(*args, **kwargs)


def randomise(model):
    """Replace every weight by non-trivial random values, positive where they must be."""
    for layer in model.layers:
        values = []
        for weight in layer.weights:
            value = RNG.normal(scale=0.5, size=weight.shape)
            if isinstance(layer, L2Normalization):
                value = RNG.uniform(5.0, 25.0, size=weight.shape)
            elif "moving_variance" in weight.name:
                value = RNG.uniform(0.5, 2.0, size=weight.shape)
            values.append(value.astype("float32"))
        layer.set_weights(values)


def sequential():
    model = keras.Sequential(
        [
            keras.layers.InputLayer(input_shape=(8,)),
            keras.layers.Dense(6, activation="tanh"),
            Scale(momentum=0.5),
            MyLayer(5),
            keras.layers.BatchNormalization(),
            FMLayer(3, 4, activation="tanh"),
        ]
    )
    # Most Keras 2 files were saved compiled: the optimizer config and state come along.
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    return model, [RNG.normal(size=(7, 8))]


def functional():
    image = keras.Input((6, 6, 3), name="image")
    features = keras.Input((5,), name="features")
    x = keras.layers.Conv2D(4, 3, padding="same")(image)
    x = L2Normalization(gamma_init=20)(x)
    x = Scale(axis=-1)(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    y = MyLayer(4)(features)
    merged = keras.layers.Concatenate()([x, y])
    score = FMLayer(2, 3, activation="sigmoid", name="fm")(merged)
    aux = keras.layers.Dense(1, name="aux")(y)
    model = keras.Model([image, features], [score, aux])
    return model, [RNG.normal(size=(4, 6, 6, 3)), RNG.normal(size=(4, 5))]


def registered():
    model = keras.Sequential(
        [keras.layers.InputLayer(input_shape=(4,)), keras.layers.Dense(3), RegisteredScale()]
    )
    return model, [RNG.normal(size=(5, 4))]


def lambda_bytecode():
    model = keras.Sequential(
        [
            keras.layers.InputLayer(input_shape=(3,)),
            keras.layers.Dense(3),
            keras.layers.Lambda(lambda t: t**2 + 1.0, output_shape=lambda shape: shape),
        ]
    )
    return model, [RNG.normal(size=(2, 3))]


def lambda_function():
    inputs = keras.Input((4, 3))
    x = keras.layers.Lambda(channel_slice, arguments={"index": 1})(inputs)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(2)(x)
    return keras.Model(inputs, outputs), [RNG.normal(size=(3, 4, 3))]


def lambda_by_name():
    inputs = keras.Input((4, 3))
    x = keras.layers.Lambda(NamedCallable(channel_slice), arguments={"index": 2})(inputs)
    outputs = keras.layers.Dense(2)(keras.layers.Flatten()(x))
    return keras.Model(inputs, outputs), [RNG.normal(size=(3, 4, 3))]


def unknown_layer():
    model = keras.Sequential([keras.layers.InputLayer(input_shape=(3,)), Swish2(), Scale()])
    return model, [RNG.normal(size=(2, 3))]


def user_registered():
    model = keras.Sequential(
        [keras.layers.InputLayer(input_shape=(3,)), keras.layers.Dense(2), Twice()]
    )
    return model, [RNG.normal(size=(2, 3))]


def custom_loss():
    model = keras.Sequential([keras.layers.InputLayer(input_shape=(3,)), keras.layers.Dense(2)])
    model.compile(optimizer="sgd", loss=my_loss, metrics=["mae"])
    return model, [RNG.normal(size=(2, 3))]


def mixed_precision():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = keras.Sequential(
            [
                keras.layers.InputLayer(input_shape=(6,)),
                keras.layers.Dense(8, activation="relu"),
                keras.layers.Dense(3, dtype="float32"),
            ]
        )
    finally:
        keras.mixed_precision.set_global_policy("float32")
    return model, [RNG.normal(size=(4, 6))]


def nested():
    inner = keras.Sequential(
        [keras.layers.InputLayer(input_shape=(5,)), keras.layers.Dense(4), Scale()], name="inner"
    )
    inputs = keras.Input((5,))
    outputs = keras.layers.Dense(2)(MyLayer(3)(inner(inputs)))
    return keras.Model(inputs, outputs), [RNG.normal(size=(3, 5))]


def nested_batchnorm():
    """A Sequential and a Functional with BatchNormalization inside a Functional: Keras 2
    orders a nested model's checkpoint variables layer by layer, its .h5 weights trainable
    first, so moving statistics land in other slots by position."""
    block = keras.Sequential(
        [
            keras.layers.InputLayer(input_shape=(6,)),
            keras.layers.Dense(5),
            keras.layers.BatchNormalization(),
            keras.layers.Dense(4),
            keras.layers.BatchNormalization(),
        ],
        name="block",
    )
    inner_in = keras.Input((4,))
    inner_out = keras.layers.BatchNormalization()(keras.layers.Dense(4)(inner_in))
    inner = keras.Model(inner_in, inner_out, name="inner")
    inputs = keras.Input((6,))
    outputs = keras.layers.Dense(3)(inner(block(inputs)))
    return keras.Model(inputs, outputs), [RNG.normal(size=(5, 6))]


def dict_inputs():
    first, second = keras.Input((3,), name="first"), keras.Input((2,), name="second")
    merged = keras.layers.Concatenate()([keras.layers.Dense(4)(first), second])
    outputs = {"score": keras.layers.Dense(1, name="score")(merged)}
    model = keras.Model({"first": first, "second": second}, outputs)
    return model, {"first": RNG.normal(size=(4, 3)), "second": RNG.normal(size=(4, 2))}


def sgd_momentum():
    model = keras.Sequential([keras.layers.InputLayer(input_shape=(3,)), keras.layers.Dense(2)])
    model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9, nesterov=True), loss="mse")
    model.fit(RNG.normal(size=(8, 3)), RNG.normal(size=(8, 2)), epochs=1, verbose=0)
    return model, [RNG.normal(size=(2, 3))]


class Subclassed(keras.Model):
    def __init__(self):
        super().__init__()
        self.dense = keras.layers.Dense(2)

    def call(self, x):
        return self.dense(x)


def subclassed():
    model = Subclassed()
    model(np.zeros((1, 3), "float32"))
    return model, [RNG.normal(size=(2, 3))]


BUILDERS = {
    "sequential": sequential,
    "functional": functional,
    "registered": registered,
    "lambda_bytecode": lambda_bytecode,
    "lambda_function": lambda_function,
    "lambda_by_name": lambda_by_name,
    "unknown_layer": unknown_layer,
    "user_registered": user_registered,
    "custom_loss": custom_loss,
    "mixed_precision": mixed_precision,
    "nested": nested,
    "nested_batchnorm": nested_batchnorm,
    "dict_inputs": dict_inputs,
    "sgd_momentum": sgd_momentum,
    "subclassed": subclassed,
}
# Also written as Keras 2 SavedModel directories, NAME_savedmodel/ (what model.save("dir") did).
SAVEDMODELS = (
    "sequential",
    "functional",
    "nested",
    "nested_batchnorm",
    "dict_inputs",
    "lambda_bytecode",
    "sgd_momentum",
    "subclassed",
)
# Keras 2 cannot write these as .h5 at all.
SAVEDMODEL_ONLY = ("subclassed",)


def main(out_dir: str) -> None:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = {}
    for name, build in BUILDERS.items():
        model, inputs = build()
        randomise(model)
        if isinstance(inputs, dict):  # fed by name; saved in name order
            given = {k: v.astype("float32") for k, v in inputs.items()}
            inputs = [given[k] for k in sorted(given)]
        else:
            inputs = [x.astype("float32") for x in inputs]
            given = inputs if len(inputs) > 1 else inputs[0]
        outputs = tf.nest.flatten(model(given, training=False))
        outputs = [np.asarray(y) for y in outputs]
        if name not in SAVEDMODEL_ONLY:
            model.save(out / f"{name}.h5", save_format="h5")
        if name in SAVEDMODELS:
            model.save(out / f"{name}_savedmodel", save_format="tf")
        for i, x in enumerate(inputs):
            np.save(out / f"{name}.x{i}.npy", x)
        for i, y in enumerate(outputs):
            np.save(out / f"{name}.y{i}.npy", y)
        written[name] = {"inputs": len(inputs), "outputs": len(outputs)}
    (out / "index.json").write_text(
        json.dumps({"keras": keras.__version__, "tensorflow": tf.__version__, "models": written})
    )


if __name__ == "__main__":
    main(sys.argv[1])
