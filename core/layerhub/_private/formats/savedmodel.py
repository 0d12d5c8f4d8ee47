"""Keras 2 SavedModel directories: what ``model.save("dir")`` wrote before Keras 3.

The Keras config is the root node's metadata in ``keras_metadata.pb``; the weights are in the
TensorFlow checkpoint under ``variables/``, one ordered ``variables`` list per layer. Nothing in
the directory is executed: the TensorFlow graph (``saved_model.pb``) is never loaded. The model
is handed to Keras as the Keras 2 HDF5 layout, built in memory, so that the Keras 2 translation
and Keras' own legacy loader serve both formats alike.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any, Final

from layerhub._private.errors import ModelFileError
from layerhub._private.formats.model_file import OpenedModel
from layerhub._private.guard import checks, config_tree
from layerhub._private.guard.untrusted import read_bytes, regular_file, shown, shown_path
from layerhub._private.keras2.placement import (
    MAX_NESTING,
    Deferred,
    Keras2Source,
    StoredWeight,
    keras3_name,
)
from layerhub._private.registry.records import one_line

DESCRIPTION: Final = "Keras 2 SavedModel directory"
METADATA: Final = "keras_metadata.pb"
_LAYER: Final = "layer_with_weights-"
# A checkpoint is an index and a few data shards; more is no checkpoint Keras 2 wrote.
_MAX_CHECKPOINT_FILES: Final = 10_000


def open_savedmodel(directory: Path) -> OpenedModel:
    """Read the model and training configs of a Keras 2 SavedModel; weights are read later."""
    name = shown_path(directory)
    metadata = directory / METADATA
    if not os.path.lexists(metadata):
        raise ModelFileError(
            f"{name} is a TensorFlow SavedModel without Keras metadata (exported, not saved "
            "with model.save); Keras 3 can only serve it as keras.layers.TFSMLayer"
        )
    checks.check_size(directory, METADATA, regular_file(metadata, "model member").st_size)
    data = read_bytes(metadata, checks.MAX_MEMBER_BYTES, "model member")
    root = _root_metadata(data, name)
    config = root.get("model_config")
    if not isinstance(config, dict) or not isinstance(config.get("class_name"), str):
        raise ModelFileError(
            f"{name} holds a subclassed Keras 2 model with no config; layerhub cannot rebuild it: "
            "recreate the class in Keras 3 and load the weights from its checkpoint"
        )
    if root.get("is_graph_network") is False and config["class_name"] != "Sequential":
        raise ModelFileError(
            f"{name} holds a subclassed Keras 2 model ({shown(config['class_name'])}) whose "
            "layers exist only in its Python code, which the directory does not carry; "
            "layerhub cannot rebuild it: recreate the class in Keras 3 and load the weights from "
            "its checkpoint"
        )
    training = root.get("training_config")
    return OpenedModel(
        path=directory,
        description=DESCRIPTION,
        config=config,
        # Every reader takes a non-dict as no training config: this only tidies the record.
        training_config=training if isinstance(training, dict) else None,  # pragma: no mutate
        manifest=None,
        keras2=True,
        source=lambda new_config, new_training: contextlib.nullcontext(
            Keras2Source(
                file=name,
                config=_wrapped_layers_located(new_config or config),
                training=new_training or training,
                weights=lambda: stored_weights(directory, data),
            )
        ),
    )


def _root_metadata(data: bytes, name: str) -> dict[str, Any]:
    """The JSON metadata of the ``root`` node of a ``SavedMetadata`` protocol buffer."""
    try:
        for node in _fields(data, 1):
            fields = {n: v for n, v in _all_fields(node) if isinstance(v, bytes)}
            if fields.get(3) == b"root":
                found = json.loads(fields.get(5, b"{}").decode("utf-8"), object_hook=_untupled)
                if isinstance(found, dict):
                    return found
    except (ValueError, IndexError, RecursionError) as error:
        raise ModelFileError(
            f"{name}: its {METADATA} is corrupt: {shown(one_line(error))}"
        ) from None
    raise ModelFileError(f"{name}: its {METADATA} describes no model")


_WRAPPED: Final = ("layer", "forward_layer", "backward_layer", "cell")


def _wrapped_layers_located(config: dict[str, Any]) -> dict[str, Any]:
    """The config with the layers that wrappers hold marked as Keras' own where they are.

    A SavedModel's metadata stores a wrapped layer (``TimeDistributed(Dense)``,
    ``Bidirectional(LSTM)``) without the ``module`` the ``.h5`` format gives it, and Keras 3's
    wrappers find built-in classes only by module. Registered and custom objects still come
    first: Keras looks a name up among them before it reads the module. The config is read
    for this one load, so it is marked in place.
    """
    import keras

    for node in config_tree.objects(config):
        inner = node.get("config")
        for key in _WRAPPED:
            wrapped = inner.get(key) if isinstance(inner, dict) else None
            if (
                isinstance(wrapped, dict)
                and "module" not in wrapped
                and isinstance(wrapped.get("class_name"), str)
                and isinstance(getattr(keras.layers, wrapped["class_name"], None), type)
            ):
                wrapped["module"] = "keras.layers"
    return config


def _untupled(node: dict[str, Any]) -> Any:
    # SavedModel metadata encodes tuples as {"class_name": "__tuple__", "items": [...]}; the
    # HDF5 format, which the rest of the Keras 2 path reads, wrote plain lists.
    if node.get("class_name") == "__tuple__" and isinstance(node.get("items"), list):
        return node["items"]
    return node


def _all_fields(data: bytes) -> Iterator[tuple[int, int | bytes]]:
    """The (field number, value) pairs of one protocol-buffer message, in wire order."""
    position = 0
    while position < len(data):
        key, position = _varint(data, position)
        number, wire = key >> 3, key & 7
        value: int | bytes
        if wire == 0:
            value, position = _varint(data, position)
        elif wire == 2:
            size, position = _varint(data, position)
            value, position = data[position : position + size], position + size
            if position > len(data):
                raise ValueError("a field runs past the end of the message")
        elif wire in (1, 5):
            width = 8 if wire == 1 else 4
            value, position = data[position : position + width], position + width
        else:
            raise ValueError(f"unsupported wire type {wire}")
        yield number, value


def _fields(data: bytes, number: int) -> Iterator[bytes]:
    return (
        value for field, value in _all_fields(data) if field == number and isinstance(value, bytes)
    )


def _varint(data: bytes, position: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, position
        shift += 7
        if shift > 63:  # pragma: no mutate (shift steps by 7: 63 and 64 stop at 70 alike)
            raise ValueError("a varint longer than 64 bits")


def layer_names(data: bytes) -> dict[int, str]:
    """The name of every layer node of ``keras_metadata.pb``, by checkpoint node id.

    The metadata's node ids are the checkpoint object graph's: they say which layer each
    checkpoint node is, under the name Keras 2 gave it.
    """
    names: dict[int, str] = {}
    for node in _fields(data, 1):
        fields = dict(_all_fields(node))
        identifier, metadata = fields.get(4), fields.get(5)
        if not (isinstance(identifier, bytes) and identifier.startswith(b"_tf_keras")):
            continue
        try:
            name = json.loads(metadata).get("name") if isinstance(metadata, bytes) else None
        except (ValueError, AttributeError):
            name = None
        node_id = fields.get(2, 0)
        if isinstance(name, str) and isinstance(node_id, int):
            names[node_id] = keras3_name(name)
    return names


def stored_weights(directory: Path, metadata: bytes) -> list[StoredWeight]:
    """Every weight of the checkpoint with the layer path and attribute that identify it."""
    try:
        import tensorflow as tf
        from tensorflow.core.protobuf import trackable_object_graph_pb2
    except ImportError:
        raise ModelFileError(
            f"{shown_path(directory)}: reading a SavedModel's variables needs TensorFlow "
            "(pip install tensorflow-cpu), whatever the Keras backend"
        ) from None
    try:
        # TensorFlow would block on a FIFO or read a device: every file it opens is checked.
        for entry in sorted((directory / "variables").iterdir())[:_MAX_CHECKPOINT_FILES]:
            regular_file(entry, "model member")
        reader = tf.train.load_checkpoint(os.fspath(directory / "variables" / "variables"))
        graph = trackable_object_graph_pb2.TrackableObjectGraph()
        graph.ParseFromString(reader.get_tensor("_CHECKPOINTABLE_OBJECT_GRAPH"))
        walk = _CheckpointWalk(graph, layer_names(metadata), shown_path(directory))
        shapes = reader.get_variable_to_shape_map()
        name = shown_path(directory)
        return [
            StoredWeight(layer, keys, Deferred(shapes[key], partial(reader.get_tensor, key), name))
            for layer, keys, key in walk.weights()
        ]
    except ModelFileError:
        raise
    except Exception as error:  # protobuf, TensorFlow and graph damage alike
        raise ModelFileError(
            f"{shown_path(directory)}: its variables cannot be read: {shown(one_line(error))}"
        ) from error


_LAYER_INDEX: Final = re.compile(r"layer-\d+")
# Children every Keras 2 layer node has that are bookkeeping, not the layer's own weights.
_BOOKKEEPING: Final = frozenset(
    {
        "variables",
        "trainable_variables",
        "non_trainable_variables",
        "regularization_losses",
        "keras_api",
        "layers",
        "metrics",
        "layer_regularization_losses",
        "layer_metrics",
        "states",
        "optimizer",
    }
)


class _CheckpointWalk:
    """The checkpoint object graph read as Keras 2 built it: models list their layers as
    ``layer-<i>`` children; a layer reaches its variables and sublayers by attribute."""

    def __init__(self, graph: Any, names: dict[int, str], file: str) -> None:
        self.nodes = graph.nodes
        self.names = names
        self.file = file

    def children(self, node: int) -> list[tuple[str, int]]:
        return [(c.local_name, c.node_id) for c in self.nodes[node].children]

    def value_key(self, node: int) -> str | None:
        for attribute in self.nodes[node].attributes:
            if attribute.name == "VARIABLE_VALUE":
                return str(attribute.checkpoint_key)
        return None

    def is_container(self, node: int) -> bool:
        return any(_LAYER_INDEX.fullmatch(name) for name, _ in self.children(node))

    def weights(self) -> list[tuple[tuple[str, ...], tuple[tuple[str, ...], ...], str]]:
        """(layer path, weight keys, checkpoint key) of every weight of the model."""
        found: list[tuple[tuple[str, ...], tuple[tuple[str, ...], ...], str]] = []
        reached: set[int] = set()
        stack: list[tuple[int, tuple[str, ...]]] = [(0, ())]
        while stack:
            container, path = stack.pop()
            if len(path) > MAX_NESTING:
                raise ModelFileError(f"{self.file}: its models nest deeper than layerhub walks")
            for local, child in self.children(container):
                if not _LAYER_INDEX.fullmatch(local):
                    continue
                name = self.names.get(child)
                if name is None:
                    raise ModelFileError(
                        f"{self.file}: checkpoint node {shown(local)} is a layer its Keras "
                        "metadata does not name; the weights cannot be placed by identity"
                    )
                if self.is_container(child):
                    stack.append((child, (*path, name)))
                    continue
                for node, keys in self.leaf(child).items():
                    key = self.value_key(node)
                    if key is not None:
                        reached.add(node)
                        found.append(((*path, name), tuple(sorted(keys, key=len)), key))
        every = dict(self.children(0)).get("variables")
        listed = {node for _, node in self.children(every)} if every is not None else set()
        if listed - reached:
            raise ModelFileError(
                f"{self.file}: {len(listed - reached)} of its {len(listed)} variables belong "
                "to no layer its metadata names; the weights cannot be placed by identity"
            )
        return found

    def leaf(self, layer: int) -> dict[int, set[tuple[str, ...]]]:
        """The variables of one layer (and its sublayers), each with the names it goes by."""
        found: dict[int, set[tuple[str, ...]]] = {}
        stack: list[tuple[int, tuple[str, ...], tuple[str, ...]]] = [(layer, (), ())]
        seen: set[int] = set()
        while stack:
            node, by_attribute, by_name = stack.pop()
            if node in seen or len(by_attribute) > MAX_NESTING:
                continue
            seen.add(node)
            is_layer = node in self.names
            for local, child in self.children(node):
                if local in _BOOKKEEPING or local.startswith("_") or (is_layer and local.isdigit()):
                    continue
                if self.value_key(child) is not None:
                    found.setdefault(child, set()).update(
                        {(*by_attribute, local), (*by_name, local)}
                    )
                elif not _LAYER_INDEX.fullmatch(local):
                    named = self.names.get(child, local)
                    stack.append((child, (*by_attribute, local), (*by_name, named)))
        return found
