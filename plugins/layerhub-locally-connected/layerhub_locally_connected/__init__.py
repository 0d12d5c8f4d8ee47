"""layerhub-locally-connected: tf-keras's LocallyConnected1D/2D for Keras 3."""

from __future__ import annotations

from layerhub import hookimpl
from layerhub_locally_connected.locally_connected1d import LocallyConnected1D
from layerhub_locally_connected.locally_connected2d import LocallyConnected2D

__all__ = ["LocallyConnected1D", "LocallyConnected2D"]

# How `pytest --layerhub-conformance` builds and feeds each layer: (init_kwargs, input_shape).
LAYERHUB_EXAMPLES = {
    "LocallyConnected1D": ({"filters": 3, "kernel_size": 2}, (2, 6, 4)),
    "LocallyConnected2D": ({"filters": 3, "kernel_size": 2, "implementation": 2}, (2, 5, 5, 2)),
}


@hookimpl
def layerhub_layers() -> list[object]:
    return [LocallyConnected1D, LocallyConnected2D]


@hookimpl
def layerhub_legacy_names() -> dict[str, object]:
    # Keras 2 built-ins: saved under their bare class names.
    return {"LocallyConnected1D": LocallyConnected1D, "LocallyConnected2D": LocallyConnected2D}
