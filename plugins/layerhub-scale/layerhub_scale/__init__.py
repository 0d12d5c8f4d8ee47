"""layerhub-scale: a learnable per-channel affine layer for Keras 3."""

from __future__ import annotations

from layerhub import hookimpl
from layerhub_scale.scale import Scale

__all__ = ["Scale"]


@hookimpl
def layerhub_layers() -> list[object]:
    return [Scale]


@hookimpl
def layerhub_legacy_names() -> dict[str, object]:
    # Keras 2 code saved this layer under its bare class name.
    return {"Scale": Scale}
