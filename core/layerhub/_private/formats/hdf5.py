"""The Keras 2 HDF5 format (``.h5``): the model config and training config are attributes."""

from __future__ import annotations

import contextlib
import threading
from functools import partial
from pathlib import Path
from typing import Any, Final

from layerhub._private.errors import ModelFileError
from layerhub._private.formats.model_file import OpenedModel
from layerhub._private.guard import checks, config_tree
from layerhub._private.guard.untrusted import open_regular, shown, shown_path
from layerhub._private.keras2.placement import (
    MAX_NESTING,
    Deferred,
    Keras2Source,
    StoredWeight,
    keras3_name,
    slashless,
    unslashed,
    weight_name_keys,
)
from layerhub._private.registry.records import one_line

DESCRIPTION: Final = "Keras 2 HDF5 file"
KERAS3_DESCRIPTION: Final = "Keras 3 HDF5 file"
_SIGNATURE: Final = b"\x89HDF\r\n\x1a\n"
# h5py is not safe to use from several threads at once: reads from concurrent threads crash the
# process (h5py 3.16 with HDF5 2.0, h5py/h5py#2920; seen here as a first load from eight threads
# that died with SIGSEGV). Every HDF5 access layerhub makes, or hands to Keras (its loads and
# saves read and write weights with h5py), holds this lock; re-entrant, as a plugin's
# from_config may load a model itself.
LOCK: Final = threading.RLock()


def open_hdf5(file: Path) -> OpenedModel:
    """Read an ``.h5`` model's config and training config; nothing is built or imported."""
    name = shown_path(file)
    with open_regular(file, "model file") as stream:
        if stream.read(len(_SIGNATURE)) != _SIGNATURE:
            raise ModelFileError(f"{name} is not an HDF5 file (corrupt, truncated or renamed)")
    attributes = _json_attributes(file, name, ("model_config", "training_config"))
    keras3 = _written_by_keras3(file, name)
    config = attributes["model_config"]
    if config is None:
        raise ModelFileError(f"{name} holds no model config (a weights-only file?)")
    if not isinstance(config, dict) or not isinstance(config.get("class_name"), str):
        raise ModelFileError(f"{name} is not a Keras model: its config holds no serialised object")
    training = attributes["training_config"]
    return OpenedModel(
        path=file,
        description=KERAS3_DESCRIPTION if keras3 else DESCRIPTION,
        config=config,
        # Every reader takes a non-dict as no training config: this only tidies the record.
        training_config=training if isinstance(training, dict) else None,  # pragma: no mutate
        manifest=None,
        # Keras 3 writes this legacy format too, and reads its own files back whole
        # (optimizer state included): those go to Keras as they are.
        keras2=not keras3,
        source=lambda new_config, new_training: contextlib.nullcontext(
            file
            if keras3
            else Keras2Source(
                file=name,
                config=new_config or config,
                training=new_training or training,
                weights=lambda: stored_weights(file, config_tree.copy(config)),
            )
        ),
    )


def _json_attributes(file: Path, name: str, keys: tuple[str, ...]) -> dict[str, Any]:
    import h5py

    raw: dict[str, Any] = {}
    try:
        with LOCK, h5py.File(file, "r") as h5:  # pragma: no mutate (h5py's default mode is "r")
            for key in keys:
                if key in h5.attrs:
                    checks.check_size(Path(name), key, h5.attrs.get_id(key).get_storage_size())
                    raw[key] = h5.attrs[key]
    except ModelFileError:
        raise
    except Exception as error:  # h5py raises OSError, KeyError, TypeError ... on damage
        raise ModelFileError(f"{name} is corrupt: {shown(one_line(error))}") from error
    return {key: _decode(raw.get(key), name, key) for key in keys}


def _decode(value: Any, name: str, key: str) -> Any:
    if value is None:
        return None
    what = key.replace("_", " ")
    if not isinstance(value, (bytes, str)):
        raise ModelFileError(f"{name}: its {what} is a {type(value).__name__}, not JSON text")
    return checks.decode_json(value, name, what)


def _written_by_keras3(file: Path, name: str) -> bool:
    import h5py

    try:
        with LOCK, h5py.File(file, "r") as h5:
            version = h5.attrs.get("keras_version")
    except Exception as error:  # h5py raises OSError, KeyError, TypeError ... on damage
        raise ModelFileError(f"{name} is corrupt: {shown(one_line(error))}") from error
    if isinstance(version, bytes):
        version = version.decode("utf-8", "replace")
    return (
        isinstance(version, str)
        and version.split(".")[0].isdigit()
        and int(version.split(".")[0]) >= 3
    )


def stored_weights(file: Path, config: dict[str, Any]) -> list[StoredWeight]:
    """Every weight of the file with the layer path and name that identify it; the values
    are read when placed (the file stays open until the last of them is dropped)."""
    import h5py

    name = shown_path(file)
    try:
        with LOCK:
            return _stored_weights(h5py.File(file, "r"), name, config)
    except ModelFileError:
        raise
    except Exception as error:  # h5py raises OSError, KeyError, TypeError ... on damage
        raise ModelFileError(
            f"{name}: its weights cannot be read: {shown(one_line(error))}"
        ) from error


def _stored_weights(h5: Any, name: str, config: dict[str, Any]) -> list[StoredWeight]:
    group = h5.get("model_weights", h5)
    renamed = slashless(config)
    tree = _ModelTree(config, name)
    found = []
    for layer in _names(group.attrs.get("layer_names", [])):
        members = group[layer]
        for weight in _names(members.attrs.get("weight_names", [])):
            path, keys = tree.identify(keras3_name(layer), unslashed(weight, renamed))
            dataset = members[weight]
            value = Deferred(dataset.shape, partial(_read, dataset), name)
            found.append(StoredWeight(path, (keys,), value))
    return found


def _read(dataset: Any) -> Any:
    with LOCK:
        return dataset[()]


def _names(values: Any) -> list[str]:
    return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in values]


class _ModelTree:
    """The layers of a Keras 2 model config by name, models nested in models included.

    Keras 2 names a nested model's variables after their own layers only (``dense/kernel:0``),
    not after the models holding them: a weight filed under a top-level model is found by the
    one layer of that model, at any depth, whose name its variable name carries.
    """

    def __init__(self, config: dict[str, Any], file: str) -> None:
        self.file = file
        self.containers: set[str] = set()
        # top-level model name -> layer name -> paths of the layers of that name inside it
        self.leaves: dict[str, dict[str, list[tuple[str, ...]]]] = {}
        stack: list[tuple[tuple[str, ...], Any]] = [((), config)]
        while stack:
            path, model = stack.pop()
            if len(path) > MAX_NESTING:
                raise ModelFileError(f"{file}: its models nest deeper than layerhub walks")
            for layer in _layer_configs(model):
                name = _layer_name(layer)
                if name is None:
                    continue
                inside = (*path, name)
                if layer.get("class_name") in _MODEL_CLASSES:
                    if not path:
                        self.containers.add(name)
                    stack.append((inside, layer))
                elif path:
                    self.leaves.setdefault(path[0], {}).setdefault(name, []).append(inside)

    def identify(self, top: str, weight: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(layer path, name inside the layer) of a weight filed under the top-level ``top``."""
        if top not in self.containers:
            return (top,), weight_name_keys(weight, top)
        parts = weight_name_keys(weight, "")
        leaves = self.leaves.get(top, {})
        for index, part in enumerate(parts):
            paths = leaves.get(part, [])
            # Same-named layers in different nested models: the models named before it decide.
            narrowed = [p for p in paths if set(p[1:-1]) <= set(parts[:index])] or paths
            if len(narrowed) == 1:
                return narrowed[0], tuple(parts[index + 1 :]) or (part,)
            if narrowed:
                break
        raise ModelFileError(
            f"{self.file}: the weight {shown(weight)} of model {shown(top)} names none (or more "
            "than one) of its layers; the weights cannot be placed by identity"
        )


_MODEL_CLASSES: Final = frozenset({"Functional", "Sequential", "Model"})


def _layer_configs(model: Any) -> list[dict[str, Any]]:
    inner = model.get("config") if isinstance(model, dict) else None
    layers = inner.get("layers") if isinstance(inner, dict) else None
    return (
        [layer for layer in layers if isinstance(layer, dict)] if isinstance(layers, list) else []
    )


def _layer_name(layer: dict[str, Any]) -> str | None:
    inner = layer.get("config")
    name = layer.get("name", inner.get("name") if isinstance(inner, dict) else None)
    return name if isinstance(name, str) else None
