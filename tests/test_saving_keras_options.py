"""``layerhub.save_model`` takes what ``keras.saving.save_model`` takes, with the same meaning,
writes through symbolic links as Keras does, and saves to any name the file system allows.
Every expectation is what Keras itself does with the same call, observed in the same test."""

from __future__ import annotations

import builtins
import os
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest

import layerhub
from layerhub import ModelFileError

X = np.arange(6, dtype="float32").reshape(2, 3)


@pytest.fixture
def model() -> Any:
    keras.utils.set_random_seed(1)
    inputs = keras.Input((3,))
    built = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    built.compile(optimizer="adam", loss="mse")
    built.fit(X, np.ones((2, 2), "float32"), epochs=1, verbose=0)
    return built


Saver = Callable[..., Any]
SAVERS: dict[str, Saver] = {"keras": keras.saving.save_model, "layerhub": layerhub.save_model}


def assert_same_model(path: Path, model: Any) -> None:
    np.testing.assert_allclose(
        layerhub.load_model(path).predict(X, verbose=0), model.predict(X, verbose=0), rtol=1e-6
    )


@pytest.fixture
def answers(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """What the terminal answers Keras' overwrite prompt, one per question; asked is counted."""
    given: list[str] = []
    asked: list[str] = []

    def fake_input(prompt: str = "") -> str:
        asked.append(prompt)
        return given.pop(0)

    monkeypatch.setattr(builtins, "input", fake_input)
    yield given
    assert not given, "a prompt Keras would have shown was not shown"


# -- keyword arguments ---------------------------------------------------------------------------


@pytest.mark.parametrize("answer", ["n", "y"])
def test_overwrite_false_asks_as_keras_asks(
    tmp_path: Path, model: Any, answers: list[str], answer: str
) -> None:
    outcome = {}
    for name, save in SAVERS.items():
        path = tmp_path / f"{name}.keras"
        path.write_bytes(b"earlier")
        answers.append(answer)
        returned = save(model, path, overwrite=False)
        outcome[name] = (path.read_bytes() == b"earlier", returned is None)
    assert outcome["keras"] == (answer == "n", True)  # Keras returns None either way
    assert outcome["layerhub"][0] == outcome["keras"][0]
    assert outcome["layerhub"][1] == (answer == "n")
    if answer == "y":
        assert_same_model(tmp_path / "layerhub.keras", model)


def test_overwrite_false_on_a_new_path_asks_nothing(tmp_path: Path, model: Any) -> None:
    for name, save in SAVERS.items():
        save(model, tmp_path / f"{name}.keras", overwrite=False)  # input() would fail in pytest
    assert_same_model(tmp_path / "layerhub.keras", model)


def test_include_optimizer_and_save_format_are_taken_as_keras_takes_them(
    tmp_path: Path, model: Any
) -> None:
    members = {}
    for name, save in SAVERS.items():
        path = tmp_path / f"{name}.keras"
        save(model, path, True, True, include_optimizer=False, save_format="keras")
        with zipfile.ZipFile(path) as zf:
            members[name] = sorted(zf.namelist())
    assert members["layerhub"] == members["keras"]
    loaded = layerhub.load_model(tmp_path / "layerhub.keras")
    reference = keras.saving.load_model(tmp_path / "keras.keras")
    assert len(loaded.optimizer.variables) == len(reference.optimizer.variables)


def test_a_keyword_keras_does_not_take_is_refused_as_a_value_error(
    tmp_path: Path, model: Any
) -> None:
    with pytest.raises(ValueError, match="not supported"):
        keras.saving.save_model(model, tmp_path / "k.keras", compression=9)
    with pytest.raises(ModelFileError, match="does not take compression") as caught:
        layerhub.save_model(model, tmp_path / "l.keras", compression=9)
    assert isinstance(caught.value, ValueError)
    assert sorted(os.listdir(tmp_path)) == []


def test_zipped_false_saves_the_directory_keras_saves(tmp_path: Path, model: Any) -> None:
    for name, save in SAVERS.items():
        save(model, tmp_path / name, zipped=False)
    assert sorted(os.listdir(tmp_path / "layerhub")) == sorted(os.listdir(tmp_path / "keras"))
    assert_same_model(tmp_path / "layerhub", model)
    assert "layerhub_" not in (tmp_path / "layerhub" / "config.json").read_text()
    # Again over the directory, as Keras overwrites it; nothing is left beside it.
    layerhub.save_model(model, tmp_path / "layerhub", zipped=False)
    assert_same_model(tmp_path / "layerhub", model)
    assert sorted(os.listdir(tmp_path)) == ["keras", "layerhub"]


def test_zipped_false_with_a_plugin_layer_carries_the_manifest(tmp_path: Path) -> None:
    from layerhub_scale import Scale

    inputs = keras.Input((3,))
    scaled = keras.Model(inputs, Scale(gamma_initializer="random_normal")(inputs))
    path = layerhub.save_model(scaled, tmp_path / "scaled", zipped=False)
    opened = layerhub._private.loading.open_model(path)  # type: ignore[attr-defined]
    assert opened.manifest is not None
    assert set(opened.manifest.objects) == {"layerhub_scale>Scale"}
    assert_same_model(path, scaled)


def test_zipped_false_refuses_a_keras_suffix_as_keras_does(tmp_path: Path, model: Any) -> None:
    with pytest.raises(ValueError, match="zipped=False"):
        keras.saving.save_model(model, tmp_path / "k.keras", zipped=False)
    with pytest.raises(ModelFileError, match="zipped=False"):
        layerhub.save_model(model, tmp_path / "l.keras", zipped=False)


# -- symbolic links ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["existing", "dangling", "relative_chain"])
def test_a_symlinked_path_is_written_through_as_keras_writes(
    tmp_path: Path, model: Any, kind: str
) -> None:
    outcome = {}
    for name, save in SAVERS.items():
        root = tmp_path / name
        (root / "real").mkdir(parents=True)
        real = root / "real" / "target.keras"
        if kind != "dangling":
            real.write_bytes(b"earlier")
        link = root / "link.keras"
        if kind == "relative_chain":
            (root / "middle.keras").symlink_to("real/target.keras")
            link.symlink_to("middle.keras")
        else:
            link.symlink_to("real/target.keras")
        save(model, link)
        outcome[name] = (
            link.is_symlink(),
            os.readlink(link),
            real.exists() and not real.is_symlink(),
            sorted(os.listdir(root)),
            sorted(os.listdir(root / "real")),
        )
        assert_same_model(real, model)
    assert outcome["layerhub"] == outcome["keras"]
    assert outcome["keras"][0] is True


def test_a_link_into_a_missing_folder_fails_as_with_keras(tmp_path: Path, model: Any) -> None:
    link = tmp_path / "link.keras"
    link.symlink_to("nowhere/target.keras")
    with pytest.raises(FileNotFoundError):
        keras.saving.save_model(model, link)
    with pytest.raises(ModelFileError, match="does not exist"):
        layerhub.save_model(model, link)
    assert sorted(os.listdir(tmp_path)) == ["link.keras"]


def test_a_symlink_loop_is_one_line(tmp_path: Path, model: Any) -> None:
    (tmp_path / "a.keras").symlink_to("b.keras")
    (tmp_path / "b.keras").symlink_to("a.keras")
    with pytest.raises(ModelFileError, match="loop"):
        layerhub.save_model(model, tmp_path / "a.keras")


# -- names the file system allows -----------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "a" * 230 + ".keras",  # 236 bytes
        "b" * 249 + ".keras",  # 255 bytes: the longest name
        "\u00e9" * 124 + "c.keras",  # 255 bytes of UTF-8 in 132 characters
    ],
)
def test_any_name_the_file_system_takes_can_be_saved_to(
    tmp_path: Path, model: Any, name: str
) -> None:
    path = tmp_path / name
    keras.saving.save_model(model, tmp_path / ("k" + name[1:]))  # the reference: Keras can
    assert layerhub.save_model(model, path) == path
    assert_same_model(path, model)
    assert sorted(os.listdir(tmp_path)) == sorted([name, "k" + name[1:]])
