"""Rule 3: ``compute_output_shape`` equals the real output shapes; an unknown batch works."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from layerhub.testing.rules import _common
from layerhub.testing.rules._common import Broken, Case, Shape, doing, shape_list, show


def check(case: Case) -> None:
    __tracebackhide__ = True
    layer = case.new_layer()
    real: list[Shape] = [tuple(int(d) for d in t.shape) for t in case.call(layer)]
    argument = case.shape_arg()
    with doing(f"compute_output_shape({show(argument)})"):
        expected = shape_list(layer.compute_output_shape(argument))
    if expected != real:
        raise Broken(
            f"compute_output_shape({show(argument)}) returns {show(expected)} but call() "
            f"returns tensors of shape {show(real)}",
            "make compute_output_shape compute exactly the shapes call() returns (a tuple for "
            "one output, a list of tuples for several)",
        )
    _check_unknown_batch(case, real)


def _check_unknown_batch(case: Case, real: list[Shape]) -> None:
    __tracebackhide__ = True
    batch = len(case.inputs[0])
    symbolic = case.symbolic_inputs()
    fix = (
        "never use the batch size of input_shape in build() or compute_output_shape() (keep it "
        "None); inside call() use ops.shape(x)[0], not x.shape[0]"
    )
    with doing(f"calling the layer on keras.Input of shape {show(case.shape_arg(None))}", fix):
        outputs = case.new_layer()(case.arg(symbolic))
    seen = [tuple(t.shape) for t in keras.tree.flatten(outputs)]
    wanted = [(None if s[0] == batch else s[0], *s[1:]) if s else s for s in real]
    if seen != wanted:
        raise Broken(
            f"with batch size None the output shapes are {show(seen)}; expected {show(wanted)}",
            fix,
        )
    built = keras.Model(case.arg(symbolic), outputs)
    bigger = case.bigger_batch()
    with doing(f"running the model on a batch of {batch + 1}", fix):
        results = _run_unknown_batch(case, built, bigger)
    got = [tuple(int(d) for d in t.shape) for t in results]
    expected = [(batch + 1 if s[0] == batch else s[0], *s[1:]) if s else s for s in real]
    if got != expected:
        raise Broken(
            f"on a batch one larger the outputs have shapes {show(got)}; expected {show(expected)}",
            fix,
        )


def _run_unknown_batch(case: Case, built: Any, inputs: list[np.ndarray[Any, Any]]) -> list[Any]:
    if not _common.tensorflow():
        return list(keras.tree.flatten(built(case.arg(inputs), training=False)))
    import tensorflow as tf

    # A graph traced with the batch dimension unknown, as in model.fit on a dataset.
    signature = [tf.TensorSpec((None, *x.shape[1:]), x.dtype) for x in inputs]

    def run(*xs: Any) -> Any:
        return built(case.arg(xs), training=False)

    traced = tf.function(run, input_signature=signature)
    return list(keras.tree.flatten(traced(*inputs)))
