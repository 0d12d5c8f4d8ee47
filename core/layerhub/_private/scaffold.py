"""Write a new plugin distribution from the template in ``_private/template``.

``layerhub new`` and the first-party plugins use the same template, so they never drift apart.
"""

from __future__ import annotations

import builtins
import dataclasses
import datetime
import keyword
import os
import re
import secrets
import shutil
import string
from importlib import resources
from pathlib import Path
from typing import Final

from layerhub._private.errors import LayerHubError

__all__ = ["PluginNames", "ScaffoldError", "plugin_names", "render", "write_plugin"]

PREFIX: Final = "layerhub-"
# Lowercase words joined by hyphens (or underscores), as in ``layerhub-locally-connected``.
_SUFFIX: Final = re.compile(r"[a-z][a-z0-9]*(?:[-_][a-z0-9]+)*")
# CapWords, as Keras names its own layers.
_CLASS: Final = re.compile(r"[A-Z][A-Za-z0-9]*")
# Names the generated layer module imports; a class called so would shadow them.
_RESERVED_CLASSES: Final = frozenset({"Any"})
# Names the generated ``__init__.py`` binds; importing a submodule called so would rebind the
# package attribute (``hookimpl`` would become a module and the hooks would fail to register).
_RESERVED_MODULES: Final = frozenset({"annotations", "hookimpl"})
# Soft keywords of every supported Python, not only the running one (``type`` is 3.12+).
_SOFT_KEYWORDS: Final = frozenset({"_", "case", "match", "type", *keyword.softkwlist})
# Appended to a module name that cannot be used as is: ``Lambda`` -> ``lambda_layer.py``.
_MODULE_SUFFIX: Final = "_layer"
# Template file -> path in the new distribution (``string.Template`` placeholders allowed).
_FILES: Final = {
    "pyproject.toml.tmpl": "pyproject.toml",
    "README.md.tmpl": "README.md",
    "LICENSE.tmpl": "LICENSE",
    "__init__.py.tmpl": "${package}/__init__.py",
    "layer.py.tmpl": "${package}/${module}.py",
    "test_layer.py.tmpl": "tests/test_${module}.py",
}


class ScaffoldError(LayerHubError, ValueError):
    """A plugin cannot be generated: a bad name, or the target already exists."""


@dataclasses.dataclass(frozen=True)
class PluginNames:
    """Every name a new plugin needs, derived from the plugin and class names.

    Attributes:
        distribution: the distribution (and directory) name, such as ``"layerhub-foo"``.
        package: the import package, entry-point and registration package, ``"layerhub_foo"``.
        class_name: the layer class, such as ``"FooLayer"``.
        module: the module holding the layer, such as ``"foo_layer"``; a name Python cannot
            import (``"lambda"``) gets ``"_layer"`` appended.
    """

    distribution: str
    package: str
    class_name: str
    module: str

    def mapping(self) -> dict[str, str]:
        return dataclasses.asdict(self)


def plugin_names(name: str, class_name: str) -> PluginNames:
    """Validate and derive the names of a new plugin.

    Args:
        name: ``"layerhub-foo"`` or just ``"foo"`` (then prefixed); lowercase words joined by
            hyphens.
        class_name: the layer class, a CapWords Python identifier such as ``"FooLayer"``.

    Raises:
        ScaffoldError: either name is not valid.
    """
    suffix = name.removeprefix(PREFIX).removeprefix("layerhub_")
    if not _SUFFIX.fullmatch(suffix):
        raise ScaffoldError(
            "The plugin name must be lowercase letters, digits and hyphens, starting with a "
            f"letter, like 'layerhub-foo' or 'foo'. Received: NAME={name!r}"
        )
    if not _CLASS.fullmatch(class_name) or keyword.iskeyword(class_name):
        raise ScaffoldError(
            "The layer class must be a CapWords Python identifier (letters and digits, starting "
            f"with an uppercase letter), like 'FooLayer'. Received: --layer={class_name!r}"
        )
    # A class named like a builtin (``ValueError``) would shadow it in the generated module,
    # whose argument checks raise ValueError.
    if class_name in _RESERVED_CLASSES or hasattr(builtins, class_name):
        raise ScaffoldError(
            "The layer class would shadow a name its module imports or a Python builtin. "
            f"Received: --layer={class_name!r}"
        )
    distribution = PREFIX + suffix.replace("_", "-")
    package = distribution.replace("-", "_")
    if not _importable(package):
        # Unreachable with the name pattern above; kept so that a looser pattern cannot
        # produce a plugin that does not import.
        raise ScaffoldError(
            f"The plugin name gives the import package {package!r}, which is not a valid Python "
            f"module name. Received: NAME={name!r}"
        )
    module = snake_case(class_name)
    if not _importable(module) or module in _RESERVED_MODULES:
        module += _MODULE_SUFFIX
    return PluginNames(
        distribution=distribution, package=package, class_name=class_name, module=module
    )


def _importable(module: str) -> bool:
    """Whether ``module`` can be named in an import statement and used without surprises."""
    # Soft keywords (match, case, type, _) do import, but read as syntax in the generated code.
    return (
        module.isidentifier()
        and module.isascii()
        and not keyword.iskeyword(module)
        and module not in _SOFT_KEYWORDS
    )


def snake_case(class_name: str) -> str:
    """``"FooLayer"`` -> ``"foo_layer"``, ``"LocallyConnected2D"`` -> ``"locally_connected2d"``.

    The same rule Keras uses to name layers after their class.
    """
    words = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", class_name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", words).lower()


def render(names: PluginNames) -> dict[str, str]:
    """The new distribution's files: relative path -> contents."""
    # The year goes into the generated LICENSE's copyright line.
    values = {**names.mapping(), "year": str(datetime.date.today().year)}
    template_dir = resources.files("layerhub._private").joinpath("template")
    files = {}
    for source, target in _FILES.items():
        text = template_dir.joinpath(source).read_text(encoding="utf-8")
        files[string.Template(target).substitute(values)] = string.Template(text).substitute(values)
    return files


def write_plugin(names: PluginNames, parent: str | os.PathLike[str]) -> tuple[Path, list[Path]]:
    """Write the plugin into ``parent/<distribution>``; return that directory and its files.

    The files are written into a hidden directory beside the target and renamed into place, so
    a failure leaves nothing behind.

    Raises:
        ScaffoldError: the target directory already exists.
    """
    root = Path(parent) / names.distribution
    if root.exists() or root.is_symlink():
        raise ScaffoldError(f"{root} already exists; refusing to overwrite it")
    files = render(names)
    root.parent.mkdir(parents=True, exist_ok=True)
    # A hidden sibling, so the final rename stays on one file system.
    scratch = root.with_name(f".{names.distribution}-{secrets.token_hex(4)}")
    scratch.mkdir()
    try:
        for relative, text in files.items():
            path = scratch / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        scratch.rename(root)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    return root, [root / relative for relative in files]
