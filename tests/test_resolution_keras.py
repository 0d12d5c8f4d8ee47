"""Names resolve as Keras resolves them first (its packages, its registry), plugins next; a
training configuration Keras skips needs nothing. Each case is compared with Keras itself."""

from __future__ import annotations

import importlib.util
import json
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest

import layerhub
from layerhub import MissingPluginError
from layerhub._private.cli import command
from layerhub.testing import run_in_fresh_interpreter

# -- keras_hub ------------------------------------------------------------------------------------

SAVE_BERT = """
import sys
import keras, keras_hub, numpy as np

keras.utils.set_random_seed(0)
backbone = keras_hub.models.BertBackbone(
    vocabulary_size=30, num_layers=1, num_heads=2, hidden_dim=8, intermediate_dim=16,
    max_sequence_length=8,
)
inputs = {
    "token_ids": np.array([[2, 5, 7, 3, 0, 0, 0, 0], [2, 9, 1, 4, 6, 3, 0, 0]], "int32"),
    "segment_ids": np.zeros((2, 8), "int32"),
    "padding_mask": np.array([[1] * 4 + [0] * 4, [1] * 6 + [0] * 2], "int32"),
}
keras.saving.save_model(backbone, sys.argv[1])
outputs = backbone(inputs, training=False)
np.savez(sys.argv[2], **{f"in_{k}": v for k, v in inputs.items()},
         **{f"out_{k}": keras.ops.convert_to_numpy(v) for k, v in outputs.items()})
"""

LOAD_BERT = """
import json, sys
import keras, numpy as np
import layerhub

assert "keras_hub" not in sys.modules  # nothing but the file tells layerhub about keras_hub
model = layerhub.load_model(sys.argv[1])
data = np.load(sys.argv[2])
inputs = {k[3:]: data[k] for k in data.files if k.startswith("in_")}
outputs = model(inputs, training=False)
diffs = {k: float(np.max(np.abs(keras.ops.convert_to_numpy(v) - data["out_" + k])))
         for k, v in outputs.items()}
print(json.dumps({"type": type(model).__module__ + "." + type(model).__name__, "diffs": diffs}))
"""


@pytest.mark.slow
def test_a_keras_hub_model_saved_by_keras_loads_in_a_fresh_process(tmp_path: Path) -> None:
    if importlib.util.find_spec("keras_hub") is None:
        pytest.skip("keras_hub is not installed")
    path, data = tmp_path / "bert.keras", tmp_path / "bert.npz"
    run_in_fresh_interpreter(SAVE_BERT, str(path), str(data))
    result = run_in_fresh_interpreter(LOAD_BERT, str(path), str(data))
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["type"] == "keras_hub.src.models.bert.bert_backbone.BertBackbone"
    assert set(report["diffs"]) == {"sequence_output", "pooled_output"}
    assert max(report["diffs"].values()) <= 1e-6


def test_a_keras_package_name_that_does_not_exist_is_still_missing(tmp_path: Path) -> None:
    """Keras resolves keras_hub names by importing keras_hub; a class it lacks stays missing."""
    import zipfile

    inputs = keras.Input((3,))
    path = tmp_path / "m.keras"
    keras.Model(inputs, keras.layers.Dense(2)(inputs)).save(path)
    with zipfile.ZipFile(path) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    config = json.loads(members["config.json"])
    dense = config["config"]["layers"][1]
    dense.update(module="keras_hub.src.no_such_module", registered_name="keras_hub>NoSuchLayer")
    dense["class_name"] = "NoSuchLayer"
    members["config.json"] = json.dumps(config).encode()
    bad = tmp_path / "bad.keras"
    with zipfile.ZipFile(bad, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    with pytest.raises(TypeError, match="cannot be imported"):  # Keras' own refusal
        keras.saving.load_model(bad)
    with pytest.raises(MissingPluginError, match="keras_hub>NoSuchLayer"):
        layerhub.load_model(bad)


# -- compile configurations Keras skips ----------------------------------------------------------


@pytest.fixture
def keras_registry() -> Iterator[None]:
    from keras.src.saving import object_registration as registration

    objects = dict(registration.GLOBAL_CUSTOM_OBJECTS)
    names = dict(registration.GLOBAL_CUSTOM_NAMES)
    yield
    for table, saved in ((registration.GLOBAL_CUSTOM_OBJECTS, objects),
                         (registration.GLOBAL_CUSTOM_NAMES, names)):  # fmt: skip
        table.clear()
        table.update(saved)


def saved_with_a_loss_that_goes_away(tmp_path: Path, *, custom_compile: bool) -> Path:
    """A model compiled with a registered loss, saved; the loss is then unregistered."""
    from keras.src.saving import object_registration as registration

    @keras.saving.register_keras_serializable(package="Gone")
    def gone_loss(y_true: Any, y_pred: Any) -> Any:
        return keras.ops.mean(keras.ops.square(y_true - y_pred))

    class Base(keras.Model):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.dense = keras.layers.Dense(2)

        def call(self, x: Any) -> Any:
            return self.dense(x)

    if custom_compile:

        @keras.saving.register_keras_serializable(package="Mine")
        class CustomCompile(Base):
            def compile(self, *args: Any, **kwargs: Any) -> None:
                super().compile(*args, **kwargs)

        model: keras.Model = CustomCompile()
    else:

        @keras.saving.register_keras_serializable(package="Mine")
        class PlainCompile(Base):
            pass

        model = PlainCompile()
    model(np.zeros((1, 3), "float32"))
    model.compile(optimizer="adam", loss=gone_loss, metrics=[gone_loss])
    model.fit(np.ones((4, 3), "float32"), np.ones((4, 2), "float32"), epochs=1, verbose=0)
    path = tmp_path / f"custom_compile_{custom_compile}.keras"
    model.save(path)
    del registration.GLOBAL_CUSTOM_OBJECTS["Gone>gone_loss"]
    return path


def load_recording(load: Any, path: Path) -> tuple[Any, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = load(path)
    return model, [str(w.message) for w in caught]


def test_a_model_overriding_compile_loads_uncompiled_as_with_keras(
    tmp_path: Path, keras_registry: None
) -> None:
    path = saved_with_a_loss_that_goes_away(tmp_path, custom_compile=True)
    reference, said_by_keras = load_recording(keras.saving.load_model, path)
    loaded, said = load_recording(layerhub.load_model, path)
    skipped = [m for m in said_by_keras if "`compile()` was not called" in m]
    assert skipped, said_by_keras  # the reference: Keras warns and does not compile
    assert [m for m in said if "`compile()` was not called" in m] == skipped
    assert type(loaded) is type(reference)
    assert getattr(loaded, "optimizer", None) is None
    assert getattr(reference, "optimizer", None) is None
    assert loaded.compiled == reference.compiled
    x = np.arange(6, dtype="float32").reshape(2, 3)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), reference.predict(x, verbose=0))


def test_inspect_says_a_model_overriding_compile_loads_uncompiled(
    tmp_path: Path, keras_registry: None, capsys: pytest.CaptureFixture[str]
) -> None:
    path = saved_with_a_loss_that_goes_away(tmp_path, custom_compile=True)
    assert command.main(["inspect", str(path)]) == 0
    out = capsys.readouterr().out
    assert "Gone>gone_loss" in out
    assert "ok (not compiled: the model overrides compile())" in out
    assert command.main(["inspect", "--json", str(path)]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert "not compiled" in json.dumps(rows)


def test_a_missing_loss_keras_would_deserialize_is_refused_as_keras_refuses(
    tmp_path: Path, keras_registry: None, capsys: pytest.CaptureFixture[str]
) -> None:
    path = saved_with_a_loss_that_goes_away(tmp_path, custom_compile=False)
    with pytest.raises(TypeError, match="gone_loss"):  # Keras 3.15 does not skip it
        keras.saving.load_model(path)
    with pytest.raises(MissingPluginError, match="training configuration"):
        layerhub.load_model(path)
    assert getattr(layerhub.load_model(path, compile=False), "optimizer", None) is None
    assert command.main(["inspect", str(path)]) == 1
    assert "missing (training config)" in capsys.readouterr().out
