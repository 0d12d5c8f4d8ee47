"""layerhub: install Keras 3 custom layers as plugins, and load saved models without ``custom_objects``.

``import layerhub`` and ``registry.list()`` import neither keras nor any plugin.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from layerhub._private.errors import (
    AmbiguousNameError,
    BrokenPluginError,
    LayerHubError,
    MissingPluginError,
    ModelFileError,
    PluginConflictError,
    PluginNotFoundError,
    UnsafeModelError,
)
from layerhub._private.loading import load_model, save_model
from layerhub._private.records import LayerRecord
from layerhub._private.registry import PluginWarning, Registry, registry

if TYPE_CHECKING:
    from layerhub._private.hookspecs import hookimpl, hookspec

__version__ = "0.1.0"

__all__ = [
    "AmbiguousNameError",
    "BrokenPluginError",
    "LayerHubError",
    "LayerRecord",
    "MissingPluginError",
    "ModelFileError",
    "PluginConflictError",
    "PluginNotFoundError",
    "PluginWarning",
    "Registry",
    "UnsafeModelError",
    "__version__",
    "hookimpl",
    "hookspec",
    "load_model",
    "registry",
    "save_model",
]


def __getattr__(name: str) -> Any:
    # pluggy is only needed once a plugin is imported; listing stays as cheap as a metadata scan.
    if name in ("hookimpl", "hookspec"):
        from layerhub._private import hookspecs

        return getattr(hookspecs, name)
    raise AttributeError(f"module 'layerhub' has no attribute {name!r}")
