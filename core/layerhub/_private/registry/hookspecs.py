"""The hooks a layerhub plugin implements.

A plugin is a module named by an entry point in the ``layerhub`` group. It marks its functions
with ``layerhub.hookimpl`` and implements any of the hooks below; pluggy checks their signatures
when the plugin is registered.
"""

from __future__ import annotations

from typing import Any, Final

import pluggy

PROJECT_NAME: Final = "layerhub"

hookspec: Final = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl: Final = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def layerhub_layers() -> list[Any]:
    """Return every Keras object this plugin provides.

    Layer classes, and also functions, activations, losses, metrics, initializers, regularizers and
    constraints. Each must be registered with
    ``keras.saving.register_keras_serializable(package=<plugin import package>)`` and be listed
    under the same name in the plugin distribution's ``layerhub.layers`` entry points, so that
    layerhub can list and find it without importing anything.

    Anything else (not a list, an object Keras does not know, one registered under another
    package) is left out and marks the plugin ``mismatch``; a hook that raises marks it
    ``broken``. Either way the other plugins keep working.
    """


@hookspec
def layerhub_legacy_names() -> dict[str, Any]:
    """Return the bare class names Keras 2 wrote for this plugin's objects, mapped to the objects.

    Used only while loading a legacy HDF5 (``.h5``) file, and then only as ``custom_objects`` for
    that one call: bare names never enter Keras' global registry, where they could shadow
    built-ins. Each name must also be an entry in the plugin's ``layerhub.layers`` metadata, and
    map to an object this plugin's ``layerhub_layers`` returns; names that do not are left out
    and mark the plugin ``mismatch``.
    """


@hookspec(firstresult=True)
def layerhub_upgrade_config(
    registered_name: str, config: dict[str, Any], saved_version: str
) -> dict[str, Any] | None:
    """Migrate the config of one object saved by an older version of this plugin.

    Called before a ``.keras`` file is deserialised, for each object whose plugin version in the
    file's manifest differs from the installed one. Return the new config, or ``None`` when the
    object is not yours or needs no change; the first non-``None`` answer wins.

    Args:
        registered_name: the object's registered name, such as ``"layerhub_scale>Scale"``.
        config: the object's ``config`` dictionary as saved (do not mutate it).
        saved_version: the plugin distribution's version recorded when the file was saved.
    """
