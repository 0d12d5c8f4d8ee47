"""The Keras 2 HDF5 format (``.h5``): the model config and training config are attributes."""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

from layerhub._private import checks
from layerhub._private.errors import ModelFileError
from layerhub._private.model_file import OpenedModel
from layerhub._private.records import one_line
from layerhub._private.untrusted import shown, shown_path

DESCRIPTION: Final = "Keras 2 HDF5 file"
_SIGNATURE: Final = b"\x89HDF\r\n\x1a\n"


def open_hdf5(file: Path) -> OpenedModel:
    """Read an ``.h5`` model's config and training config; nothing is built or imported."""
    name = shown_path(file)
    with file.open("rb") as stream:
        if stream.read(len(_SIGNATURE)) != _SIGNATURE:
            raise ModelFileError(f"{name} is not an HDF5 file (corrupt, truncated or renamed)")
    attributes = _json_attributes(file, name, ("model_config", "training_config"))
    config = attributes["model_config"]
    if config is None:
        raise ModelFileError(f"{name} holds no model config (a weights-only file?)")
    if not isinstance(config, dict) or not isinstance(config.get("class_name"), str):
        raise ModelFileError(f"{name} is not a Keras model: its config holds no serialised object")
    training = attributes["training_config"]
    return OpenedModel(
        path=file,
        description=DESCRIPTION,
        config=config,
        # Every reader takes a non-dict as no training config: this only tidies the record.
        training_config=training if isinstance(training, dict) else None,  # pragma: no mutate
        manifest=None,
        keras2=True,
        source=lambda new_config, new_training: _with_configs(file, new_config, new_training),
    )


def _json_attributes(file: Path, name: str, keys: tuple[str, ...]) -> dict[str, Any]:
    import h5py

    raw: dict[str, Any] = {}
    try:
        with h5py.File(file, "r") as h5:  # pragma: no mutate (h5py's default mode is "r")
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


@contextlib.contextmanager
def _with_configs(
    file: Path, config: dict[str, Any] | None, training: dict[str, Any] | None
) -> Iterator[Path]:
    """The file itself, or a temporary copy holding the replaced configs."""
    if config is None and training is None:
        yield file
        return
    import h5py

    with tempfile.TemporaryDirectory(prefix="layerhub-") as scratch:
        copy_path = Path(scratch) / "model.h5"
        shutil.copyfile(file, copy_path)
        with h5py.File(copy_path, "r+") as h5:
            for key, value in (("model_config", config), ("training_config", training)):
                if value is not None:
                    h5.attrs[key] = json.dumps(value)
        yield copy_path
