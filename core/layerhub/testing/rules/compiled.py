"""Rule 6: the layer works under ``jit_compile=True`` and under each mixed-precision policy."""

from __future__ import annotations

import warnings

import keras
import numpy as np

from layerhub.testing.rules._common import (
    Broken,
    Case,
    doing,
    is_float,
    model,
    numpy,
    weight_name,
)

# float16 overflows above 65504 (a 1e9 mask constant becomes inf, and inf * 0 is nan); bfloat16
# keeps float32's range but only 8 bits of precision. A layer must survive both.
POLICIES = ("mixed_float16", "mixed_bfloat16")

_FIX_JIT = (
    "use keras.ops only, no Python control flow or numpy on tensor values, and create "
    "variables in build() (tf.function/XLA refuse variables created while tracing)"
)
_FIX_MIXED = (
    "compute in self.compute_dtype: cast weights with ops.cast(w, self.compute_dtype), "
    "create them with add_weight (which keeps them in the variable dtype), and avoid "
    "constants that overflow or underflow in 16 bits (float16 ends at 65504: use -1e4 rather "
    "than -1e9 for a mask, or keras.config.epsilon()-sized values with care)"
)


def check(case: Case) -> None:
    __tracebackhide__ = True
    with doing("building a model of the layer on keras.Input"):
        built = model(case, case.new_layer())
    data = case.arg(case.inputs)
    with doing("calling the model eagerly"):
        eager = [numpy(t) for t in keras.tree.flatten(built(data, training=False))]
    with doing("model.compile(jit_compile=True) and predict()", _FIX_JIT):
        built.compile(optimizer="sgd", loss="mse", jit_compile=True)
        compiled = [np.asarray(y) for y in keras.tree.flatten(built.predict(data, verbose=0))]
    if len(compiled) != len(eager):
        raise Broken(f"predict() gives {len(compiled)} outputs, a direct call {len(eager)}")
    for index, (want, got) in enumerate(zip(eager, compiled, strict=True)):
        scale = 1 + float(np.max(np.abs(want))) if want.size else 1.0
        if want.shape != got.shape or not np.allclose(
            got, want, atol=case.atol * scale, rtol=case.rtol, equal_nan=True
        ):
            raise Broken(
                f"under jit_compile=True output {index} differs from the eager output", _FIX_JIT
            )
    if all("float" in str(y.dtype) for y in eager):
        zeros = [np.zeros_like(y) for y in eager]
        targets = zeros if len(zeros) > 1 else zeros[0]
        with doing("train_on_batch() with jit_compile=True", _FIX_JIT), warnings.catch_warnings():
            # Weightless layers, and weights without gradients, are rule 5's business.
            warnings.filterwarnings("ignore", "The model does not have any trainable weights")
            warnings.filterwarnings("ignore", "Gradients do not exist for variables")
            loss = built.train_on_batch(data, targets)
        if not np.all(np.isfinite(np.asarray(loss, dtype="float64"))):
            raise Broken(f"a jit-compiled training step gave a non-finite loss ({loss})", _FIX_JIT)
    for policy in case.mixed_precision:
        _check_mixed(case, policy)


def _check_mixed(case: Case, policy: str) -> None:
    __tracebackhide__ = True
    fix = _FIX_MIXED
    previous = keras.config.dtype_policy()
    try:
        with doing(f"setting the dtype policy {policy!r}", "pass a valid policy name"):
            keras.config.set_dtype_policy(policy)
        layer = case.new_layer()
        outputs = case.call(layer, f" under the {policy!r} policy", fix)
        compute = layer.compute_dtype
        symbolic = [
            keras.KerasTensor(s, dtype=compute if is_float(x) else x.dtype)
            for s, x in zip(case.shapes, case.inputs, strict=True)
        ]
        with doing(f"compute_output_spec under the {policy!r} policy", fix):
            specs = keras.tree.flatten(layer.compute_output_spec(case.arg(symbolic)))
        if len(specs) != len(outputs):
            raise Broken(
                f"under {policy!r} the layer returns {len(outputs)} outputs but declares "
                f"{len(specs)}",
                "make compute_output_shape(input_shape) return what call() returns",
            )
        for index, (tensor, spec) in enumerate(zip(outputs, specs, strict=True)):
            got = keras.backend.standardize_dtype(tensor.dtype)
            want = keras.backend.standardize_dtype(spec.dtype)
            if got != want:
                raise Broken(
                    f"under {policy!r} output {index} is {got} but the layer declares {want} "
                    f"(compute dtype {compute})",
                    fix,
                )
            values = numpy(keras.ops.cast(tensor, "float32")) if is_float(tensor) else None
            if values is not None and not np.all(np.isfinite(values)):
                raise Broken(f"under {policy!r} output {index} has inf or nan values", fix)
        variable_dtype = layer.dtype_policy.variable_dtype
        if wrong := [
            f"{weight_name(layer, w)} ({w.dtype})"
            for w in layer.weights
            if is_float(w) and keras.backend.standardize_dtype(w.dtype) != variable_dtype
        ]:
            raise Broken(
                f"under {policy!r} these weights are not {variable_dtype}: {', '.join(wrong)}",
                fix,
            )
    finally:
        keras.config.set_dtype_policy(previous)
