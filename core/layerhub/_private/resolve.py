"""Resolve the names a model needs, in Keras' own order with installed plugins added.

A name is resolved by ``custom_objects``, the active custom-object scope, Keras' global
registry (classes the user's own imports registered), or an installed plugin, in that order;
only when none does is it missing. Nothing named in a file is imported unless an installed
plugin declares it.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any, Final, NamedTuple

from layerhub._private import config_tree, keras2
from layerhub._private.errors import Missing, MissingPluginError
from layerhub._private.manifest import Entry, Manifest
from layerhub._private.model_file import OpenedModel
from layerhub._private.records import LayerRecord
from layerhub._private.registry import Registry
from layerhub._private.untrusted import (
    conventional_distribution,
    distribution_name,
    shown,
    version_string,
)

HINT: Final = (
    "if it is your own class or function, pass it in custom_objects or import the module "
    "that registers it before loading"
)
COMPILE_HINT: Final = (
    "load with compile=False to skip the training configuration, or pass the object in "
    "custom_objects"
)


class Need(NamedTuple):
    """One name a model refers to that Keras cannot resolve from its own modules.

    Attributes:
        name: the name as the file spells it.
        providers: installed plugin records declaring it (by registered or Keras 2 name).
        by_keras: Keras already resolves it (custom_objects, a scope, its global registry).
        compile_only: only the training configuration needs it.
    """

    name: str
    providers: tuple[LayerRecord, ...]
    by_keras: bool
    compile_only: bool


def needs(
    opened: OpenedModel,
    registry: Registry,
    *,
    custom_objects: Mapping[str, Any] | None = None,
    compile: bool = True,
) -> list[Need]:
    """What the model needs beyond Keras' own modules; imports no plugin."""
    if opened.keras2:
        model_names = keras2.needed_names(opened.config)
        training_names = keras2.training_names(opened.training_config) if compile else set()
    else:
        body = {k: v for k, v in opened.config.items() if k != "compile_config"}
        model_names = config_tree.foreign_names(body)
        training_names = config_tree.foreign_names(opened.training_config) if compile else set()
    records = registry.list()
    return [
        Need(
            name,
            _providers(name, records, keras2=opened.keras2),
            _resolved_by_keras(name, custom_objects or {}),
            name not in model_names,
        )
        for name in sorted(model_names | training_names)
    ]


def _providers(name: str, records: list[LayerRecord], *, keras2: bool) -> tuple[LayerRecord, ...]:
    exact = tuple(r for r in records if r.registered_name == name)
    if exact or not keras2:
        return exact
    # Keras 2 wrote bare class names, or "Package>Name" with the user's own package.
    bare = name.rpartition(">")[2]
    return tuple(r for r in records if r.name == bare)


def _resolved_by_keras(name: str, custom_objects: Mapping[str, Any]) -> bool:
    if name in custom_objects:
        return True
    if ">" not in name and _keras_function(name):
        return True
    keras = sys.modules.get("keras")
    # Until keras is imported, nothing can have registered with it or opened a scope.
    return keras is not None and keras.saving.get_registered_object(name) is not None


def _keras_function(name: str) -> bool:
    import keras

    return any(callable(getattr(getattr(keras, m), name, None)) for m in keras2.OBJECT_MODULES)


def custom_objects_for(
    opened: OpenedModel, found: list[Need], registry: Registry
) -> dict[str, Any]:
    """Import the plugins the model needs; the objects Keras must be handed for this load.

    Raises:
        MissingPluginError: a name nothing resolves; says what to install when the file's
            manifest or the plugin convention names a valid distribution.
    """
    objects: dict[str, Any] = {}
    missing: list[Need] = []
    for need in found:
        if need.by_keras:
            continue
        if not need.providers:
            missing.append(need)
        elif all(r.registered_name != need.name for r in need.providers):
            # A Keras 2 name: the plugin's legacy-name hook says which object it means.
            bare = need.name.rpartition(">")[2]
            legacy = registry.legacy_objects([bare])
            if bare in legacy:
                objects[need.name] = legacy[bare]
            else:
                missing.append(need)
        else:
            # The import registers it with Keras; naming it keeps the lookup to this call.
            objects[need.name] = registry.get(need.name)
    if missing:
        raise missing_error(missing, opened.manifest)
    return objects


def missing_error(missing: list[Need], manifest: Manifest | None) -> MissingPluginError:
    saved = manifest.objects if manifest is not None else {}
    entries = [missing_entry(n.name, saved.get(n.name)) for n in missing]
    if all(n.compile_only for n in missing):
        return MissingPluginError(
            entries,
            reason="which the model's training configuration uses and nothing resolves",
            hint=COMPILE_HINT,
        )
    return MissingPluginError(
        entries,
        reason="which neither Keras nor any installed layerhub plugin provides",
        hint=HINT,
    )


def missing_entry(name: str, entry: Entry | None) -> Missing:
    """What to tell the user about one missing name, from the file's (untrusted) manifest."""
    conventional = conventional_distribution(name) if ">" in name else None
    package = shown(name.partition(">")[0])
    if entry is None:
        if conventional is not None and conventional.startswith("layerhub-"):
            return Missing(name, conventional)
        return Missing(name)
    if entry.distribution is None:
        return Missing(
            name,
            note=f"{shown(name)} was registered by hand when the file was saved (no "
            "distribution provides it)",
        )
    claimed, version = distribution_name(entry.distribution), version_string(entry.version)
    if claimed is not None and claimed == conventional:
        return Missing(name, claimed, version)
    said = " ".join(shown(v, 60) for v in (entry.distribution, entry.version) if v is not None)
    where = (
        f"the conventional distribution is {conventional}"
        if conventional
        else "no distribution follows from its name"
    )
    return Missing(
        name,
        note=f"suspicious: the file says it was saved with {said}; no installed plugin provides "
        f"{package}, and {where}; check before installing",
    )
