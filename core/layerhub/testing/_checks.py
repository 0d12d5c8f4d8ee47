"""The seven conformance rules behind ``layerhub.testing.check_layer``."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import inspect
import json
import logging
import os
import re
import tempfile
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import keras
import numpy as np
from keras import ops

from layerhub._private.errors import LayerHubError
from layerhub._private.registry import Registry
from layerhub._private.registry import registry as installed_registry
from layerhub.testing._fresh import RoundTripError, assert_roundtrip
from layerhub.testing._training import _tensorflow, weight_gradients

Shape = tuple[int | None, ...]

RULES: Final[Mapping[int, str]] = {
    1: "config round trip",
    2: "fresh-interpreter round trip",
    3: "output shapes",
    4: "weights in build()",
    5: "gradients",
    6: "jit_compile and mixed precision",
    7: "plugin registration",
}

_DEFAULT_FIX: Final[Mapping[int, str]] = {
    1: "override get_config(): config = super().get_config(); config.update({...}) with every "
    "constructor argument, serialising initializers etc. with keras.initializers.serialize",
    2: "create every weight in build() and make get_config() return every constructor argument",
    3: "make compute_output_shape(input_shape) return what call() returns (a tuple, or a list of "
    "tuples for several outputs) and never use the batch size of input_shape",
    4: "create weights in build() with self.add_weight(), sublayers in __init__() (building them "
    "in build()), never inside call()",
    5: "use every trainable weight in call() (or create it with trainable=False)",
    6: "compute in self.compute_dtype (ops.cast(weight, self.compute_dtype)) and use keras.ops "
    "only, with no Python-side logic on tensor values",
    7: "decorate the class with @keras.saving.register_keras_serializable(package=<plugin "
    "package>), return it from the layerhub_layers hook and list it in the plugin's "
    "'layerhub.layers' entry points, then reinstall the plugin",
}


class ConformanceError(AssertionError):
    """``check_layer`` found broken rules.

    The message has one paragraph per broken rule: ``[layerhub rule N: title]``, what was seen,
    and the usual fix.

    Attributes:
        failures: rule number -> that rule's paragraph, in rule order.
    """

    def __init__(self, failures: Mapping[int, str]) -> None:
        self.failures = dict(sorted(failures.items()))
        super().__init__("\n\n".join(self.failures.values()))

    @property
    def rules(self) -> list[int]:
        """The numbers of the broken rules."""
        return list(self.failures)


class _Broken(Exception):
    def __init__(self, seen: str, fix: str | None = None) -> None:
        super().__init__(seen)
        self.seen = seen
        self.fix = fix


@contextlib.contextmanager
def _doing(what: str, fix: str | None = None) -> Iterator[None]:
    """Report any exception raised inside as a broken rule, saying what was being done."""
    try:
        yield
    except _Broken:
        raise
    except Exception as error:  # the layer under test may raise anything
        raise _Broken(f"{what} raised {_summary(error)}", fix) from error


_ANSI: Final = re.compile(r"\x1b\[[0-9;]*m")
_NESTED: Final = re.compile(r"^\s*(\w+(?:Error|Exception)): ", re.MULTILINE)
_NOISE: Final = re.compile(r"Exception encountered when calling|Arguments received by|•")


def _summary(error: BaseException) -> str:
    """``Type: the first informative line``, past the boilerplate Keras and tf.function add."""
    name, text = type(error).__name__, _ANSI.sub("", str(error))
    if "in user code:" in text and (nested := list(_NESTED.finditer(text))):
        # tf.function prints the traceback first and the error it wraps last.
        name, text = nested[-1].group(1), text[nested[-1].end() :]
    lines = [line.strip() for line in text.splitlines()]
    useful = [line for line in lines if line and not _NOISE.match(line)]
    summary = useful[0] if useful else ""
    if (end := summary.find(". ", 30)) > 0:
        summary = summary[: end + 1]
    if len(summary) > 240:
        summary = summary[:237] + "..."
    if "tf.Variable" in summary:
        summary += " (variables are being created in call(): see rule 4)"
    return f"{name}: {summary}" if summary else name


@dataclasses.dataclass
class _Case:
    cls: type[Any]
    init_kwargs: dict[str, Any]
    config_exempt: frozenset[str]
    shapes: list[Shape]
    multi: bool
    inputs: list[np.ndarray[Any, Any]]
    mixed_precision: str | None
    tmp_path: Path | None
    atol: float
    rtol: float
    registry: Registry
    rng: np.random.Generator

    def new_layer(self) -> Any:
        return self.cls(**copy.deepcopy(self.init_kwargs))

    def arg(self, items: Sequence[Any]) -> Any:
        return list(items) if self.multi else items[0]

    def shape_arg(self, batch: int | bool | None = True) -> Any:
        """The input shape(s) as ``build`` receives them; ``batch=None`` for an unknown batch."""
        shapes = self.shapes if batch is True else [(batch, *s[1:]) for s in self.shapes]
        return self.arg(shapes)

    def symbolic_inputs(self, known_batch: bool = False) -> list[Any]:
        return [
            keras.Input(shape=s[1:], batch_size=s[0] if known_batch else None, dtype=x.dtype.name)
            for s, x in zip(self.shapes, self.inputs, strict=True)
        ]

    def bigger_batch(self) -> list[np.ndarray[Any, Any]]:
        return [np.concatenate([x, x[:1]]) for x in self.inputs]

    def call(
        self, layer: Any, context: str = "", fix: str | None = None, **kwargs: Any
    ) -> list[Any]:
        what = f"calling the layer on inputs of shape {_show(self.shape_arg())}{context}"
        with _doing(what, fix):
            return list(keras.tree.flatten(layer(self.arg(self.inputs), **kwargs)))


def check_layer(
    layer_cls: type[Any],
    init_kwargs: Mapping[str, Any] | None,
    input_shape: Shape | Sequence[Shape] | None,
    *,
    input_dtype: str = "float32",
    input_data: Any = None,
    rules: Iterable[int] | None = None,
    skip: Iterable[int] = (),
    config_exempt: Iterable[str] = (),
    mixed_precision: str | None = "mixed_bfloat16",
    tmp_path: str | os.PathLike[str] | None = None,
    atol: float = 1e-4,
    rtol: float = 1e-4,
    seed: int = 0,
    registry: Registry | None = None,
) -> None:
    """Check that a layer class follows the seven layerhub rules, and explain any it breaks.

    Modelled on the checks Keras runs on its own layers. Every selected rule runs on fresh
    instances, so one run reports every broken rule; about five seconds per layer on a CPU, most
    of it the one fresh interpreter of rule 2.

    1. ``from_config(get_config())`` gives an equal config; every constructor argument is in it.
    2. Saved with ``layerhub.save_model``, loaded with ``layerhub.load_model`` in a fresh
       interpreter without ``custom_objects``, the model gives the same outputs.
    3. ``compute_output_shape`` equals the real output shapes; an unknown batch size works.
    4. Weights are created in ``build()`` only: calling the layer creates none.
    5. Every trainable weight receives a non-zero gradient. The layer is used as initialised:
       if a weight is initialised so that it blocks the others' gradient (a zero gate such as
       PAM's ``gamma``), pass ``init_kwargs`` that make it non-zero, such as
       ``{"gamma_initializer": "ones"}``.
    6. It works in a model compiled with ``jit_compile=True`` (predict and a training step), and
       under the ``mixed_precision`` dtype policy: outputs in the compute dtype, weights in
       float32, all finite. The global dtype policy is always restored.
    7. It is registered as ``"<top-level package>>ClassName"`` and its plugin's hooks and
       entry-point metadata agree (it is provided by an installed, loaded plugin).

    Example:

    >>> from layerhub.testing import check_layer
    >>> from layerhub_scale import Scale
    >>> check_layer(Scale, {"axis": -1}, (2, 3))  # doctest: +SKIP

    Args:
        layer_cls: the layer class.
        init_kwargs: constructor arguments of the instances checked.
        input_shape: the input shape with a batch size, such as ``(2, 3)``; a list of shapes for
            a layer that takes a list of inputs. Optional when ``input_data`` is given.
        input_dtype: dtype of the generated inputs; floats are standard normal, integers lie in
            ``[0, 10)``.
        input_data: inputs to use instead of random ones (an array, or a list of arrays).
        rules: check only these rule numbers.
        skip: rule numbers not to check, such as ``(2, 7)`` for a layer defined in a test
            module rather than in an installed plugin.
        config_exempt: constructor arguments that rule 1 lets get_config() leave out, such as
            a runtime-only switch that a saved model should not pin.
        mixed_precision: the dtype policy of rule 6, or ``None`` to leave it out.
            ``"mixed_bfloat16"`` by default, since CPUs lack many ``float16`` kernels.
        tmp_path: where rule 2 writes its files (a temporary directory by default).
        atol: absolute tolerance of output comparisons.
        rtol: relative tolerance of output comparisons.
        seed: seed of the generated inputs.
        registry: the registry of rule 7 (the installed plugins by default).

    Raises:
        ConformanceError: an ``AssertionError`` with one paragraph per broken rule.
        ValueError: unknown rule numbers, or neither ``input_shape`` nor ``input_data``.
    """
    selected = sorted(set(RULES if rules is None else rules) - set(skip))
    if unknown := sorted(set(selected) - set(RULES)):
        raise ValueError(f"rules are numbered 1 to {len(RULES)}. Received: rules={unknown}")
    case = _make_case(
        layer_cls,
        dict(init_kwargs or {}),
        frozenset(config_exempt),
        input_shape,
        input_dtype,
        input_data,
        mixed_precision,
        Path(tmp_path) if tmp_path is not None else None,
        atol,
        rtol,
        seed,
        registry or installed_registry,
    )
    try:
        case.new_layer()
    except Exception as error:
        message = _message(
            1,
            case,
            f"{layer_cls.__name__}(**{case.init_kwargs!r}) raised {_summary(error)}",
            "pass init_kwargs the constructor accepts",
        )
        raise ConformanceError({1: message}) from error
    failures: dict[int, str] = {}
    first_cause: BaseException | None = None
    # Each check makes new models and tf.functions on purpose: TF's retracing advice is noise.
    tf_logger = logging.getLogger("tensorflow")
    level = tf_logger.level
    tf_logger.setLevel(logging.ERROR)
    try:
        for rule in selected:
            try:
                _CHECKS[rule](case)
            except _Broken as broken:
                fix = broken.fix or _DEFAULT_FIX[rule]
                failures[rule] = _message(rule, case, broken.seen, fix)
                first_cause = first_cause or broken.__cause__
    finally:
        tf_logger.setLevel(level)
    if failures:
        raise ConformanceError(failures) from first_cause


def _make_case(
    cls: type[Any],
    init_kwargs: dict[str, Any],
    config_exempt: frozenset[str],
    input_shape: Shape | Sequence[Shape] | None,
    dtype: str,
    input_data: Any,
    mixed_precision: str | None,
    tmp_path: Path | None,
    atol: float,
    rtol: float,
    seed: int,
    registry: Registry,
) -> _Case:
    rng = np.random.default_rng(seed)
    if input_data is not None:
        multi = isinstance(input_data, (list, tuple))
        inputs = [np.asarray(x) for x in input_data] if multi else [np.asarray(input_data)]
        shapes: list[Shape] = [tuple(x.shape) for x in inputs]
    elif input_shape is None:
        raise ValueError("check_layer needs input_shape or input_data")
    else:
        multi = bool(input_shape) and all(isinstance(s, (list, tuple)) for s in input_shape)
        raw = list(input_shape) if multi else [input_shape]
        shapes = [tuple(s) for s in raw]  # type: ignore[arg-type]
        if any(d is None for s in shapes for d in s):
            raise ValueError(
                f"input_shape must be fully known, batch size included. Received: {input_shape}"
            )
        inputs = [_random(rng, s, dtype) for s in shapes]  # type: ignore[arg-type]
    return _Case(
        cls,
        init_kwargs,
        config_exempt,
        shapes,
        multi,
        inputs,
        mixed_precision,
        tmp_path,
        atol,
        rtol,
        registry,
        rng,
    )


def _random(rng: np.random.Generator, shape: tuple[int, ...], dtype: str) -> np.ndarray[Any, Any]:
    kind = np.dtype(dtype).kind
    if kind == "f":
        return rng.standard_normal(shape).astype(dtype)
    if kind == "b":
        return rng.random(shape) < 0.5
    return rng.integers(0, 10, size=shape).astype(dtype)


def _message(rule: int, case: _Case, seen: str, fix: str) -> str:
    return f"[layerhub rule {rule}: {RULES[rule]}] {case.cls.__name__}: {seen}\n  Fix: {fix}"


def _show(shapes: Any) -> str:
    return repr(shapes).replace("'", "")


def _shape_list(value: Any) -> list[Shape]:
    """A shape, or a nested structure of shapes, as a flat list of tuples."""
    if _is_shape(value):
        return [tuple(None if d is None else int(d) for d in value)]
    if isinstance(value, Mapping):
        return [s for key in sorted(value) for s in _shape_list(value[key])]
    if isinstance(value, (list, tuple)):
        return [s for item in value for s in _shape_list(item)]
    raise TypeError(f"not a shape: {value!r}")


def _is_shape(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and all(
        d is None or isinstance(d, (int, np.integer)) for d in value
    )


def _is_float(tensor: Any) -> bool:
    return "float" in keras.backend.standardize_dtype(tensor.dtype)


def _weight_name(layer: Any, weight: Any) -> str:
    """The weight's path inside the layer, without the instance's auto-numbered name."""
    return str(weight.path).removeprefix(f"{layer.name}/")


def _numpy(tensor: Any) -> np.ndarray[Any, Any]:
    return np.asarray(ops.convert_to_numpy(tensor))


# -- rule 1 ----------------------------------------------------------------------------------------


def _constructor_args(cls: type[Any]) -> list[str]:
    base = set(inspect.signature(keras.layers.Layer.__init__).parameters)
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    named = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    return [p.name for p in params if p.kind not in named and p.name not in base]


def _config_json(config: Any, what: str) -> str:
    fix = (
        "keep plain values in the config and serialise objects with keras.initializers.serialize,"
        " keras.regularizers.serialize, keras.constraints.serialize, keras.activations.serialize"
    )
    with _doing(f"serialising {what} to JSON", fix):
        return json.dumps(keras.saving.serialize_keras_object(config), sort_keys=True)


def _check_config(case: _Case) -> None:
    layer = case.new_layer()
    try:
        config = layer.get_config()
    except NotImplementedError as error:
        raise _Broken(
            "get_config() is not implemented, and Keras cannot write one itself because a "
            "constructor argument is not a plain value, so the layer cannot be saved"
        ) from error
    except Exception as error:
        raise _Broken(f"get_config() on a new layer raised {_summary(error)}") from error
    if not isinstance(config, dict):
        raise _Broken(f"get_config() returned {type(config).__name__}, not a dict")
    args = [name for name in _constructor_args(case.cls) if name not in case.config_exempt]
    if missing := [name for name in args if name not in config]:
        entries = ", ".join(f"{name!r}: self.{name}" for name in missing)
        raise _Broken(
            f"get_config() lacks the constructor argument(s) {', '.join(missing)}, so "
            "from_config() and loaded models lose them",
            f"in get_config(): config = super().get_config(); config.update({{{entries}}}), "
            "serialising initializers etc. with keras.initializers.serialize",
        )
    saved = _config_json(config, "get_config()")
    with _doing("from_config(get_config())", "accept every key get_config() writes in __init__"):
        revived = case.cls.from_config(copy.deepcopy(config)).get_config()
    again = _config_json(revived, "the config of from_config(get_config())")
    if again != saved:
        before, after = json.loads(saved), json.loads(again)
        keys = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
        diffs = "; ".join(f"{k}: {before.get(k)!r} -> {after.get(k)!r}" for k in keys[:5])
        raise _Broken(
            f"from_config(get_config()) gives a different config ({diffs})",
            "store each constructor argument as given and return it unchanged from "
            "get_config(), serialised so that __init__ accepts it back",
        )


# -- rule 2 ----------------------------------------------------------------------------------------


def _model(case: _Case, layer: Any) -> Any:
    """A functional model of the layer alone, at a known batch size (unknown is rule 3's)."""
    inputs = case.symbolic_inputs(known_batch=True)
    outputs = layer(case.arg(inputs))
    return keras.Model(case.arg(inputs), outputs)


def _check_roundtrip(case: _Case) -> None:
    with _doing("building a model of the layer on keras.Input"):
        model = _model(case, case.new_layer())
    with tempfile.TemporaryDirectory(prefix="layerhub-check-") as scratch:
        directory = case.tmp_path / case.cls.__name__ if case.tmp_path else Path(scratch)
        try:
            assert_roundtrip(
                model, case.arg(case.inputs), directory, atol=case.atol, rtol=case.rtol
            )
        except RoundTripError as error:
            raise _Broken(error.seen, error.fix) from None
        except Exception as error:  # saving runs the layer's own get_config and friends
            raise _Broken(f"saving with layerhub.save_model raised {_summary(error)}") from error


# -- rule 3 ----------------------------------------------------------------------------------------


def _check_shapes(case: _Case) -> None:
    layer = case.new_layer()
    real: list[Shape] = [tuple(int(d) for d in t.shape) for t in case.call(layer)]
    argument = case.shape_arg()
    with _doing(f"compute_output_shape({_show(argument)})"):
        expected = _shape_list(layer.compute_output_shape(argument))
    if expected != real:
        raise _Broken(
            f"compute_output_shape({_show(argument)}) returns {_show(expected)} but call() "
            f"returns tensors of shape {_show(real)}",
            "make compute_output_shape compute exactly the shapes call() returns (a tuple for "
            "one output, a list of tuples for several)",
        )
    _check_unknown_batch(case, real)


def _check_unknown_batch(case: _Case, real: list[Shape]) -> None:
    batch = len(case.inputs[0])
    symbolic = case.symbolic_inputs()
    fix = (
        "never use the batch size of input_shape in build() or compute_output_shape() (keep it "
        "None); inside call() use ops.shape(x)[0], not x.shape[0]"
    )
    with _doing(f"calling the layer on keras.Input of shape {_show(case.shape_arg(None))}", fix):
        outputs = case.new_layer()(case.arg(symbolic))
    seen = [tuple(t.shape) for t in keras.tree.flatten(outputs)]
    wanted = [(None if s[0] == batch else s[0], *s[1:]) if s else s for s in real]
    if seen != wanted:
        raise _Broken(
            f"with batch size None the output shapes are {_show(seen)}; expected {_show(wanted)}",
            fix,
        )
    model = keras.Model(case.arg(symbolic), outputs)
    bigger = case.bigger_batch()
    with _doing(f"running the model on a batch of {batch + 1}", fix):
        results = _run_unknown_batch(case, model, bigger)
    got = [tuple(int(d) for d in t.shape) for t in results]
    expected = [(batch + 1 if s[0] == batch else s[0], *s[1:]) if s else s for s in real]
    if got != expected:
        raise _Broken(
            f"on a batch one larger the outputs have shapes {_show(got)}; expected "
            f"{_show(expected)}",
            fix,
        )


def _run_unknown_batch(case: _Case, model: Any, inputs: list[np.ndarray[Any, Any]]) -> list[Any]:
    if not _tensorflow():
        return list(keras.tree.flatten(model(case.arg(inputs), training=False)))
    import tensorflow as tf

    # A graph traced with the batch dimension unknown, as in model.fit on a dataset.
    signature = [tf.TensorSpec((None, *x.shape[1:]), x.dtype) for x in inputs]

    def run(*xs: Any) -> Any:
        return model(case.arg(xs), training=False)

    traced = tf.function(run, input_signature=signature)
    return list(keras.tree.flatten(traced(*inputs)))


# -- rule 4 ----------------------------------------------------------------------------------------


@contextlib.contextmanager
def _watch_variables() -> Iterator[list[str]]:
    """Names of the backend variables created inside the block, where the backend can tell."""
    created: list[str] = []
    if not _tensorflow():
        yield created
        return
    import tensorflow as tf

    def creator(next_creator: Callable[..., Any], **kwargs: Any) -> Any:
        created.append(str(kwargs.get("name") or "unnamed"))
        return next_creator(**kwargs)

    with tf.variable_creator_scope(creator):
        yield created


def _check_build(case: _Case) -> None:
    layer = case.new_layer()
    argument = case.shape_arg()
    with _doing(f"build({_show(argument)})"):
        layer.build(argument)
    built = {id(v) for v in layer.variables}
    with _watch_variables() as created:
        first = [_numpy(t) for t in case.call(layer)]
        after_first = {id(v): _weight_name(layer, v) for v in layer.variables}
        second = [_numpy(t) for t in case.call(layer)]
    after_second = {id(v): _weight_name(layer, v) for v in layer.variables}
    if late := sorted(path for key, path in after_first.items() if key not in built):
        raise _Broken(
            f"the first call created weights that build() did not: {', '.join(late)}; a "
            "loaded model would leave them untrained",
            "create them in build(); for a sublayer made in __init__(), call its build() "
            "from build()",
        )
    if extra := sorted(path for key, path in after_second.items() if key not in after_first):
        raise _Broken(f"calling the layer again added weights: {', '.join(extra)}")
    if created:
        raise _Broken(
            f"calling the built layer twice created {len(created)} new variables "
            f"({', '.join(created[:6])}): a layer such as Conv2D is made inside call(), so every "
            "call gets new, untrained weights"
        )
    for index, (a, b) in enumerate(zip(first, second, strict=False)):
        if not np.array_equal(a, b, equal_nan=True):
            raise _Broken(
                f"two calls on the same inputs gave different outputs (output {index}), as when "
                "call() creates freshly initialised weights each time"
            )


# -- rule 5 ----------------------------------------------------------------------------------------


def _loss(
    case: _Case, outputs: list[Any], probes: list[np.ndarray[Any, Any]] | None
) -> tuple[Any, list[np.ndarray[Any, Any]]]:
    floats = [o for o in outputs if _is_float(o)]
    if probes is None:
        probes = [case.rng.standard_normal(tuple(o.shape)).astype("float32") for o in floats]
    # Random weighting: a plain sum can have zero gradient (after softmax or normalisation).
    terms = [ops.sum(ops.cast(o, "float32") * p) for o, p in zip(floats, probes, strict=True)]
    return sum(terms[1:], terms[0]) if terms else None, probes


def _check_gradients(case: _Case) -> None:
    layer = case.new_layer()
    outputs = case.call(layer)
    weights = list(layer.trainable_weights)
    if not weights or not any(_is_float(o) for o in outputs):
        return
    if _tensorflow():
        dead = _dead_by_tape(case, layer, weights)
    else:
        dead = _dead_by_probe(case, layer, weights)
    if dead:
        raise _Broken(
            f"trainable weight(s) {', '.join(dead)} get no gradient (None or all zeros) from a "
            "loss on the outputs, so training never changes them",
            "use every trainable weight in call(), create unused ones with trainable=False, and "
            "if an initial value blocks the gradient (a zero gate such as PAM's gamma), check "
            "with init_kwargs that make it non-zero, e.g. {'gamma_initializer': 'ones'}",
        )


def _dead_by_tape(case: _Case, layer: Any, weights: list[Any]) -> list[str]:
    def loss(outputs: Any) -> Any:
        return _loss(case, keras.tree.flatten(outputs), None)[0]

    what = f"calling the layer on inputs of shape {_show(case.shape_arg())} under a GradientTape"
    with _doing(what):
        grads = weight_gradients(layer, case.arg(case.inputs), loss, training=True)
    return [
        _weight_name(layer, w)
        for w, g in zip(weights, grads, strict=True)
        if g is None or not np.any(g)
    ]


def _dead_by_probe(case: _Case, layer: Any, weights: list[Any]) -> list[str]:
    """Backend-neutral: nudge each weight and see whether the loss moves at all."""
    loss, probes = _loss(case, case.call(layer, training=True), None)
    if loss is None:
        return []
    base = float(_numpy(loss))
    dead = []
    for weight in weights:
        original = np.array(weight.numpy())
        step = case.rng.standard_normal(original.shape) * 1e-2 * (1 + np.abs(original).max())
        weight.assign(ops.cast(original + step, weight.dtype))
        try:
            moved, _ = _loss(case, case.call(layer, training=True), probes)
        finally:
            weight.assign(ops.cast(original, weight.dtype))
        if float(_numpy(moved)) == base:
            dead.append(_weight_name(layer, weight))
    return dead


# -- rule 6 ----------------------------------------------------------------------------------------


def _check_compiled(case: _Case) -> None:
    fix_jit = (
        "use keras.ops only, no Python control flow or numpy on tensor values, and create "
        "variables in build() (tf.function/XLA refuse variables created while tracing)"
    )
    with _doing("building a model of the layer on keras.Input"):
        model = _model(case, case.new_layer())
    data = case.arg(case.inputs)
    with _doing("calling the model eagerly"):
        eager = [_numpy(t) for t in keras.tree.flatten(model(data, training=False))]
    with _doing("model.compile(jit_compile=True) and predict()", fix_jit):
        model.compile(optimizer="sgd", loss="mse", jit_compile=True)
        compiled = [np.asarray(y) for y in keras.tree.flatten(model.predict(data, verbose=0))]
    if len(compiled) != len(eager):
        raise _Broken(f"predict() gives {len(compiled)} outputs, a direct call {len(eager)}")
    for index, (want, got) in enumerate(zip(eager, compiled, strict=True)):
        scale = 1 + float(np.max(np.abs(want))) if want.size else 1.0
        if want.shape != got.shape or not np.allclose(
            got, want, atol=case.atol * scale, rtol=case.rtol, equal_nan=True
        ):
            raise _Broken(
                f"under jit_compile=True output {index} differs from the eager output", fix_jit
            )
    if all("float" in str(y.dtype) for y in eager):
        zeros = [np.zeros_like(y) for y in eager]
        targets = zeros if len(zeros) > 1 else zeros[0]
        with _doing("train_on_batch() with jit_compile=True", fix_jit), warnings.catch_warnings():
            # Weightless layers, and weights without gradients, are rule 5's business.
            warnings.filterwarnings("ignore", "The model does not have any trainable weights")
            warnings.filterwarnings("ignore", "Gradients do not exist for variables")
            loss = model.train_on_batch(data, targets)
        if not np.all(np.isfinite(np.asarray(loss, dtype="float64"))):
            raise _Broken(f"a jit-compiled training step gave a non-finite loss ({loss})", fix_jit)
    if case.mixed_precision:
        _check_mixed(case, case.mixed_precision)


def _check_mixed(case: _Case, policy: str) -> None:
    fix = (
        "compute in self.compute_dtype: cast weights with ops.cast(w, self.compute_dtype), "
        "create them with add_weight (which keeps them in the variable dtype), and avoid "
        "constants that overflow or underflow in 16 bits"
    )
    previous = keras.config.dtype_policy()
    try:
        with _doing(f"setting the dtype policy {policy!r}", "pass a valid policy name"):
            keras.config.set_dtype_policy(policy)
        layer = case.new_layer()
        outputs = case.call(layer, f" under the {policy!r} policy", fix)
        compute = layer.compute_dtype
        symbolic = [
            keras.KerasTensor(s, dtype=compute if _is_float(x) else x.dtype)
            for s, x in zip(case.shapes, case.inputs, strict=True)
        ]
        with _doing(f"compute_output_spec under the {policy!r} policy", fix):
            specs = keras.tree.flatten(layer.compute_output_spec(case.arg(symbolic)))
        if len(specs) != len(outputs):
            raise _Broken(
                f"under {policy!r} the layer returns {len(outputs)} outputs but declares "
                f"{len(specs)}",
                _DEFAULT_FIX[3],
            )
        for index, (tensor, spec) in enumerate(zip(outputs, specs, strict=True)):
            got = keras.backend.standardize_dtype(tensor.dtype)
            want = keras.backend.standardize_dtype(spec.dtype)
            if got != want:
                raise _Broken(
                    f"under {policy!r} output {index} is {got} but the layer declares {want} "
                    f"(compute dtype {compute})",
                    fix,
                )
            if _is_float(tensor) and not np.all(np.isfinite(_numpy(ops.cast(tensor, "float32")))):
                raise _Broken(f"under {policy!r} output {index} has inf or nan values", fix)
        variable_dtype = layer.dtype_policy.variable_dtype
        if wrong := [
            f"{_weight_name(layer, w)} ({w.dtype})"
            for w in layer.weights
            if _is_float(w) and keras.backend.standardize_dtype(w.dtype) != variable_dtype
        ]:
            raise _Broken(
                f"under {policy!r} these weights are not {variable_dtype}: {', '.join(wrong)}",
                fix,
            )
    finally:
        keras.config.set_dtype_policy(previous)


# -- rule 7 ----------------------------------------------------------------------------------------


def _check_registration(case: _Case) -> None:
    cls = case.cls
    package = cls.__module__.partition(".")[0]
    wanted = f"{package}>{cls.__name__}"
    name = str(keras.saving.get_registered_name(cls))
    if name != wanted or keras.saving.get_registered_object(name) is not cls:
        raise _Broken(
            f"it is registered as {name!r}, not {wanted!r}",
            f"decorate the class with @keras.saving.register_keras_serializable(package="
            f"{package!r}), so saved files name the plugin that provides it",
        )
    records = case.registry.plugin_for(name)
    if not records:
        raise _Broken(
            f"no installed plugin declares {name!r}",
            f'list it in the plugin\'s pyproject.toml ([project.entry-points."layerhub.layers"] '
            f'{cls.__name__} = "{package}:{cls.__name__}"), return it from the layerhub_layers '
            "hook and reinstall the plugin (pip install -e .)",
        )
    try:
        case.registry.load_plugin(records[0].plugin)
        provided = case.registry.get(name)
    except LayerHubError as error:
        raise _Broken(f"its plugin does not load: {error}") from error
    record = case.registry.plugin_for(name)[0]
    if record.status != "loaded":
        raise _Broken(f"its plugin is {record.status}: {record.error}")
    if provided is not cls:
        raise _Broken(
            f"the plugin's hooks provide a different object under {name!r} "
            f"({provided.__module__}.{provided.__qualname__})",
            "return the class itself from the layerhub_layers hook, imported from its module",
        )


_CHECKS: Final[Mapping[int, Callable[[_Case], None]]] = {
    1: _check_config,
    2: _check_roundtrip,
    3: _check_shapes,
    4: _check_build,
    5: _check_gradients,
    6: _check_compiled,
    7: _check_registration,
}
