"""Keras 2 ``.h5`` models: resolve the bare class names they hold through plugins' legacy names."""

from __future__ import annotations

import contextlib
import copy
import json
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Final

from layerhub._private import archive
from layerhub._private.errors import MissingPluginError
from layerhub._private.loading import as_model_file_error
from layerhub._private.registry import Registry

# Keras 2 files name Keras' own classes too; these are never looked up in plugins.
_KERAS_NAMESPACES: Final = (
    "layers",
    "initializers",
    "regularizers",
    "constraints",
    "activations",
    "losses",
    "metrics",
    "optimizers",
    "models",
)
_KERAS_MODEL_CLASSES: Final = frozenset({"Functional", "Sequential", "Model"})
# Class names Keras writes for things that are not classes.
_KERAS_MARKERS: Final = frozenset({"function"})
# Loss aliases that Keras 3 cannot deserialise from an .h5 training config.
_KERAS2_LOSS_ALIASES: Final = frozenset(
    {"mse", "mae", "mape", "msle", "kld", "bce", "MSE", "MAE", "MAPE", "MSLE", "KLD", "BCE"}
)


def keras_builtin(name: str) -> bool:
    import keras

    # Keras 3 .h5 files also name internal markers ("__keras_tensor__", "function") and
    # top-level classes such as DTypePolicy.
    return (
        name in _KERAS_MODEL_CLASSES
        or name in _KERAS_MARKERS
        or name.startswith("__")
        or hasattr(keras, name)
        or any(hasattr(getattr(keras, space), name) for space in _KERAS_NAMESPACES)
    )


def needed_names(config: dict[str, Any]) -> set[str]:
    """The names in an ``.h5`` model config that Keras cannot resolve by itself."""
    # Keras 2 wrote bare class names, or "Package>Name" for classes the user registered; Keras 3
    # .h5 files write registered names; Lambda layers may name a function.
    names = (
        archive.class_names(config)
        | archive.registered_names(config)
        | archive.lambda_function_names(config)
    )
    return {n for n in names if ">" in n or not keras_builtin(n)}


def load_h5(
    file: Path, user_objects: dict[str, Any], compile: bool, safe_mode: bool, registry: Registry
) -> Any:
    config = archive.read_h5(file)
    if safe_mode:
        archive.refuse_bytecode(config, file)
    wanted = needed_names(config) - set(user_objects)
    objects = _resolve_h5_names(wanted, registry) | user_objects
    if compile:
        objects = _loss_aliases(archive.read_h5_training_config(file)) | objects
    import keras

    new_config = _h5_lambda_fixes(config, objects, safe_mode)
    with _h5_source(file, new_config) as source, as_model_file_error(file):
        return keras.saving.load_model(
            source, custom_objects=objects or None, compile=compile, safe_mode=safe_mode
        )


def _resolve_h5_names(names: set[str], registry: Registry) -> dict[str, Any]:
    """Map each name to the plugin object it stands for; raise if any is not provided."""
    # Registered names of installed plugins first (Keras 3 .h5 files, or layerhub's own names).
    objects = registry.load_for(n for n in names if ">" in n)
    bare = {name: name.rpartition(">")[2] for name in names - set(objects)}
    found = registry.legacy_objects(bare.values())
    missing: dict[str, tuple[str | None, str | None]] = {}
    for name, short in sorted(bare.items()):
        if short in found:
            objects[name] = found[short]
        elif name.startswith("layerhub_") and ">" in name:
            missing[name] = (name.partition(">")[0].replace("_", "-"), None)
        else:
            missing[name] = (None, None)
    if missing:
        raise MissingPluginError(
            missing,
            reason="which no installed layerhub plugin provides; "
            "install the plugin that does, or pass it in custom_objects",
        )
    return objects


def _loss_aliases(training_config: dict[str, Any] | None) -> dict[str, Any]:
    """Keras' own functions for the loss aliases Keras 3 cannot read back from an .h5 file.

    Keras 3 fails on ``loss="mse"`` (and ``"mae"``, ``"bce"``, ...) in a Keras 2 training config
    ("Could not deserialize 'keras.metrics.mse'"); naming the functions for this one call works.
    """
    if not training_config:
        return {}
    import keras

    used = {
        value
        for value in archive.walk(training_config.get("loss"))
        if isinstance(value, str) and value in _KERAS2_LOSS_ALIASES
    }
    return {alias: keras.losses.get(alias) for alias in sorted(used)}


def _h5_lambda_fixes(
    config: dict[str, Any], objects: Mapping[str, Any], safe_mode: bool
) -> dict[str, Any] | None:
    """The config with the Keras 2 Lambda forms Keras 3 misreads rewritten, or ``None``.

    Keras 3 turns a function saved by name into the function before ``Lambda.from_config`` sees
    it, which then rejects it; the Keras 3 form of a function reference loads. A Keras 2
    ``output_shape`` lambda is left as a list that Keras 3 takes for a shape; the Keras 3 lambda
    form loads (with ``safe_mode=False`` only, which ``refuse_bytecode`` has enforced).
    """
    if not any(_lambda_fixes(c, objects, safe_mode) for c in archive.lambda_configs(config)):
        return None
    fixed = copy.deepcopy(config)
    for layer in archive.lambda_configs(fixed):
        for key, value in _lambda_fixes(layer, objects, safe_mode).items():
            layer[key] = value
            layer.pop(f"{key}_type")
    return fixed


def _lambda_fixes(
    layer: dict[str, Any], objects: Mapping[str, Any], safe_mode: bool
) -> dict[str, Any]:
    """The new values of the keys of one Keras 2 Lambda config that Keras 3 misreads."""
    found: dict[str, Any] = {}
    for key in ("function", "output_shape"):
        value, kind = layer.get(key), layer.get(f"{key}_type")
        if kind == "function" and isinstance(value, str) and value in objects:
            # Looked up in custom_objects by name, like a Keras 3 function reference.
            found[key] = {
                "module": "builtins",
                "class_name": "function",
                "config": value,
                "registered_name": "function",
            }
        elif (
            kind == "lambda"
            and key == "output_shape"
            and not safe_mode
            and isinstance(value, list)
            and len(value) == 3
        ):
            code, defaults, closure = value
            found[key] = {
                "class_name": "__lambda__",
                "config": {"code": code, "defaults": defaults, "closure": closure},
            }
    return found


@contextlib.contextmanager
def _h5_source(file: Path, new_config: dict[str, Any] | None) -> Iterator[Path]:
    """The file itself, or a temporary copy holding ``new_config`` as its model config."""
    if new_config is None:
        yield file
        return
    import h5py

    with tempfile.TemporaryDirectory(prefix="layerhub-") as scratch:
        copy_path = Path(scratch) / file.name
        shutil.copyfile(file, copy_path)
        with h5py.File(copy_path, "r+") as h5:
            h5.attrs["model_config"] = json.dumps(new_config)
        yield copy_path
