"""layerhub: Keras 3 custom layers as installable plugins; saved models load without custom_objects.

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
from layerhub._private.registry.plugins import PluginWarning, Registry, registry
from layerhub._private.registry.records import LayerRecord

if TYPE_CHECKING:
    from layerhub._private.keras2.convert import Conversion, ConversionError, convert
    from layerhub._private.keras2.verify import Verification, verify
    from layerhub._private.loading import load_model
    from layerhub._private.registry.hookspecs import hookimpl, hookspec
    from layerhub._private.saving import save_model

__version__ = "0.1.0"

__all__ = [
    "AmbiguousNameError",
    "BrokenPluginError",
    "Conversion",
    "ConversionError",
    "LayerHubError",
    "LayerRecord",
    "MissingPluginError",
    "ModelFileError",
    "PluginConflictError",
    "PluginNotFoundError",
    "PluginWarning",
    "Registry",
    "UnsafeModelError",
    "Verification",
    "__version__",
    "convert",
    "hookimpl",
    "hookspec",
    "load_model",
    "registry",
    "save_model",
    "verify",
]


_LAZY = {
    "Conversion": "layerhub._private.keras2.convert",
    "ConversionError": "layerhub._private.keras2.convert",
    "convert": "layerhub._private.keras2.convert",
    "hookimpl": "layerhub._private.registry.hookspecs",
    "hookspec": "layerhub._private.registry.hookspecs",
    "load_model": "layerhub._private.loading",
    "save_model": "layerhub._private.saving",
    "Verification": "layerhub._private.keras2.verify",
    "verify": "layerhub._private.keras2.verify",
}


def __getattr__(name: str) -> Any:
    # Listing must cost no more than a metadata scan: pluggy and the archive code (zipfile,
    # json, tempfile) are imported on first use, not by ``import layerhub``.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'layerhub' has no attribute {name!r}")
