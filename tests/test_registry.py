"""The registry: discovery from metadata, lazy loading, and isolation of broken plugins."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

import layerhub
from layerhub import (
    AmbiguousNameError,
    BrokenPluginError,
    LayerRecord,
    PluginConflictError,
    PluginNotFoundError,
    PluginWarning,
    Registry,
)

FakeDist = Callable[..., Path]

LAYER_PLUGIN = """
import keras
from layerhub import hookimpl

@keras.saving.register_keras_serializable(package="{plugin}")
class {cls}(keras.layers.Layer):
    def call(self, x):
        return x

@hookimpl
def layerhub_layers():
    return [{cls}]

@hookimpl
def layerhub_legacy_names():
    return {{"{cls}": {cls}}}
"""


def layer_plugin(fake_dist: FakeDist, plugin: str, cls: str, **kwargs: object) -> Path:
    return fake_dist(
        plugin.replace("_", "-"),
        plugin=plugin,
        objects={cls: f"{plugin}:{cls}"},
        modules={f"{plugin}/__init__.py": LAYER_PLUGIN.format(plugin=plugin, cls=cls)},
        **kwargs,
    )


def test_list_reads_metadata_and_imports_nothing() -> None:
    code = textwrap.dedent(
        """
        import json, sys
        from layerhub import registry
        records = registry.list()
        heavy = sorted(m for m in sys.modules
                       if m.split(".")[0] in {"keras", "tensorflow", "pluggy"}
                       or m.startswith("layerhub_"))
        print(json.dumps({"names": [r.name for r in records], "heavy": heavy}))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    result = json.loads(out.stdout)
    assert "Scale" in result["names"]
    assert result["heavy"] == []


def test_record_fields_come_from_the_distribution(fake_dist: FakeDist) -> None:
    fake_dist(
        "layerhub-meta",
        version="3.1.4",
        plugin="layerhub_meta",
        objects={"Alpha": "layerhub_meta:Alpha", "beta_fn": "layerhub_meta.fns:beta_fn"},
    )
    records = {r.name: r for r in Registry().list("*") if r.plugin == "layerhub_meta"}
    assert records["Alpha"] == LayerRecord(
        name="Alpha",
        registered_name="layerhub_meta>Alpha",
        plugin="layerhub_meta",
        module="layerhub_meta",
        distribution="layerhub-meta",
        version="3.1.4",
    )
    assert records["beta_fn"].registered_name == "layerhub_meta>beta_fn"


def test_list_filters_with_wildcards(fake_dist: FakeDist) -> None:
    fake_dist(
        "layerhub-wild",
        plugin="layerhub_wild",
        objects={
            "GroupNorm": "layerhub_wild:GroupNorm",
            "PixelNorm": "layerhub_wild:PixelNorm",
            "Gate": "layerhub_wild:Gate",
        },
    )
    registry = Registry()
    assert [r.name for r in registry.list("*norm")] == ["GroupNorm", "PixelNorm"]
    assert [r.name for r in registry.list("layerhub_wild>G*")] == ["Gate", "GroupNorm"]
    assert registry.list("nothing-like-this*") == []
    names = [r.name.lower() for r in registry.list()]
    assert names == sorted(names)


def test_get_imports_only_the_plugin_that_provides_the_name(fake_dist: FakeDist) -> None:
    layer_plugin(fake_dist, "layerhub_lazy_a", "LazyA")
    layer_plugin(fake_dist, "layerhub_lazy_b", "LazyB")
    registry = Registry()
    cls = registry.get("LazyA")
    assert cls.__name__ == "LazyA"
    assert "layerhub_lazy_a" in sys.modules
    assert "layerhub_lazy_b" not in sys.modules
    assert registry.get("layerhub_lazy_a>LazyA") is cls
    statuses = {r.name: r.status for r in registry.list("Lazy*")}
    assert statuses == {"LazyA": "loaded", "LazyB": "installed"}


def test_unknown_name_is_a_clear_error(fake_dist: FakeDist) -> None:
    layer_plugin(fake_dist, "layerhub_spelled", "Spelled")
    with pytest.raises(PluginNotFoundError, match=r"'Speled'.*did you mean Spelled"):
        Registry().get("Speled")


def test_broken_plugin_is_recorded_and_the_others_keep_working(fake_dist: FakeDist) -> None:
    fake_dist(
        "layerhub-broken",
        plugin="layerhub_broken",
        objects={"Broken": "layerhub_broken:Broken"},
        modules={"layerhub_broken/__init__.py": "raise RuntimeError('missing native library')\n"},
    )
    registry = Registry()
    with pytest.warns(PluginWarning, match="layerhub_broken.*missing native library") as caught:
        registry.load_all()
    registry.load_all()  # idempotent, and warns only once
    assert len([w for w in caught if "layerhub_broken" in str(w.message)]) == 1
    (broken,) = registry.list("Broken")
    assert broken.status == "broken"
    assert broken.error == "RuntimeError: missing native library"
    with pytest.raises(BrokenPluginError, match="missing native library"):
        registry.get("Broken")
    assert registry.get("Scale").__name__ == "Scale"
    assert registry.list("Scale")[0].status == "loaded"


def test_plugin_claimed_by_two_distributions_is_a_conflict(fake_dist: FakeDist) -> None:
    for dist in ("layerhub-twin-one", "layerhub-twin-two"):
        fake_dist(dist, plugin="layerhub_twin", objects={"Twin": "layerhub_twin:Twin"})
    registry = Registry()
    with pytest.warns(PluginWarning, match="layerhub_twin"):
        records = registry.list("Twin")
    assert {r.status for r in records} == {"conflict"}
    assert "layerhub-twin-two" in (records[0].error or "")
    with pytest.raises(PluginConflictError, match="layerhub-twin"):
        registry.get("layerhub_twin>Twin")
    assert registry.get("Scale").__name__ == "Scale"


def test_same_class_name_from_two_plugins_must_be_disambiguated(fake_dist: FakeDist) -> None:
    layer_plugin(fake_dist, "layerhub_otherscale", "Scale")
    registry = Registry()
    with pytest.raises(
        AmbiguousNameError, match=r"layerhub_otherscale>Scale, layerhub_scale>Scale"
    ):
        registry.get("Scale")
    assert registry.get("layerhub_otherscale>Scale") is not registry.get("layerhub_scale>Scale")


def test_hooks_that_disagree_with_metadata_are_a_mismatch(fake_dist: FakeDist) -> None:
    fake_dist(
        "layerhub-liar",
        plugin="layerhub_liar",
        objects={"Declared": "layerhub_liar:Declared"},
        modules={
            "layerhub_liar/__init__.py": LAYER_PLUGIN.format(plugin="layerhub_liar", cls="Other")
        },
    )
    registry = Registry()
    with pytest.warns(PluginWarning, match="mismatch|Declared"):
        registry.load_all()
    (record,) = registry.list("Declared")
    assert record.status == "mismatch"
    assert "layerhub_liar>Declared" in (record.error or "")
    assert "layerhub_liar>Other" in (record.error or "")
    with pytest.raises(BrokenPluginError, match="does not provide layerhub_liar>Declared"):
        registry.get("Declared")


def test_registry_serialises_to_plain_json(fake_dist: FakeDist) -> None:
    layer_plugin(fake_dist, "layerhub_serial", "Serial", version="0.9")
    registry = Registry()
    registry.load_all()
    assert registry.list("Serial")[0].status == "loaded"
    data = json.loads(json.dumps(registry.to_dict()))
    restored = Registry.from_dict(data)
    # Metadata only: the restored registry imported nothing, so it claims nothing is loaded.
    assert {r.status for r in restored.list()} <= {"installed", "conflict", "broken"}
    assert restored.list() == [r._replace(status="installed") for r in registry.list()]
    assert restored.get("Serial") is registry.get("Serial")
    assert restored.list("Serial")[0].status == "loaded"
    with pytest.raises(ValueError, match="format"):
        Registry.from_dict({"format": 99, "records": []})


def test_autoload_can_be_disabled_and_plugins_registered_by_hand(
    fake_dist: FakeDist, monkeypatch: pytest.MonkeyPatch
) -> None:
    layer_plugin(fake_dist, "layerhub_manual", "Manual")
    monkeypatch.setenv("LAYERHUB_DISABLE_AUTOLOAD", "1")
    registry = Registry()
    assert registry.list() == []
    import layerhub_manual

    (record,) = registry.register(layerhub_manual)
    assert (record.registered_name, record.status) == ("layerhub_manual>Manual", "loaded")
    assert registry.get("Manual") is layerhub_manual.Manual
    with pytest.raises(PluginConflictError):
        registry.register(layerhub_manual)


def test_legacy_names_import_only_the_plugins_declaring_them(fake_dist: FakeDist) -> None:
    layer_plugin(fake_dist, "layerhub_old_a", "OldA")
    layer_plugin(fake_dist, "layerhub_old_b", "OldB")
    registry = Registry()
    objects = registry.legacy_objects(["OldA", "Dense"])
    assert list(objects) == ["OldA"]
    assert "layerhub_old_b" not in sys.modules


def test_custom_objects_maps_bare_names_without_touching_keras_registry() -> None:
    import keras

    objects = layerhub.registry.custom_objects()
    assert objects["Scale"].__name__ == "Scale"
    assert keras.saving.get_registered_object("Scale") is None
    assert keras.saving.get_registered_name(objects["Scale"]) == "layerhub_scale>Scale"


def test_refresh_sees_plugins_installed_after_the_first_scan(fake_dist: FakeDist) -> None:
    registry = Registry()
    assert registry.list("Late*") == []
    layer_plugin(fake_dist, "layerhub_late", "LateLayer")
    assert registry.list("Late*") == []  # the scan is cached
    registry.refresh()
    assert [r.name for r in registry.list("Late*")] == ["LateLayer"]
