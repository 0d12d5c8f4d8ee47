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
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

from layerhub._private import checks
from layerhub._private.errors import ModelFileError
from layerhub._private.model_file import OpenedModel
from layerhub._private.records import one_line
from layerhub._private.untrusted import shown, shown_path

DESCRIPTION: Final = "Keras 2 SavedModel directory"
METADATA: Final = "keras_metadata.pb"
_LAYER: Final = "layer_with_weights-"


def open_savedmodel(directory: Path) -> OpenedModel:
    """Read the model and training configs of a Keras 2 SavedModel; weights are read later."""
    name = shown_path(directory)
    metadata = directory / METADATA
    if not metadata.is_file():
        raise ModelFileError(
            f"{name} is a TensorFlow SavedModel without Keras metadata (exported, not saved "
            "with model.save); Keras 3 can only serve it as keras.layers.TFSMLayer"
        )
    checks.check_size(directory, METADATA, metadata.stat().st_size)
    root = _root_metadata(metadata.read_bytes(), name)
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
        source=lambda new_config, new_training: _as_hdf5(
            directory, new_config or config, new_training or training, root.get("keras_version")
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


def layer_weights(directory: Path) -> list[tuple[str, list[Any]]]:
    """(layer key, ordered weight arrays) of each layer with weights, in Keras 2's order."""
    try:
        import tensorflow as tf
        from tensorflow.core.protobuf import trackable_object_graph_pb2
    except ImportError:
        raise ModelFileError(
            f"{shown_path(directory)}: reading a SavedModel's variables needs TensorFlow "
            "(pip install tensorflow-cpu), whatever the Keras backend"
        ) from None
    try:
        reader = tf.train.load_checkpoint(os.fspath(directory / "variables" / "variables"))
        graph = trackable_object_graph_pb2.TrackableObjectGraph()
        graph.ParseFromString(reader.get_tensor("_CHECKPOINTABLE_OBJECT_GRAPH"))
        root = {child.local_name: child.node_id for child in graph.nodes[0].children}
        keys = sorted(
            (k for k in root if k.startswith(_LAYER)), key=lambda k: int(k[len(_LAYER) :])
        )
        layers = []
        for key in keys:
            children = {c.local_name: c.node_id for c in graph.nodes[root[key]].children}
            listed = graph.nodes[children["variables"]].children
            ordered = sorted(listed, key=lambda c: int(c.local_name))
            values = [reader.get_tensor(_checkpoint_key(graph.nodes[c.node_id])) for c in ordered]
            layers.append((key, values))
        return layers
    except (ValueError, KeyError, IndexError, tf.errors.OpError) as error:
        raise ModelFileError(
            f"{shown_path(directory)}: its variables cannot be read: {shown(one_line(error))}"
        ) from error


def _checkpoint_key(node: Any) -> str:
    for attribute in node.attributes:
        if attribute.name == "VARIABLE_VALUE":
            return str(attribute.checkpoint_key)
    raise KeyError("a listed variable has no saved value")


@contextlib.contextmanager
def _as_hdf5(
    directory: Path, config: dict[str, Any], training: Any, keras_version: Any
) -> Iterator[Any]:
    """The model in the Keras 2 HDF5 layout, in memory: what Keras' legacy loader reads."""
    import h5py
    import numpy as np

    with h5py.File(f"layerhub-{id(config)}.h5", "w", driver="core", backing_store=False) as h5:
        h5.attrs["model_config"] = json.dumps(config)
        if isinstance(training, dict):
            h5.attrs["training_config"] = json.dumps(training)
        h5.attrs["keras_version"] = str(keras_version or "2")
        h5.attrs["backend"] = "tensorflow"
        weights = h5.create_group("model_weights")
        layers = layer_weights(directory)
        weights.attrs["layer_names"] = np.array([k.encode() for k, _ in layers])
        for key, values in layers:
            group = weights.create_group(key)
            names = [f"weight_{i}" for i in range(len(values))]
            group.attrs["weight_names"] = np.array([n.encode() for n in names])
            for weight_name, value in zip(names, values, strict=True):
                group.create_dataset(weight_name, data=value)
        yield h5
