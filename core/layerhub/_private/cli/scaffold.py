"""Write a new plugin distribution from the template in ``_private/cli/template``.

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
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Final

from layerhub._private.errors import LayerHubError

__all__ = [
    "PluginNames",
    "ScaffoldError",
    "add_layer",
    "plugin_names",
    "render",
    "write_plugin",
]

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
# The files each further layer of a plugin gets (``add_layer``).
_LAYER_FILES: Final = ("layer.py.tmpl", "test_layer.py.tmpl")
_ENTRY_POINTS: Final = '[project.entry-points."layerhub.layers"]'


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


def render(names: PluginNames, *, only: tuple[str, ...] | None = None) -> dict[str, str]:
    """The new distribution's files: relative path -> contents (``only`` these templates)."""
    # The year goes into the generated LICENSE's copyright line.
    values = {**names.mapping(), "year": str(datetime.date.today().year)}
    template_dir = resources.files("layerhub._private.cli").joinpath("template")
    files = {}
    for source, target in _FILES.items():
        if only is not None and source not in only:
            continue
        text = template_dir.joinpath(source).read_text(encoding="utf-8")
        files[string.Template(target).substitute(values)] = string.Template(text).substitute(values)
    return files


def write_plugin(
    names: PluginNames,
    parent: str | os.PathLike[str],
    more: Sequence[PluginNames] = (),
) -> tuple[Path, list[Path]]:
    """Write the plugin into ``parent/<distribution>``; return that directory and its files.

    ``more`` are further layers of the same plugin, added as ``add_layer`` adds them. The files
    are written into a hidden directory beside the target and renamed into place, so a failure
    leaves nothing behind.

    Raises:
        ScaffoldError: the target directory already exists, or two layers share a name.
    """
    root = Path(parent) / names.distribution
    if root.exists() or root.is_symlink():
        raise ScaffoldError(f"{root} already exists; refusing to overwrite it")
    _check_distinct([names, *more])
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
        written = list(files)
        for other in more:
            written += [
                str(p.relative_to(scratch)) for p in add_layer(scratch, other.class_name)[1]
            ]
        scratch.rename(root)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    return root, [root / relative for relative in dict.fromkeys(written)]


def _check_distinct(layers: Sequence[PluginNames]) -> None:
    seen: dict[str, str] = {}
    for names in layers:
        for key in (names.class_name, names.module):
            if key in seen:
                raise ScaffoldError(
                    f"two layers would share the name {key!r} ({seen[key]} and "
                    f"{names.class_name}); give each layer its own class name. "
                    f"Received: --layer={names.class_name!r}"
                )
        seen[names.class_name] = seen[names.module] = names.class_name


# -- add_layer ------------------------------------------------------------------------------------


def add_layer(root: str | os.PathLike[str], class_name: str) -> tuple[PluginNames, list[Path]]:
    """Add a layer to a plugin made from the template, in the template's way.

    Writes ``<package>/<module>.py`` and ``tests/test_<module>.py`` from the template, and adds
    the class to the package's imports, ``__all__``, the ``layerhub_layers`` hook's list and
    ``LAYERHUB_EXAMPLES`` in ``<package>/__init__.py``, and to the ``layerhub.layers`` entry
    points of ``pyproject.toml``. The entry points take effect only when the plugin is
    installed again (``pip install -e <root>``).

    Returns:
        The new layer's names, and the files written or changed.

    Raises:
        ScaffoldError: ``root`` is not a plugin made from the template (its ``pyproject.toml``
            or ``__init__.py`` lack what the template writes), the class name is not valid, or
            the plugin already has a layer or module of that name.
    """
    root = Path(root)
    pyproject = root / "pyproject.toml"
    if not pyproject.is_file():
        raise ScaffoldError(f"{root} has no pyproject.toml: not a plugin made by 'layerhub new'")
    project = pyproject.read_text(encoding="utf-8")
    found = re.search(r'^name\s*=\s*"([^"]+)"', project, re.MULTILINE)
    if found is None:
        raise ScaffoldError(f"{pyproject} has no [project] name")
    names = plugin_names(found.group(1), class_name)
    init = root / names.package / "__init__.py"
    if not init.is_file():
        raise ScaffoldError(f"{init} does not exist: not a plugin made by 'layerhub new'")
    new_files = render(names, only=_LAYER_FILES)
    for relative in new_files:
        if (root / relative).exists():
            raise ScaffoldError(f"{root / relative} already exists; refusing to overwrite it")
    package = init.read_text(encoding="utf-8")
    if re.search(rf"\b{re.escape(class_name)}\b", package) or re.search(
        rf"^{re.escape(class_name)}\s*=", project, re.MULTILINE
    ):
        raise ScaffoldError(f"the plugin already has a layer {class_name!r}")
    package = _add_to_init(package, names, init)
    project = _add_entry_point(project, names, pyproject)
    written = []
    for relative, text in new_files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    init.write_text(package, encoding="utf-8")
    pyproject.write_text(project, encoding="utf-8")
    return names, [*written, init, pyproject]


def _add_to_init(text: str, names: PluginNames, path: Path) -> str:
    cls = names.class_name
    imports = list(re.finditer(rf"^from {names.package}\.(\w+) import .+$", text, re.MULTILINE))
    if not imports:
        raise ScaffoldError(f"{path} imports no layer module of {names.package}; add {cls} by hand")
    line = f"from {names.package}.{names.module} import {cls}\n"
    after = [m for m in imports if m.group(1) > names.module]
    at = after[0].start() if after else imports[-1].end() + 1
    text = text[:at] + line + text[at:]
    text = _append(text, r"^__all__(?:\s*:[^=]*)?\s*=\s*", "[", f'"{cls}"', path, "__all__")
    text = _append(
        text,
        r"^LAYERHUB_EXAMPLES(?:\s*:[^=]*)?\s*=\s*",
        "{",
        f'"{cls}": ({{}}, (2, 3, 4))',
        path,
        "LAYERHUB_EXAMPLES",
    )
    hook = r"^def layerhub_layers\(\)[^\n]*:\n(?:[ \t]*#[^\n]*\n)*[ \t]*return\s*"
    return _append(text, hook, "[", cls, path, "the layerhub_layers hook's list")


def _append(text: str, anchor: str, opener: str, item: str, path: Path, what: str) -> str:
    """Append ``item`` to the list or dict literal that follows ``anchor``."""
    found = re.search(anchor + re.escape(opener), text, re.MULTILINE)
    if found is None:
        raise ScaffoldError(f"{path} has no {what} as the template writes it; add it by hand")
    start = found.end() - 1
    close = _matching(text, start)
    inside = text[start + 1 : close]
    if "\n" in inside:  # one item a line
        body = inside.rstrip()
        comma = "" if not body.strip() or body.endswith(",") else ","
        indent = re.search(r"\n([ \t]*)\S", inside)
        pad = indent.group(1) if indent else "    "
        closing = inside[len(body) :]
        return text[: start + 1] + f"{body}{comma}\n{pad}{item}," + closing + text[close:]
    body = inside.strip()
    joined = f"{body.rstrip(',')}, {item}" if body else item
    return text[: start + 1] + joined + text[close:]


def _matching(text: str, start: int) -> int:
    """Index of the bracket closing the one at ``start`` (strings are skipped)."""
    pairs = {"[": "]", "{": "}", "(": ")"}
    depth, quote, index = 0, "", start
    while index < len(text):
        char = text[index]
        if quote:
            if char == "\\":
                index += 1
            elif char == quote:
                quote = ""
        elif char in "\"'":
            quote = char
        elif char in pairs:
            depth += 1
        elif char in pairs.values():
            depth -= 1
            if depth == 0:
                return index
        index += 1
    raise ScaffoldError("unbalanced brackets in the plugin's __init__.py")


def _add_entry_point(text: str, names: PluginNames, path: Path) -> str:
    lines = text.splitlines(keepends=True)
    try:
        header = next(i for i, line in enumerate(lines) if line.strip() == _ENTRY_POINTS)
    except StopIteration:
        raise ScaffoldError(f"{path} has no {_ENTRY_POINTS} table; add it by hand") from None
    end = header + 1
    while end < len(lines) and not lines[end].lstrip().startswith("["):
        end += 1
    last = max(i for i in range(header, end) if lines[i].strip())
    if not lines[last].endswith("\n"):
        lines[last] += "\n"
    entry = f'{names.class_name} = "{names.package}:{names.class_name}"\n'
    lines.insert(last + 1, entry)
    return "".join(lines)
