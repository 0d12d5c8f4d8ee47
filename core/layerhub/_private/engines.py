"""What a worker needs to load a model file, read from the file without loading it.

Shared by ``layerhub requirements`` and the engine modules (``layerhub.ray``,
``layerhub.spark``, ``layerhub.mlflow``). A worker needs each plugin the file names (pinned to
the version its manifest records, or else to the installed one), and, with the core, the
``keras`` and ``layerhub`` that the caller runs: the code a driver sends to its workers
(``layerhub.ray.Predictor``, a Spark loader) is pickled by reference to those.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import os
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, Final, NamedTuple

from layerhub._private.errors import LayerHubError, Missing, MissingPluginError

# The package a backend name needs, in the order tried: the first one installed is pinned.
_BACKEND_DISTRIBUTIONS: Final = {
    "tensorflow": ("tensorflow", "tensorflow-cpu"),
    "jax": ("jax",),
    "torch": ("torch",),
}


class EngineNotInstalledError(LayerHubError, ImportError):
    """An engine module was used without its package; the message names the extra to install."""


class Requirements(NamedTuple):
    """A model's requirement lines and the names no distribution is known for.

    Attributes:
        lines: ``name==version`` (or a bare name when no version is known), sorted, no duplicates.
        unknown: names the file uses that neither its manifest nor an installed plugin ties to a
            distribution, as the file spells them (escape them before showing).
    """

    lines: tuple[str, ...]
    unknown: tuple[str, ...]


def require(module: str, extra: str, user: str) -> ModuleType:
    """Import an engine's module, or raise EngineNotInstalledError naming the extra."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise EngineNotInstalledError(
            f"{user} needs {module.partition('.')[0]}, which cannot be imported ({error}); "
            f"run: pip install 'layerhub[{extra}]'"
        ) from error


def installed_version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def core_requirements() -> list[str]:
    """``keras`` and ``layerhub`` pinned to the versions running here."""
    from layerhub import __version__

    keras = installed_version("keras")
    return [
        f"keras=={keras}" if keras else "keras",
        f"layerhub=={installed_version('layerhub') or __version__}",
    ]


def backend_requirement() -> str | None:
    """The installed package of the Keras backend in use (``tensorflow==2.21.0``), if known.

    The backend is read as Keras reads it (``KERAS_BACKEND``, then ``~/.keras/keras.json``),
    unless Keras is already imported; Keras itself is not imported for this.
    """
    import sys

    keras = sys.modules.get("keras")
    name: object = None
    if keras is not None:
        name = keras.config.backend()
    else:
        name = os.environ.get("KERAS_BACKEND") or _configured_backend()
    for distribution in _BACKEND_DISTRIBUTIONS.get(str(name or "tensorflow"), ()):
        version = installed_version(distribution)
        if version is not None:
            return f"{distribution}=={version}"
    return None


def _configured_backend() -> object:
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    try:
        return json.loads(Path(home, "keras.json").read_text()).get("backend")
    except (OSError, ValueError, AttributeError):
        return None


def needs_of(model: str | os.PathLike[str]) -> Requirements:
    """The plugin requirement lines of a model file, from its manifest; nothing is loaded."""
    from layerhub._private.guard import checks
    from layerhub._private.loading import open_model
    from layerhub._private.registry import resolve
    from layerhub._private.registry.plugins import registry

    opened = open_model(model)
    checks.check_config(opened.path, opened.config, safe_mode=False)
    needs = resolve.needs(opened, registry)
    saved = opened.manifest.objects if opened.manifest is not None else {}
    return plugin_lines(needs, saved)


def plugin_lines(needs: Sequence[Any], saved: Any) -> Requirements:
    """One line per distribution providing the needed names, as ``inspect --requirements``.

    The file's manifest decides the version when it names a valid distribution and version
    (``resolve.missing_entry`` validates both); otherwise the installed plugin does.
    """
    from layerhub._private.registry import resolve

    lines: set[str] = set()
    unknown: list[str] = []
    for need in needs:
        entry = resolve.missing_entry(need.name, saved.get(need.name))
        installed = [p for p in need.providers if p.distribution is not None]
        if need.by_keras and entry.distribution is None and not installed:
            # Keras' own packages, or the caller's class: nothing a plugin provides. A plugin
            # class that an import here registered with Keras is still needed on a worker.
            continue
        if entry.distribution is not None and entry.version is not None:
            lines.add(f"{entry.distribution}=={entry.version}")
        elif installed:
            lines.add(f"{installed[0].distribution}=={installed[0].version}")
        elif entry.distribution is not None:
            lines.add(entry.distribution)
        else:
            unknown.append(need.name)
    return Requirements(tuple(sorted(lines)), tuple(unknown))


def requirements(
    model: str | os.PathLike[str], *, with_core: bool = True, with_backend: bool = False
) -> list[str]:
    """The pip requirement lines a worker needs to load ``model`` with ``layerhub.load_model``.

    Args:
        model: a model file, as ``layerhub.load_model`` takes it; only its config and manifest
            are read.
        with_core: add ``keras`` and ``layerhub``, pinned to the versions running here.
        with_backend: add the installed package of the Keras backend in use.

    Raises:
        MissingPluginError: a name in the file has no known distribution (a class registered
            by hand, or a plugin that is neither installed nor named by the manifest).
    """
    found = needs_of(model)
    if found.unknown:
        raise MissingPluginError(
            [Missing(name) for name in found.unknown],
            reason="and no distribution is known for it (neither the file's manifest nor an "
            "installed plugin names one), so no requirement can be written",
        )
    lines = list(found.lines)
    if with_core:
        lines = core_requirements() + lines
    if with_backend:
        backend = backend_requirement()
        if backend is not None:
            lines.append(backend)
    return lines
