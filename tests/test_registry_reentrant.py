"""A plugin may use the registry while it is imported; what a plugin does to Keras' registry
outside its own package is undone; upgrade hooks are asked only about their own names."""

from __future__ import annotations

import json
import threading
import time
import warnings
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest
from _hardening import plugin

import layerhub
from layerhub import BrokenPluginError, PluginWarning, Registry
from layerhub._private.registry.plugins import IMPORT_TIMEOUT_ENV

FakeDist = Callable[..., Path]
# Long enough for any honest import here, short enough that the old deadlock fails fast.
TIMEOUT = 8.0


@pytest.fixture(autouse=True)
def _short_timeout_and_expected_warnings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv(IMPORT_TIMEOUT_ENV, str(TIMEOUT))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PluginWarning)
        yield


@pytest.fixture
def keras_registry() -> Iterator[None]:
    """Keras' global registry is put back as it was, whatever the test left in it."""
    from keras.src.saving import object_registration as registration

    objects = dict(registration.GLOBAL_CUSTOM_OBJECTS)
    names = dict(registration.GLOBAL_CUSTOM_NAMES)
    yield
    registration.GLOBAL_CUSTOM_OBJECTS.clear()
    registration.GLOBAL_CUSTOM_OBJECTS.update(objects)
    registration.GLOBAL_CUSTOM_NAMES.clear()
    registration.GLOBAL_CUSTOM_NAMES.update(names)


def layer_source(package: str, cls: str, body: str = "") -> str:
    return f"""
import keras
import layerhub
from layerhub import hookimpl

{body}

@keras.saving.register_keras_serializable(package="{package}")
class {cls}(keras.layers.Layer):
    def call(self, x):
        return x

@hookimpl
def layerhub_layers():
    return [{cls}]
"""


# -- the registry used while a plugin is imported ---------------------------------------------


def test_a_plugin_may_use_the_registry_while_it_is_imported(
    fake_dist: FakeDist, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = "layerhub_reentrant_user"
    body = (
        "LISTED = [r.registered_name for r in layerhub.registry.list('Scale')]\n"
        "SCALE = layerhub.registry.get('Scale')\n"
    )
    plugin(fake_dist, p, layer_source(p, "User", body), "User")
    registry = Registry()
    monkeypatch.setattr(layerhub, "registry", registry)  # what the plugin's import calls
    started = time.monotonic()
    user = registry.get("User")
    assert time.monotonic() - started < TIMEOUT / 2
    module = __import__(p)
    assert module.LISTED == ["layerhub_scale>Scale"]
    assert module.SCALE is registry.get("layerhub_scale>Scale")
    assert user is module.User
    assert {r.name: r.status for r in registry.list("*")}["User"] == "loaded"
    assert registry.problems() == [] or all(r.plugin != p for r in registry.problems())


def test_a_plugin_asking_for_itself_while_imported_is_told_at_once(
    fake_dist: FakeDist, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = "layerhub_reentrant_self"
    body = (
        "try:\n"
        "    layerhub.registry.get('Myself')\n"
        "except layerhub.BrokenPluginError as error:\n"
        "    SAID = str(error)\n"
    )
    plugin(fake_dist, p, layer_source(p, "Myself", body), "Myself")
    registry = Registry()
    monkeypatch.setattr(layerhub, "registry", registry)
    started = time.monotonic()
    myself = registry.get("Myself")
    assert time.monotonic() - started < TIMEOUT / 2
    module = __import__(p)
    assert "was asked for while it is being imported" in module.SAID
    assert myself is module.Myself


def test_two_plugins_asking_for_each_other_on_import_fail_at_once(
    fake_dist: FakeDist, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = "layerhub_cycle_a", "layerhub_cycle_b"
    plugin(fake_dist, a, layer_source(a, "CycA", "layerhub.registry.get('CycB')"), "CycA")
    plugin(fake_dist, b, layer_source(b, "CycB", "layerhub.registry.get('CycA')"), "CycB")
    registry = Registry()
    monkeypatch.setattr(layerhub, "registry", registry)
    started = time.monotonic()
    with pytest.raises(BrokenPluginError, match="being imported"):
        registry.get("CycA")
    assert time.monotonic() - started < TIMEOUT / 2
    assert registry.get("Scale").__name__ == "Scale"  # the others go on


def test_threads_asking_for_a_slow_plugin_wait_for_its_one_import(
    fake_dist: FakeDist, site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = "layerhub_reentrant_slow"
    counter = site / "imports.txt"
    body = (
        f"import time\nwith open({str(counter)!r}, 'a') as f:\n    f.write('x')\n"
        "time.sleep(0.5)\n"
        "SCALE = layerhub.registry.get('Scale')\n"
    )
    plugin(fake_dist, p, layer_source(p, "Slow", body), "Slow")
    registry = Registry()
    monkeypatch.setattr(layerhub, "registry", registry)
    got: list[Any] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def work() -> None:
        try:
            barrier.wait()
            got.append(registry.get("Slow"))
            registry.list()
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert counter.read_text() == "x"
    assert len(got) == 8
    assert all(obj is got[0] for obj in got)


# -- registrations outside the plugin's package -------------------------------------------------

SQUATTER = """
import keras
from layerhub import hookimpl

@keras.saving.register_keras_serializable(package="layerhub_squat_dense")
class Squat(keras.layers.Layer):
    def call(self, x):
        return x

class Dense(keras.layers.Layer):
    '''Answers 42 wherever Keras builds a Dense.'''
    def __init__(self, units=1, **kwargs):
        for key in ("activation", "use_bias", "kernel_initializer", "bias_initializer",
                    "kernel_regularizer", "bias_regularizer", "activity_regularizer",
                    "kernel_constraint", "bias_constraint", "quantization_config", "lora_rank",
                    "lora_alpha"):
            kwargs.pop(key, None)
        super().__init__(**kwargs)
        self.units = units

    def call(self, x):
        return keras.ops.ones((keras.ops.shape(x)[0], self.units)) * 42.0

class Quiet(keras.layers.Layer):
    pass

keras.saving.get_custom_objects()["Dense"] = Dense
keras.saving.get_custom_objects()["Conv2D"] = Quiet  # not offered by any hook

@hookimpl
def layerhub_layers():
    return [Squat, Dense]
"""


def test_registrations_outside_the_plugin_package_are_withdrawn(
    fake_dist: FakeDist, tmp_path: Path, keras_registry: None
) -> None:
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    path = tmp_path / "dense.h5"
    model.save(path)
    x = np.arange(6, dtype="float32").reshape(2, 3)
    plugin(fake_dist, "layerhub_squat_dense", SQUATTER, "Squat")
    registry = Registry()
    registry.load_all()
    (record,) = registry.list("Squat")
    assert record.status == "mismatch"
    assert "Dense is registered outside the plugin's package" in (record.error or "")
    assert "Conv2D is registered outside the plugin's package" in (record.error or "")
    assert keras.saving.get_registered_object("Dense") is None
    assert keras.saving.get_registered_object("Conv2D") is None
    assert registry.get("Squat").__name__ == "Squat"  # what it may provide is still served
    loaded = layerhub.load_model(path, registry=registry, compile=False)
    assert type(loaded.layers[-1]) is keras.layers.Dense
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def test_a_registration_a_plugin_replaced_is_put_back(
    fake_dist: FakeDist, keras_registry: None
) -> None:
    @keras.saving.register_keras_serializable(package="Mine")
    class Precious(keras.layers.Layer):
        pass

    source = (
        "import keras\nfrom layerhub import hookimpl\n"
        "class Fake(keras.layers.Layer):\n    pass\n"
        "keras.saving.get_custom_objects()['Mine>Precious'] = Fake\n"
        "@hookimpl\ndef layerhub_layers():\n    return []\n"
    )
    plugin(fake_dist, "layerhub_squat_mine", source, "Nothing")
    registry = Registry()
    registry.load_all()
    assert keras.saving.get_registered_object("Mine>Precious") is Precious
    (record,) = registry.list("Nothing")
    assert "Mine>Precious is registered outside the plugin's package" in (record.error or "")


# -- upgrade hooks ----------------------------------------------------------------------------

GREEDY = """
import keras
from layerhub import hookimpl

@keras.saving.register_keras_serializable(package="layerhub_greedy")
class Greedy(keras.layers.Layer):
    def call(self, x):
        return x

@hookimpl
def layerhub_layers():
    return [Greedy]

@hookimpl(tryfirst=True)
def layerhub_upgrade_config(registered_name, config, saved_version):
    return {**config, "trainable": False}
"""


def as_saved_by(current: Path, stale: Path, versions: dict[str, str]) -> Path:
    """``current`` with a manifest saying the objects were saved by these plugin versions."""
    with zipfile.ZipFile(current) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    config = members["config.json"].decode().replace('"offset": 3.0', '"bias": 3.0')
    metadata = json.loads(members["metadata.json"])
    metadata["layerhub"] = {
        "objects": {
            name: {"distribution": name.partition(">")[0].replace("_", "-"), "version": version}
            for name, version in versions.items()
        }
    }
    with zipfile.ZipFile(stale, "w") as zf:
        for name, data in members.items():
            if name == "config.json":
                data = config.encode()
            elif name == "metadata.json":
                data = json.dumps(metadata).encode()
            zf.writestr(name, data)
    return stale


def test_an_upgrade_hook_is_asked_only_about_its_own_names(
    fake_dist: FakeDist, site: Path, tmp_path: Path
) -> None:
    from layerhub.testing.fakes import write_upgrading_plugin

    write_upgrading_plugin(site, "layerhub_upgraded_own")
    plugin(fake_dist, "layerhub_greedy", GREEDY, "Greedy")
    registry = Registry()
    registry.load_all()  # the greedy hook is loaded and first in line
    inputs = keras.Input((2,))
    shifted = registry.get("layerhub_upgraded_own>Shift")(offset=3.0)(inputs)
    model = keras.Model(inputs, registry.get("Greedy")()(shifted))
    current = layerhub.save_model(model, tmp_path / "current.keras", registry=registry)
    stale = as_saved_by(
        current,
        tmp_path / "stale.keras",
        {"layerhub_upgraded_own>Shift": "1.0", "layerhub_greedy>Greedy": "0.5"},
    )
    loaded = layerhub.load_model(stale, registry=registry)
    # The greedy hook answered for its own Greedy and was never asked about Shift, which its
    # own plugin upgraded from "bias" to "offset" (the greedy answer would have kept "bias").
    trainable = {type(layer).__name__: layer.trainable for layer in loaded.layers[1:]}
    assert trainable == {"Shift": True, "Greedy": False}
    np.testing.assert_allclose(loaded.predict(np.zeros((1, 2), "float32"), verbose=0), [[3, 3]])
    assert registry.upgrade_config("layerhub_scale>Scale", {}, "0.0") is None


def test_an_upgrade_hook_that_raises_is_a_broken_plugin(fake_dist: FakeDist) -> None:
    source = GREEDY.replace(
        '    return {**config, "trainable": False}', "    raise RuntimeError('no')"
    )
    plugin(fake_dist, "layerhub_greedy_raise", source.replace("_greedy", "_greedy_raise"), "Greedy")
    registry = Registry()
    with pytest.raises(BrokenPluginError, match="layerhub_upgrade_config hook raised"):
        registry.upgrade_config("layerhub_greedy_raise>Greedy", {}, "0.1")
