"""Load a saved model, importing exactly the plugins it needs. One pipeline, top to bottom:

locate the file -> open its format (config, manifest, how Keras gets the weights) -> check it
(size, depth, bytecode) -> resolve the names it needs (plugins imported here) -> translate
Keras 2 forms -> apply plugin upgrades -> hand it to Keras, whose errors become one line.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Final

from layerhub._private.errors import LayerHubError, ModelFileError
from layerhub._private.formats import hdf5
from layerhub._private.formats.archive import open_archive, open_directory
from layerhub._private.formats.hdf5 import open_hdf5
from layerhub._private.formats.manifest import Manifest
from layerhub._private.formats.model_file import OpenedModel, locate
from layerhub._private.formats.savedmodel import open_savedmodel
from layerhub._private.guard import checks, config_tree
from layerhub._private.guard.untrusted import shown, shown_path
from layerhub._private.keras2 import placement, translation
from layerhub._private.keras2.placement import Keras2Source
from layerhub._private.registry import resolve
from layerhub._private.registry.plugins import Registry, registry
from layerhub._private.registry.records import one_line

FORMATS: Final[dict[str, Callable[[Path], OpenedModel]]] = {
    "keras": open_archive,
    "h5": open_hdf5,
    "savedmodel": open_savedmodel,
    "keras_dir": open_directory,
}


def open_model(path: str | os.PathLike[str]) -> OpenedModel:
    """Locate and read a model file without building it or importing anything from it."""
    file, kind = locate(path)
    try:
        return FORMATS[kind](file)
    except OSError as error:
        raise ModelFileError(f"cannot read {shown_path(file)}: {one_line(error)}") from error


def load_model(
    path: str | os.PathLike[str],
    *,
    custom_objects: Mapping[str, Any] | None = None,
    compile: bool = True,
    safe_mode: bool = True,
    registry: Registry = registry,
) -> Any:
    """Load a saved model, importing exactly the plugins it needs.

    Takes what ``keras.saving.load_model`` takes (a ``.keras`` file, a Keras 2 ``.h5`` file, a
    Keras model directory, ``hf://owner/repo``) and Keras 2 SavedModel directories.

    Names are resolved as Keras resolves them (``custom_objects``, an active
    ``keras.saving.custom_object_scope``, classes registered by your own imports), with
    installed plugins added; a module named inside the file is never imported.

    Args:
        path: the model file.
        custom_objects: extra objects, as for ``keras.saving.load_model``; rarely needed.
        compile: whether to compile the model after loading.
        safe_mode: refuse Python lambdas stored as bytecode (on by default, passed to Keras).
        registry: the registry to resolve plugins with (the installed one by default).

    Returns:
        The Keras model.

    Raises:
        ModelFileError: the path is missing, unreadable, corrupt, over a limit, or not a model
            Keras can rebuild.
        MissingPluginError: a needed object nothing resolves (the message says what to do).
        UnsafeModelError: the file holds bytecode and ``safe_mode`` is on.
    """
    opened = open_model(path)
    checks.check_config(opened.path, opened.config, safe_mode=safe_mode)
    user_objects = dict(custom_objects or {})
    needed = resolve.needs(opened, registry, custom_objects=user_objects, compile=compile)
    objects = resolve.custom_objects_for(opened, needed, registry) | user_objects
    config, training = opened.config, None
    if compile and (opened.keras2 or opened.description == hdf5.KERAS3_DESCRIPTION):
        # Keras 3 reads its own .h5 training configs no better than Keras 2's.
        objects = translation.loss_aliases(opened.training_config) | objects
    if opened.keras2:
        if compile:
            training = translation.recovered_optimizer(opened.training_config)
        resolved = {n.name for n in needed} | set(objects)
        config = translation.translate(config, resolved.__contains__, safe_mode=safe_mode) or config
        # Renamed in place, so on a copy when translation made none: the record keeps the
        # file's own names.
        config = config_tree.copy(config) if config is opened.config else config
        placement.slashless(config)
    config = _upgraded(config, opened.manifest, registry)
    with (
        opened.source(None if config is opened.config else config, training) as source,
        keras_errors(opened.path),
        hdf5.LOCK,
    ):
        return _keras_load(source, objects or None, compile=compile, safe_mode=safe_mode)


def _keras_load(
    source: Path | io.BufferedReader | Any,
    objects: dict[str, Any] | None,
    *,
    compile: bool,
    safe_mode: bool,
) -> Any:
    if isinstance(source, Path):
        import keras

        return keras.saving.load_model(
            source, custom_objects=objects, compile=compile, safe_mode=safe_mode
        )
    if isinstance(source, Keras2Source):
        return _keras2_load(source, objects, compile=compile, safe_mode=safe_mode)
    # keras.saving.load_model takes paths only; the .keras loader behind it takes file objects.
    from keras.src.saving import saving_lib

    return saving_lib.load_model(
        source, custom_objects=objects, compile=compile, safe_mode=safe_mode
    )


def _keras2_load(
    source: Keras2Source, objects: dict[str, Any] | None, *, compile: bool, safe_mode: bool
) -> Any:
    """Rebuild a Keras 2 model from its config as Keras' legacy loader does, then place the
    stored weights by identity (Keras' loader would place them by position)."""
    from keras.src.backend.common import global_state
    from keras.src.legacy.saving import saving_options, saving_utils
    from keras.src.saving import object_registration, serialization_lib

    # The names Keras' legacy loader sees: these, the global registrations, an active scope.
    names = {
        "Sequential": _SequentialBuiltOnce,
        **(objects or {}),
        **object_registration.GLOBAL_CUSTOM_OBJECTS,
        **global_state.get_global_attribute("custom_objects_scope_dict", {}),
    }
    # Read first (names and shapes; the values when placed): a file whose weights cannot be
    # listed is refused before anything is built.
    stored = source.weights()
    with (
        saving_options.keras_option_scope(use_legacy_config=True),
        serialization_lib.SafeModeScope(safe_mode),
    ):
        model = saving_utils.model_from_config(source.config, custom_objects=names)
    placement.place(model, stored, source.file)
    if compile and isinstance(source.training, dict):
        model.compile(**saving_utils.compile_args_from_training_config(source.training, names))
        saving_utils.try_build_compiled_arguments(model)
    return model


class _SequentialBuiltOnce:
    """Keras' ``Sequential.from_config`` for Keras 2 configs, with the graph built once.

    Keras rebuilds a Sequential model's graph after each layer it adds while loading, so a
    stack of n layers costs n graph builds: a quarter of the load of a 1 GB Keras 2 model
    whose nested Sequential holds 124 layers (3 of 12 s). The model built is the same
    ``keras.Sequential``; configs this does not expect go to Keras' own ``from_config``.
    """

    @staticmethod
    def from_config(config: Any, custom_objects: dict[str, Any] | None = None) -> Any:
        import keras
        from keras.src.legacy.saving import saving_utils

        layers = config.get("layers") if isinstance(config, dict) else None
        if not (
            isinstance(layers, list)
            and isinstance(config.get("name"), str)
            and all(isinstance(layer, dict) and "module" not in layer for layer in layers)
        ):
            return keras.Sequential.from_config(config, custom_objects=custom_objects)
        model = keras.Sequential(name=config["name"])
        for layer in layers:
            model.add(
                saving_utils.model_from_config(layer, custom_objects=custom_objects),
                rebuild=False,
            )
        model._maybe_rebuild()
        shape = config.get("build_input_shape")
        if not model._functional and shape and isinstance(shape, (tuple, list)):
            model.build(shape)
        return model


@contextlib.contextmanager
def keras_errors(file: Path) -> Iterator[None]:
    """Turn whatever Keras (or a plugin's ``from_config``) raises on a bad file into one line."""
    try:
        yield
    except LayerHubError:
        raise
    except Exception as error:
        raise ModelFileError(
            f"{shown_path(file)} could not be rebuilt by Keras: {shown(keras_reason(error), 300)}"
            "; check it with 'layerhub inspect', or load it with the Keras that wrote it"
        ) from error


_CAUSE: Final = "Exception encountered:"


def keras_reason(error: BaseException) -> str:
    """One line of what Keras said, with the cause it puts after a whole config when it fails
    to deserialise an object ("Error when deserializing class 'Conv2D' using config={...}.
    Exception encountered: <the cause>")."""
    text = str(error).strip()
    if _CAUSE not in text:
        return one_line(error)
    head = text.splitlines()[0].split(" using config=")[0].split(" could not be deserialized")[0]
    cause = text.rsplit(_CAUSE, 1)[1].strip().splitlines()
    return f"{type(error).__name__}: {head.rstrip('.:')}: {cause[0] if cause else '?'}"


def _upgraded(config: dict[str, Any], saved: Manifest | None, registry: Registry) -> dict[str, Any]:
    """The config after plugins upgraded the objects saved by other versions of them."""
    if saved is None:
        return config
    installed = {r.registered_name: r.version for r in registry.list()}
    stale = {
        name: str(entry.version)
        for name, entry in saved.objects.items()
        if name in installed and entry.version != installed[name]
    }
    if not stale:
        return config
    # Keras may already resolve the names (the plugin imported by hand); the hooks need the
    # plugin loaded into the registry all the same.
    registry.load_for(stale)
    upgraded = config_tree.copy(config)
    changed = False
    for node in _nodes_named(upgraded, stale):
        name = node["registered_name"]
        # Only the plugin declaring the name is asked: another's hook may answer for anything.
        new = registry.upgrade_config(
            name, config=node.get("config", {}), saved_version=stale[name]
        )
        if new is not None:
            node["config"] = new
            changed = True
    return upgraded if changed else config


def _nodes_named(config: Any, names: Mapping[str, str]) -> list[dict[str, Any]]:
    from layerhub._private.guard.config_tree import objects

    return [node for node in objects(config) if node.get("registered_name") in names]
