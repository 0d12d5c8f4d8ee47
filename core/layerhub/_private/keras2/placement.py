"""Keras 2 weights placed by identity: the layer path and attribute the writing Keras recorded.

A Keras 2 file names every weight it stores. The ``.h5`` format files each weight under its
top-level layer with the variable's name (``inner/batch_normalization/moving_mean:0``); a
SavedModel's checkpoint reaches each variable through the layer that owns it, by attribute
(``layer_with_weights-0.forward_layer.cell.kernel``), and its Keras metadata names each layer.
Either way a weight is known by *which layer* (the names of the models that contain it, then its
own) and *which attribute of that layer*. The Keras 3 model is walked the same way, and each
stored weight goes to the one variable with the same identity. Positions are never used: Keras 2
and Keras 3 order weights differently (nested models, BatchNormalization's moving statistics),
so a weight without a certain counterpart stops the load instead of landing in the wrong slot.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Final, NamedTuple

from layerhub._private.errors import ModelFileError
from layerhub._private.guard.untrusted import shown

# The longest chain of nested models and sublayers walked; configs are bounded at 512 levels.
MAX_NESTING: Final = 512
_SUFFIX: Final = re.compile(r":\d+$")
# A plugin layer whose Keras 2 ancestor named its weights differently says so in this class
# attribute: {Keras 2 weight name: Keras 3 variable name}.
RENAMES_ATTRIBUTE: Final = "keras2_weight_names"


class StoredWeight(NamedTuple):
    """One weight as the file stores it.

    Attributes:
        layer: the names of the models containing the layer, then the layer's own name.
        keys: the names of the weight inside its layer (a sublayer attribute or name path
            ending with the variable's name); several when the writer recorded aliases.
        value: the stored array, or a ``Deferred`` one (``numpy.asarray`` reads it).
    """

    layer: tuple[str, ...]
    keys: tuple[tuple[str, ...], ...]
    value: Any

    @property
    def label(self) -> str:
        return "/".join((*self.layer, *self.keys[0]))


class Deferred:
    """A stored tensor read from the file only when it is placed or compared.

    Every weight read up front would hold a second copy of the model beside Keras' variables
    (and a third beside a save's); one at a time, a load holds one weight more than Keras does.
    A failed read is the file's fault and says so in one line.
    """

    __slots__ = ("_read", "file", "shape")

    def __init__(self, shape: tuple[int, ...], read: Callable[[], Any], file: str) -> None:
        self.shape = tuple(int(d) for d in shape)
        self._read = read
        self.file = file

    def __array__(self, dtype: Any = None, copy: Any = None) -> Any:
        import numpy as np

        try:
            value = np.asarray(self._read())
        except Exception as error:  # h5py and TensorFlow raise OSError, KeyError, ... on damage
            from layerhub._private.registry.records import one_line

            raise ModelFileError(
                f"{self.file}: its weights cannot be read: {shown(one_line(error))}"
            ) from error
        if value.shape != self.shape:
            raise ModelFileError(
                f"{self.file}: a stored weight holds shape {value.shape}, its header says "
                f"{self.shape}"
            )
        return value if dtype is None else value.astype(dtype, copy=False)


class Keras2Source(NamedTuple):
    """A Keras 2 model as the loader builds it: configs to rebuild it from, weights to place.

    Attributes:
        file: the file's name as messages show it.
        config: the (translated) model config.
        training: the (translated) training config, or ``None``.
        weights: reads the stored weights (called once the model is built).
    """

    file: str
    config: dict[str, Any]
    training: Any
    weights: Callable[[], list[StoredWeight]]


class Placed(NamedTuple):
    """A stored weight and the Keras 3 variable with the same identity."""

    stored: StoredWeight
    variable: Any


def keras3_name(name: str) -> str:
    """A Keras 2 layer name as Keras 3 takes it: Keras 3 refuses ``/`` in names, which Keras
    Applications use (DenseNet's ``conv1/conv``)."""
    return name.replace("/", "_")


def slashless(config: dict[str, Any]) -> set[str]:
    """Rename, in place, the layers whose Keras 2 names hold ``/``, and every reference to
    them; return the old names (their weights' names must be read with them in mind)."""
    from layerhub._private.guard import config_tree

    renamed: set[str] = set()
    for node in config_tree.objects(config):
        inner = node.get("config")
        layers = inner.get("layers") if isinstance(inner, dict) else None
        for layer in layers if isinstance(layers, list) else []:
            if not isinstance(layer, dict):
                continue
            for holder in (layer, layer.get("config")):
                name = holder.get("name") if isinstance(holder, dict) else None
                if isinstance(holder, dict) and isinstance(name, str) and "/" in name:
                    renamed.add(name)
                    holder["name"] = keras3_name(name)
    if renamed:
        for item in config_tree.walk(config):
            if isinstance(item, list) and item and isinstance(item[0], str) and item[0] in renamed:
                item[0] = keras3_name(item[0])
    return renamed


def unslashed(name: str, renamed: Iterable[str]) -> str:
    """A Keras 2 variable name with the renamed layer names in it written as Keras 3's."""
    for old in sorted(renamed, key=len, reverse=True):
        name = name.replace(old, keras3_name(old))
    return name


def weight_name_keys(name: str, layer_name: str) -> tuple[str, ...]:
    """A Keras 2 variable name (``bidirectional/forward_lstm/lstm_cell/kernel:0``) as the path
    inside its layer (``forward_lstm/lstm_cell/kernel``)."""
    parts = tuple(p for p in _SUFFIX.sub("", name).split("/") if p)
    if layer_name in parts:
        parts = parts[parts.index(layer_name) + 1 :]
    return parts or (name,)


def match(model: Any, stored: Iterable[StoredWeight], file: str) -> list[Placed]:
    """Pair every stored weight with its Keras 3 variable, or refuse naming the layer."""
    leaves = _keras3_leaves(model)
    by_layer: dict[tuple[str, ...], list[StoredWeight]] = {}
    for weight in stored:
        by_layer.setdefault(weight.layer, []).append(weight)
    placed: list[Placed] = []
    for path, weights in by_layer.items():
        layer = leaves.get(path)
        if layer is None:
            raise ModelFileError(
                f"{file} stores weights for layer {shown('/'.join(path))}, which the rebuilt "
                "model does not have; layerhub places weights by layer name and will not guess"
            )
        placed += _match_layer(layer, path, weights, file)
    for path, layer in leaves.items():
        if path not in by_layer and _variables(layer):
            raise ModelFileError(
                f"{file} stores no weights for layer {shown('/'.join(path))} "
                f"({type(layer).__name__}), which has some in Keras 3; the file is incomplete"
            )
    return placed


def place(model: Any, stored: Iterable[StoredWeight], file: str) -> None:
    """Give every variable of ``model`` its stored value, by identity."""
    import numpy as np

    for pair in match(model, stored, file):
        pair.variable.assign(np.asarray(pair.stored.value))


def _match_layer(
    layer: Any, path: tuple[str, ...], weights: list[StoredWeight], file: str
) -> list[Placed]:
    candidates = _variables(layer)
    renames = getattr(type(layer), RENAMES_ATTRIBUTE, None) or {}
    free = dict(enumerate(candidates))
    pairs: list[Placed] = []
    waiting: list[StoredWeight] = []
    for weight in weights:
        keys = set(weight.keys) | {
            (*k[:-1], renames[k[-1]]) for k in weight.keys if k[-1] in renames
        }
        found = [i for i, (names, _) in free.items() if names & keys]
        if len(found) == 1:
            pairs.append(Placed(weight, free.pop(found[0])[1]))
        else:
            waiting.append(weight)
    for weight in list(waiting):
        # The variable's own name alone (a wrapper's sublayer named differently in Keras 3),
        # when exactly one weight and one variable answer to it.
        last = {renames.get(k[-1], k[-1]) for k in weight.keys}
        found = [i for i, (names, _) in free.items() if {n[-1] for n in names} & last]
        rivals = [w for w in waiting if {renames.get(k[-1], k[-1]) for k in w.keys} & last]
        if len(found) == 1 and len(rivals) == 1:
            pairs.append(Placed(weight, free.pop(found[0])[1]))
            waiting.remove(weight)
    if len(waiting) == 1 and len(free) == 1:
        # One weight left on each side: its identity is certain whatever it was called.
        pairs.append(Placed(waiting.pop(), next(iter(free.values()))[1]))
        free.clear()
    where = f"{file}: layer {shown('/'.join(path))} ({type(layer).__name__})"
    if waiting:
        names = ", ".join(shown("/".join(w.keys[0]), 60) for w in waiting[:4])
        raise ModelFileError(
            f"{where} has no variable for the stored weight(s) {names}; layerhub places "
            "weights by name and will not guess (a plugin can map Keras 2 weight names in "
            f"its layer's {RENAMES_ATTRIBUTE})"
        )
    if free:
        names = ", ".join(sorted(v.path for _, v in free.values())[:4])
        raise ModelFileError(f"{where}: the file stores no value for {shown(names)}")
    for pair in pairs:
        got, want = tuple(pair.stored.value.shape), tuple(pair.variable.shape)
        if got != want:
            raise ModelFileError(
                f"{where}: the stored {shown(pair.stored.label)} has shape {got}, the "
                f"Keras 3 variable {pair.variable.path} has {want}"
            )
    return pairs


def _keras3_leaves(model: Any) -> dict[tuple[str, ...], Any]:
    """Every layer that is not a model, by the names of its containing models and its own."""
    leaves: dict[tuple[str, ...], Any] = {}
    stack: list[tuple[tuple[str, ...], Any]] = [((), model)]
    while stack:
        prefix, container = stack.pop()
        if len(prefix) > MAX_NESTING:
            raise ModelFileError("the model nests models deeper than layerhub walks")
        for layer in container.layers:
            path = (*prefix, layer.name)
            if is_container(layer):
                stack.append((path, layer))
            else:
                leaves[path] = layer
    return leaves


def is_container(layer: Any) -> bool:
    """A model whose layers are listed (Functional, Sequential), not a layer with sublayers."""
    from keras.src.models.functional import Functional
    from keras.src.models.sequential import Sequential

    return isinstance(layer, (Functional, Sequential))


def _variables(layer: Any) -> list[tuple[set[tuple[str, ...]], Any]]:
    """Each weight of a layer with the names it can go by: the path of sublayer attributes,
    and the path of sublayer names, each ending with the variable's name."""
    found: dict[int, tuple[set[tuple[str, ...]], Any]] = {}
    stack: list[tuple[Any, tuple[str, ...], tuple[str, ...]]] = [(layer, (), ())]
    seen: set[int] = set()
    while stack:
        current, by_attribute, by_name = stack.pop()
        if id(current) in seen or len(by_attribute) > MAX_NESTING:
            continue
        seen.add(id(current))
        inner = list(_sublayers(current))
        theirs = {id(v) for _, sub in inner for v in sub.weights}
        for variable in current.weights:
            if id(variable) not in theirs:
                entry = found.setdefault(id(variable), (set(), variable))
                entry[0].update({(*by_attribute, variable.name), (*by_name, variable.name)})
        for attribute, sub in inner:
            stack.append((sub, (*by_attribute, *attribute), (*by_name, sub.name)))
    return list(found.values())


def _sublayers(layer: Any) -> Iterator[tuple[tuple[str, ...], Any]]:
    """The layers one layer holds, with the attribute (and list index) holding each."""
    from keras import Layer

    named: set[int] = set()
    for attribute, value in vars(layer).items():
        if attribute.startswith("_"):
            continue
        if isinstance(value, Layer):
            named.add(id(value))
            yield (attribute,), value
        elif isinstance(value, (list, tuple)):
            for index, item in enumerate(value):
                if isinstance(item, Layer):
                    named.add(id(item))
                    yield (attribute, str(index)), item
    for sub in layer._flatten_layers(include_self=False, recursive=False):
        if id(sub) not in named:
            yield (sub.name,), sub
