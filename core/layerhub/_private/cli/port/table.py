"""The one translation table of ``layerhub port``: Keras 2 constructs and their Keras 3 code.

Everything ``port`` rewrites is listed here, and ``docs/porting.md`` prints this table
(``markdown()``); a construct that is not here is never rewritten by guess but reported and
left marked ``TODO(port)``.

A backend entry is the Keras 2 signature (names and defaults, as Keras 2 documents them) and a
Keras 3 template. ``{name}`` is the argument's code, or the Keras 2 default when the call leaves
it out; a ``[...]`` segment is written only when the call gives every argument inside it.
``_keras2.<fn>`` names a helper of the generated plugin (``port/keras2_ops.py``, copied into
it as ``_keras2.py``) where Keras 3 has no operation with the same numbers.
"""

from __future__ import annotations

from typing import Final, NamedTuple


class Entry(NamedTuple):
    """One row: ``K.<signature>`` becomes ``keras3``; ``why`` says what the row preserves."""

    signature: str
    keras3: str
    why: str = ""


# K.<name>(...) -> Keras 3. Defaults are Keras 2's; where Keras 3's default differs, the
# template names the argument so the Keras 2 default is written out.
BACKEND: Final[dict[str, Entry]] = {
    e.signature.split("(")[0]: e
    for e in [
        # reductions: same axis/keepdims meaning and defaults in Keras 3
        Entry(
            "sum(x, axis=None, keepdims=False)",
            "ops.sum({x}[, axis={axis}][, keepdims={keepdims}])",
        ),
        Entry(
            "mean(x, axis=None, keepdims=False)",
            "ops.mean({x}[, axis={axis}][, keepdims={keepdims}])",
        ),
        Entry(
            "max(x, axis=None, keepdims=False)",
            "ops.max({x}[, axis={axis}][, keepdims={keepdims}])",
        ),
        Entry(
            "min(x, axis=None, keepdims=False)",
            "ops.min({x}[, axis={axis}][, keepdims={keepdims}])",
        ),
        Entry(
            "prod(x, axis=None, keepdims=False)",
            "ops.prod({x}[, axis={axis}][, keepdims={keepdims}])",
        ),
        Entry(
            "std(x, axis=None, keepdims=False)",
            "ops.std({x}[, axis={axis}][, keepdims={keepdims}])",
        ),
        Entry(
            "var(x, axis=None, keepdims=False)",
            "ops.var({x}[, axis={axis}][, keepdims={keepdims}])",
        ),
        Entry(
            "any(x, axis=None, keepdims=False)",
            "ops.any({x}[, axis={axis}][, keepdims={keepdims}])",
        ),
        Entry(
            "all(x, axis=None, keepdims=False)",
            "ops.all({x}[, axis={axis}][, keepdims={keepdims}])",
        ),
        Entry(
            "logsumexp(x, axis=None, keepdims=False)",
            "ops.logsumexp({x}[, axis={axis}][, keepdims={keepdims}])",
        ),
        Entry(
            "cumsum(x, axis=0)",
            "ops.cumsum({x}, axis={axis})",
            "Keras 2 sums along axis 0 by default",
        ),
        Entry(
            "cumprod(x, axis=0)",
            "ops.cumprod({x}, axis={axis})",
            "Keras 2 multiplies along axis 0 by default",
        ),
        Entry(
            "argmax(x, axis=-1)",
            "ops.argmax({x}, axis={axis})",
            "Keras 2's default axis is -1, Keras 3's None",
        ),
        Entry(
            "argmin(x, axis=-1)",
            "ops.argmin({x}, axis={axis})",
            "Keras 2's default axis is -1, Keras 3's None",
        ),
        # products
        Entry(
            "dot(x, y)",
            "_keras2.dot({x}, {y})",
            "K.dot contracts x's last axis with y's second to last (a tensordot for rank > 2), "
            "not a batched matmul",
        ),
        Entry(
            "batch_dot(x, y, axes=None)",
            "_keras2.batch_dot({x}, {y}[, axes={axes}])",
            "Keras 2's axes defaults and its (batch, 1) result for rank-2 operands",
        ),
        # element-wise
        Entry("sqrt(x)", "_keras2.sqrt({x})", "Keras 2 clips negative inputs to 0 before the root"),
        Entry("square(x)", "ops.square({x})"),
        Entry("abs(x)", "ops.abs({x})"),
        Entry("exp(x)", "ops.exp({x})"),
        Entry("log(x)", "ops.log({x})"),
        Entry("pow(x, a)", "ops.power({x}, {a})"),
        Entry("sign(x)", "ops.sign({x})"),
        Entry("round(x)", "ops.round({x})"),
        Entry("sin(x)", "ops.sin({x})"),
        Entry("cos(x)", "ops.cos({x})"),
        Entry("tanh(x)", "ops.tanh({x})"),
        Entry("sigmoid(x)", "ops.sigmoid({x})"),
        Entry(
            "hard_sigmoid(x)",
            "_keras2.hard_sigmoid({x})",
            "Keras 2's slope 0.2 (Keras 3's hard_sigmoid uses 1/6)",
        ),
        Entry("softplus(x)", "ops.softplus({x})"),
        Entry("softsign(x)", "ops.softsign({x})"),
        Entry("elu(x, alpha=1.0)", "ops.elu({x}, alpha={alpha})"),
        Entry(
            "relu(x, alpha=0.0, max_value=None, threshold=0.0)",
            "keras.activations.relu({x}[, negative_slope={alpha}][, max_value={max_value}]"
            "[, threshold={threshold}])",
        ),
        Entry("softmax(x, axis=-1)", "ops.softmax({x}, axis={axis})"),
        Entry(
            "l2_normalize(x, axis=None)",
            "_keras2.l2_normalize({x}, axis={axis})",
            "x / sqrt(max(sum(x**2), 1e-12)), TensorFlow's epsilon",
        ),
        Entry("clip(x, min_value, max_value)", "ops.clip({x}, {min_value}, {max_value})"),
        Entry("maximum(x, y)", "ops.maximum({x}, {y})"),
        Entry("minimum(x, y)", "ops.minimum({x}, {y})"),
        Entry("equal(x, y)", "ops.equal({x}, {y})"),
        Entry("not_equal(x, y)", "ops.not_equal({x}, {y})"),
        Entry("greater(x, y)", "ops.greater({x}, {y})"),
        Entry("greater_equal(x, y)", "ops.greater_equal({x}, {y})"),
        Entry("less(x, y)", "ops.less({x}, {y})"),
        Entry("less_equal(x, y)", "ops.less_equal({x}, {y})"),
        Entry(
            "switch(condition, then_expression, else_expression)",
            "_keras2.switch({condition}, {then_expression}, {else_expression})",
            "a lower-rank condition is expanded on the right, as Keras 2 does",
        ),
        Entry("stop_gradient(variables)", "ops.stop_gradient({variables})"),
        Entry(
            "bias_add(x, bias, data_format=None)",
            "_keras2.bias_add({x}, {bias}, data_format={data_format})",
            "the bias goes on the channels axis of the image data format",
        ),
        # shapes
        Entry("concatenate(tensors, axis=-1)", "ops.concatenate({tensors}, axis={axis})"),
        Entry("stack(x, axis=0)", "ops.stack({x}, axis={axis})"),
        Entry("reshape(x, shape)", "ops.reshape({x}, {shape})"),
        Entry("permute_dimensions(x, pattern)", "ops.transpose({x}, axes={pattern})"),
        Entry("transpose(x)", "ops.transpose({x})"),
        Entry(
            "expand_dims(x, axis=-1)",
            "ops.expand_dims({x}, axis={axis})",
            "Keras 2's default axis is -1",
        ),
        Entry("squeeze(x, axis)", "ops.squeeze({x}, axis={axis})"),
        Entry("tile(x, n)", "ops.tile({x}, {n})"),
        Entry("repeat_elements(x, rep, axis)", "ops.repeat({x}, {rep}, axis={axis})"),
        Entry("repeat(x, n)", "_keras2.repeat({x}, {n})", "(batch, dim) -> (batch, n, dim)"),
        Entry("flatten(x)", "ops.reshape({x}, (-1,))"),
        Entry("batch_flatten(x)", "_keras2.batch_flatten({x})"),
        Entry("gather(reference, indices)", "ops.take({reference}, {indices}, axis=0)"),
        Entry(
            "shape(x)",
            "ops.shape({x})",
            "a tuple in Keras 3, a tensor in Keras 2: indexing and passing it to reshape "
            "behave the same",
        ),
        Entry("int_shape(x)", "tuple({x}.shape)"),
        Entry("ndim(x)", "ops.ndim({x})"),
        Entry("dtype(x)", "keras.backend.standardize_dtype({x}.dtype)"),
        Entry("zeros_like(x, dtype=None)", "ops.zeros_like({x}[, dtype={dtype}])"),
        Entry("ones_like(x, dtype=None)", "ops.ones_like({x}[, dtype={dtype}])"),
        Entry("cast(x, dtype)", "ops.cast({x}, {dtype})"),
        Entry(
            "constant(value, dtype=None)",
            "_keras2.constant({value}[, dtype={dtype}])",
            "Keras 2 makes floatx tensors of Python numbers",
        ),
        Entry(
            "conv1d(x, kernel, strides=1, padding='valid', data_format=None, dilation_rate=1)",
            "ops.conv({x}, {kernel}, strides={strides}, padding={padding}, "
            "data_format={data_format}, dilation_rate={dilation_rate})",
        ),
        Entry(
            "conv2d(x, kernel, strides=(1, 1), padding='valid', data_format=None, "
            "dilation_rate=(1, 1))",
            "ops.conv({x}, {kernel}, strides={strides}, padding={padding}, "
            "data_format={data_format}, dilation_rate={dilation_rate})",
        ),
        # configuration
        Entry(
            "arange(start, stop=None, step=1, dtype='int32')",
            "ops.arange({start}, {stop}, {step}, dtype={dtype})",
            "Keras 2 makes int32 ranges by default",
        ),
        Entry("one_hot(indices, num_classes)", "ops.one_hot({indices}, {num_classes})"),
        Entry("cast_to_floatx(x)", "_keras2.cast_to_floatx({x})"),
        Entry("backend()", "keras.config.backend()"),
        Entry("epsilon()", "keras.config.epsilon()"),
        Entry("floatx()", "keras.config.floatx()"),
        Entry("image_data_format()", "keras.config.image_data_format()"),
        Entry(
            "image_dim_ordering()",
            "_keras2.image_dim_ordering()",
            "'tf' for channels_last, 'th' for channels_first; a comparison with 'tf' or 'th' "
            "becomes one with image_data_format()",
        ),
        Entry("get_value(x)", "ops.convert_to_numpy({x})"),
        Entry("set_value(x, value)", "{x}.assign({value})"),
        # K.variable is rewritten where it is assigned to self.<name> (see STRUCTURE)
    ]
}

# Backend functions that are known and deliberately not translated: each is reported with its
# line and left marked TODO(port).
REFUSED: Final[dict[str, str]] = {
    "variable": "K.variable outside 'self.<name> = K.variable(...)' makes an untracked variable",
    "zeros": "K.zeros makes a variable in Keras 2; create a weight with add_weight in build()",
    "ones": "K.ones makes a variable in Keras 2; create a weight with add_weight in build()",
    "dropout": "random numbers: Keras 3 draws them from a SeedGenerator (keras.random.dropout)",
    "in_train_phase": "training-dependent code: use the call's training argument",
    "in_test_phase": "training-dependent code: use the call's training argument",
    "learning_phase": "Keras 3 has no global learning phase: use the call's training argument",
    "rnn": "K.rnn has no Keras 3 op of the same signature (keras.ops.rnn differs)",
    "update": "variable updates in call(): use variable.assign",
    "update_add": "variable updates in call(): use variable.assign_add",
    "moving_average_update": "variable updates in call(): use variable.assign",
    "placeholder": "graph placeholders do not exist in Keras 3",
    "function": "K.function does not exist in Keras 3",
    "gradients": "symbolic gradients do not exist in Keras 3",
    "random_normal": "random numbers: use keras.random with a SeedGenerator",
    "random_uniform": "random numbers: use keras.random with a SeedGenerator",
    "set_image_dim_ordering": "global configuration changed by a layer",
    "set_image_data_format": "global configuration changed by a layer",
    "set_floatx": "global configuration changed by a layer",
    "pool2d": "pooling: Keras 3's ops.max_pool / ops.average_pool take other arguments",
    "eye": "K.eye makes a variable in Keras 2",
    "print_tensor": "printing inside the graph: use keras.ops with a callback of your own",
}

# Keras 2 module paths (after tensorflow.keras -> keras) -> Keras 3 path.
MODULES: Final[dict[str, str]] = {
    "keras.engine.topology.Layer": "keras.layers.Layer",
    "keras.engine.topology.InputSpec": "keras.layers.InputSpec",
    "keras.engine.base_layer.Layer": "keras.layers.Layer",
    "keras.engine.base_layer.InputSpec": "keras.layers.InputSpec",
    "keras.engine.input_spec.InputSpec": "keras.layers.InputSpec",
    "keras.engine.Layer": "keras.layers.Layer",
    "keras.engine.InputSpec": "keras.layers.InputSpec",
    "keras.layers.core.Layer": "keras.layers.Layer",
    "keras.initializations": "keras.initializers",
    "keras.models.Model": "keras.Model",
    "keras.models.Sequential": "keras.Sequential",
    "keras.utils.generic_utils.get_custom_objects": "keras.saving.get_custom_objects",
    "keras.utils.get_custom_objects": "keras.saving.get_custom_objects",
    "keras.utils.generic_utils.CustomObjectScope": "keras.saving.CustomObjectScope",
    "keras.utils.CustomObjectScope": "keras.saving.CustomObjectScope",
}

# Keras 1/2 lower-case initializer callables that Keras 3 spells as classes.
INITIALIZERS: Final[dict[str, str]] = {
    "normal": "RandomNormal",
    "uniform": "RandomUniform",
    "zero": "Zeros",
    "one": "Ones",
}

# Prefixes of the Keras 2 spellings of the keras package.
PREFIXES: Final = (
    ("tensorflow.python.keras", "keras"),
    ("tensorflow.compat.v1.keras", "keras"),
    ("tensorflow.compat.v2.keras", "keras"),
    ("tensorflow.keras", "keras"),
    ("tf_keras", "keras"),
)

# Keras 3 packages whose names a Keras 2 reference keeps when Keras 3 has the same name.
SAME_NAME: Final = (
    "keras.layers",
    "keras.initializers",
    "keras.regularizers",
    "keras.constraints",
    "keras.activations",
    # Keras 3 only (Keras 2 had none of these): a module already partly ported keeps them.
    "keras.ops",
    "keras.saving",
    "keras.config",
    "keras.random",
)

# Layer-level rewrites, documented with the backend rows.
STRUCTURE: Final[list[tuple[str, str]]] = [
    (
        "`from keras import backend as K`, `keras.engine.topology` / `base_layer` imports, "
        "`tf.keras.*`",
        "`import keras`, `from keras import ops`; each name resolved to its Keras 3 "
        "home (`keras.layers.Layer`, `keras.layers.InputSpec`, `keras.initializers.*`, ...)",
    ),
    (
        "`self.add_weight(name, shape, ...)` (Keras 2 positional order) or "
        "`(shape, initializer, name, ...)` (Keras 1)",
        "`self.add_weight(name=..., shape=..., ...)`, "
        "every argument by keyword; a call whose order is not certain is reported",
    ),
    (
        "`self.w = K.variable(value, name=...)` with `self.trainable_weights = [self.w, ...]`",
        "`self.w = _keras2.variable(self, value, name=...)` (an `add_weight` whose initial "
        "value is "
        "`value`); the list assignment is removed, `non_trainable_weights` gives `trainable=False`",
    ),
    (
        "`input_shape[i].value`, `x.get_shape()`, `.as_list()`",
        "`input_shape[i]`, `x.shape`, `list(...)`",
    ),
    ("`super(Cls, self)`", "`super()`"),
    ("`get_output_shape_for`", "`compute_output_shape`"),
    (
        "a subclass of a Keras layer (`Dense`, `Conv2D`, ...)",
        "ported as a layer deriving from "
        "Keras 3's class of that name; the port notes it, since Keras 3's internals differ",
    ),
    (
        "no `compute_output_shape` (Keras 2 traced `call()`)",
        "`compute_output_shape` returning "
        "`_keras2.output_shape(self, input_shape)`, which traces `call()` symbolically",
    ),
    (
        "`K.image_dim_ordering() == 'tf'` / `'th'`",
        "`keras.config.image_data_format() == 'channels_last'` / `'channels_first'`",
    ),
    (
        "`initializers.normal(...)`, `initializations.get(...)`",
        "`keras.initializers.RandomNormal(...)`, `keras.initializers.get(...)`",
    ),
    (
        "no `get_config`, or one missing constructor arguments",
        "`get_config` written from the attributes `__init__` stores each argument in "
        "(serialised with `keras.initializers/regularizers/constraints/activations.serialize` "
        "when stored through their `get`); an argument stored nowhere is reported",
    ),
    (
        "`@interfaces.legacy_*` and `@tf_utils.shape_type_conversion` decorators",
        "removed (Keras 1 argument conversion; Keras 3 passes shapes as tuples already)",
    ),
    (
        "`self.x = tf.Variable(...)`, `self.add_update(...)` in a layer",
        "reported: Keras 3 tracks no raw TensorFlow variable and has no `add_update`",
    ),
    (
        "the class's bare Keras 2 name",
        "a `layerhub_legacy_names` alias, so `.h5` files that "
        "saved it as `ClassName` load; the constructor keeps every Keras 2 argument name",
    ),
]


def markdown() -> str:
    """The table as Markdown, as ``docs/porting.md`` shows it."""
    lines = [
        "| Keras 2 | Keras 3 | why |",
        "| --- | --- | --- |",
    ]
    for entry in BACKEND.values():
        keras3 = entry.keras3.replace("|", "\\|")
        lines.append(f"| `K.{entry.signature}` | `{keras3}` | {entry.why} |")
    lines.append("")
    lines.append("| Keras 2 | Keras 3 |")
    lines.append("| --- | --- |")
    lines += [f"| {old} | {new} |" for old, new in STRUCTURE]
    lines.append("")
    lines.append("Reported, never translated (left marked `TODO(port)`):")
    lines.append("")
    lines += [f"- `K.{name}`: {why}" for name, why in REFUSED.items()]
    return "\n".join(lines) + "\n"
