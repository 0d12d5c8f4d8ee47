"""layerhub-fm: a factorization machine layer for Keras 3."""

from __future__ import annotations

from layerhub import hookimpl
from layerhub_fm.fm_layer import FMLayer

__all__ = ["FMLayer"]

# How `pytest --layerhub-conformance` builds and feeds each layer: (init_kwargs, input_shape).
LAYERHUB_EXAMPLES = {
    "FMLayer": [
        ({"output_dim": 3, "factor_order": 2}, (2, 6)),
        ({"output_dim": 1, "factor_order": 4, "activation": "sigmoid"}, (2, 3, 5)),
    ],
}


@hookimpl
def layerhub_layers() -> list[object]:
    return [FMLayer]


@hookimpl
def layerhub_legacy_names() -> dict[str, object]:
    # Keras 2 saved this layer under its bare class name.
    return {"FMLayer": FMLayer}
