"""Queries over a saved model's config tree (plain JSON data), shared by every format."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, Final

# ``package>name`` as keras.saving.register_keras_serializable writes it.
REGISTERED: Final = re.compile(r"[A-Za-z_][\w.]*>[\w.]+")
# Packages whose modules Keras imports by itself to resolve a class it names.
KERAS_PACKAGES: Final = frozenset({"keras", "keras_hub", "keras_cv", "keras_nlp"})
# What a Keras 2 Lambda layer may hold as a function: each has a "<key>_type" beside it.
LAMBDA_FUNCTION_KEYS: Final = ("function", "output_shape", "mask")


def walk(node: Any) -> Iterator[Any]:
    """Every value nested anywhere in a JSON-like tree, depth first, iteratively."""
    stack = [node]
    while stack:
        item = stack.pop()
        yield item
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def depth(node: Any) -> int:
    """How deeply lists and dictionaries nest in ``node`` (a scalar has depth 0)."""
    deepest = 0
    stack = [(node, 1)]
    while stack:
        item, level = stack.pop()
        children = item.values() if isinstance(item, dict) else item
        if isinstance(item, (dict, list)):
            deepest = max(deepest, level)
            stack.extend((child, level + 1) for child in children)
    return deepest


def copy(node: Any) -> Any:
    """A deep copy of a JSON-like tree (dicts, lists, scalars), made iteratively.

    ``copy.deepcopy`` recurses two or three frames a level: a config 400 levels deep, well
    within the depth limit, ends in ``RecursionError``. Tuples become lists, as JSON has them.
    """
    if not isinstance(node, (dict, list, tuple)):
        return node
    root: Any = {} if isinstance(node, dict) else []
    stack: list[tuple[Any, Any]] = [(node, root)]
    while stack:
        source, target = stack.pop()
        items = source.items() if isinstance(source, dict) else enumerate(source)
        for key, value in items:
            if isinstance(value, (dict, list, tuple)):
                child: Any = {} if isinstance(value, dict) else []
                stack.append((value, child))
                value = child
            if isinstance(target, dict):
                target[key] = value
            else:
                target.append(value)
    return root


def objects(config: Any) -> Iterator[dict[str, Any]]:
    """Every serialised object (a dictionary with a string ``class_name``), at any depth."""
    for node in walk(config):
        if isinstance(node, dict) and isinstance(node.get("class_name"), str):
            yield node


def registered_names(config: Any) -> set[str]:
    """Every ``package>name`` the config refers to, at any depth.

    Registered classes carry it in ``registered_name``; registered functions (Lambda functions,
    activations, losses) are saved as ``{"class_name": "function", "config": "package>name"}``.
    """
    found: set[str] = set()
    for node in walk(config):
        if not isinstance(node, dict):
            continue
        candidates = [node.get("registered_name")]
        if node.get("class_name") == "function":
            candidates.append(node.get("config"))
        found.update(c for c in candidates if isinstance(c, str) and REGISTERED.fullmatch(c))
    return found


def foreign_names(config: Any) -> set[str]:
    """The names Keras 3 must look up outside Keras to rebuild the config.

    That is every registered name, and the bare name of each class or function that is
    neither Keras' own nor registered (``"registered_name": "MyLayer"``, a function saved as
    ``{"class_name": "function", "config": "my_loss"}``), which only ``custom_objects`` or the
    user's own registration can resolve.
    """
    found = registered_names(config)
    for node in objects(config):
        module = node.get("module")
        if isinstance(module, str) and module.partition(".")[0] in KERAS_PACKAGES:
            continue
        name = node.get("registered_name")
        if node["class_name"] == "function":
            name = node.get("config")
        if isinstance(name, str) and name and not name.startswith("__"):
            found.add(name)
    return found


def class_names(config: Any) -> set[str]:
    """Every ``class_name`` in a (Keras 2) config."""
    return {node["class_name"] for node in objects(config)}


def lambda_configs(config: Any) -> Iterator[dict[str, Any]]:
    """The ``config`` dictionary of every ``Lambda`` layer, at any depth."""
    for node in objects(config):
        if node["class_name"] == "Lambda" and isinstance(node.get("config"), dict):
            yield node["config"]


def lambda_function_names(config: Any) -> set[str]:
    """Names of the functions Keras 2 ``Lambda`` layers saved by name, not as bytecode.

    Keras 2 wrote ``"function_type": "function"`` (and the same for ``output_shape`` and
    ``mask``) with the function's ``__name__`` for callables that are not Python functions;
    every Python function, named or not, it saved as bytecode (``"lambda"``).
    """
    names: set[str] = set()
    for layer in lambda_configs(config):
        for key in LAMBDA_FUNCTION_KEYS:
            value = layer.get(key)
            if layer.get(f"{key}_type") == "function" and isinstance(value, str):
                names.add(value)
    return names


def bytecode_sites(config: Any) -> Iterator[tuple[str | None, list[str], bool]]:
    """Where the config holds Python bytecode: (layer name, keys holding it, Keras 2 form)."""
    for node in walk(config):
        if not isinstance(node, dict):
            continue
        # Keras 3 nests {"class_name": "__lambda__", ...} in the layer config; Keras 2 marks the
        # layer config itself with "<key>_type": "lambda".
        keras3 = [k for k, v in node.items() if isinstance(v, dict) and _is_keras3_lambda(v)]
        keras2 = [k for k in LAMBDA_FUNCTION_KEYS if node.get(f"{k}_type") == "lambda"]
        if keras3 or keras2 or _is_keras3_lambda(node):
            name = node.get("name")
            yield (
                (name if isinstance(name, str) else None),
                sorted({*keras3, *keras2}),
                bool(keras2),
            )


def _is_keras3_lambda(node: dict[str, Any]) -> bool:
    return node.get("class_name") == "__lambda__"
