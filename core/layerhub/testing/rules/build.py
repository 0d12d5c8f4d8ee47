"""Rule 4: weights are created in ``build()`` only; calling the layer creates none."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from layerhub.testing.rules import _common
from layerhub.testing.rules._common import Broken, Case, doing, numpy, show, weight_name


@contextlib.contextmanager
def _watch_variables() -> Iterator[list[str]]:
    """Names of the backend variables created inside the block, where the backend can tell."""
    created: list[str] = []
    if not _common.tensorflow():
        yield created
        return
    import tensorflow as tf

    def creator(next_creator: Callable[..., Any], **kwargs: Any) -> Any:
        created.append(str(kwargs.get("name") or "unnamed"))
        return next_creator(**kwargs)

    with tf.variable_creator_scope(creator):
        yield created


def check(case: Case) -> None:
    __tracebackhide__ = True
    layer = case.new_layer()
    argument = case.shape_arg()
    with doing(f"build({show(argument)})"):
        layer.build(argument)
    built = {id(v) for v in layer.variables}
    with _watch_variables() as created:
        first = [numpy(t) for t in case.call(layer)]
        after_first = {id(v): weight_name(layer, v) for v in layer.variables}
        second = [numpy(t) for t in case.call(layer)]
    after_second = {id(v): weight_name(layer, v) for v in layer.variables}
    if late := sorted(path for key, path in after_first.items() if key not in built):
        raise Broken(
            f"the first call created weights that build() did not: {', '.join(late)}; a "
            "loaded model would leave them untrained",
            "create them in build(); for a sublayer made in __init__(), call its build() "
            "from build()",
        )
    if extra := sorted(path for key, path in after_second.items() if key not in after_first):
        raise Broken(f"calling the layer again added weights: {', '.join(extra)}")
    if created:
        raise Broken(
            f"calling the built layer twice created {len(created)} new variables "
            f"({', '.join(created[:6])}): a layer such as Conv2D is made inside call(), so every "
            "call gets new, untrained weights"
        )
    for index, (a, b) in enumerate(zip(first, second, strict=False)):
        if not np.array_equal(a, b, equal_nan=True):
            raise Broken(
                f"two calls on the same inputs gave different outputs (output {index}), as when "
                "call() creates freshly initialised weights each time"
            )
