"""``get_config`` of a ported layer: which attribute stores each constructor argument, and
what a missing or incomplete ``get_config`` gets."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final, cast

import libcst as cst

from layerhub._private.cli.port.syntax import LayerInfo, code_of, self_attr, wrapped

SERIALIZERS: Final = {
    f"keras.{kind}.get": f"keras.{kind}.serialize"
    for kind in ("initializers", "regularizers", "constraints", "activations")
}
_PLAIN_CONVERSIONS: Final = frozenset({"int", "float", "bool", "str", "tuple", "list"})


def stored_arguments(init: cst.FunctionDef, info: LayerInfo) -> dict[str, str]:
    """Constructor argument -> the config expression of the attribute that stores it."""
    params = [*init.params.params, *init.params.kwonly_params]
    for param in params[1:] if params and params[0].name.value == "self" else params:
        default = None if param.default is None else code_of(param.default).strip()
        info.arguments[param.name.value] = default
        if default is None:
            info.required.append(param.name.value)
    found: dict[str, str] = {}
    for statement in _walk_statements(init.body):
        if not isinstance(statement, cst.Assign) or len(statement.targets) != 1:
            continue
        attr = self_attr(statement.targets[0].target)
        if attr is None:
            continue
        value = statement.value
        source: str | None = None
        serialise: str | None = None
        if isinstance(value, cst.Name):
            source = value.value
        elif isinstance(value, cst.Call) and len(value.args) == 1 and not value.args[0].keyword:
            arg = value.args[0].value
            func = code_of(value.func).strip()
            if isinstance(arg, cst.Name):
                if func in SERIALIZERS:
                    source, serialise = arg.value, SERIALIZERS[func]
                elif func in _PLAIN_CONVERSIONS:
                    source = arg.value
        if source in info.arguments and (source not in found or attr == source):
            found[source] = f"{serialise}(self.{attr})" if serialise else f"self.{attr}"
    return found


def _walk_statements(block: cst.BaseSuite) -> list[cst.BaseSmallStatement]:
    found: list[cst.BaseSmallStatement] = []

    class Collect(cst.CSTVisitor):
        def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
            return node is not None and False

        def visit_Assign(self, node: cst.Assign) -> None:
            found.append(node)

    for statement in cast(Sequence[cst.CSTNode], getattr(block, "body", [])):
        statement.visit(Collect())
    return found


def config_keys(method: cst.FunctionDef) -> set[str]:
    keys: set[str] = set()

    class Keys(cst.CSTVisitor):
        def visit_DictElement(self, node: cst.DictElement) -> None:
            if isinstance(node.key, cst.SimpleString):
                keys.add(str(node.key.evaluated_value))

        def visit_SubscriptElement(self, node: cst.SubscriptElement) -> None:
            index = node.slice
            if isinstance(index, cst.Index) and isinstance(index.value, cst.SimpleString):
                keys.add(str(index.value.evaluated_value))

        def visit_Arg(self, node: cst.Arg) -> None:
            if node.keyword is not None:
                keys.add(node.keyword.value)

    method.visit(Keys())
    return keys


def _config_items(entries: dict[str, str], unknown: list[str], indent: str) -> str:
    lines = [f'{indent}"{name}": {expr},' for name, expr in entries.items()]
    lines += [
        f"{indent}# TODO(port): argument {name!r} is stored nowhere; add it here"
        for name in unknown
    ]
    return "\n".join(lines)


def new_get_config(entries: dict[str, str], unknown: list[str]) -> cst.FunctionDef:
    code = (
        "def get_config(self):\n"
        "    # Written by layerhub port from the constructor's arguments.\n"
        "    config = super().get_config()\n"
        "    config.update(\n"
        "        {\n"
        f"{_config_items(entries, unknown, '            ')}\n"
        "        }\n"
        "    )\n"
        "    return config\n"
    )
    statement = cast(cst.FunctionDef, cst.parse_statement(code))
    return statement.with_changes(leading_lines=[cst.EmptyLine(indent=False)])


class CompleteReturns(cst.CSTTransformer):
    """``return E`` -> ``return {**E, <missing arguments>}`` in an incomplete get_config."""

    def __init__(self, entries: dict[str, str], unknown: list[str]) -> None:
        super().__init__()
        self.entries = entries
        self.unknown = unknown

    def leave_Return(self, original_node: cst.Return, updated_node: cst.Return) -> Any:
        if updated_node.value is None:
            return updated_node
        items = "".join(f'\n        "{k}": {v},' for k, v in self.entries.items())
        code = f"{{\n        **{wrapped(updated_node.value)},{items}\n    }}"
        return updated_node.with_changes(value=cst.parse_expression(code))

    def leave_SimpleStatementLine(
        self, original_node: cst.SimpleStatementLine, updated_node: cst.SimpleStatementLine
    ) -> Any:
        if self.unknown and any(isinstance(s, cst.Return) for s in updated_node.body):
            comments = [
                cst.EmptyLine(
                    comment=cst.Comment(
                        f"# TODO(port): argument {name!r} is stored nowhere; add it to the config"
                    )
                )
                for name in self.unknown
            ]
            return updated_node.with_changes(leading_lines=[*updated_node.leading_lines, *comments])
        return updated_node
