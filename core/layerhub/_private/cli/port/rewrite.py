"""Rewrite a Keras 2 module's layer classes for Keras 3 with libcst, by ``table.py`` only.

libcst keeps the comments and the formatting of everything it does not rewrite. Every
construct without a certain translation is kept as it was, reported as a ``Finding`` with its
line, and marked with a ``# TODO(port): ...`` comment above its statement; the module's
``PORT_TODO`` tuple lists them, and the generated tests fail while it is not empty.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, Final, cast

import libcst as cst
from libcst.metadata import PositionProvider

from layerhub._private.cli.port import table
from layerhub._private.cli.port.config import (
    CompleteReturns,
    config_keys,
    new_get_config,
    stored_arguments,
)
from layerhub._private.cli.port.imports import aliases_of, is_keras_module, rebuilt_imports
from layerhub._private.cli.port.syntax import (
    Finding,
    LayerInfo,
    bind,
    code_of,
    fill,
    keras3_reference,
    normalised,
    self_attr,
)

__all__ = ["Finding", "LayerInfo", "PortTransformer", "Rewritten", "rewrite"]

_HELPERS: Final = "_keras2"
_LAYER: Final = "keras.layers.Layer"
_REGISTER: Final = ("keras.saving.register_keras_serializable", "keras.utils.register_keras")
# Decorators whose work Keras 3 does itself.
_SHAPE_DECORATORS: Final = frozenset({"keras.utils.tf_utils.shape_type_conversion"})
# Variables Keras 2 (tf.keras) tracked when assigned to a layer and Keras 3 does not.
_RAW_VARIABLES: Final = frozenset(
    {
        "tensorflow.Variable",
        "tensorflow.compat.v1.get_variable",
        "tensorflow.get_variable",
        "tensorflow.compat.v1.Variable",
    }
)
# add_weight's positional order in Keras 2 (keras-team/keras 2.x and tf.keras) and in Keras 1.
_ADD_WEIGHT_2: Final = (
    "name",
    "shape",
    "dtype",
    "initializer",
    "regularizer",
    "trainable",
    "constraint",
)
_ADD_WEIGHT_1: Final = ("shape", "initializer", "name", "trainable", "regularizer", "constraint")
_WEIGHT_LISTS: Final = {
    "trainable_weights": True,
    "_trainable_weights": True,
    "non_trainable_weights": False,
    "_non_trainable_weights": False,
}


@dataclasses.dataclass
class Rewritten:
    """The ported module: its code, its layer classes and what was reported."""

    code: str
    layers: list[LayerInfo]
    findings: list[Finding]
    uses_helpers: bool


class _Scan(cst.CSTVisitor):
    """First pass over a layer class: which attributes hold weights and how they are listed."""

    def __init__(self, name_of: Callable[[cst.CSTNode], str | None]) -> None:
        super().__init__()
        self.name_of = name_of
        self.variables: set[str] = set()  # self.<attr> = K.variable(...)
        self.add_weights: set[str] = set()  # self.<attr> = self.add_weight(...)
        self.frozen: set[str] = set()  # listed in non_trainable_weights

    def visit_Assign(self, node: cst.Assign) -> None:
        for target in node.targets:
            attr = self_attr(target.target)
            if attr is None:
                continue
            value = node.value
            if isinstance(value, cst.Call):
                if self.name_of(value.func) == "keras.backend.variable":
                    self.variables.add(attr)
                elif self_attr(value.func) == "add_weight":
                    self.add_weights.add(attr)
            if _WEIGHT_LISTS.get(attr) is False:
                self.frozen |= set(_listed(value) or ())


def _listed(node: cst.BaseExpression) -> list[str] | None:
    """``[self.a, self.b]`` -> ["a", "b"]; None when any element is something else."""
    if not isinstance(node, (cst.List, cst.Tuple)):
        return None
    names = [self_attr(e.value) if isinstance(e, cst.Element) else None for e in node.elements]
    return None if None in names else cast(list[str], names)


class PortTransformer(cst.CSTTransformer):
    """The rewrite. ``findings`` and ``layers`` are filled while it runs."""

    METADATA_DEPENDENCIES = (PositionProvider,)

    def __init__(self, aliases: dict[str, str], package: str) -> None:
        super().__init__()
        self.aliases = aliases
        self.package = package
        self.findings: list[Finding] = []
        self.layers: list[LayerInfo] = []
        self.uses_helpers = False
        self._pending: list[str] = []
        self._call_funcs: set[int] = set()
        self._layer_names: set[str] = set()
        self._class: list[tuple[str, bool, _Scan | None]] = []
        self._function: list[str] = []
        self._variable_calls: set[int] = set()
        self.keep: set[str] | None = None
        self.dropped: set[str] = set()
        self._skip: set[int] = set()

    # -- helpers -------------------------------------------------------------------------------

    def dotted_name(self, node: cst.CSTNode) -> str | None:
        """The dotted, normalised name an expression refers to through the imports, or None."""
        if isinstance(node, cst.Name):
            found = self.aliases.get(node.value)
            return None if found is None else normalised(found)
        if isinstance(node, cst.Attribute):
            base = self.dotted_name(node.value)
            return None if base is None else normalised(f"{base}.{node.attr.value}")
        return None

    def _line(self, node: cst.CSTNode) -> int:
        try:
            return int(self.get_metadata(PositionProvider, node).start.line)
        except KeyError:
            return 0

    def _current_class(self) -> str | None:
        return self._class[-1][0] if self._class else None

    def todo(self, node: cst.CSTNode, message: str) -> None:
        line = self._line(node)
        self.findings.append(Finding(line, message, True, self._current_class()))
        self._pending.append(f"line {line}: {message}")

    def note(self, node: cst.CSTNode, message: str) -> None:
        self.findings.append(Finding(self._line(node), message, False, self._current_class()))

    def _expr(self, code: str) -> cst.BaseExpression:
        if f"{_HELPERS}." in code:
            self.uses_helpers = True
        return cst.parse_expression(code)

    def _in_layer(self) -> bool:
        return bool(self._class) and self._class[-1][1]

    # -- statements carry the TODO comments ----------------------------------------------------

    def _flush(self, node: Any) -> Any:
        if not self._pending or not hasattr(node, "leading_lines"):
            return node
        comments = [
            cst.EmptyLine(comment=cst.Comment(f"# TODO(port): {text}")) for text in self._pending
        ]
        self._pending = []
        return node.with_changes(leading_lines=[*node.leading_lines, *comments])

    def leave_SimpleStatementLine(
        self, original_node: cst.SimpleStatementLine, updated_node: cst.SimpleStatementLine
    ) -> Any:
        if not updated_node.body:
            return cst.RemoveFromParent()
        return self._flush(updated_node)

    def leave_If(self, original_node: cst.If, updated_node: cst.If) -> Any:
        return self._flush(updated_node)

    def leave_For(self, original_node: cst.For, updated_node: cst.For) -> Any:
        return self._flush(updated_node)

    def leave_While(self, original_node: cst.While, updated_node: cst.While) -> Any:
        return self._flush(updated_node)

    def leave_With(self, original_node: cst.With, updated_node: cst.With) -> Any:
        return self._flush(updated_node)

    # -- classes and methods -------------------------------------------------------------------

    def _is_layer_base(self, node: cst.BaseExpression) -> bool:
        dotted = self.dotted_name(node)
        if dotted is not None:
            target = keras3_reference(dotted)
            if target is not None and target != _LAYER and target.startswith("keras.layers."):
                if target == "keras.layers.InputSpec":
                    return False
                self.note(
                    node,
                    f"derives from Keras 3's {target}, whose internals (attributes, "
                    "build and call) may differ from the Keras 2 class",
                )
                return True
            return target == _LAYER
        return isinstance(node, cst.Name) and node.value in self._layer_names

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        is_layer = any(self._is_layer_base(b.value) for b in node.bases)
        scan = None
        if is_layer:
            self._layer_names.add(node.name.value)
            scan = _Scan(self.dotted_name)
            node.visit(scan)
        self._class.append((node.name.value, is_layer, scan))

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self._function.append(node.name.value)

    def leave_FunctionDef(
        self, original_node: cst.FunctionDef, updated_node: cst.FunctionDef
    ) -> Any:
        self._function.pop()
        if (
            self._in_layer()
            and not self._function
            and updated_node.name.value == "get_output_shape_for"
        ):
            updated_node = updated_node.with_changes(name=cst.Name("compute_output_shape"))
        return self._flush(updated_node)

    def leave_ClassDef(self, original_node: cst.ClassDef, updated_node: cst.ClassDef) -> Any:
        name, is_layer, _ = self._class.pop()
        if not is_layer:
            return self._flush(updated_node)
        if self.keep is not None and name not in self.keep:
            self.dropped.add(name)
            self._pending = []
            return cst.RemoveFromParent()
        info = LayerInfo(name=name, line=self._line(original_node))
        self.layers.append(info)
        methods = {
            s.name.value: s for s in updated_node.body.body if isinstance(s, cst.FunctionDef)
        }
        if "get_output_shape_for" in methods and "compute_output_shape" in methods:
            self.note(
                original_node,
                f"{name} defines get_output_shape_for and "
                "compute_output_shape; Keras 3 uses compute_output_shape",
            )
        body = list(updated_node.body.body)
        direct = all(
            keras3_reference(self.dotted_name(b.value) or "") == _LAYER for b in original_node.bases
        )
        if (
            direct
            and "call" in methods
            and not {"compute_output_shape", "get_output_shape_for"} & set(methods)
        ):
            # Keras 2 traced call() for the output shape; Keras 3 asks the layer.
            self.uses_helpers = True
            body.append(_OUTPUT_SHAPE)
        init = methods.get("__init__")
        stored = stored_arguments(init, info) if init is not None else {}
        config = methods.get("get_config")
        missing = [a for a in info.arguments if config is None or a not in config_keys(config)]
        for argument in [a for a in missing if a not in stored]:
            self.findings.append(
                Finding(
                    self._line(original_node),
                    f"{name}: constructor argument {argument!r} is not stored in an attribute, so "
                    "get_config cannot return it",
                    True,
                    name,
                )
            )
        entries = {a: stored[a] for a in missing if a in stored}
        unknown = [a for a in missing if a not in stored]
        if config is None and (info.arguments or unknown):
            body.append(new_get_config(entries, unknown))
        elif config is not None and (entries or unknown):
            index = body.index(config)
            body[index] = cast(cst.FunctionDef, config.visit(CompleteReturns(entries, unknown)))
        decorator = cst.Decorator(
            cst.parse_expression(
                f'keras.saving.register_keras_serializable(package="{self.package}")'
            )
        )
        # The plugin registers the class under its own package; an existing registration goes.
        kept = [
            d
            for d in updated_node.decorators
            if not code_of(d.decorator).strip().startswith(_REGISTER)
        ]
        updated_node = updated_node.with_changes(
            body=updated_node.body.with_changes(body=body),
            decorators=[decorator, *kept],
        )
        return self._flush(updated_node)

    def _removable(self, node: cst.Decorator) -> bool:
        target = node.decorator
        dotted = self.dotted_name(target.func if isinstance(target, cst.Call) else target)
        return dotted is not None and (
            dotted.startswith("keras.legacy") or dotted in _SHAPE_DECORATORS
        )

    def visit_Decorator(self, node: cst.Decorator) -> bool:
        return not self._removable(node)

    def leave_Decorator(self, original_node: cst.Decorator, updated_node: cst.Decorator) -> Any:
        target = original_node.decorator
        func = target.func if isinstance(target, cst.Call) else target
        if self._removable(original_node):
            self.note(original_node, f"removed the decorator {code_of(func)}: Keras 3 needs none")
            return cst.RemoveFromParent()
        return updated_node

    # -- weights -------------------------------------------------------------------------------

    def leave_Assign(self, original_node: cst.Assign, updated_node: cst.Assign) -> Any:
        if not self._in_layer() or len(updated_node.targets) != 1:
            return updated_node
        attr = self_attr(updated_node.targets[0].target)
        if attr in _WEIGHT_LISTS:
            return self._weight_list(original_node, updated_node.value)
        value = original_node.value
        if (
            attr is not None
            and isinstance(value, cst.Call)
            and self.dotted_name(value.func) == "keras.backend.variable"
        ):
            return updated_node.with_changes(value=self._variable(attr, value, updated_node))
        return updated_node

    def leave_AugAssign(self, original_node: cst.AugAssign, updated_node: cst.AugAssign) -> Any:
        if self._in_layer() and self_attr(updated_node.target) in _WEIGHT_LISTS:
            return self._weight_list(original_node, updated_node.value)
        return updated_node

    def leave_Expr(self, original_node: cst.Expr, updated_node: cst.Expr) -> Any:
        # self.trainable_weights.append(self.w)
        call = updated_node.value
        if (
            self._in_layer()
            and isinstance(call, cst.Call)
            and isinstance(call.func, cst.Attribute)
            and call.func.attr.value in ("append", "extend")
            and self_attr(call.func.value) in _WEIGHT_LISTS
        ):
            listed = (
                cst.List([cst.Element(a.value) for a in call.args])
                if call.func.attr.value == "append"
                else call.args[0].value
            )
            return self._weight_list(original_node, listed)
        return updated_node

    def _weight_list(self, original: cst.CSTNode, value: cst.BaseExpression) -> Any:
        scan = self._class[-1][2]
        assert scan is not None
        names = _listed(value)
        known = scan.variables | scan.add_weights
        if names is not None and set(names) <= known:
            self.note(
                original,
                "removed the weight list assignment: Keras 3 tracks the weights made by add_weight",
            )
            return cst.RemoveFromParent()
        self.todo(
            original,
            "a weight list holding something other than weights made in this "
            "layer; create each weight with self.add_weight in build()",
        )
        return original

    def _variable(self, attr: str, original: cst.Call, updated: cst.Assign) -> cst.BaseExpression:
        scan = self._class[-1][2]
        assert scan is not None
        call = cast(cst.Call, updated.value)
        given, _, error = bind("variable(value, dtype=None, name=None, constraint=None)", call)
        if error is not None:
            self.todo(original, f"K.variable: {error}")
            return call
        given = {k: v.lstrip("\0") for k, v in given.items()}
        # The Keras 2 name is kept, even one computed from the layer's name: a Keras 2 file
        # stores the weight under it, and layerhub places weights by name.
        name = given.get("name") or repr(attr)
        parts = [f"self, {given['value']}, name={name}"]
        parts += [f"{k}={given[k]}" for k in ("dtype", "constraint") if k in given]
        if attr in scan.frozen:
            parts.append("trainable=False")
        return self._expr(f"{_HELPERS}.variable({', '.join(parts)})")

    def _add_weight(self, original: cst.Call, updated: cst.Call) -> cst.BaseExpression:
        positional = [a for a in updated.args if a.keyword is None and not a.star]
        if any(a.star for a in updated.args):
            self.todo(original, "add_weight with starred arguments: name each argument")
            return updated
        keywords = {a.keyword.value for a in updated.args if a.keyword is not None}
        extra = keywords - set(_ADD_WEIGHT_2)
        if extra:
            self.todo(
                original,
                f"add_weight argument(s) {', '.join(sorted(extra))} have no "
                "certain Keras 3 counterpart",
            )
            return updated
        if not positional:
            return updated
        first = positional[0].value
        order: tuple[str, ...]
        if isinstance(first, (cst.SimpleString, cst.FormattedString, cst.ConcatenatedString)):
            order = _ADD_WEIGHT_2
        elif isinstance(first, (cst.Tuple, cst.List)):
            order = _ADD_WEIGHT_1
        else:
            self.todo(
                original,
                "add_weight with positional arguments whose order is not "
                "certain (Keras 1 puts shape first, Keras 2 name): name each argument",
            )
            return updated
        if len(positional) > len(order):
            self.todo(original, "add_weight with more positional arguments than Keras 2 takes")
            return updated
        named = dict(zip(order, (a.value for a in positional), strict=False))
        for arg in updated.args:
            if arg.keyword is not None:
                named[arg.keyword.value] = arg.value
        args = [
            cst.Arg(named[key], keyword=cst.Name(key), equal=_EQUAL)
            for key in _ADD_WEIGHT_2
            if key in named
        ]
        return updated.with_changes(args=args)

    # -- expressions ---------------------------------------------------------------------------

    def visit_Call(self, node: cst.Call) -> None:
        self._call_funcs.add(id(node.func))

    def visit_Assign(self, node: cst.Assign) -> None:
        value = node.value
        if (
            len(node.targets) == 1
            and self_attr(node.targets[0].target) is not None
            and isinstance(value, cst.Call)
            and self.dotted_name(value.func) == "keras.backend.variable"
        ):
            self._variable_calls.add(id(value))

    def visit_Arg(self, node: cst.Arg) -> None:
        if node.keyword is not None:
            self._skip.add(id(node.keyword))

    def visit_Param(self, node: cst.Param) -> None:
        self._skip.add(id(node.name))

    def visit_Import(self, node: cst.Import) -> bool:
        return False

    def visit_ImportFrom(self, node: cst.ImportFrom) -> bool:
        return False

    def visit_Attribute(self, node: cst.Attribute) -> bool:
        # A resolvable chain (K.sum, tf.keras.layers.Layer) is rewritten as a whole.
        return self.dotted_name(node) is None

    def leave_Attribute(self, original_node: cst.Attribute, updated_node: cst.Attribute) -> Any:
        dotted = self.dotted_name(original_node)
        if dotted is None:
            # input_shape[-1].value: a TensorShape dimension in TF1; an int in Keras 3.
            if (
                updated_node.attr.value == "value"
                and isinstance(updated_node.value, cst.Subscript)
                and "shape" in code_of(updated_node.value.value)
            ):
                return updated_node.value
            return updated_node
        return self._reference(original_node, updated_node, dotted)

    def leave_Name(self, original_node: cst.Name, updated_node: cst.Name) -> Any:
        if id(original_node) in self._skip:
            return updated_node
        dotted = self.dotted_name(original_node)
        if dotted is None or not dotted.startswith("keras"):
            return updated_node
        return self._reference(original_node, updated_node, dotted)

    def _reference(self, original: cst.CSTNode, updated: Any, dotted: str) -> Any:
        if not dotted.startswith("keras"):
            if dotted.split(".")[0] == "tensorflow" and dotted != "tensorflow":
                self.note(
                    original,
                    f"{code_of(original)}: a TensorFlow call, which ties the "
                    "plugin to the TensorFlow backend of Keras",
                )
            return updated
        if dotted.startswith("keras.backend.") or dotted == "keras.backend":
            if id(original) not in self._call_funcs:
                self.todo(original, f"{code_of(original)} used other than by calling it")
            return updated
        if dotted.startswith("keras.legacy"):
            return updated
        target = keras3_reference(dotted)
        if target is None:
            self.todo(
                original, f"{code_of(original)} ({dotted}) has no entry in the translation table"
            )
            return updated
        if target.startswith("keras.ops."):
            # The port imports keras.ops as ops.
            target = target[len("keras.") :]
        if target != code_of(updated):
            return cst.parse_expression(target)
        return updated

    def leave_Call(self, original_node: cst.Call, updated_node: cst.Call) -> Any:
        dotted = self.dotted_name(original_node.func)
        if dotted is not None and dotted.startswith("keras.backend."):
            return self._backend(original_node, updated_node, dotted.split(".", 2)[2])
        func = updated_node.func
        if self_attr(func) == "add_weight":
            return self._add_weight(original_node, updated_node)
        if self._in_layer() and self_attr(func) == "add_update":
            self.todo(
                original_node,
                "self.add_update: Keras 3 has none; assign the variable "
                "in call() (variable.assign)",
            )
        if self._in_layer() and dotted in _RAW_VARIABLES:
            self.todo(
                original_node,
                f"{code_of(original_node.func)}: Keras 3 does not track a "
                "raw TensorFlow variable as a weight; create it with self.add_weight",
            )
        if isinstance(func, cst.Name) and func.value == "super" and len(updated_node.args) == 2:
            first, second = (code_of(a.value) for a in updated_node.args)
            if self._class and first == self._class[-1][0] and second == "self":
                return updated_node.with_changes(args=[])
        if isinstance(func, cst.Attribute) and not updated_node.args:
            if func.attr.value == "get_shape":
                return cst.Attribute(value=func.value, attr=cst.Name("shape"))
            if func.attr.value == "as_list" and code_of(func.value).endswith("shape"):
                return cst.Call(func=cst.Name("list"), args=[cst.Arg(func.value)])
        if (
            self._function
            and self._function[-1] == "call"
            and self._in_layer()
            and dotted is not None
            and (target := keras3_reference(dotted)) is not None
            and target.startswith("keras.layers.")
            and target not in (_LAYER, "keras.layers.InputSpec")
        ):
            self.todo(
                original_node,
                f"{code_of(original_node.func)} creates a layer inside "
                "call(): new weights on every call; create it in build() or __init__",
            )
        return updated_node

    def _backend(self, original: cst.Call, updated: cst.Call, function: str) -> Any:
        if function == "variable":
            # Translated by leave_Assign when assigned to self.<name>; anything else is refused.
            if not self._in_layer() or id(original) not in self._variable_calls:
                self.todo(original, f"K.variable: {table.REFUSED['variable']}")
            return updated
        entry = table.BACKEND.get(function)
        if entry is None:
            why = table.REFUSED.get(function, "no entry in the translation table")
            self.todo(original, f"K.{function}: {why}")
            return updated
        code, error = fill(entry, updated)
        if code is None:
            self.todo(original, f"K.{function}: {error}")
            return updated
        return self._expr(code)

    def leave_Comparison(self, original_node: cst.Comparison, updated_node: cst.Comparison) -> Any:
        # K.image_dim_ordering() == 'tf' -> keras.config.image_data_format() == "channels_last"
        if len(updated_node.comparisons) != 1:
            return updated_node
        target = updated_node.comparisons[0]
        sides = [updated_node.left, target.comparator]
        if not isinstance(target.operator, (cst.Equal, cst.NotEqual)):
            return updated_node
        helper = f"{_HELPERS}.image_dim_ordering()"
        codes = [code_of(s).strip() for s in sides]
        if helper not in codes:
            return updated_node
        other = sides[1 - codes.index(helper)]
        if not isinstance(other, cst.SimpleString) or other.evaluated_value not in ("tf", "th"):
            return updated_node
        value = "channels_last" if other.evaluated_value == "tf" else "channels_first"
        operator = "==" if isinstance(target.operator, cst.Equal) else "!="
        return cst.parse_expression(f'keras.config.image_data_format() {operator} "{value}"')


_OUTPUT_SHAPE: Final = cast(
    cst.FunctionDef,
    cst.parse_statement(
        "def compute_output_shape(self, input_shape):\n"
        "    # Written by layerhub port: Keras 2 found the output shape by tracing call().\n"
        f"    return {_HELPERS}.output_shape(self, input_shape)\n"
    ),
).with_changes(leading_lines=[cst.EmptyLine(indent=False)])

_EQUAL: Final = cst.AssignEqual(
    whitespace_before=cst.SimpleWhitespace(""), whitespace_after=cst.SimpleWhitespace("")
)


# -- the module --------------------------------------------------------------------------------


def _needed(module: cst.Module, keep: set[str]) -> set[str]:
    """``keep`` and every class of the module they derive from."""
    bases: dict[str, set[str]] = {}
    for statement in module.body:
        if isinstance(statement, cst.ClassDef):
            bases[statement.name.value] = {
                b.value.value for b in statement.bases if isinstance(b.value, cst.Name)
            }
    needed: set[str] = set()
    todo = list(keep)
    while todo:
        name = todo.pop()
        if name not in needed:
            needed.add(name)
            todo += bases.get(name, set())
    return needed


def rewrite(source: str, package: str, keep: set[str] | None = None) -> Rewritten:
    """Port a Keras 2 module's source to Keras 3.

    Args:
        source: the module's text.
        package: the plugin's import package; each layer is registered under it.
        keep: the layer classes wanted; other layer classes (unless one of these derives from
            them) are left out of the port, with what was found in them. None keeps all.

    Raises:
        libcst.ParserSyntaxError: the source is not valid Python.
    """
    module = cst.parse_module(source)
    aliases = aliases_of(module)
    transformer = PortTransformer(aliases, package)
    transformer.keep = None if keep is None else _needed(module, keep)
    wrapper = cst.MetadataWrapper(module)
    ported = wrapper.visit(transformer)
    for statement in module.body:
        if isinstance(statement, cst.SimpleStatementLine):
            for small in statement.body:
                if (
                    isinstance(small, cst.ImportFrom)
                    and isinstance(small.names, cst.ImportStar)
                    and small.module is not None
                    and is_keras_module(code_of(small.module))
                ):
                    transformer.findings.append(
                        Finding(
                            0, f"'from {code_of(small.module)} import *': name the imports", True
                        )
                    )
    dropped = transformer.dropped
    findings = sorted(
        (f for f in transformer.findings if f.cls not in dropped),
        key=lambda f: (f.line, f.message),
    )
    todos = [f"line {f.line}: {f.message}" for f in findings if f.todo]
    ported = rebuilt_imports(ported, transformer.uses_helpers, todos)
    return Rewritten(
        code=ported.code,
        layers=sorted(transformer.layers, key=lambda info: info.line),
        findings=findings,
        uses_helpers=transformer.uses_helpers,
    )
