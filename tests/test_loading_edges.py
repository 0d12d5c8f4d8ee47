"""Edges of the loading pipeline: exact one-line messages, config-tree walks, needed names."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import pytest
from _hardening import read_members, write_members

import layerhub
from layerhub import MissingPluginError, ModelFileError, UnsafeModelError
from layerhub._private import loading
from layerhub._private.formats.manifest import Entry
from layerhub._private.guard import config_tree
from layerhub._private.registry.resolve import COMPILE_HINT, missing_entry


def write_config(path: Path, config: dict[str, Any]) -> Path:
    """A ``.keras`` archive holding only ``config.json``: enough for everything before Keras."""
    write_members(path, {"config.json": json.dumps(config).encode()})
    return path


def sequential_with(node: dict[str, Any]) -> dict[str, Any]:
    """A Sequential config whose one Dense layer has ``node`` as its activation."""
    dense = {
        "module": "keras.layers",
        "class_name": "Dense",
        "config": {"name": "dense", "units": 1, "activation": node},
    }
    return {"module": "keras", "class_name": "Sequential", "config": {"layers": [dense]}}


def function_node(name: str) -> dict[str, Any]:
    return {"module": "mine", "class_name": "function", "config": name, "registered_name": "x"}


# -- locating the file ---------------------------------------------------------------------------


def test_a_suffix_in_the_wrong_case_names_the_lower_case_one(tmp_path: Path) -> None:
    path = tmp_path / "m.Keras"
    path.write_bytes(b"")
    with pytest.raises(ModelFileError) as caught:
        layerhub.load_model(path)
    assert str(caught.value) == (
        f"{path}: Keras recognises only the lower-case suffix '.keras'; rename the file"
    )


@pytest.mark.parametrize(("name", "shown"), [("model.txt", ".txt"), ("model", "(none)")])
def test_an_unsupported_suffix_is_named_in_the_message(
    tmp_path: Path, name: str, shown: str
) -> None:
    path = tmp_path / name
    path.write_bytes(b"hello")
    with pytest.raises(ModelFileError) as caught:
        layerhub.load_model(path)
    assert str(caught.value) == (
        f"{path}: unsupported model file type {shown!r}; expected .keras or .h5"
    )


def test_a_hub_fetch_error_is_cut_at_300_characters(monkeypatch: pytest.MonkeyPatch) -> None:
    huggingface_hub = pytest.importorskip("huggingface_hub")

    def snapshot_download(**kwargs: object) -> str:
        raise OSError("x" * 400)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    with pytest.raises(ModelFileError) as caught:
        layerhub.load_model("hf://someone/broken")
    detail = ("OSError: " + "x" * 400)[:300] + "..."
    assert str(caught.value) == f"cannot fetch hf://someone/broken: {detail}"


def test_an_unreadable_file_names_the_file_and_the_os_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_config(tmp_path / "m.keras", {"class_name": "Sequential"})

    def unreadable(file: Path) -> Any:
        raise PermissionError(13, "Permission denied")

    # Running as root, file modes cannot make a file unreadable; the opener fails instead.
    monkeypatch.setitem(loading.FORMATS, "keras", unreadable)
    with pytest.raises(ModelFileError) as caught:
        layerhub.load_model(path)
    assert str(caught.value) == f"cannot read {path}: PermissionError: [Errno 13] Permission denied"
    assert isinstance(caught.value.__cause__, PermissionError)


# -- checks before anything is built -------------------------------------------------------------


def nested_dicts(levels: int) -> dict[str, Any]:
    node: dict[str, Any] = {}
    for _ in range(levels - 1):
        node = {"a": node}
    return node


def test_a_config_nested_deeper_than_the_limit_is_refused(tmp_path: Path) -> None:
    # The top-level object is one level, the 512 dictionaries in it 512 more.
    path = write_config(
        tmp_path / "deep.keras", {"class_name": "Sequential", "config": nested_dicts(512)}
    )
    with pytest.raises(ModelFileError) as caught:
        layerhub.load_model(path)
    assert str(caught.value) == (
        f"{path}: its config nests deeper than 512 levels; "
        "refusing to rebuild it (a damaged or hostile file?)"
    )


def test_a_config_at_the_depth_limit_reaches_keras(tmp_path: Path) -> None:
    path = write_config(
        tmp_path / "deep.keras", {"class_name": "Sequential", "config": nested_dicts(511)}
    )
    with pytest.raises(ModelFileError, match="could not be rebuilt by Keras"):
        layerhub.load_model(path)


def test_depth_counts_dictionaries_and_lists_but_not_scalars() -> None:
    assert config_tree.depth(7) == 0
    assert config_tree.depth("text") == 0
    assert config_tree.depth({"a": {"b": 1}}) == 2
    assert config_tree.depth([{"a": [1]}]) == 3


def test_an_anonymous_keras3_lambda_is_refused_with_the_keras3_explanation(
    tmp_path: Path,
) -> None:
    lam = {"class_name": "__lambda__", "config": {"code": "AAAA", "defaults": None}}
    path = write_config(
        tmp_path / "lam.keras", {"class_name": "Sequential", "config": {"layers": [lam]}}
    )
    with pytest.raises(UnsafeModelError) as caught:
        layerhub.load_model(path)
    assert str(caught.value) == (
        f"{path}: a layer holds Python bytecode, which would run as code while the model "
        "loads, so safe_mode refuses it (Keras saves Python lambdas this way); if you trust "
        "the file, load it with safe_mode=False, and to avoid this in future rebuild the "
        "Lambda with a function a plugin registers and save it as .keras"
    )


# -- which names a file needs --------------------------------------------------------------------


def test_a_function_saved_by_name_is_missing_under_that_name(tmp_path: Path) -> None:
    path = write_config(tmp_path / "m.keras", sequential_with(function_node("my_act")))
    with pytest.raises(MissingPluginError) as caught:
        layerhub.load_model(path)
    assert caught.value.names == ("my_act",)


def test_a_registered_name_is_needed_even_on_a_node_claiming_a_keras_module(
    tmp_path: Path,
) -> None:
    node = {"module": "keras.activations", "class_name": "Thing", "registered_name": "mypkg>Thing"}
    path = write_config(tmp_path / "m.keras", sequential_with(node))
    with pytest.raises(MissingPluginError) as caught:
        layerhub.load_model(path)
    assert caught.value.names == ("mypkg>Thing",)


@pytest.mark.parametrize("name", ["__dunder__", ""])
def test_dunder_and_empty_function_names_are_left_to_keras(tmp_path: Path, name: str) -> None:
    path = write_config(tmp_path / "m.keras", sequential_with(function_node(name)))
    with pytest.raises(ModelFileError, match="could not be rebuilt by Keras"):
        layerhub.load_model(path)


def dense_file(path: Path, edit: Callable[[dict[str, Any]], None]) -> Path:
    """A real one-Dense model saved by Keras at ``path``, its config.json changed by ``edit``."""
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, name="out")])
    keras.saving.save_model(model, path)
    members = read_members(path)
    config = json.loads(members["config.json"])
    edit(config)
    write_members(path, {**members, "config.json": json.dumps(config).encode()})
    return path


def compiled_file(tmp_path: Path) -> Path:
    """A real model whose compile_config names a loss nothing resolves."""

    def compile_with_my_loss(config: dict[str, Any]) -> None:
        config["compile_config"] = {
            "optimizer": "sgd",
            "loss": {"module": "mine", "class_name": "function", "config": "my_loss"},
        }

    return dense_file(tmp_path / "compiled.keras", compile_with_my_loss)


def test_a_loss_only_compiling_needs_is_missing_with_the_compile_hint(tmp_path: Path) -> None:
    with pytest.raises(MissingPluginError) as caught:
        layerhub.load_model(compiled_file(tmp_path))
    assert caught.value.names == ("my_loss",)
    assert COMPILE_HINT in str(caught.value)


def test_compile_false_ignores_what_only_compiling_needs(tmp_path: Path) -> None:
    loaded = layerhub.load_model(compiled_file(tmp_path), compile=False)
    assert [layer.name for layer in loaded.layers] == ["out"]


def test_a_hand_registered_entry_keeps_its_name() -> None:
    assert missing_entry("mine>Twice", Entry(None, None)).name == "mine>Twice"


def test_inspect_lists_what_only_compiling_needs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from layerhub._private.cli.command import main

    status = main(["inspect", "--json", str(compiled_file(tmp_path))])
    report = json.loads(capsys.readouterr().out)
    assert [need["name"] for need in report["needs"]] == ["my_loss"]
    assert report["ok"] is False
    assert status != 0


@pytest.mark.parametrize(("name", "where"), [(5, "a layer"), ("lam", "layer 'lam'")])
def test_a_lambda_layer_is_named_only_by_a_string_name(
    tmp_path: Path, name: object, where: str
) -> None:
    layer = {
        "class_name": "Lambda",
        "config": {"name": name, "function": {"class_name": "__lambda__", "config": {}}},
    }
    path = write_config(
        tmp_path / "lam.keras", {"class_name": "Sequential", "config": {"layers": [layer]}}
    )
    with pytest.raises(UnsafeModelError) as caught:
        layerhub.load_model(path)
    assert str(caught.value).startswith(f"{path}: {where} holds Python bytecode in its function,")


def test_an_upgraded_config_reaches_keras_with_every_load_option(
    tmp_path: Path, site: Path
) -> None:
    """Keras gets compile, safe_mode and custom_objects also when a plugin rewrote the config."""
    import numpy as np

    from layerhub import Registry
    from layerhub.testing.fakes import write_upgrading_plugin

    def triple(x: Any) -> Any:  # local: only custom_objects can resolve it
        return x * 3.0

    write_upgrading_plugin(site, "layerhub_upgrading_edges")
    registry = Registry()
    shift = registry.get("Shift")
    inputs = keras.Input((2,))
    hidden = keras.layers.Lambda(lambda t: t * 2.0)(shift(offset=5.0)(inputs))
    model = keras.Model(inputs, keras.layers.Activation(triple)(hidden))
    model.compile(optimizer="sgd", loss="mse")
    path = layerhub.save_model(model, tmp_path / "s.keras", registry=registry)
    members = read_members(path)
    text = members["config.json"].decode().replace('"offset": 5.0', '"bias": 5.0')
    metadata = json.loads(members["metadata.json"])
    metadata["layerhub"] = {
        "objects": {
            "layerhub_upgrading_edges>Shift": {
                "distribution": "layerhub-upgrading-edges",
                "version": "1.0",
            }
        }
    }
    write_members(
        path,
        {**members, "config.json": text.encode(), "metadata.json": json.dumps(metadata).encode()},
    )
    options: dict[str, Any] = {
        "safe_mode": False,
        "registry": registry,
        "custom_objects": {"triple": triple},
    }
    compiled = layerhub.load_model(path, compile=True, **options)
    plain = layerhub.load_model(path, compile=False, **options)
    x = np.zeros((1, 2), "float32")
    np.testing.assert_allclose(compiled.predict(x, verbose=0), [[30.0, 30.0]])
    assert compiled.compiled
    assert not plain.compiled


def test_a_plugin_class_keras_does_not_know_is_handed_to_keras(
    tmp_path: Path, site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import numpy as np

    from layerhub import Registry
    from layerhub.testing.fakes import write_upgrading_plugin

    write_upgrading_plugin(site, "layerhub_handed_edges")
    saver = Registry()
    inputs = keras.Input((2,))
    model = keras.Model(inputs, saver.get("Shift")(offset=5.0)(inputs))
    path = layerhub.save_model(model, tmp_path / "s.keras", registry=saver)
    # As if Keras had never seen the plugin: only the registry can resolve the name now.
    monkeypatch.delitem(keras.saving.get_custom_objects(), "layerhub_handed_edges>Shift")
    monkeypatch.delitem(sys.modules, "layerhub_handed_edges")
    loaded = layerhub.load_model(path, registry=Registry())
    x = np.zeros((1, 2), "float32")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), [[5.0, 5.0]])


def test_a_function_named_like_a_keras_one_is_left_to_keras(tmp_path: Path) -> None:
    """A bare name Keras has a function for is never a missing plugin."""

    def relu_from_my_module(config: dict[str, Any]) -> None:
        dense = config["config"]["layers"][-1]
        dense["config"]["activation"] = {
            "module": "mine",
            "class_name": "function",
            "config": "relu",
        }

    path = dense_file(tmp_path / "relu.keras", relu_from_my_module)
    # Keras refuses the module it names, but layerhub must not report "relu" as missing.
    with pytest.raises(ModelFileError, match="could not be rebuilt by Keras"):
        layerhub.load_model(path)


def test_keras_deserialisation_errors_keep_their_cause_not_the_config(tmp_path: Path) -> None:
    # Keras puts the whole config first and the cause after it; the cause is what a user needs.
    def bad_units(config: dict[str, Any]) -> None:
        config["config"]["layers"][-1]["config"]["units"] = "many"

    path = dense_file(tmp_path / "units.keras", bad_units)
    with pytest.raises(layerhub.ModelFileError) as caught:
        layerhub.load_model(path)
    message = str(caught.value)
    assert "\n" not in message
    assert "config=" not in message
    assert "Exception encountered" not in message
    assert "units" in message.partition("could not be rebuilt by Keras: ")[2]
