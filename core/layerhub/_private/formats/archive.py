"""The Keras 3 ``.keras`` format: a zip archive of config.json, metadata.json and weights."""

from __future__ import annotations

import contextlib
import io
import json
import os
import stat
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

from layerhub._private.errors import ModelFileError
from layerhub._private.formats import manifest, zip_view
from layerhub._private.formats.model_file import OpenedModel
from layerhub._private.guard import checks
from layerhub._private.guard.untrusted import (
    open_regular,
    os_reason,
    read_bytes,
    regular_file,
    shown,
    shown_path,
)
from layerhub._private.registry.records import one_line

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


# What Keras reads of a model, at the top of an archive or a model directory.
CONFIG: Final = "config.json"
METADATA: Final = "metadata.json"
WEIGHTS: Final = ("model.weights.h5", "model.weights.npz")
ASSETS: Final = "assets"
# An assets tree with more entries than this is refused rather than walked.
MAX_ASSET_ENTRIES: Final = 100_000


def open_archive(file: Path) -> OpenedModel:
    """Read a ``.keras`` archive's config and manifest; nothing is built or imported."""
    name = shown_path(file)
    with open_regular(file, "model file") as stream:
        try:
            if not zipfile.is_zipfile(stream):
                raise ModelFileError(
                    f"{name} is not a .keras archive (corrupt, truncated or not a zip)"
                )
            stream.seek(0)
            with zipfile.ZipFile(stream) as archive:
                _refuse_duplicates(archive, name)
                for member in (METADATA, *WEIGHTS):
                    if member in archive.NameToInfo:
                        _regular_member(archive.getinfo(member), name)
                config = _json_member(archive, CONFIG, name)
                metadata = (
                    _json_member(archive, METADATA, name) if METADATA in archive.NameToInfo else {}
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
    """Read an unzipped Keras 3 model (the layout a Hub repository holds).

    Everything Keras will open in it is checked first: the config, metadata and weights must be
    regular files and the assets a tree of directories and regular files, so that a FIFO or a
    device in their place is refused instead of blocking the load.
    """
    name = shown_path(folder)
    entries = _entries(folder, name)
    for member in (CONFIG, METADATA, *WEIGHTS):
        if member in entries:
            regular_file(folder / member, "model member")
    if ASSETS in entries:
        _check_assets(folder / ASSETS, name)
    config = _json_file(folder / CONFIG, name)
    metadata = _json_file(folder / METADATA, name) if METADATA in entries else {}
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


def _entries(folder: Path, name: str) -> set[str]:
    try:
        return set(os.listdir(folder))
    except (OSError, ValueError) as error:
        raise ModelFileError(
            f"model directory {name} {os_reason(error)}; refusing to read it"
        ) from None


def _check_assets(root: Path, name: str) -> None:
    """Refuse an assets tree holding anything but directories and regular files, or a loop."""
    seen: set[tuple[int, int]] = set()
    stack = [root]
    count = 0
    while stack:
        folder = stack.pop()
        try:
            info = os.stat(folder)
        except (OSError, ValueError) as error:
            raise _asset_error(folder, error) from None
        if not stat.S_ISDIR(info.st_mode):
            regular_file(folder, "asset")
            continue
        if (info.st_dev, info.st_ino) in seen:
            raise ModelFileError(
                f"{name}: its assets directory {shown_path(folder)} links back to a directory "
                "above it; refusing to read it"
            )
        seen.add((info.st_dev, info.st_ino))
        try:
            children = [folder / child for child in os.listdir(folder)]
        except (OSError, ValueError) as error:
            raise _asset_error(folder, error) from None
        count += len(children)
        if count > MAX_ASSET_ENTRIES:
            raise ModelFileError(
                f"{name}: its assets hold more than {MAX_ASSET_ENTRIES} entries; refusing to "
                "read them (a damaged or hostile directory?)"
            )
        stack.extend(children)


def _asset_error(path: Path, error: BaseException) -> ModelFileError:
    return ModelFileError(f"asset {shown_path(path)} {os_reason(error)}; refusing to read it")


def _json_file(file: Path, name: str) -> Any:
    # The size on disk refuses early, in the words every format uses; the bounded read holds
    # if the file grows in between.
    checks.check_size(Path(name), file.name, regular_file(file, "model member").st_size)
    raw = read_bytes(file, checks.MAX_MEMBER_BYTES, "model member")
    return checks.decode_json(raw, name, file.name)


def _dumps(config: dict[str, Any], name: str) -> str:
    try:
        return json.dumps(config)
    except (ValueError, TypeError, RecursionError) as error:
        raise ModelFileError(
            f"{name}: its upgraded config cannot be written: {shown(one_line(error))}"
        ) from error


@contextlib.contextmanager
def _directory_with_config(folder: Path, new_config: dict[str, Any] | None) -> Iterator[Path]:
    """The folder itself, or a temporary one holding ``new_config`` and links to the rest."""
    if new_config is None:
        yield folder
        return
    import tempfile

    text = _dumps(new_config, shown_path(folder))
    with tempfile.TemporaryDirectory(prefix="layerhub-") as scratch:
        view = Path(scratch)
        try:
            for entry in os.listdir(folder):
                if entry != CONFIG:
                    # A link to the entry itself, not to what it resolves to: resolving would
                    # walk the user's symlinks (and fail on a loop) for no gain.
                    (view / entry).symlink_to(os.path.abspath(folder / entry))
            (view / CONFIG).write_text(text)
        except OSError as error:
            raise ModelFileError(
                f"cannot prepare the upgraded model directory {shown_path(folder)}: "
                f"{os_reason(error)}"
            ) from error
        yield view


def _refuse_duplicates(archive: zipfile.ZipFile, name: str) -> None:
    names = [info.filename for info in archive.infolist()]
    if len(names) != len(set(names)):
        twice = sorted({n for n in names if names.count(n) > 1})
        raise ModelFileError(
            f"{name} holds more than one member named {shown(twice[0])!r}; "
            "refusing an ambiguous archive"
        )


def _regular_member(info: zipfile.ZipInfo, name: str) -> None:
    # Unix mode bits, when the archive has them; zipfile writes permissions alone (no type).
    kind = stat.S_IFMT(info.external_attr >> 16)
    if info.is_dir() or kind not in (0, stat.S_IFREG):
        raise ModelFileError(f"{name}: its {shown(info.filename)} is not a regular file")


def _json_member(archive: zipfile.ZipFile, member: str, name: str) -> Any:
    try:
        info = archive.getinfo(member)
    except KeyError:
        raise ModelFileError(f"{name} is not a Keras model: the archive has no {member}") from None
    _regular_member(info, name)
    # The declared size refuses early; the bounded read holds whatever the data decompresses to.
    checks.check_size(Path(name), member, info.file_size)
    with archive.open(info) as stream:
        raw = stream.read(checks.MAX_MEMBER_BYTES + 1)
    return checks.decode_json(raw, name, member)


@contextlib.contextmanager
def _with_config(
    file: Path, new_config: dict[str, Any] | None
) -> Iterator[Path | io.BufferedReader]:
    """The file itself, or a view of it whose config.json is ``new_config``: no weights copied."""
    if new_config is None:
        yield file
        return
    data = _dumps(new_config, shown_path(file)).encode()
    with zip_view.replaced(file, CONFIG, data) as view:
        yield view


def rewrite(source: Path, target: Path, replacements: dict[str, bytes]) -> None:
    """Copy a zip archive member by member, replacing the contents of some members."""
    import shutil

    with (
        open_regular(source, "model file") as stream,
        zipfile.ZipFile(stream) as old,
        zipfile.ZipFile(target, "w") as new,
    ):
        for info in old.infolist():
            if info.filename in replacements:
                new.writestr(info, replacements[info.filename])
                continue
            with old.open(info) as src, new.open(info, "w") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)  # pragma: no mutate (buffer size only)
