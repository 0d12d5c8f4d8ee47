"""Rule 5: every trainable weight receives a gradient, relative to the layer's largest one."""

from __future__ import annotations

import inspect
from typing import Any, Final

import keras
import numpy as np
from keras import ops

from layerhub.testing._training import weight_gradients
from layerhub.testing.rules import _common
from layerhub.testing.rules._common import Broken, Case, doing, is_float, numpy, show, weight_name

# A weight whose largest gradient is at most this fraction of the layer's largest gradient
# counts as getting none: exact zeros depend on rounding, which depends on seeds and kernels.
RELATIVE_ZERO: Final = 1e-6
# The same for the finite-difference probe of backends without a tape, whose float32 rounding
# of the loss is far above 1e-6 of a real change.
PROBE_RELATIVE_ZERO: Final = 1e-4


def tape_gradients() -> bool:
    """Whether ``weight_gradients`` differentiates exactly on this backend."""
    return _common.tensorflow() or keras.backend.backend() in ("jax", "torch")


def _loss(
    case: Case, outputs: list[Any], probes: list[np.ndarray[Any, Any]] | None
) -> tuple[Any, list[np.ndarray[Any, Any]]]:
    floats = [o for o in outputs if is_float(o)]
    if probes is None:
        rng = np.random.default_rng(case.seed)
        probes = [rng.standard_normal(tuple(o.shape)).astype("float32") for o in floats]
    # Random weighting: a plain sum can have zero gradient (after softmax or normalisation).
    terms = [
        ops.sum(ops.multiply(ops.cast(o, "float32"), p))
        for o, p in zip(floats, probes, strict=True)
    ]
    return sum(terms[1:], terms[0]) if terms else None, probes


def check(case: Case) -> None:
    __tracebackhide__ = True
    # Seeded weights (and seeded inputs and probes): the verdict is the same on every run.
    keras.utils.set_random_seed(case.seed)
    layer = case.new_layer()
    outputs = case.call(layer)
    weights = list(layer.trainable_weights)
    if not weights or not any(is_float(o) for o in outputs):
        return
    if tape_gradients():
        sizes, relative = _by_tape(case, layer), RELATIVE_ZERO
    else:
        sizes, relative = _by_probe(case, layer, weights), PROBE_RELATIVE_ZERO
    largest = max(sizes, default=0.0)
    dead = [
        weight_name(layer, w)
        for w, size in zip(weights, sizes, strict=True)
        if size <= relative * largest or size == 0
    ]
    if dead:
        how = "all zero" if largest == 0 else f"at most {relative:g} x the largest gradient"
        raise Broken(
            f"trainable weight(s) {', '.join(dead)} get no gradient (None, or {how}) from a "
            "loss on the outputs, so training never changes them. The usual cause: a bias or "
            "offset added before a softmax or normalisation over the same axis cancels out",
            "use every trainable weight in call(), drop a bias that a softmax/normalisation "
            "over its axis cancels (or create it with trainable=False), and if an initial value "
            "blocks the gradient (a zero gate such as PAM's gamma), check with init_kwargs that "
            "make it non-zero, e.g. {'gamma_initializer': 'ones'}",
        )


def _by_tape(case: Case, layer: Any) -> list[float]:
    """The largest absolute gradient of each trainable weight (0 for none)."""
    __tracebackhide__ = True

    def loss(outputs: Any) -> Any:
        return _loss(case, keras.tree.flatten(outputs), None)[0]

    what = f"calling the layer on inputs of shape {show(case.shape_arg())} to differentiate it"
    with doing(what):
        # stateless_call (JAX) passes training= on even to a call() that does not take it.
        takes = "training" in inspect.signature(layer.call).parameters
        training = True if takes else None
        grads = weight_gradients(layer, case.arg(case.inputs), loss, training=training)
    return [0.0 if g is None or not g.size else float(np.max(np.abs(g))) for g in grads]


def _by_probe(case: Case, layer: Any, weights: list[Any]) -> list[float]:
    """Backend-neutral: nudge each weight and see how far the loss moves."""
    __tracebackhide__ = True
    loss, probes = _loss(case, case.call(layer, training=True), None)
    if loss is None:
        return [1.0 for _ in weights]
    base = float(numpy(loss))
    rng = np.random.default_rng(case.seed)
    moves = []
    for weight in weights:
        original = np.array(weight.numpy())
        step = rng.standard_normal(original.shape) * 1e-2 * (1 + np.abs(original).max())
        weight.assign(ops.cast(original + step, weight.dtype))
        try:
            moved, _ = _loss(case, case.call(layer, training=True), probes)
        finally:
            weight.assign(ops.cast(original, weight.dtype))
        moves.append(abs(float(numpy(moved)) - base))
    return moves
