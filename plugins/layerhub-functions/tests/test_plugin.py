"""The functions as a layerhub plugin: registration, and a fresh-interpreter round trip."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest
from layerhub_functions import channel_slice, complex_scale

import layerhub
from layerhub import registry


def test_registered_under_the_plugin_package_and_found_by_the_registry() -> None:
    for fn in (channel_slice, complex_scale):
        name = f"layerhub_functions>{fn.__name__}"
        assert keras.saving.get_registered_name(fn) == name
        assert keras.saving.get_registered_object(name) is fn
        assert registry.get(name) is fn
        assert registry.get(fn.__name__) is fn
    assert registry.legacy_objects(["channel_slice", "complex_scale"]) == {
        "channel_slice": channel_slice,
        "complex_scale": complex_scale,
    }
    assert [r for r in registry.problems() if r.plugin == "layerhub_functions"] == []


def model_using_both() -> keras.Model:
    inputs = keras.Input((4, 3))
    first = keras.layers.Lambda(channel_slice, arguments={"index": 0})(inputs)
    second = keras.layers.Lambda(channel_slice, arguments={"index": 1})(inputs)
    real, imag = keras.layers.Lambda(complex_scale, arguments={"real": 0.6, "imag": -0.8})(
        [first, second]
    )
    outputs = keras.layers.Dense(2)(keras.layers.Concatenate()([real, imag]))
    return keras.Model(inputs, [outputs, imag])


def test_saved_model_names_the_functions_and_holds_no_bytecode(tmp_path: Path) -> None:
    path = layerhub.save_model(model_using_both(), tmp_path / "m.keras")
    with zipfile.ZipFile(path) as archive:
        config = archive.read("config.json").decode()
        # The layerhub manifest is the archive's comment: "layerhub-manifest:" and JSON.
        manifest = json.loads(archive.comment.partition(b":")[2])
    assert "__lambda__" not in config
    assert set(manifest["objects"]) == {
        "layerhub_functions>channel_slice",
        "layerhub_functions>complex_scale",
    }
    assert '"arguments": {"index": 1}' in config


@pytest.mark.slow
def test_fresh_interpreter_loads_it_under_safe_mode_without_custom_objects(
    tmp_path: Path,
) -> None:
    from layerhub.testing import assert_roundtrip

    x = np.random.default_rng(0).normal(size=(3, 4, 3)).astype("float32")
    # The child calls layerhub.load_model(path): safe_mode on (the default), no custom_objects.
    assert_roundtrip(model_using_both(), x, tmp_path)
