"""The Keras 3 ``.keras`` format: a zip archive of config.json, metadata.json and weights."""

from __future__ import annotations

import contextlib
import io
import json
import stat
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

from layerhub._private import checks, manifest, zip_view
from layerhub._private.errors import ModelFileError
from layerhub._private.model_file import OpenedModel
from layerhub._private.records import one_line
from layerhub._private.untrusted import shown, shown_path

DESCRIPTION: Final = "Keras 3 archive"
# What zipfile and zlib raise on a damaged archive.
ZIP_ERRORS: Final = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    zlib.error,
    EOFError,
    OSError,
    NotImplementedError,  # an unsupported compression method
    RuntimeError,  # an encrypted member
)


def open_archive(file: Path) -> OpenedModel:
    """Read a ``.keras`` archive's config and manifest; nothing is built or imported."""
    name = shown_path(file)
    if not zipfile.is_zipfile(file):
        raise ModelFileError(f"{name} is not a .keras archive (corrupt, truncated or not a zip)")
    try:
        with zipfile.ZipFile(file) as archive:
            _refuse_duplicates(archive, name)
            config = _json_member(archive, "config.json", name)
            metadata = (
                _json_member(archive, "metadata.json", name)
                if "metadata.json" in archive.NameToInfo
                else {}
            )
            comment = archive.comment
    except ModelFileError:
        raise
    except ZIP_ERRORS as error:
        raise ModelFileError(f"{name} is corrupt: {shown(one_line(error))}") from error
    if not isinstance(config, dict) or not isinstance(config.get("class_name"), str):
        raise ModelFileError(f"{name} is not a Keras model: config.json holds no serialised object")
    found = manifest.from_comment(comment)
    if found is None and isinstance(metadata, dict):
        found = manifest.parse(metadata.get(manifest.METADATA_KEY))
    return OpenedModel(
        path=file,
        description=DESCRIPTION,
        config=config,
        training_config=config.get("compile_config"),
        manifest=found,
        keras2=False,
        # The training config is part of config.json here.
        source=lambda new_config, _training: _with_config(file, new_config),
    )


def open_directory(folder: Path) -> OpenedModel:
    """Read an unzipped Keras 3 model (the layout a Hub repository holds)."""
    name = shown_path(folder)
    config = _json_file(folder / "config.json", name)
    metadata = (
        _json_file(folder / "metadata.json", name) if (folder / "metadata.json").is_file() else {}
    )
    if not isinstance(config, dict) or not isinstance(config.get("class_name"), str):
        raise ModelFileError(f"{name} is not a Keras model: config.json holds no serialised object")
    found = (
        manifest.parse(metadata.get(manifest.METADATA_KEY)) if isinstance(metadata, dict) else None
    )
    return OpenedModel(
        path=folder,
        description="Keras 3 model directory",
        config=config,
        training_config=config.get("compile_config"),
        manifest=found,
        keras2=False,
        source=lambda new_config, _training: _directory_with_config(folder, new_config),
    )


def _json_file(file: Path, name: str) -> Any:
    checks.check_size(Path(name), file.name, file.stat().st_size)
    return checks.decode_json(file.read_bytes(), name, file.name)


@contextlib.contextmanager
def _directory_with_config(folder: Path, new_config: dict[str, Any] | None) -> Iterator[Path]:
    """The folder itself, or a temporary one holding ``new_config`` and links to the rest."""
    if new_config is None:
        yield folder
        return
    import tempfile

    with tempfile.TemporaryDirectory(prefix="layerhub-") as scratch:
        view = Path(scratch)
        for entry in folder.iterdir():
            if entry.name != "config.json":
                (view / entry.name).symlink_to(entry.resolve())
        (view / "config.json").write_text(json.dumps(new_config))
        yield view


def _refuse_duplicates(archive: zipfile.ZipFile, name: str) -> None:
    names = [info.filename for info in archive.infolist()]
    if len(names) != len(set(names)):
        twice = sorted({n for n in names if names.count(n) > 1})
        raise ModelFileError(
            f"{name} holds more than one member named {shown(twice[0])!r}; "
            "refusing an ambiguous archive"
        )


def _json_member(archive: zipfile.ZipFile, member: str, name: str) -> Any:
    try:
        info = archive.getinfo(member)
    except KeyError:
        raise ModelFileError(f"{name} is not a Keras model: the archive has no {member}") from None
    if info.is_dir() or stat.S_ISLNK(info.external_attr >> 16):
        raise ModelFileError(f"{name}: its {member} is not a regular file")
    checks.check_size(Path(name), member, info.file_size)
    return checks.decode_json(archive.read(info), name, member)


@contextlib.contextmanager
def _with_config(
    file: Path, new_config: dict[str, Any] | None
) -> Iterator[Path | io.BufferedReader]:
    """The file itself, or a view of it whose config.json is ``new_config``: no weights copied."""
    if new_config is None:
        yield file
        return
    with zip_view.replaced(file, "config.json", json.dumps(new_config).encode()) as view:
        yield view


def rewrite(source: Path, target: Path, replacements: dict[str, bytes]) -> None:
    """Copy a zip archive member by member, replacing the contents of some members."""
    import shutil

    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for info in old.infolist():
            if info.filename in replacements:
                new.writestr(info, replacements[info.filename])
                continue
            with old.open(info) as src, new.open(info, "w") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)  # pragma: no mutate (buffer size only)
