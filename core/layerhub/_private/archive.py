"""Read what a saved model needs without building it: configs, manifests and the names in them."""

from __future__ import annotations

import json
import os
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final, Literal

from layerhub._private.errors import ModelFileError, UnsafeModelError
from layerhub._private.records import one_line

MANIFEST_KEY: Final = "layerhub"
_HDF5_SIGNATURE: Final = b"\x89HDF\r\n\x1a\n"
# ``package>name`` as keras.saving.register_keras_serializable writes it.
_REGISTERED: Final = re.compile(r"[A-Za-z_][\w.]*>[\w.]+")

# What a Keras 2 Lambda layer may hold as a function: each has a "<key>_type" beside it.
_LAMBDA_FUNCTION_KEYS: Final = ("function", "output_shape", "mask")

Format = Literal["keras", "h5"]


def model_format(path: str | os.PathLike[str]) -> tuple[Path, Format]:
    """Check that ``path`` is a readable model file and say which format it is in."""
    file = Path(path)
    if not file.exists():
        raise ModelFileError(f"no such model file: {file}")
    if file.is_dir():
        raise ModelFileError(
            f"{file} is a directory; layerhub loads .keras archives and Keras 2 .h5 files"
        )
    try:
        with file.open("rb") as stream:
            head = stream.read(8)
    except OSError as error:
        raise ModelFileError(f"cannot read {file}: {one_line(error)}") from error
    suffix = file.suffix.lower()
    if suffix == ".keras":
        if not zipfile.is_zipfile(file):
            raise ModelFileError(
                f"{file} is not a .keras archive (corrupt, truncated or not a zip)"
            )
        return file, "keras"
    if suffix in (".h5", ".hdf5"):
        if head != _HDF5_SIGNATURE:
            raise ModelFileError(f"{file} is not an HDF5 file (corrupt, truncated or renamed)")
        return file, "h5"
    raise ModelFileError(
        f"{file}: unsupported model file type {suffix or '(none)'!r}; expected .keras or .h5"
    )


def read_keras(file: Path) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The model config and the layerhub manifest (``None`` for plain ``model.save`` files)."""
    try:
        with zipfile.ZipFile(file) as archive:
            config = json.loads(archive.read("config.json"))
            names = set(archive.namelist())
            metadata = json.loads(archive.read("metadata.json")) if "metadata.json" in names else {}
    except KeyError as error:
        raise ModelFileError(
            f"{file} is not a Keras model: the archive has no config.json"
        ) from error
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as error:
        raise ModelFileError(f"{file} is corrupt: {one_line(error)}") from error
    if not isinstance(config, dict) or "class_name" not in config:
        raise ModelFileError(f"{file} is not a Keras model: config.json holds no serialised object")
    manifest = metadata.get(MANIFEST_KEY) if isinstance(metadata, dict) else None
    return config, manifest if isinstance(manifest, dict) else None


def read_h5(file: Path) -> dict[str, Any]:
    """The model config of a Keras 2 HDF5 file."""
    config = _h5_json(file, "model_config")
    if config is None:
        raise ModelFileError(f"{file} holds no model config (a weights-only file?)")
    if not isinstance(config, dict) or "class_name" not in config:
        raise ModelFileError(f"{file} is not a Keras model: its config holds no serialised object")
    return config


def read_h5_training_config(file: Path) -> dict[str, Any] | None:
    """The training config (loss, metrics, optimizer) of a compiled model's HDF5 file, or None."""
    config = _h5_json(file, "training_config")
    return config if isinstance(config, dict) else None


def _h5_json(file: Path, attribute: str) -> Any:
    import h5py

    try:
        with h5py.File(file, "r") as h5:
            raw = h5.attrs.get(attribute)
    except OSError as error:
        raise ModelFileError(f"{file} is corrupt: {one_line(error)}") from error
    if raw is None:
        return None
    try:
        return json.loads(raw.decode() if isinstance(raw, bytes) else raw)
    except ValueError as error:
        raise ModelFileError(
            f"{file} has an unreadable {attribute.replace('_', ' ')}: {one_line(error)}"
        ) from error


def walk(node: Any) -> Iterator[Any]:
    """Every value nested anywhere in a JSON-like tree, depth first."""
    stack = [node]
    while stack:
        item = stack.pop()
        yield item
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def registered_names(config: dict[str, Any]) -> set[str]:
    """Every ``package>name`` the config refers to, at any depth.

    Registered classes carry it in ``registered_name``; registered functions (Lambda functions,
    activations, losses) are saved as ``{"class_name": "function", "config": "package>name"}``.
    """
    found: set[str] = set()
    for node in walk(config):
        if not isinstance(node, dict):
            continue
        candidates = [node.get("registered_name")]
        if node.get("class_name") == "function":
            candidates.append(node.get("config"))
        found.update(c for c in candidates if isinstance(c, str) and _REGISTERED.fullmatch(c))
    return found


def class_names(config: dict[str, Any]) -> set[str]:
    """Every ``class_name`` in a (Keras 2) config."""
    return {
        n["class_name"]
        for n in walk(config)
        if isinstance(n, dict) and isinstance(n.get("class_name"), str)
    }


def lambda_configs(config: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The ``config`` dictionary of every ``Lambda`` layer, at any depth."""
    for node in walk(config):
        if isinstance(node, dict) and node.get("class_name") == "Lambda":
            inner = node.get("config")
            if isinstance(inner, dict):
                yield inner


def lambda_function_names(config: dict[str, Any]) -> set[str]:
    """Names of the functions Keras 2 ``Lambda`` layers saved by name, not as bytecode.

    Keras 2 wrote ``"function_type": "function"`` (and the same for ``output_shape`` and
    ``mask``) with the function's ``__name__`` for callables that are not Python functions;
    every Python function, named or not, it saved as bytecode (``"lambda"``).
    """
    names: set[str] = set()
    for layer in lambda_configs(config):
        for key in _LAMBDA_FUNCTION_KEYS:
            value = layer.get(key)
            if layer.get(f"{key}_type") == "function" and isinstance(value, str):
                names.add(value)
    return names


def refuse_bytecode(config: dict[str, Any], file: Path) -> None:
    """Raise if the config holds a Python function saved as bytecode (``safe_mode`` forbids it)."""
    for node in walk(config):
        if not isinstance(node, dict):
            continue
        # Keras 3 nests {"class_name": "__lambda__", ...} in the layer config; Keras 2 marks the
        # layer config itself with "<key>_type": "lambda".
        keras3 = [k for k, v in node.items() if isinstance(v, dict) and _is_keras3_lambda(v)]
        keras2 = [k for k in _LAMBDA_FUNCTION_KEYS if node.get(f"{k}_type") == "lambda"]
        if not (keras3 or keras2 or _is_keras3_lambda(node)):
            continue
        where = f"layer {node['name']!r}" if isinstance(node.get("name"), str) else "a layer"
        what = f" in its {' and '.join(sorted({*keras3, *keras2}))}" if keras3 or keras2 else ""
        saved = (
            "Keras 2 saved every Python function given to a Lambda layer this way, named or not"
            if keras2
            else "Keras saves Python lambdas this way"
        )
        raise UnsafeModelError(
            f"{file}: {where} holds Python bytecode{what}, which would run as code while the "
            f"model loads, so safe_mode refuses it ({saved}); if you trust the file, load it "
            "with safe_mode=False, and to avoid this in future rebuild the Lambda with a "
            "function a plugin registers and save it as .keras"
        )


def _is_keras3_lambda(node: dict[str, Any]) -> bool:
    return node.get("class_name") == "__lambda__"
