"""Resolve the names a model needs, in Keras' own order with installed plugins added.

A name is resolved as Keras resolves it first: ``custom_objects``, the active custom-object
scope, Keras' global registry (classes the user's own imports registered), Keras' own modules
and exported names, and the classes of the Keras packages Keras imports by itself
(``keras_hub``, ``keras_cv``, ``keras_nlp``, when installed); then by an installed plugin. Only
when none does is it missing. Nothing else named in a file is imported unless an installed
plugin declares it. A training configuration Keras skips (the model's class overrides
``compile()``) needs nothing: Keras loads the model uncompiled, with its own warning.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import sys
from collections.abc import Mapping
from types import ModuleType
from typing import Any, Final, NamedTuple

from layerhub._private.errors import Missing, MissingPluginError
from layerhub._private.formats.manifest import Entry, Manifest
from layerhub._private.formats.model_file import OpenedModel
from layerhub._private.guard import config_tree
from layerhub._private.guard.untrusted import (
    conventional_distribution,
    described,
    distribution_name,
    shown,
    version_string,
)
from layerhub._private.keras2 import translation
from layerhub._private.registry.plugins import Registry, import_keras
from layerhub._private.registry.records import LayerRecord

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
        skipped: only the training configuration needs it, and Keras will not read that (the
            model's class overrides ``compile()``): the model loads uncompiled, as with Keras.
    """

    name: str
    providers: tuple[LayerRecord, ...]
    by_keras: bool
    compile_only: bool
    skipped: bool = False


# A module path as Keras writes one; anything else is never imported.
_MODULE_PATH: Final = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*")


def needs(
    opened: OpenedModel,
    registry: Registry,
    *,
    custom_objects: Mapping[str, Any] | None = None,
    compile: bool = True,
) -> list[Need]:
    """What the model needs beyond Keras' own modules; imports no plugin."""
    if opened.keras2:
        _keras()  # once, under a lock: the Keras 2 names are asked of Keras itself
        model_names = translation.needed_names(opened.config)
        training_names = translation.training_names(opened.training_config) if compile else set()
    else:
        body = {k: v for k, v in opened.config.items() if k != "compile_config"}
        model_names = config_tree.foreign_names(body)
        training_names = config_tree.foreign_names(opened.training_config) if compile else set()
    objects = dict(custom_objects or {})
    wanted = model_names | training_names
    by_module = {} if opened.keras2 else _keras_package_names(opened, wanted)
    skipped = bool(training_names - model_names) and compile_is_skipped(opened, objects)
    records = registry.list()
    return [
        Need(
            name,
            _providers(name, records, keras2=opened.keras2),
            _resolved_by_keras(name, objects) or by_module.get(name, False),
            name not in model_names,
            skipped and name not in model_names,
        )
        for name in sorted(wanted)
    ]


def _keras() -> ModuleType | None:
    """Keras, imported once under the registry's lock; None when it cannot be imported."""
    try:
        return import_keras()
    except Exception:  # no backend: the names are then resolved without Keras' help
        return None


def _keras_if_imported() -> ModuleType | None:
    # Until keras is imported, nothing can have registered with it or opened a scope. Once it
    # is in sys.modules it is taken through the lock: another thread may still be importing it.
    return _keras() if sys.modules.get("keras") is not None else None


def _keras_package_names(opened: OpenedModel, wanted: set[str]) -> dict[str, bool]:
    """Registered name -> whether Keras resolves it by importing the module the file names.

    Only for the ``wanted`` names: Keras is imported only when a file needs something of it.

    Keras imports a class's module by itself when its package is ``keras``, ``keras_hub``,
    ``keras_cv`` or ``keras_nlp`` (and it is installed), and takes the class found there.
    """
    found: dict[str, bool] = {}
    trees = (opened.config, opened.training_config)
    for node in (n for tree in trees for n in config_tree.objects(tree)):
        name, module = node.get("registered_name"), node.get("module")
        if name not in wanted or not isinstance(module, str):
            continue
        if module.partition(".")[0] in config_tree.KERAS_PACKAGES and not found.get(name):
            found[name] = keras_class(module, node["class_name"]) is not None
    return found


def keras_class(module: str, class_name: str) -> type | None:
    """The class Keras itself finds for ``module`` and ``class_name``, importing as Keras does.

    Only modules of the Keras packages, and only when that package is installed.
    """
    package = module.partition(".")[0]
    if package not in config_tree.KERAS_PACKAGES or not _MODULE_PATH.fullmatch(module):
        return None
    try:
        if importlib.util.find_spec(package) is None:
            return None
        import_keras()
        from keras.src.saving.keras_saveable import KerasSaveable

        if package == "keras":
            from keras.src.api_export import get_symbol_from_name

            exported = get_symbol_from_name(f"{module}.{class_name}")
            if isinstance(exported, type):
                return exported
        loaded = importlib.import_module(module)
    except Exception:  # not importable: Keras could not resolve it either
        return None
    found = vars(loaded).get(class_name)
    return found if isinstance(found, type) and issubclass(found, KerasSaveable) else None


def compile_is_skipped(opened: OpenedModel, objects: Mapping[str, Any]) -> bool:
    """Whether Keras will not read the training configuration: the model's class overrides
    ``compile()``, so Keras 3 loads it uncompiled with a warning (``Trainer.compile_from_config``).

    Keras 2 formats are compiled by calling ``compile()`` itself, so this is never so for them.
    """
    if opened.keras2 or not isinstance(opened.config, dict):
        return False
    cls = _model_class(opened.config, objects)
    if cls is None:
        return False
    from keras.src.trainers.trainer import Trainer

    return getattr(cls, "compile", Trainer.compile) is not Trainer.compile


def _model_class(config: dict[str, Any], objects: Mapping[str, Any]) -> Any:
    """The model's class as Keras would find it, or None; imports no plugin."""
    class_name, registered = config.get("class_name"), config.get("registered_name")
    if not isinstance(class_name, str) or class_name in ("Functional", "Sequential"):
        return None  # Keras' own: compile() is Keras' own
    for name in (registered, class_name):
        if isinstance(name, str) and name in objects:
            return objects[name]
    keras = _keras_if_imported()
    if keras is not None and isinstance(registered, str):
        found = keras.saving.get_registered_object(registered)
        if found is not None:
            return found
    module = config.get("module")
    return keras_class(module, class_name) if isinstance(module, str) else None


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
    keras = _keras_if_imported()
    return keras is not None and keras.saving.get_registered_object(name) is not None


def _keras_function(name: str) -> bool:
    keras = _keras()
    if keras is None:
        return False
    return any(callable(getattr(getattr(keras, m), name, None)) for m in translation.OBJECT_MODULES)


def custom_objects_for(
    opened: OpenedModel, found: list[Need], registry: Registry
) -> dict[str, Any]:
    """Import the plugins the model needs; the objects Keras must be handed for this load.

    Raises:
        MissingPluginError: a name nothing resolves; says what to install when the file's
            manifest or the plugin convention names a valid distribution.
    """
    _keras()  # before any Keras work of this load, once, under a lock (threads load at once)
    objects: dict[str, Any] = {}
    missing: list[Need] = []
    for need in found:
        if need.by_keras or need.skipped:
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
    # The model's class may be a plugin's, known only now that its plugin is imported.
    if missing and all(n.compile_only for n in missing) and compile_is_skipped(opened, objects):
        return objects
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
    # A claim packaging rejects is described, never echoed: its text could read as a command.
    said = " ".join(
        valid if valid is not None else f"({described(raw)})"
        for valid, raw in ((claimed, entry.distribution), (version, entry.version))
        if raw is not None
    )
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
