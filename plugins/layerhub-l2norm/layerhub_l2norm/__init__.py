"""layerhub-l2norm: L2 normalisation with a learnable per-channel scale for Keras 3."""

from __future__ import annotations

from layerhub import hookimpl
from layerhub_l2norm.l2_normalization import L2Normalization

__all__ = ["L2Normalization"]


@hookimpl
def layerhub_layers() -> list[object]:
    return [L2Normalization]


@hookimpl
def layerhub_legacy_names() -> dict[str, object]:
    # Keras 2 saved this layer under its bare class name.
    return {"L2Normalization": L2Normalization}
