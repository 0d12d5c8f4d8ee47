"""Locate a model and open it: every format gives the same record to the loading pipeline."""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Final, NamedTuple

from layerhub._private.errors import ModelFileError
from layerhub._private.manifest import Manifest
from layerhub._private.untrusted import shown

# Keras picks the format by these exact, lower-case suffixes.
SUFFIXES: Final = {".keras": "keras", ".h5": "h5", ".hdf5": "h5"}

# Given a config to build instead of the saved one (or None), what Keras loads: a path, or a
# file object holding the same archive with that config.
Source = Callable[[dict[str, Any] | None], AbstractContextManager[Path | io.BufferedReader]]


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
        source: how Keras gets the model: a path to load, holding a replaced config if one
            is given (the file itself otherwise).
    """

    path: Path
    description: str
    config: dict[str, Any]
    training_config: Any
    manifest: Manifest | None
    keras2: bool
    source: Source


def locate(path: str | os.PathLike[str]) -> tuple[Path, str]:
    """Check that ``path`` names a model file and say which format its suffix promises."""
    file = Path(path)
    if not file.exists():
        raise ModelFileError(f"no such model file: {shown(str(file), 400)}")
    if file.is_dir():
        raise ModelFileError(
            f"{shown(str(file), 400)} is a directory; layerhub loads .keras archives and "
            "Keras 2 .h5 files"
        )
    suffix = file.suffix
    if suffix in SUFFIXES:
        return file, SUFFIXES[suffix]
    if suffix.lower() in SUFFIXES:
        raise ModelFileError(
            f"{shown(str(file), 400)}: Keras recognises only the lower-case suffix "
            f"{suffix.lower()!r}; rename the file"
        )
    raise ModelFileError(
        f"{shown(str(file), 400)}: unsupported model file type {shown(suffix or '(none)')!r}; "
        "expected .keras or .h5"
    )
