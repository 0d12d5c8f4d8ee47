"""layerhub-fm: a factorization machine layer for Keras 3."""

from __future__ import annotations

from layerhub import hookimpl
from layerhub_fm.fm_layer import FMLayer

__all__ = ["FMLayer"]


@hookimpl
def layerhub_layers() -> list[object]:
    return [FMLayer]


@hookimpl
def layerhub_legacy_names() -> dict[str, object]:
    # Keras 2 saved this layer under its bare class name.
    return {"FMLayer": FMLayer}
