"""Keras 2 configs made readable by Keras 3, for every Keras 2 format (HDF5, SavedModel).

Keras 2 wrote bare class names (``"Scale"``), or ``"Package>Name"`` for classes the user
registered; its own classes by bare name too. This module says which names are Keras' own,
which a training config needs, and rewrites the forms Keras 3 misreads.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import Any, Final, NamedTuple

from layerhub._private.errors import ModelFileError
from layerhub._private.guard import config_tree
from layerhub._private.guard.untrusted import shown
from layerhub._private.keras2 import layer_keys
from layerhub._private.keras2.layer_keys import Drop, DropIf, Refuse, Rename

# Class names Keras writes for things that are not classes.
_MARKERS: Final = frozenset({"function"})
_MODEL_CLASSES: Final = frozenset({"Functional", "Sequential", "Model"})
# The Keras modules whose ALL_OBJECTS_DICT tables Keras' own deserialisers look names up in (and
# where Keras 3 finds a function saved by bare name).
OBJECT_MODULES: Final = (
    "activations",
    "constraints",
    "initializers",
    "losses",
    "metrics",
    "optimizers",
    "regularizers",
)
# Keras 2's mixed-precision policy classes; Keras 3 takes the policy by name.
_POLICY_CLASSES: Final = frozenset({"Policy", "PolicyV1", "DTypePolicy"})
# Loss and metric names Keras resolves by itself in a training config.
_TRAINING_KEYWORDS: Final = frozenset({"acc", "accuracy", "crossentropy", "ce"})
# Loss aliases that Keras 3 cannot deserialise from an .h5 training config.
_LOSS_ALIASES: Final = frozenset(
    {"mse", "mae", "mape", "msle", "kld", "bce", "MSE", "MAE", "MAPE", "MSLE", "KLD", "BCE"}
)
_TRAINING_KEYS: Final = ("loss", "metrics", "weighted_metrics")


@functools.cache
def _builtin_names() -> frozenset[str]:
    """Every bare name Keras 3's own legacy loaders resolve without help."""
    import importlib

    import keras

    names = set(vars(keras.layers)) | set(vars(keras)) | _MODEL_CLASSES | _POLICY_CLASSES
    # tf-keras classes that translate() gives their Keras 3 names.
    names |= set(layer_keys.REPLACED)
    for module in OBJECT_MODULES:
        table = getattr(importlib.import_module(f"keras.src.{module}"), "ALL_OBJECTS_DICT", {})
        names.update(table)
        names.update(vars(getattr(keras, module)))
    return frozenset(n for n in names if not n.startswith("_"))


def builtin(name: str) -> bool:
    """Whether Keras resolves this Keras 2 class or function name by itself."""
    return name in _MARKERS or name.startswith("__") or name in _builtin_names()


def needed_names(config: Any) -> set[str]:
    """The names in a Keras 2 model config that Keras cannot resolve by itself."""
    names = (
        config_tree.class_names(config)
        | config_tree.registered_names(config)
        | config_tree.lambda_function_names(config)
    )
    return {n for n in names if ">" in n or not builtin(n)}


def training_names(training_config: Any) -> set[str]:
    """The loss and metric names of a Keras 2 training config that Keras cannot resolve."""
    if not isinstance(training_config, dict):
        return set()
    names = {n for key in _TRAINING_KEYS for n in _training_objects(training_config.get(key))}
    return {
        n
        for n in names
        if ">" in n
        or not (
            builtin(n)
            or n.lower() in _TRAINING_KEYWORDS
            or n in _LOSS_ALIASES
            or _keras_training_object(n)
        )
    }


def _training_objects(tree: Any) -> list[str]:
    """Names of the losses or metrics in one training-config entry (a name, an object, or
    lists and per-output dicts of them); an object's own config fields are not names."""
    found: list[str] = []
    stack = [tree]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            found.append(item)
        elif isinstance(item, dict) and isinstance(item.get("class_name"), str):
            found.append(item["class_name"])
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


def _keras_training_object(name: str) -> bool:
    import keras

    for getter in (keras.losses.get, keras.metrics.get):
        try:
            if getter(name) is not None:
                return True
        except (ValueError, TypeError):
            continue
    return False


def loss_aliases(training_config: Any) -> dict[str, Any]:
    """Keras' own functions for the loss aliases Keras 3 cannot read back from an .h5 file.

    Keras 3 fails on ``loss="mse"`` (and ``"mae"``, ``"bce"``, ...) in a Keras 2 training config
    ("Could not deserialize 'keras.metrics.mse'"); naming the functions for this one call works.
    """
    if not isinstance(training_config, dict):
        return {}
    import keras

    used = {
        value
        for value in config_tree.walk(training_config.get("loss"))
        if isinstance(value, str) and value in _LOSS_ALIASES
    }
    return {alias: keras.losses.get(alias) for alias in sorted(used)}


class OptimizerStateWarning(UserWarning):
    """A Keras 2 optimizer came back with its configuration but without its state."""


# Keras 2 optimizer settings that mean nothing to Keras 3 (and are not worth a word).
_KERAS2_ONLY: Final = frozenset({"is_legacy_optimizer", "jit_compile", "decay"})


# tf-keras' mixed-precision wrappers: of legacy optimizers, and of the optimizers of TF 2.11 on.
_LOSS_SCALE_OPTIMIZERS: Final = frozenset({"LossScaleOptimizer", "LossScaleOptimizerV3"})
_DESCRIBED: Final = ("learning_rate", "momentum", "nesterov", "beta_1", "beta_2", "rho", "epsilon")


class _Recovered(NamedTuple):
    config: dict[str, Any]  # the Keras 3 optimizer config
    described: str  # how the warning names it
    dropped: list[str]  # Keras 2 settings Keras 3 has no equivalent for


def recovered_optimizer(training_config: Any) -> dict[str, Any] | None:
    """The training config with its Keras 2 optimizer made readable by Keras 3, or ``None``.

    Keras 3 does not know Keras 2's optimizer names (``"Custom>SGD"``, or ``"SGD"`` with Keras 2
    arguments) and silently falls back to the optimizer's defaults: an SGD with momentum 0.9 and
    Nesterov comes back as plain SGD. The configuration is recovered here; the state (iteration
    count, momentum and moment slots) is not, and one warning says so.

    A model compiled under ``mixed_float16`` saved tf-keras' ``LossScaleOptimizer`` (or
    ``LossScaleOptimizerV3``) around its optimizer. A dynamic loss scale becomes Keras 3's
    ``LossScaleOptimizer``, which scales the same way (doubling after ``dynamic_growth_steps``
    finite steps, halving on a non-finite gradient); a fixed one becomes the inner optimizer's
    ``loss_scale_factor``, which is how Keras 3 scales by a constant (its LossScaleOptimizer
    refuses ``dynamic=False``).
    """
    import warnings

    if not isinstance(training_config, dict):
        return None
    found = _recovered(training_config.get("optimizer_config"))
    if found is None:
        return None
    warnings.warn(
        f"layerhub: the Keras 2 optimizer was restored as {found.described} from its saved "
        "configuration, but not its state (iterations, momentum or moment slots): training "
        "resumes from a fresh optimizer state"
        + (
            "; settings Keras 3 has no equivalent for were dropped: "
            + ", ".join(shown(k, 60) for k in found.dropped)
            if found.dropped
            else ""
        ),
        OptimizerStateWarning,
        stacklevel=3,  # the caller of layerhub.load_model
    )
    recovered = dict(training_config)
    recovered["optimizer_config"] = found.config
    return recovered


def _recovered(optimizer: Any) -> _Recovered | None:
    if not isinstance(optimizer, dict) or not isinstance(optimizer.get("class_name"), str):
        return None
    if optimizer["class_name"].rpartition(">")[2] in _LOSS_SCALE_OPTIMIZERS:
        return _loss_scaled(optimizer.get("config"))
    return _plain(optimizer)


def _plain(optimizer: Any) -> _Recovered | None:
    """A Keras 2 optimizer that is not a wrapper, by the Keras 3 class of the same name."""
    import inspect

    import keras

    if not isinstance(optimizer, dict) or not isinstance(optimizer.get("class_name"), str):
        return None
    name = optimizer["class_name"].rpartition(">")[2]
    cls = getattr(keras.optimizers, name, None)
    settings = optimizer.get("config")
    if not (isinstance(cls, type) and isinstance(settings, dict)):
        return None
    if issubclass(cls, keras.optimizers.LossScaleOptimizer):
        return None  # only as tf-keras' wrapper, handled by _loss_scaled
    accepted = set(inspect.signature(cls).parameters)
    kept = {k: v for k, v in settings.items() if k in accepted}
    dropped = sorted(k for k in settings if k not in accepted and k not in _KERAS2_ONLY)
    described = ", ".join(f"{k}={v!r}" for k, v in kept.items() if k in _DESCRIBED)
    return _Recovered({"class_name": name, "config": kept}, f"{name}({described})", dropped)


def _loss_scaled(settings: Any) -> _Recovered | None:
    """tf-keras' LossScaleOptimizer config (or TF 2.3's, with a ``loss_scale`` object)."""
    if not isinstance(settings, dict):
        return None
    inner = _plain(settings.get("inner_optimizer", settings.get("optimizer")))
    if inner is None:
        return None
    dynamic = settings.get("dynamic", True)
    scale = settings.get("initial_scale", 2.0**15)
    steps = settings.get("dynamic_growth_steps", 2000)
    dropped = list(inner.dropped)
    old = settings.get("loss_scale")  # TF 2.3 and before
    if isinstance(old, dict) and isinstance(old.get("config"), dict):
        dynamic = old.get("class_name") == "DynamicLossScale"
        scale = old["config"].get("initial_loss_scale" if dynamic else "loss_scale_value", scale)
        steps = old["config"].get("increment_period", steps)
        if dynamic and old["config"].get("multiplier", 2) != 2:
            dropped.append("multiplier")  # Keras 3 doubles and halves
    if not (isinstance(scale, (int, float)) and isinstance(steps, int)):
        return None
    if dynamic is False:
        # Keras 3 multiplies the loss by loss_scale_factor and divides the gradients by it.
        fixed = dict(inner.config, config={**inner.config["config"], "loss_scale_factor": scale})
        described = f"{inner.described} with a fixed loss scale of {scale!r}"
        return _Recovered(fixed, described, dropped)
    config = {
        "class_name": "LossScaleOptimizer",
        "config": {
            # With its module, which Keras 3's LossScaleOptimizer.from_config needs to find it.
            "inner_optimizer": {
                "module": "keras.optimizers",
                "registered_name": None,
                **inner.config,
            },
            "initial_scale": scale,
            "dynamic_growth_steps": steps,
        },
    }
    described = (
        f"LossScaleOptimizer({inner.described}, initial_scale={scale!r}, "
        f"dynamic_growth_steps={steps!r})"
    )
    return _Recovered(config, described, dropped)


def translate(
    config: dict[str, Any], resolved: Callable[[str], bool], *, safe_mode: bool
) -> dict[str, Any] | None:
    """The config with the Keras 2 forms Keras 3 misreads rewritten, or ``None`` if it has none.

    - Keras 2 mixed-precision policies (``{"class_name": "Policy", "config": {"name":
      "mixed_float16"}}``) become the policy's name, which Keras 3 layers accept.
    - Keras 3 turns a Lambda function saved by name into the function before
      ``Lambda.from_config`` sees it, which then rejects it; the Keras 3 form of a function
      reference loads.
    - A Keras 2 ``output_shape`` lambda is left as a list that Keras 3 takes for a shape; the
      Keras 3 lambda form loads (with ``safe_mode=False`` only, which the checks enforced).
    - Keras 2 numbered the calls of a nested model from 1 (its own input was node 0); Keras 3
      numbers them from 0, so references to such a model's outputs are renumbered.
    - Each key of a tf-keras built-in layer config that Keras 3 does not take is dropped,
      renamed or refused, by the table in ``layer_keys`` (layers nested in models, wrappers
      and RNNs included); a class nothing else resolves and Keras 3 lacks is refused.

    Raises:
        ModelFileError: a layer uses a Keras 2 feature Keras 3 has no equivalent for.
    """
    fixed = _copied(config)
    changed = False
    for node in _policies(fixed):
        for key, value in list(node.items()):
            if _policy_name(value) is not None:
                node[key] = _policy_name(value)
                changed = True
    for layer in config_tree.lambda_configs(fixed):
        for key, value in _lambda_fixes(layer, resolved, safe_mode).items():
            layer[key] = value
            layer.pop(f"{key}_type")
            changed = True
    for model in config_tree.objects(fixed):
        changed |= _renumber_nested_models(model)
    # After the Lambda fixes, which read the "<key>_type" keys a wrapped Lambda then loses.
    changed |= _translate_layers(fixed, resolved)
    return fixed if changed else None


def _copied(tree: dict[str, Any]) -> dict[str, Any]:
    """A copy of a JSON-like tree's dicts and lists, made without recursion.

    ``copy.deepcopy`` takes two frames per level: a config of the 512 levels the checks allow
    would exceed Python's recursion limit.
    """
    top: dict[str, Any] = {}
    stack: list[tuple[Any, Any]] = [(tree, top)]
    while stack:
        source, target = stack.pop()
        items = source.items() if isinstance(source, dict) else enumerate(source)
        for key, value in items:
            if isinstance(value, (dict, list)):
                child: Any = {} if isinstance(value, dict) else [None] * len(value)
                stack.append((value, child))
                value = child
            target[key] = value
    return top


def _translate_layers(config: dict[str, Any], resolved: Callable[[str], bool]) -> bool:
    """Apply the built-in layer table to every layer config, in place; whether any changed."""
    changed = False
    for entry, wrapped in _layer_entries(config):
        name = entry["class_name"]
        inner = entry.get("config")
        if resolved(name) or not isinstance(inner, dict):
            continue  # the user's or a plugin's class, or nothing Keras could build anyway
        if name in layer_keys.REMOVED:
            raise _refused(inner, name, layer_keys.REMOVED[name], "has no Keras 3 class")
        for key, rule in layer_keys.RULES.get(name, {}).items():
            if key in inner:
                _apply(rule, inner, key, name)
                changed = True
        replaced = layer_keys.REPLACED.get(name)
        if replaced is not None:
            entry["class_name"] = replaced.class_name
            inner.update(replaced.set)
            changed = True
        if wrapped:
            changed |= _unwrapped_fixes(entry["class_name"], inner)
    return changed


def _apply(
    rule: Drop | DropIf | Rename | Refuse, inner: dict[str, Any], key: str, name: str
) -> None:
    value = inner[key]
    if isinstance(rule, Rename):
        inner[rule.to] = inner.pop(key)
    elif isinstance(rule, Drop) or (isinstance(rule, DropIf) and _same(value, rule.value)):
        del inner[key]
    elif isinstance(rule, Refuse) or not rule.keep_others:
        raise _refused(inner, name, rule.why, f"sets {key}={shown(value, 60)}")


def _same(value: Any, expected: Any) -> bool:
    # 1 == True in Python; a Keras 2 flag and a count are not the same setting.
    return type(value) is type(expected) and value == expected


def _refused(inner: dict[str, Any], class_name: str, feature: str, how: str) -> ModelFileError:
    layer = inner.get("name")
    called = f"'{shown(layer, 80)}' " if isinstance(layer, str) else ""
    return ModelFileError(
        f"the Keras 2 layer {called}({shown(class_name, 80)}) {how}: {feature}, which Keras 3 "
        "has no equivalent for; load it with tf-keras, or rebuild the layer without it"
    )


def _unwrapped_fixes(class_name: str, inner: dict[str, Any]) -> bool:
    """What Keras 3's legacy loader does for a model's layers, done for a wrapped layer.

    A layer inside a wrapper (``Bidirectional``, ``TimeDistributed``) or an RNN cell is
    deserialised by the wrapper through Keras 3's own deserialiser, which keeps Keras 2 keys
    the legacy loader would have removed.
    """
    changed = inner.pop("batch_input_shape", None) is not None
    if class_name == "Lambda":
        for key in layer_keys.LAMBDA_KERAS2_ONLY:
            changed |= inner.pop(key, None) is not None
        function = inner.get("function")
        if isinstance(function, list) and len(function) == 3:
            code, defaults, closure = function
            inner["function"] = {
                "class_name": "__lambda__",
                "config": {"code": code, "defaults": defaults, "closure": closure},
            }
            changed = True
    return changed


def _layer_entries(config: Any) -> Iterator[tuple[dict[str, Any], bool]]:
    """Every layer entry of a model config, with whether a wrapper or RNN holds it.

    Walked iteratively: layers of a model (``layers``, nested models), the layer of a wrapper
    (``layer``, ``backward_layer``), the cell(s) of an RNN (``cell``, ``cells``).
    """
    stack: list[tuple[Any, bool]] = [(config, False)]
    while stack:
        entry, wrapped = stack.pop()
        if not (isinstance(entry, dict) and isinstance(entry.get("class_name"), str)):
            continue
        yield entry, wrapped
        inner = entry.get("config")
        if isinstance(inner, list):  # Keras 2.0's Sequential: the layer list itself
            stack.extend((item, False) for item in inner)
        if not isinstance(inner, dict):
            continue
        stack.extend((inner.get(key), True) for key in layer_keys.NESTED_ONE)
        for key in layer_keys.NESTED_MANY:
            items = inner.get(key)
            if isinstance(items, list):
                stack.extend((item, key == "cells") for item in items)


_GRAPH_MODELS: Final = frozenset({"Functional", "Model"})


def _renumber_nested_models(model: dict[str, Any]) -> bool:
    """Shift node references to nested models from Keras 2's numbering to Keras 3's."""
    inner = model.get("config")
    if model["class_name"] not in _GRAPH_MODELS or not isinstance(inner, dict):
        return False
    layers = inner.get("layers")
    if not isinstance(layers, list):
        return False
    nested = {
        layer.get("name")
        for layer in layers
        if isinstance(layer, dict) and _own_input_is_node_zero(layer)
    }
    changed = False
    for reference in _node_references(inner):
        if reference[0] in nested and isinstance(reference[1], int) and reference[1] >= 1:
            reference[1] -= 1
            changed = True
    return changed


def _own_input_is_node_zero(layer: dict[str, Any]) -> bool:
    """Whether Keras 2 gave this nested model a node of its own before its first call."""
    if layer.get("class_name") in _GRAPH_MODELS:
        return True
    inner = layer.get("config")
    first = inner.get("layers", [None])[0] if isinstance(inner, dict) else None
    return (
        layer.get("class_name") == "Sequential"
        and isinstance(first, dict)
        and first.get("class_name") == "InputLayer"
    )


def _node_references(graph: dict[str, Any]) -> list[list[Any]]:
    """Every ``[layer name, node index, tensor index, ...]`` list of one functional config."""
    found: list[list[Any]] = []
    candidates: list[Any] = [graph.get("input_layers"), graph.get("output_layers")]
    candidates += [
        layer.get("inbound_nodes") for layer in graph["layers"] if isinstance(layer, dict)
    ]
    for tree in candidates:
        found += [
            item
            for item in config_tree.walk(tree)
            if isinstance(item, list) and len(item) >= 3 and isinstance(item[0], str)
        ]
    return found


def _policy_name(value: Any) -> str | None:
    if not (isinstance(value, dict) and value.get("class_name") in _POLICY_CLASSES):
        return None
    inner = value.get("config")
    name = inner.get("name") if isinstance(inner, dict) else None
    return name if isinstance(name, str) else None


def _policies(config: Any) -> list[dict[str, Any]]:
    """The dictionaries holding a Keras 2 policy object as one of their values."""
    return [
        node
        for node in config_tree.walk(config)
        if isinstance(node, dict) and any(_policy_name(v) is not None for v in node.values())
    ]


def _lambda_fixes(
    layer: dict[str, Any], resolved: Callable[[str], bool], safe_mode: bool
) -> dict[str, Any]:
    """The new values of the keys of one Keras 2 Lambda config that Keras 3 misreads."""
    found: dict[str, Any] = {}
    for key in ("function", "output_shape"):
        value, kind = layer.get(key), layer.get(f"{key}_type")
        if kind == "function" and isinstance(value, str) and resolved(value):
            # Looked up in custom_objects by name, like a Keras 3 function reference.
            found[key] = {
                "module": "builtins",  # pragma: no mutate (Keras' own form; unused by its lookup)
                "class_name": "function",
                "config": value,
                "registered_name": "function",  # pragma: no mutate (as "module")
            }
        elif (
            kind == "lambda"
            and key == "output_shape"
            and not safe_mode
            and isinstance(value, list)
            and len(value) == 3
        ):
            code, defaults, closure = value
            found[key] = {
                "class_name": "__lambda__",
                "config": {"code": code, "defaults": defaults, "closure": closure},
            }
    return found
