"""Rule 1: ``from_config(get_config())`` rebuilds the layer, base arguments included."""

from __future__ import annotations

import copy
import inspect
import json
from collections.abc import Iterator
from typing import Any, Final

import keras
import numpy as np

from layerhub.testing.rules._common import Broken, Case, doing, summary

# Base-layer arguments every layer must carry through its config: not the defaults, so that a
# get_config() that forgets super().get_config() shows.
BASE_ARGUMENTS: Final = {
    "name": "layerhub_check_name",
    "trainable": False,
    "dtype": "float64",
}

_PLAIN: Final = (str, int, float, bool, type(None))


def _constructor_args(cls: type[Any]) -> list[str]:
    base = set(inspect.signature(keras.layers.Layer.__init__).parameters)
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    named = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    return [p.name for p in params if p.kind not in named and p.name not in base]


def _not_plain(value: Any, path: str) -> Iterator[tuple[str, Any]]:
    """``(key path, value)`` of every value in a config that JSON cannot hold as it is."""
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                yield f"{path}[{key!r}]", key
            yield from _not_plain(item, f"{path}[{key!r}]" if path else repr(key))
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from _not_plain(item, f"{path}[{index}]")
    elif not isinstance(value, _PLAIN) and not _keras_object(value):
        yield path, value


def _keras_object(value: Any) -> bool:
    # An initializer, regularizer, layer... left unserialised still saves: Keras serialises it.
    return hasattr(value, "get_config") and not isinstance(value, np.ndarray)


def _lambdas(value: Any, path: str = "") -> Iterator[str]:
    """Key paths of Python lambdas Keras serialised as bytecode (``"__lambda__"``)."""
    if isinstance(value, dict):
        if value.get("class_name") == "__lambda__":
            yield path
            return
        for key, item in value.items():
            yield from _lambdas(item, f"{path}[{key!r}]" if path else repr(key))
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from _lambdas(item, f"{path}[{index}]")
    elif callable(value) and getattr(value, "__name__", "") == "<lambda>":
        yield path


def not_plain(config: Any) -> tuple[str, str] | None:
    """``(key path, type name)`` of the first value JSON cannot hold as it is, or ``None``."""
    for key, value in _not_plain(config, ""):
        kind = type(value).__module__.partition(".")[0] + "." + type(value).__qualname__
        return key, kind.removeprefix("builtins.")
    return None


def plain_fix(key: str) -> str:
    """The fix for a config value JSON cannot hold: what actually cures it, not registration."""
    return (
        f"return plain JSON values from get_config(): convert {key} with .tolist() (or "
        "float()/int()) and turn it back into an array in __init__"
    )


def _check_plain(config: dict[str, Any]) -> None:
    if (odd := not_plain(config)) is not None:
        key, kind = odd
        raise Broken(
            f"get_config() holds a {kind} under {key}, which is not a plain JSON value, so the "
            "saved file cannot rebuild it (Keras fails with a confusing error on load)",
            plain_fix(key),
        )
    serialised = keras.saving.serialize_keras_object(config)
    if lambdas := list(_lambdas(config)) or list(_lambdas(serialised)):
        raise Broken(
            f"get_config() holds a Python lambda under {lambdas[0]} (a lambda initializer, "
            "perhaps a default argument); Keras saves it as bytecode, which safe loading refuses",
            f"use a built-in initializer for {lambdas[0]} (a name such as 'ones' or "
            "'glorot_uniform', or keras.initializers.Constant(...)), or a keras.initializers."
            "Initializer subclass registered with @keras.saving.register_keras_serializable; "
            "never a lambda",
        )


def _config_json(config: Any, what: str) -> str:
    fix = (
        "keep plain values in the config and serialise objects with keras.initializers.serialize,"
        " keras.regularizers.serialize, keras.constraints.serialize, keras.activations.serialize"
    )
    with doing(f"serialising {what} to JSON", fix):
        return json.dumps(keras.saving.serialize_keras_object(config), sort_keys=True)


def _get_config(layer: Any) -> dict[str, Any]:
    try:
        config = layer.get_config()
    except NotImplementedError as error:
        raise Broken(
            "get_config() is not implemented, and Keras cannot write one itself because a "
            "constructor argument is not a plain value, so the layer cannot be saved"
        ) from error
    except Exception as error:
        raise Broken(f"get_config() on a new layer raised {summary(error)}") from error
    if not isinstance(config, dict):
        raise Broken(f"get_config() returned {type(config).__name__}, not a dict")
    return config


def check(case: Case) -> None:
    __tracebackhide__ = True
    layer = case.new_layer()
    config = _get_config(layer)
    args = [name for name in _constructor_args(case.cls) if name not in case.config_exempt]
    if missing := [name for name in args if name not in config]:
        entries = ", ".join(f"{name!r}: self.{name}" for name in missing)
        raise Broken(
            f"get_config() lacks the constructor argument(s) {', '.join(missing)}, so "
            "from_config() and loaded models lose them",
            f"in get_config(): config = super().get_config(); config.update({{{entries}}}), "
            "serialising initializers etc. with keras.initializers.serialize",
        )
    _check_plain(config)
    saved = _config_json(config, "get_config()")
    with doing("from_config(get_config())", "accept every key get_config() writes in __init__"):
        revived = case.cls.from_config(copy.deepcopy(config)).get_config()
    again = _config_json(revived, "the config of from_config(get_config())")
    if again != saved:
        before, after = json.loads(saved), json.loads(again)
        keys = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
        diffs = "; ".join(f"{k}: {before.get(k)!r} -> {after.get(k)!r}" for k in keys[:5])
        raise Broken(
            f"from_config(get_config()) gives a different config ({diffs})",
            "store each constructor argument as given and return it unchanged from "
            "get_config(), serialised so that __init__ accepts it back",
        )
    _check_base_arguments(case)


def _check_base_arguments(case: Case) -> None:
    """``name``, ``trainable`` and ``dtype`` survive ``from_config(get_config())``."""
    __tracebackhide__ = True
    given = ", ".join(f"{k}={v!r}" for k, v in BASE_ARGUMENTS.items())
    super_fix = (
        "accept **kwargs in __init__ and pass them to super().__init__(**kwargs), and start "
        "get_config() with config = super().get_config()"
    )
    with doing(f"{case.cls.__name__}({given}, ...)", super_fix):
        layer = case.new_layer(**BASE_ARGUMENTS)
    config = _get_config(layer)
    with doing(f"from_config(get_config()) of a layer made with {given}", super_fix):
        revived = case.cls.from_config(copy.deepcopy(config))
    seen = {
        "name": revived.name,
        "trainable": revived.trainable,
        "dtype": revived.dtype_policy.name,
    }
    if lost := [k for k, v in BASE_ARGUMENTS.items() if seen[k] != v]:
        changes = ", ".join(f"{k}={BASE_ARGUMENTS[k]!r} came back as {seen[k]!r}" for k in lost)
        absent = [k for k in lost if k not in config]
        reason = (
            f"get_config() has no {', '.join(absent)}: it does not call super().get_config()"
            if absent
            else "__init__ does not pass them on to super().__init__()"
        )
        raise Broken(f"a layer rebuilt from its config lost {changes}; {reason}", super_fix)
