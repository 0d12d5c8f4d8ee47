"""Edges of reading model files: Keras' own functions in a foreign form, hand-registered names,
Hub fetch errors, and the overlay behind a replaced archive member."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import _hardening as H
import keras
import numpy as np
import pytest

import layerhub
from layerhub import MissingPluginError, ModelFileError
from layerhub._private.formats.zip_view import _Overlay
from layerhub._private.registry import resolve


def test_keras_functions_saved_as_builtins_need_no_plugin(tmp_path: Path) -> None:
    # Keras resolves {"module": "builtins", "class_name": "function", "config": "relu"} from its
    # own modules; layerhub must not call such a name missing.
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(2, activation="relu", name="dense")(inputs))
    path = layerhub.save_model(model, tmp_path / "m.keras")
    members = H.read_members(path)
    config = json.loads(members["config.json"])
    (dense,) = [layer for layer in config["config"]["layers"] if layer["name"] == "dense"]
    assert dense["config"]["activation"] == "relu"
    dense["config"]["activation"] = {
        "module": "builtins",
        "class_name": "function",
        "config": "relu",
        "registered_name": "function",
    }
    H.write_members(path, {**members, "config.json": json.dumps(config).encode()})
    loaded = layerhub.load_model(path)
    x = np.array([[-1.0, 0.5, 2.0]], "float32")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def test_a_missing_hand_registered_name_is_named_and_explained(tmp_path: Path) -> None:
    path = layerhub.save_model(H.scale_model(), tmp_path / "m.keras")
    members = H.read_members(path)
    text = members["config.json"].decode().replace("layerhub_scale>Scale", "mine>Thing")
    claim = {"objects": {"mine>Thing": {"distribution": None, "version": None}}}
    H.write_members(
        path, {**members, "config.json": text.encode()}, H.COMMENT_PREFIX + H.dumps(claim)
    )
    with pytest.raises(MissingPluginError) as caught:
        layerhub.load_model(path)
    assert caught.value.names == ("mine>Thing",)
    assert caught.value.pip_command is None
    assert str(caught.value) == (
        "the model needs mine>Thing, which neither Keras nor any installed layerhub plugin "
        "provides; mine>Thing was registered by hand when the file was saved (no distribution "
        "provides it); "
        f"{resolve.HINT}"
    )


def test_hub_fetch_errors_are_cut_at_300_characters(monkeypatch: pytest.MonkeyPatch) -> None:
    huggingface_hub = pytest.importorskip("huggingface_hub")

    def snapshot_download(**kwargs: object) -> str:
        raise OSError("x" * 500 + "\nsecond line")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    with pytest.raises(ModelFileError) as caught:
        layerhub.load_model("hf://someone/big")
    error = "OSError: " + "x" * 500
    assert str(caught.value) == f"cannot fetch hf://someone/big: {error[:300]}..."


def overlay(tmp_path: Path, content: bytes, base: int) -> _Overlay:
    path = tmp_path / "archive"
    path.write_bytes(content)
    return _Overlay(path, base)


READ_ONLY = "^the original archive is read-only$"


def test_writes_below_the_overlay_base_are_refused_with_one_message(tmp_path: Path) -> None:
    with overlay(tmp_path, b"0123456789", 4) as view:
        view.seek(2)
        with pytest.raises(OSError, match=READ_ONLY):
            view.write(b"x")
        with pytest.raises(OSError, match=READ_ONLY):
            view.truncate(3)
        view.seek(0)
        assert view.read() == b"0123456789"


def test_an_original_that_shrinks_gives_a_short_read_not_overlay_bytes(tmp_path: Path) -> None:
    # Bytes below the base come only from the file: if another process truncates it, reading
    # there returns what is left, never bytes of the in-memory tail.
    view: Any
    with overlay(tmp_path, b"0123456789", 6) as view:
        os.truncate(tmp_path / "archive", 3)
        view.seek(0)
        assert view.read(8) == b"012"
        assert view.tell() == 3
