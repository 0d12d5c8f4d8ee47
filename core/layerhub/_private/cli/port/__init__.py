"""``layerhub port``: a Keras 2 layer module becomes a tested Keras 3 plugin.

``rewrite`` ports the code with libcst by the one table in ``table`` (with ``syntax``,
``imports`` and ``config`` for names, imports and ``get_config``); ``plugin`` writes it with
``layerhub new``'s template and finds the examples the kit runs; ``check`` compares the
original under tf-keras with the port; ``report`` prints both; ``command`` is the CLI.
``keras2_ops`` is copied into every plugin as ``_keras2.py``. ``docs/porting.md`` explains it.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from layerhub._private.cli import scaffold
from layerhub._private.errors import LayerHubError
from layerhub._private.guard.untrusted import read_bytes, shown, shown_path

__all__ = ["PortError", "Ported", "port"]

# A layer module is small; a bigger file is not one.
MAX_SOURCE: Final = 4 << 20


class PortError(LayerHubError, ValueError):
    """The module cannot be ported: not Python, no Keras layer, a bad name."""


@dataclasses.dataclass
class Ported:
    """A written plugin.

    Attributes:
        root: the plugin's directory.
        files: every file written.
        distribution: the distribution name.
        package: the import package.
        module: the module of the package holding the ported code.
        layers: the ported layer classes, in source order.
        findings: what the port reported (``todo`` ones make the plugin's tests fail).
        examples: class -> (init_kwargs, input_shape) the kit runs, or None if none was found.
    """

    root: Path
    files: list[Path]
    distribution: str
    package: str
    module: str
    layers: list[str]
    findings: list[Any]
    examples: dict[str, Any]

    @property
    def complete(self) -> bool:
        """No construct was left untranslated and every layer has an example."""
        return not any(f.todo for f in self.findings) and all(
            self.examples.get(n) is not None for n in self.layers
        )


def port(
    source: str | Path,
    *,
    classes: Sequence[str] = (),
    parent: str | Path = ".",
    distribution: str | None = None,
    examples: dict[str, Any] | None = None,
) -> Ported:
    """Port the Keras 2 layers of ``source`` into a new plugin under ``parent``.

    Args:
        source: a Python module defining Keras 2 layers (keras or tf.keras imports).
        classes: the layer classes to port (default: every layer class of the module).
        parent: the directory the plugin's directory is made in.
        distribution: the plugin's name, ``layerhub-foo`` or ``foo`` (default: from the
            source file's name).
        examples: class -> (init_kwargs, input_shape) for the kit, instead of the probe's.

    Raises:
        PortError: the file is not Python, defines no Keras layer class, or lacks a class
            named in ``classes``.
        ScaffoldError: a bad distribution name, or the plugin's directory exists.
    """
    import libcst

    from layerhub._private.cli.port import plugin
    from layerhub._private.cli.port.report import findings as finding_lines
    from layerhub._private.cli.port.rewrite import rewrite

    path = Path(source)
    raw = read_bytes(path, MAX_SOURCE, "Keras 2 module")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise PortError(f"{shown_path(path)} is not UTF-8 text ({error.reason})") from None
    dist = distribution or path.stem.replace("_", "-").lower()
    package = scaffold.plugin_names(dist, "Layer").package
    try:
        rewritten = rewrite(text, package)
    except libcst.ParserSyntaxError as error:
        raise PortError(
            f"{shown_path(path)} is not valid Python: line {error.raw_line}: {shown(error.message)}"
        ) from None
    found = [layer.name for layer in rewritten.layers]
    if not found:
        raise PortError(f"{shown_path(path)} defines no Keras layer class (a subclass of Layer)")
    missing = [c for c in classes if c not in found]
    if missing:
        raise PortError(
            f"{shown_path(path)} has no Keras layer class {shown(missing[0])} "
            f"(layer classes: {', '.join(found)})"
        )
    if classes:
        rewritten = rewrite(text, package, keep=set(classes))
    chosen = [layer for layer in rewritten.layers if not classes or layer.name in classes]
    report = "\n".join(finding_lines(path.name, rewritten.findings)) or "nothing to report"
    root, _ = plugin.write(rewritten, path, chosen, dist, Path(parent), {}, report)
    names = [scaffold.plugin_names(dist, layer.name) for layer in chosen]
    module = plugin.ported_module_name(path, names)
    given = dict(examples or {})
    wanted = [layer for layer in chosen if layer.name not in given]
    probed = plugin.probe(root, package, module, wanted) if wanted else {}
    chosen_examples = {
        layer.name: given.get(layer.name, probed.get(layer.name)) for layer in chosen
    }
    chosen_examples = {k: _plain(v) for k, v in chosen_examples.items()}
    plugin.set_examples(root, names, chosen_examples)
    return Ported(
        root=root,
        files=sorted(p for p in root.rglob("*") if p.is_file()),
        distribution=names[0].distribution,
        package=package,
        module=module,
        layers=[layer.name for layer in chosen],
        findings=rewritten.findings,
        examples=chosen_examples,
    )


def _plain(example: Any) -> Any:
    """An example as (dict, shape) with tuples, from JSON's lists."""
    if example is None:
        return None
    kwargs, shape = example
    if isinstance(shape[0], (list, tuple)):
        return dict(kwargs), [tuple(s) for s in shape]
    return dict(kwargs), tuple(shape)


def parse_example(text: str) -> tuple[str, Any]:
    """``CLASS=JSON`` (``{"init_kwargs": {...}, "input_shape": [...]}`` or ``[kwargs, shape]``).

    Raises:
        PortError: not of that form.
    """
    name, sep, value = text.partition("=")
    try:
        data = json.loads(value) if sep else None
    except json.JSONDecodeError:
        data = None
    if isinstance(data, dict):
        data = [data.get("init_kwargs", {}), data.get("input_shape")]
    if (
        not name.isidentifier()
        or not isinstance(data, list)
        or len(data) != 2
        or not isinstance(data[0], dict)
        or not isinstance(data[1], list)
        or not data[1]
    ):
        raise PortError(
            "--example takes CLASS=JSON with JSON [init_kwargs, input_shape] or "
            '{"init_kwargs": ..., "input_shape": ...}. Received: ' + shown(text)
        )
    return name, _plain(data)
