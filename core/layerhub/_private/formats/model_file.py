"""Locate a model and open it: every format gives the same record to the loading pipeline."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Final, NamedTuple

from layerhub._private.errors import ModelFileError
from layerhub._private.formats.manifest import Manifest
from layerhub._private.guard.untrusted import described, kind_of, os_reason, shown, shown_path

# Keras picks the format by these exact, lower-case suffixes.
SUFFIXES: Final = {".keras": "keras", ".h5": "h5", ".hdf5": "h5"}

# Given a model config and a training config to use instead of the saved ones (or None), what
# Keras loads: a path, a file object holding the same archive, or an HDF5 file in memory.
Source = Callable[[dict[str, Any] | None, dict[str, Any] | None], AbstractContextManager[Any]]


class OpenedModel(NamedTuple):
    """A model file read without building anything.

    Attributes:
        path: the file.
        description: the format in words, for messages.
        config: the model config.
        training_config: what compiling needs (a Keras 2 training config, or the Keras 3
            ``compile_config``), or ``None``.
        manifest: the layerhub manifest, or ``None``.
        keras2: the config uses Keras 2 names and forms.
        source: how Keras gets the model and its weights, with replaced configs if given:
            the file itself, a view of it, or the Keras 2 HDF5 layout in memory.
    """

    path: Path
    description: str
    config: dict[str, Any]
    training_config: Any
    manifest: Manifest | None
    keras2: bool
    source: Source


HUB_PREFIX: Final = "hf://"


def locate(path: str | os.PathLike[str]) -> tuple[Path, str]:
    """Check that ``path`` names a model and say which format it promises.

    ``hf://owner/repo`` is fetched from the Hugging Face Hub (or its local cache) into a
    directory first, as ``keras.saving.load_model`` does.
    """
    if isinstance(path, str) and path.startswith(HUB_PREFIX):
        path = _from_hub(path[len(HUB_PREFIX) :])
    try:
        file = Path(path)
    except TypeError:
        raise ModelFileError(f"not a model path: {described(path)}") from None
    try:
        # Symlinks are followed, as Keras follows them; what they lead to is checked.
        mode = os.stat(file).st_mode
    except (OSError, ValueError) as error:
        if isinstance(error, OSError) and error.errno == errno.ENOENT:
            raise ModelFileError(f"no such model file: {shown_path(file)}") from None
        raise ModelFileError(
            f"model path {shown_path(file)} {os_reason(error)}; refusing to read it"
        ) from None
    if stat.S_ISDIR(mode):
        return file, _directory_kind(file)
    if not stat.S_ISREG(mode):
        raise ModelFileError(
            f"model file {shown_path(file)} is {kind_of(mode)}, not a regular file; "
            "refusing to read it"
        )
    suffix = file.suffix
    if suffix in SUFFIXES:
        return file, SUFFIXES[suffix]
    if suffix.lower() in SUFFIXES:
        raise ModelFileError(
            f"{shown_path(file)}: Keras recognises only the lower-case suffix "
            f"{suffix.lower()!r}; rename the file"
        )
    raise ModelFileError(
        f"{shown_path(file)}: unsupported model file type {shown(suffix or '(none)')!r}; "
        "expected .keras or .h5"
    )


def _directory_kind(folder: Path) -> str:
    # Which file is there decides the format; whether it is readable is the reader's to say
    # (a FIFO named config.json is a model directory that its reader refuses).
    try:
        if os.path.lexists(folder / "saved_model.pb"):
            return "savedmodel"
        if os.path.lexists(folder / "config.json"):
            return "keras_dir"
    except (OSError, ValueError) as error:  # a symlink loop, a name too long ...
        raise ModelFileError(f"model directory {shown_path(folder)} {os_reason(error)}") from None
    raise ModelFileError(
        f"{shown_path(folder)} is a directory but no SavedModel; layerhub loads .keras "
        "archives, Keras 2 .h5 files and Keras 2 SavedModel directories"
    )


def _from_hub(repo_id: str) -> Path:
    """The local snapshot of a Hub model repository (downloaded unless cached)."""
    try:
        import huggingface_hub
    except ImportError:
        raise ModelFileError(
            f"loading {HUB_PREFIX}{shown(repo_id)} needs huggingface_hub: "
            "pip install huggingface_hub"
        ) from None
    try:
        folder = huggingface_hub.snapshot_download(repo_id=repo_id, library_name="keras")
    except Exception as error:  # offline without a cached copy, no such repo, network ...
        from layerhub._private.registry.records import one_line

        raise ModelFileError(
            f"cannot fetch {HUB_PREFIX}{shown(repo_id)}: {shown(one_line(error), 300)}"
        ) from error
    return Path(folder)
