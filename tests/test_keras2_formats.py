"""Keras 2 SavedModel directories and ``.h5`` files made by hand: what layerhub reads of them.

The files here are written byte by byte (the ``keras_metadata.pb`` protocol buffer, HDF5
attributes with h5py, TensorFlow checkpoints of plain variables), so the malformed ones need no
tf-keras; tests/test_legacy_h5.py loads the files tf-keras itself wrote.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

import layerhub
from layerhub._private.cli import command
from layerhub._private.guard.checks import MAX_MEMBER_BYTES

# -- helpers ---------------------------------------------------------------------------------------


def long_dir(tmp_path: Path) -> Path:
    """A directory whose path is longer than the 400 characters a message shows of a path."""
    directory = tmp_path.joinpath(*(letter * 120 for letter in "abcd"))
    directory.mkdir(parents=True)
    assert len(str(directory)) > 400
    return directory


def shown_path(path: Path) -> str:
    """``path`` as a message shows it: its first 400 characters and an ellipsis if longer."""
    text = str(path)
    return text if len(text) <= 400 else text[:400] + "..."


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        if not value:
            out.append(low)
            return bytes(out)
        out.append(low | 0x80)


def tag(number: int, wire: int) -> bytes:
    return varint(number << 3 | wire)


def length_delimited(number: int, payload: bytes) -> bytes:
    return tag(number, 2) + varint(len(payload)) + payload


def node(path: str, metadata: Any, *, node_id: int = 0) -> bytes:
    """One ``SavedObject`` of a ``SavedMetadata``: node_id 2, node_path 3, identifier 4,
    metadata 5 (JSON text), version 6; proto3 leaves a zero node_id out, as Keras 2 did."""
    fields = tag(2, 0) + varint(node_id) if node_id else b""
    fields += length_delimited(3, path.encode()) + length_delimited(4, b"_tf_keras_model")
    if metadata is not None:
        fields += length_delimited(5, json.dumps(metadata).encode())
    return fields + length_delimited(6, b"\x08\x02\x10\x01")


def saved_metadata(*nodes: bytes) -> bytes:
    return b"".join(length_delimited(1, n) for n in nodes)


def dense_config(count: int, *, width: int = 2) -> dict[str, Any]:
    """A Keras 2 Sequential config: an input of ``width`` then ``count`` Dense layers."""
    layers: list[dict[str, Any]] = [
        {
            "class_name": "InputLayer",
            "config": {"batch_input_shape": [None, width], "dtype": "float32", "name": "x"},
        }
    ]
    layers += [
        {
            "class_name": "Dense",
            "config": {
                "name": f"dense_{i}",
                "trainable": True,
                "dtype": "float32",
                "units": width,
                "activation": "linear",
                "use_bias": True,
            },
        }
        for i in range(count)
    ]
    return {"class_name": "Sequential", "config": {"name": "sequential", "layers": layers}}


def root_metadata(config: Any = None, **extra: Any) -> dict[str, Any]:
    root: dict[str, Any] = {"class_name": "Sequential", "is_graph_network": True}
    if config is not None:
        root["model_config"] = config
    return root | {"keras_version": "2.15.0", "backend": "tensorflow"} | extra


def write_savedmodel(directory: Path, metadata: bytes | dict[str, Any]) -> Path:
    """A SavedModel directory: an (empty) graph and the given ``keras_metadata.pb``."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "saved_model.pb").write_bytes(b"")
    if isinstance(metadata, dict):
        metadata = saved_metadata(node("root", metadata))
    (directory / "keras_metadata.pb").write_bytes(metadata)
    return directory


def refusal(path: Path) -> str:
    with pytest.raises(layerhub.ModelFileError) as caught:
        layerhub.load_model(path)
    message = str(caught.value)
    assert "\n" not in message
    return message


def inspected(path: Path, capsys: pytest.CaptureFixture[str]) -> list[str]:
    assert command.main(["inspect", str(path)]) == 0
    return capsys.readouterr().out.splitlines()


# -- Keras 2 SavedModel: keras_metadata.pb -------------------------------------------------------


def test_savedmodel_without_keras_metadata_names_the_shortened_path(tmp_path: Path) -> None:
    directory = long_dir(tmp_path)
    (directory / "saved_model.pb").write_bytes(b"")
    assert refusal(directory) == (
        f"{shown_path(directory)} is a TensorFlow SavedModel without Keras metadata (exported, "
        "not saved with model.save); Keras 3 can only serve it as keras.layers.TFSMLayer"
    )


def test_oversized_keras_metadata_is_refused_unread(tmp_path: Path) -> None:
    directory = write_savedmodel(tmp_path / "big", b"")
    with (directory / "keras_metadata.pb").open("wb") as big:
        big.truncate(MAX_MEMBER_BYTES + 1)  # sparse: refused by its size, never read
    assert refusal(directory) == (
        f"{directory}: its keras_metadata.pb is {MAX_MEMBER_BYTES + 1} bytes, above layerhub's "
        f"limit of {MAX_MEMBER_BYTES} bytes; refusing to read it (a damaged or hostile file?)"
    )


@pytest.mark.parametrize(
    ("metadata", "reason"),
    [
        (b"\x0a\x05ab", "a field runs past the end of the message"),
        (b"\x0f", "unsupported wire type 7"),
        (b"\x80" * 10 + b"\x01", "a varint longer than 64 bits"),  # 11 bytes: over 64 bits
        (b"\x0a\x01\x10", "IndexError: index out of range"),  # a varint cut short
    ],
    ids=["past-end", "wire-type", "long-varint", "cut-varint"],
)
def test_corrupt_keras_metadata_says_why_in_one_line(
    tmp_path: Path, metadata: bytes, reason: str
) -> None:
    directory = write_savedmodel(long_dir(tmp_path), metadata)
    detail = reason if reason.startswith("IndexError") else f"ValueError: {reason}"
    assert refusal(directory) == (
        f"{shown_path(directory)}: its keras_metadata.pb is corrupt: {detail}"
    )


@pytest.mark.parametrize(
    "metadata",
    [
        b"",
        saved_metadata(node("root.layer-0", root_metadata(dense_config(1)), node_id=1)),
        saved_metadata(node("root", ["a", "list"])),
    ],
    ids=["empty", "no-root-node", "root-not-an-object"],
)
def test_keras_metadata_without_a_root_model_describes_no_model(
    tmp_path: Path, metadata: bytes
) -> None:
    directory = write_savedmodel(long_dir(tmp_path), metadata)
    assert (
        refusal(directory) == f"{shown_path(directory)}: its keras_metadata.pb describes no model"
    )


@pytest.mark.parametrize(
    "root",
    [
        node("root", None),  # no metadata field at all: an empty object
        node("root", {}),
        node("root", root_metadata(["not", "a", "config"])),
        node("root", root_metadata({"config": {"layers": []}})),  # no class_name
    ],
    ids=["no-metadata", "empty-metadata", "list-config", "no-class-name"],
)
def test_savedmodel_without_a_model_config_is_refused(tmp_path: Path, root: bytes) -> None:
    directory = write_savedmodel(long_dir(tmp_path), saved_metadata(root))
    assert refusal(directory) == (
        f"{shown_path(directory)} holds a subclassed Keras 2 model with no config; layerhub "
        "cannot rebuild it: recreate the class in Keras 3 and load the weights from its "
        "checkpoint"
    )


def test_subclassed_savedmodel_names_its_class(tmp_path: Path) -> None:
    config = {"class_name": "MyModel", "config": {"name": "my_model"}}
    directory = write_savedmodel(
        long_dir(tmp_path), root_metadata(config, class_name="MyModel", is_graph_network=False)
    )
    assert refusal(directory) == (
        f"{shown_path(directory)} holds a subclassed Keras 2 model (MyModel) whose layers exist "
        "only in its Python code, which the directory does not carry; layerhub cannot rebuild "
        "it: recreate the class in Keras 3 and load the weights from its checkpoint"
    )


def test_inspect_names_a_savedmodel_directory_and_its_format(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Keras 2 wrote is_graph_network false for a Sequential model built without an input shape:
    # its layers are in its config all the same.
    directory = write_savedmodel(
        tmp_path / "seq", root_metadata(dense_config(1), is_graph_network=False)
    )
    assert inspected(directory, capsys) == [
        f"{directory}: Keras 2 SavedModel directory",
        "it uses only Keras built-in objects",
    ]


def test_keras_metadata_protocol_buffer_is_read_field_by_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A large model (metadata over 16 KiB: three-byte lengths), a node_id at the 64-bit limit,
    # fixed-width fields and a top-level field unknown to this version are all read past.
    root = root_metadata(dense_config(120))
    assert len(json.dumps(root)) > 1 << 14
    fixed = tag(7, 1) + b"\x07" * 8 + tag(8, 5) + b"\x07" * 4
    first = tag(2, 0) + varint(2**64 - 1) + fixed + node("root.layer-0", {}, node_id=1)
    metadata = (
        length_delimited(9, b"\xff\xff")
        + length_delimited(1, first)
        + length_delimited(1, fixed + node("root", root))
    )
    directory = write_savedmodel(tmp_path / "large", metadata)
    assert inspected(directory, capsys) == [
        f"{directory}: Keras 2 SavedModel directory",
        "it uses only Keras built-in objects",
    ]


def test_metadata_dict_holding_an_items_list_stays_a_dict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Keras 2 encoded tuples as {"class_name": "__tuple__", "items": [...]}; a dict that merely
    # has an "items" list is no tuple.
    root = root_metadata(dense_config(1), items=["kept"])
    directory = write_savedmodel(tmp_path / "items", root)
    assert inspected(directory, capsys)[0] == f"{directory}: Keras 2 SavedModel directory"


# -- Keras 2 SavedModel: variables ---------------------------------------------------------------


def test_reading_savedmodel_variables_without_tensorflow_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = write_savedmodel(long_dir(tmp_path), root_metadata(dense_config(1)))
    monkeypatch.setitem(sys.modules, "tensorflow", None)  # import tensorflow fails
    assert refusal(directory) == (
        f"{shown_path(directory)}: reading a SavedModel's variables needs TensorFlow "
        "(pip install tensorflow-cpu), whatever the Keras backend"
    )


# -- Keras 2 .h5 files -----------------------------------------------------------------------------


def write_h5(path: Path, **attributes: Any) -> Path:
    with h5py.File(path, "w", libver="latest") as h5:  # dense attribute storage: large values
        for key, value in attributes.items():
            h5.attrs[key] = value
        h5.create_group("model_weights")
    return path


def test_file_without_the_hdf5_signature_is_refused(tmp_path: Path) -> None:
    path = long_dir(tmp_path) / "model.h5"
    path.write_bytes(b"PK\x03\x04 a zip renamed")
    assert refusal(path) == (
        f"{shown_path(path)} is not an HDF5 file (corrupt, truncated or renamed)"
    )


def test_damaged_hdf5_file_is_corrupt(tmp_path: Path) -> None:
    path = long_dir(tmp_path) / "model.h5"
    path.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00" * 64)
    message = refusal(path)
    assert message.startswith(f"{shown_path(path)} is corrupt: OSError: "), message


def test_weights_only_h5_holds_no_model_config(tmp_path: Path) -> None:
    path = write_h5(long_dir(tmp_path) / "weights.h5", keras_version="2.15.0")
    assert refusal(path) == f"{shown_path(path)} holds no model config (a weights-only file?)"


def test_h5_config_that_is_no_serialised_object_is_refused(tmp_path: Path) -> None:
    path = write_h5(long_dir(tmp_path) / "list.h5", model_config="[1, 2]")
    assert refusal(path) == (
        f"{shown_path(path)} is not a Keras model: its config holds no serialised object"
    )


@pytest.mark.parametrize("key", ["model_config", "training_config"])
def test_h5_config_attribute_that_is_no_text_is_refused(tmp_path: Path, key: str) -> None:
    attributes: dict[str, Any] = {"model_config": json.dumps(dense_config(1)), key: 7}
    path = write_h5(long_dir(tmp_path) / "number.h5", **attributes)
    what = key.replace("_", " ")
    assert refusal(path) == f"{shown_path(path)}: its {what} is a int64, not JSON text"


@pytest.mark.parametrize("key", ["model_config", "training_config"])
def test_h5_config_attribute_that_is_no_json_is_refused(tmp_path: Path, key: str) -> None:
    attributes: dict[str, Any] = {"model_config": json.dumps(dense_config(1)), key: "{oops"}
    path = write_h5(long_dir(tmp_path) / "text.h5", **attributes)
    what = key.replace("_", " ")
    assert refusal(path) == (
        f"{shown_path(path)}: its {what} is not JSON: JSONDecodeError: Expecting property name "
        "enclosed in double quotes: line 1 column 2 (char 1)"
    )


def test_oversized_h5_config_attribute_is_refused(tmp_path: Path) -> None:
    path = long_dir(tmp_path) / "big.h5"
    write_h5(path, model_config=np.bytes_(b" " * (MAX_MEMBER_BYTES + 1)))
    assert refusal(path) == (
        f"{shown_path(path)}: its model_config is {MAX_MEMBER_BYTES + 1} bytes, above "
        f"layerhub's limit of {MAX_MEMBER_BYTES} bytes; refusing to read it (a damaged or "
        "hostile file?)"
    )


def test_inspect_names_an_h5_file_and_its_format(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_h5(tmp_path / "dense.h5", model_config=json.dumps(dense_config(1)))
    assert inspected(path, capsys) == [
        f"{path}: Keras 2 HDF5 file",
        "it uses only Keras built-in objects",
    ]
