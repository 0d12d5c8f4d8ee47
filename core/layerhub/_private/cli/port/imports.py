"""The imports of a ported module: what each imported name stands for, and the Keras 2
imports replaced by ``import keras`` and ``from keras import ops``."""

from __future__ import annotations

from typing import Final

import libcst as cst

from layerhub._private.cli.port.syntax import code_of, normalised

_HELPERS: Final = "_keras2"


def aliases_of(module: cst.Module) -> dict[str, str]:
    """Names bound by the module's top-level imports -> the dotted names they stand for."""
    aliases: dict[str, str] = {}
    for statement in module.body:
        if not isinstance(statement, cst.SimpleStatementLine):
            continue
        for small in statement.body:
            if isinstance(small, cst.Import):
                for alias in small.names:
                    dotted = code_of(alias.name).strip()
                    if alias.asname is not None:
                        aliases[code_of(alias.asname.name).strip()] = dotted
                    else:
                        root = dotted.split(".")[0]
                        aliases[root] = root
            elif (
                isinstance(small, cst.ImportFrom)
                and not small.relative
                and small.module is not None
                and not isinstance(small.names, cst.ImportStar)
            ):
                base = code_of(small.module).strip()
                for alias in small.names:
                    name = code_of(alias.name).strip()
                    bound = code_of(alias.asname.name).strip() if alias.asname else name
                    aliases[bound] = f"{base}.{name}"
    return aliases


def is_keras_module(dotted: str) -> bool:
    normal = normalised(dotted)
    return normal == "keras" or normal.startswith("keras.")


def _names_used(module: cst.Module) -> set[str]:
    used: set[str] = set()

    class Names(cst.CSTVisitor):
        def visit_Import(self, node: cst.Import) -> bool:
            return False

        def visit_ImportFrom(self, node: cst.ImportFrom) -> bool:
            return False

        def visit_Name(self, node: cst.Name) -> None:
            used.add(node.value)

    module.visit(Names())
    return used


def rebuilt_imports(module: cst.Module, uses_helpers: bool, todos: list[str]) -> cst.Module:
    """Keras 2 imports out; ``import keras``, ``from keras import ops`` (and helpers) in."""
    used = _names_used(module)
    body: list[cst.BaseStatement] = []
    insert_at = 0
    leading = True
    for statement in module.body:
        if isinstance(statement, cst.SimpleStatementLine) and all(
            isinstance(s, (cst.Import, cst.ImportFrom)) for s in statement.body
        ):
            kept: list[cst.BaseSmallStatement] = []
            for small in statement.body:
                kept_small = _kept_import(small, used)
                if kept_small is not None:
                    kept.append(kept_small)
            if kept:
                body.append(statement.with_changes(body=kept))
                if leading:
                    insert_at = len(body)
            elif statement.leading_lines and any(
                line.comment is not None for line in statement.leading_lines
            ):
                body.append(
                    cst.SimpleStatementLine([cst.Pass()], leading_lines=statement.leading_lines)
                )
            continue
        if not body and _is_docstring(statement):
            insert_at = 1
        else:
            leading = False
        body.append(statement)
    added = ["import keras", "from keras import ops"]
    if uses_helpers:
        added.append(f"from . import {_HELPERS}")
    new = [cst.parse_statement(line + "\n") for line in added]
    if insert_at:
        new[0] = new[0].with_changes(leading_lines=[cst.EmptyLine(indent=False)])
    listed = "".join(f"\n    {text!r}," for text in todos)
    todo_code = (
        "# Constructs layerhub port could not translate; the generated tests fail while this\n"
        "# is not empty. Each is marked with a TODO(port) comment where it occurs.\n"
        f"PORT_TODO: tuple[str, ...] = ({listed}\n)\n"
    )
    todo_statement = (
        cst.parse_module(todo_code)
        .body[0]
        .with_changes(
            leading_lines=[
                cst.EmptyLine(),
                *list(cst.parse_module(todo_code).body[0].leading_lines),
            ]
        )
    )
    body[insert_at:insert_at] = [*new, todo_statement]
    return module.with_changes(body=body)


def _kept_import(small: cst.BaseSmallStatement, used: set[str]) -> cst.BaseSmallStatement | None:
    if isinstance(small, cst.Import):
        names = []
        for alias in small.names:
            dotted = code_of(alias.name).strip()
            bound = code_of(alias.asname.name).strip() if alias.asname else dotted.split(".")[0]
            if is_keras_module(dotted) or (
                dotted.split(".")[0] == "tensorflow" and bound not in used
            ):
                continue
            names.append(alias.with_changes(comma=cst.MaybeSentinel.DEFAULT))
        return small.with_changes(names=names) if names else None
    if (
        isinstance(small, cst.ImportFrom)
        and small.module is not None
        and not small.relative
        and not isinstance(small.names, cst.ImportStar)
    ):
        base = code_of(small.module).strip()
        if is_keras_module(base):
            return None
        # from tensorflow import keras
        names = [
            alias.with_changes(comma=cst.MaybeSentinel.DEFAULT)
            for alias in small.names
            if not is_keras_module(f"{base}.{code_of(alias.name).strip()}")
        ]
        return small.with_changes(names=names) if names else None
    return small


def _is_docstring(statement: cst.BaseStatement) -> bool:
    return (
        isinstance(statement, cst.SimpleStatementLine)
        and len(statement.body) == 1
        and isinstance(statement.body[0], cst.Expr)
        and isinstance(statement.body[0].value, (cst.SimpleString, cst.ConcatenatedString))
    )
