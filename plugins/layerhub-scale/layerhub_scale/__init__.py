"""layerhub-scale: a learnable per-channel affine layer for Keras 3."""

from __future__ import annotations

from layerhub import hookimpl
from layerhub_scale.scale import Scale

__all__ = ["Scale"]

# How `pytest --layerhub-conformance` builds and feeds each layer: (init_kwargs, input_shape).
LAYERHUB_EXAMPLES = {"Scale": [({}, (2, 5)), ({"axis": [1, 3]}, (2, 3, 4, 5))]}


@hookimpl
def layerhub_layers() -> list[object]:
    return [Scale]


@hookimpl
def layerhub_legacy_names() -> dict[str, object]:
    # Keras 2 code saved this layer under its bare class name.
    return {"Scale": Scale}
