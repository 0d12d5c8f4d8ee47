"""Save and load Keras models so that the plugins they need are found and imported on demand."""

from __future__ import annotations

import contextlib
import copy
import json
import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Final

from layerhub._private import archive
from layerhub._private.errors import MissingPluginError, ModelFileError
from layerhub._private.records import one_line
from layerhub._private.registry import Registry, registry

MANIFEST_FORMAT: Final = 1
# What a damaged archive raises from inside Keras; anything else is Keras' own message.
_CORRUPTION_ERRORS: Final = (zipfile.BadZipFile, EOFError, OSError, KeyError)


def load_model(
    path: str | os.PathLike[str],
    *,
    custom_objects: Mapping[str, Any] | None = None,
    compile: bool = True,
    safe_mode: bool = True,
    registry: Registry = registry,
) -> Any:
    """Load a ``.keras`` or Keras 2 ``.h5`` model, importing exactly the plugins it needs.

    Args:
        path: the model file.
        custom_objects: extra objects, as for ``keras.saving.load_model``; rarely needed.
        compile: whether to compile the model after loading.
        safe_mode: refuse Python lambdas stored as bytecode (on by default, passed to Keras).
        registry: the registry to resolve plugins with (the installed one by default).

    Returns:
        The Keras model.

    Raises:
        ModelFileError: the path is missing, unreadable, corrupt or not a model.
        MissingPluginError: a needed plugin is not installed (the message has the pip line).
        UnsafeModelError: the file holds bytecode and ``safe_mode`` is on.
    """
    file, kind = archive.model_format(path)
    user_objects = dict(custom_objects or {})
    if kind == "h5":
        from layerhub._private import legacy

        return legacy.load_h5(file, user_objects, compile, safe_mode, registry)
    config, manifest = archive.read_keras(file)
    if safe_mode:
        archive.refuse_bytecode(config, file)
    _import_plugins(archive.registered_names(config) - set(user_objects), manifest, registry)
    import keras

    with _upgraded(file, config, manifest, registry) as source, as_model_file_error(file):
        return keras.saving.load_model(
            source, custom_objects=user_objects or None, compile=compile, safe_mode=safe_mode
        )


def _import_plugins(names: set[str], manifest: dict[str, Any] | None, registry: Registry) -> None:
    known = registry.load_for(names)
    saved = (manifest or {}).get("objects", {})
    missing: dict[str, tuple[str | None, str | None]] = {}
    for name in sorted(names - set(known)):
        entry = saved.get(name)
        if isinstance(entry, dict):
            missing[name] = (entry.get("distribution"), entry.get("version"))
        elif name.startswith("layerhub_"):
            missing[name] = (name.partition(">")[0].replace("_", "-"), None)
    if missing:
        raise MissingPluginError(missing, reason="which is not installed")


@contextlib.contextmanager
def _upgraded(
    file: Path, config: dict[str, Any], manifest: dict[str, Any] | None, registry: Registry
) -> Iterator[Path]:
    """The file itself, or a temporary copy whose config plugins upgraded from older versions."""
    saved = (manifest or {}).get("objects", {})
    installed = {r.registered_name: r.version for r in registry.list()}
    stale = {
        name: entry["version"]
        for name, entry in saved.items()
        if isinstance(entry, dict) and name in installed and entry.get("version") != installed[name]
    }
    new_config = _upgrade_config(config, stale, registry) if stale else None
    if new_config is None:
        yield file
        return
    with tempfile.TemporaryDirectory(prefix="layerhub-") as scratch:
        copy_path = Path(scratch) / file.name
        _rewrite_archive(file, copy_path, {"config.json": json.dumps(new_config).encode()})
        yield copy_path


def _upgrade_config(
    config: dict[str, Any], stale: dict[str, str], registry: Registry
) -> dict[str, Any] | None:
    upgraded = copy.deepcopy(config)
    changed = False
    for node in archive.walk(upgraded):
        if not isinstance(node, dict) or node.get("registered_name") not in stale:
            continue
        name = node["registered_name"]
        new = registry.hook.layerhub_upgrade_config(
            registered_name=name, config=node.get("config", {}), saved_version=stale[name]
        )
        if new is not None:
            node["config"] = new
            changed = True
    return upgraded if changed else None


@contextlib.contextmanager
def as_model_file_error(file: Path) -> Iterator[None]:
    try:
        yield
    except _CORRUPTION_ERRORS as error:
        raise ModelFileError(f"{file} could not be read: {one_line(error)}") from error


def save_model(model: Any, path: str | os.PathLike[str], *, registry: Registry = registry) -> Path:
    """Save ``model`` as a ``.keras`` archive with a manifest of the plugins it uses.

    The manifest (``metadata.json``, key ``"layerhub"``) maps each registered name the model uses
    to the distribution and version that provided it, so a missing plugin can be named exactly
    when the file is loaded elsewhere. The write is atomic: the archive is written beside
    ``path`` and moved into place, so a failure leaves any earlier file untouched.

    Returns:
        The path written.
    """
    target = Path(path)
    if target.suffix != ".keras":
        raise ModelFileError(f"layerhub saves the .keras format. Received: path={str(path)!r}")
    if target.is_dir():
        raise ModelFileError(f"cannot save over a directory. Received: path={str(path)!r}")
    target.parent.mkdir(parents=True, exist_ok=True)
    import keras

    fd, raw_name = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=".keras", dir=target.parent)
    os.close(fd)
    raw = Path(raw_name)
    final = raw.with_name(raw.stem + ".final.keras")
    try:
        keras.saving.save_model(model, raw)
        with zipfile.ZipFile(raw) as saved:
            config = json.loads(saved.read("config.json"))
            metadata = json.loads(saved.read("metadata.json"))
        metadata[archive.MANIFEST_KEY] = manifest(config, registry)
        _rewrite_archive(raw, final, {"metadata.json": json.dumps(metadata).encode()})
        os.replace(final, target)
    finally:
        for leftover in (raw, final):
            leftover.unlink(missing_ok=True)
    return target


def manifest(config: dict[str, Any], registry: Registry = registry) -> dict[str, Any]:
    """The layerhub manifest for a model config: registered name -> distribution and version."""
    from layerhub import __version__

    objects = {}
    for name in sorted(archive.registered_names(config)):
        records = registry.plugin_for(name)
        if records:
            objects[name] = {"distribution": records[0].distribution, "version": records[0].version}
    return {"format": MANIFEST_FORMAT, "layerhub_version": __version__, "objects": objects}


def _rewrite_archive(source: Path, target: Path, replacements: dict[str, bytes]) -> None:
    """Copy a zip archive member by member, replacing the contents of some members."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for info in old.infolist():
            if info.filename in replacements:
                new.writestr(info, replacements[info.filename])
                continue
            with old.open(info) as src, new.open(info, "w") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
