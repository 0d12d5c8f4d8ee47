"""What the rewrite's passes share: findings, layer facts, code text, Keras 2 names and the
table's call templates."""

from __future__ import annotations

import ast
import dataclasses
import importlib
import re
from typing import Any, Final, cast

import libcst as cst

from layerhub._private.cli.port import table

ATOMIC: Final = (
    cst.Name,
    cst.Attribute,
    cst.Call,
    cst.Subscript,
    cst.Integer,
    cst.Float,
    cst.SimpleString,
    cst.Tuple,
    cst.List,
)
BLANK: Final = cst.Module([])


@dataclasses.dataclass(frozen=True)
class Finding:
    """One construct the port reports.

    Attributes:
        line: its line in the source module.
        message: what it is and why it was not translated (or what was done).
        todo: True when left marked ``TODO(port)`` (the port is incomplete); False for a note.
        cls: the layer class it is in, or None at module level.
    """

    line: int
    message: str
    todo: bool
    cls: str | None = None


@dataclasses.dataclass
class LayerInfo:
    """What the port learnt about one layer class.

    Attributes:
        name: the class name.
        line: the line of its ``class`` statement.
        required: constructor arguments without a default.
        arguments: every constructor argument (name -> default's code, or None).
    """

    name: str
    line: int
    required: list[str] = dataclasses.field(default_factory=list)
    arguments: dict[str, str | None] = dataclasses.field(default_factory=dict)


def normalised(dotted: str) -> str:
    for old, new in table.PREFIXES:
        if dotted == old or dotted.startswith(old + "."):
            return new + dotted[len(old) :]
    return dotted


def code_of(node: cst.CSTNode) -> str:
    return BLANK.code_for_node(node)


def wrapped(node: cst.BaseExpression) -> str:
    text = code_of(node).strip()
    return text if isinstance(node, ATOMIC) else f"({text})"


def _keras3_has(dotted: str) -> bool:
    """Whether ``dotted`` names something in the installed Keras 3."""
    parts = dotted.split(".")
    try:
        obj: Any = importlib.import_module(parts[0])
    except ImportError:  # pragma: no cover - layerhub needs keras
        return False
    for index, part in enumerate(parts[1:], start=1):
        if hasattr(obj, part):
            obj = getattr(obj, part)
            continue
        try:
            obj = importlib.import_module(".".join(parts[: index + 1]))
        except ImportError:
            return False
    return True


def keras3_reference(dotted: str) -> str | None:
    """The Keras 3 spelling of a Keras 2 name (already normalised), or None if not certain."""
    if dotted == "keras":
        return "keras"
    for old, new in table.MODULES.items():
        if dotted == old or dotted.startswith(old + "."):
            return new + dotted[len(old) :]
    for package in table.SAME_NAME:
        if dotted == package:
            return dotted
        if dotted.startswith(package + "."):
            rest = dotted[len(package) + 1 :].split(".")
            if package == "keras.initializers" and rest[0] in table.INITIALIZERS:
                rest[0] = table.INITIALIZERS[rest[0]]
            candidate = ".".join([package, *rest])
            return candidate if _keras3_has(candidate) else None
    if dotted in ("keras.Model", "keras.Sequential", "keras.Input", "keras.ops"):
        return dotted
    return None


def bind(signature: str, call: cst.Call) -> tuple[dict[str, str], dict[str, str], str | None]:
    """Bind a call's arguments to a Keras 2 signature: (given, defaults, error)."""
    function = cast(ast.FunctionDef, ast.parse(f"def f({signature.split('(', 1)[1]}: pass").body[0])
    names = [a.arg for a in function.args.args]
    defaults = {
        a.arg: ast.unparse(d)
        for a, d in zip(
            function.args.args[len(names) - len(function.args.defaults) :],
            function.args.defaults,
            strict=True,
        )
    }
    given: dict[str, str] = {}
    position = 0
    for arg in call.args:
        if arg.star:
            return {}, {}, "a starred argument cannot be matched to the Keras 2 signature"
        value = code_of(arg.value).strip()
        if not isinstance(arg.value, ATOMIC):
            value = f"\0{value}"  # marks code that needs parentheses before an attribute
        if arg.keyword is None:
            if position >= len(names):
                return {}, {}, "more positional arguments than the Keras 2 signature takes"
            given[names[position]] = value
            position += 1
        elif arg.keyword.value in names and arg.keyword.value not in given:
            given[arg.keyword.value] = value
        else:
            return {}, {}, f"argument {arg.keyword.value!r} is not in the Keras 2 signature"
    missing = [n for n in names if n not in given and n not in defaults]
    if missing:
        return {}, {}, f"required argument {missing[0]!r} is missing"
    return given, defaults, None


def fill(entry: table.Entry, call: cst.Call) -> tuple[str | None, str | None]:
    """The Keras 3 code of a backend call by its table entry: (code, error)."""
    given, defaults, error = bind(entry.signature, call)
    if error is not None:
        return None, error

    def segment(match: re.Match[str]) -> str:
        inside = match.group(1)
        return inside if all(n in given for n in re.findall(r"\{(\w+)\}", inside)) else ""

    template = re.sub(r"\[([^\[\]]*)\]", segment, entry.keras3)
    values = {**defaults, **given}

    def value(match: re.Match[str]) -> str:
        code = values[match.group(1)]
        if code.startswith("\0"):
            code = f"({code[1:]})" if match.group(2) else code[1:]
        return code + (match.group(2) or "")

    return re.sub(r"\{(\w+)\}(\.)?", value, template), None


def self_attr(node: cst.CSTNode) -> str | None:
    if (
        isinstance(node, cst.Attribute)
        and isinstance(node.value, cst.Name)
        and node.value.value == "self"
    ):
        return node.attr.value
    return None
