"""layerhub-l2norm: L2 normalisation with a learnable per-channel scale for Keras 3."""

from __future__ import annotations

from layerhub import hookimpl
from layerhub_l2norm.l2_normalization import L2Normalization

__all__ = ["L2Normalization"]

# How `pytest --layerhub-conformance` builds and feeds each layer: (init_kwargs, input_shape).
LAYERHUB_EXAMPLES = {
    "L2Normalization": [({"gamma_init": 5.0}, (2, 4, 4, 3)), ({"axis": 1}, (2, 3, 4, 4))],
}


@hookimpl
def layerhub_layers() -> list[object]:
    return [L2Normalization]


@hookimpl
def layerhub_legacy_names() -> dict[str, object]:
    # Keras 2 saved this layer under its bare class name.
    return {"L2Normalization": L2Normalization}
