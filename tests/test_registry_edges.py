"""Edges of the registry: exact problem messages, hooks implemented twice, refresh, lookups."""

from __future__ import annotations

import importlib
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from _hardening import plugin

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

HEADER = """
import keras
from layerhub import hookimpl

def layer(cls, name=None):
    return keras.saving.register_keras_serializable(package=__name__, name=name)(cls)
"""

# The plugin's garbage answers come first: pluggy puts a ``trylast`` implementation first in
# get_hookimpls(), so the good answers after it must still be read.
TWO_OF_EACH_HOOK = (
    HEADER
    + """
@layer
class Kept(keras.layers.Layer):
    pass

@layer
class Extra2(keras.layers.Layer):
    pass

@layer
class Extra1(keras.layers.Layer):
    pass

@hookimpl(specname="layerhub_layers", trylast=True)
def layers_garbage():
    return None

@hookimpl
def layerhub_layers():
    return [[1, 2], Kept, Extra2, Extra1]

@hookimpl(specname="layerhub_legacy_names", trylast=True)
def legacy_garbage():
    return ["Kept"]

@hookimpl
def layerhub_legacy_names():
    return {"Kept": Kept, "Gone2": Kept, "Gone1": Kept}
"""
)

SIMPLE = (
    HEADER
    + """
@layer
class {cls}(keras.layers.Layer):
    pass

@hookimpl
def layerhub_layers():
    return [{cls}]

@hookimpl
def layerhub_legacy_names():
    return {{"{cls}": {cls}}}
"""
)


def record(name: str, registered_name: str) -> LayerRecord:
    plugin = registered_name.partition(">")[0]
    return LayerRecord(name, registered_name, plugin, plugin, plugin, "1")


@pytest.fixture
def quiet() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PluginWarning)
        yield


def plugin_warnings(caught: list[warnings.WarningMessage], plugin: str) -> list[str]:
    return [
        str(w.message)
        for w in caught
        if issubclass(w.category, PluginWarning) and repr(plugin) in str(w.message)
    ]


# -- problem messages -----------------------------------------------------------------------------


@pytest.mark.usefixtures("quiet")
def test_mismatch_message_lists_every_problem_in_order(fake_dist: FakeDist) -> None:
    p = "layerhub_edge_twice"
    plugin(fake_dist, p, TWO_OF_EACH_HOOK, "Kept", "Ghost2", "Ghost1")
    registry = Registry()
    registry.load_plugin(p)
    said = (
        "its layerhub_layers hook returned None (NoneType), not a list; "
        "its layerhub_layers hook returned [1, 2] (list); "
        f"metadata declares {p}>Ghost1, {p}>Ghost2 but the hooks do not provide it; "
        f"hooks provide {p}>Extra1, {p}>Extra2 missing from the metadata; "
        "its layerhub_legacy_names hook returned ['Kept'] (list), not a dict; "
        "legacy names Gone1, Gone2 missing from the metadata"
    )
    assert {(r.status, r.error) for r in registry.list(f"{p}>*")} == {("mismatch", said)}
    with pytest.raises(BrokenPluginError) as caught:
        registry.get("Ghost1")
    assert str(caught.value) == f"plugin {p!r} does not provide {p}>Ghost1: {said}"


@pytest.mark.usefixtures("quiet")
def test_good_answers_after_garbage_ones_are_still_served(fake_dist: FakeDist) -> None:
    p = "layerhub_edge_after"
    plugin(fake_dist, p, TWO_OF_EACH_HOOK, "Kept")
    registry = Registry()
    kept = registry.get("Kept")
    assert kept is sys.modules[p].Kept
    assert registry.legacy_names(p) == {"Kept": kept}
    assert registry.legacy_objects(["Kept"]) == {"Kept": kept}


@pytest.mark.usefixtures("quiet")
def test_a_raising_hook_and_other_problems_make_one_broken_message(
    fake_dist: FakeDist,
) -> None:
    p = "layerhub_edge_raises"
    source = SIMPLE.format(cls="Thing").replace(
        '    return {"Thing": Thing}', "    raise RuntimeError('legacy exploded\\nsecond line')"
    )
    plugin(fake_dist, p, source, "Thing", "Ghost")
    registry = Registry()
    registry.load_plugin(p)
    said = (
        "its layerhub_legacy_names hook raised RuntimeError: legacy exploded; "
        f"metadata declares {p}>Ghost but the hooks do not provide it"
    )
    assert {(r.status, r.error) for r in registry.list(f"{p}>*")} == {("broken", said)}


@pytest.mark.usefixtures("quiet")
def test_a_name_containing_the_separator_belongs_to_the_package_before_the_first_one(
    fake_dist: FakeDist,
) -> None:
    # Keras saves "package>name"; an import package never contains ">", a name may.
    p = "layerhub_edge_arrow"
    source = HEADER + (
        "\nclass Gate(keras.layers.Layer):\n    pass\n"
        "\nlayer(Gate, name='v1>Gate')\n"
        "\n@hookimpl\ndef layerhub_layers():\n    return [Gate]\n"
    )
    fake_dist(
        "layerhub-edge-arrow",
        plugin=p,
        objects={"v1>Gate": f"{p}:Gate"},
        modules={f"{p}/__init__.py": source},
    )
    registry = Registry()
    assert registry.get(f"{p}>v1>Gate") is sys.modules[p].Gate
    assert [(r.name, r.status, r.error) for r in registry.list(f"{p}>*")] == [
        ("v1>Gate", "loaded", None)
    ]


# -- warnings --------------------------------------------------------------------------------------


def test_a_conflicting_plugin_is_warned_about_once(fake_dist: FakeDist) -> None:
    for dist in ("layerhub-edge-pair-one", "layerhub-edge-pair-two"):
        fake_dist(
            dist,
            plugin="layerhub_edge_pair",
            objects={"PairA": "layerhub_edge_pair:PairA", "PairB": "layerhub_edge_pair:PairB"},
        )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        Registry().list()
    (said,) = plugin_warnings(caught, "layerhub_edge_pair")
    assert said.startswith(
        "layerhub plugin 'layerhub_edge_pair': plugin 'layerhub_edge_pair' is also provided by "
    )


@pytest.mark.usefixtures("quiet")
def test_a_bare_name_two_plugins_map_differently_is_ambiguous(fake_dist: FakeDist) -> None:
    for p in ("layerhub_edge_old_b", "layerhub_edge_old_a"):
        plugin(fake_dist, p, SIMPLE.format(cls="Old"), "Old")
    registry = Registry()
    with pytest.raises(AmbiguousNameError) as caught:
        registry.legacy_objects(["Old"])
    assert caught.value.name == "Old"
    assert caught.value.registered_names == ("layerhub_edge_old_a>Old", "layerhub_edge_old_b>Old")


def test_a_bare_name_left_out_of_custom_objects_is_warned_about_once(
    fake_dist: FakeDist,
) -> None:
    for p in ("layerhub_edge_bare_b", "layerhub_edge_bare_a"):
        plugin(fake_dist, p, SIMPLE.format(cls="Bare"), "Bare")
    registry = Registry()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = registry.custom_objects()
        second = registry.custom_objects()
    said = [str(w.message) for w in caught if "Bare" in str(w.message)]
    assert said == [
        "layerhub: Bare is provided as layerhub_edge_bare_a>Bare, layerhub_edge_bare_b>Bare; "
        "left out of custom_objects(), use the registered names"
    ]
    assert "Bare" not in first
    assert first == second


# -- refresh ---------------------------------------------------------------------------------------

CHANGING = (
    HEADER
    + """
OFFER = True

@layer
class Changing(keras.layers.Layer):
    pass

class Gate(keras.layers.Layer):
    pass

layer(Gate, name="v2>Gate")

@hookimpl
def layerhub_layers():
    return [Changing, Gate] if OFFER else []

@hookimpl
def layerhub_legacy_names():
    return {"Changing": Changing} if OFFER else {}
"""
)


def test_refresh_forgets_what_a_plugin_provided_and_its_legacy_names(
    fake_dist: FakeDist,
) -> None:
    p = "layerhub_edge_changing"
    # "v2>Gate": a name with ">" in it still belongs to the package before the first ">".
    plugin(fake_dist, p, CHANGING, "Changing", "v2>Gate")
    registry = Registry()
    changing = registry.get("Changing")
    assert registry.get("v2>Gate") is sys.modules[p].Gate
    assert registry.legacy_names(p) == {"Changing": changing}
    sys.modules[p].OFFER = False  # type: ignore[attr-defined]  # its hooks now say otherwise
    registry.refresh()
    assert registry.legacy_names(p) == {}
    with (
        pytest.warns(PluginWarning, match="do not provide"),
        pytest.raises(BrokenPluginError, match="does not provide"),
    ):
        registry.get("Changing")
    with pytest.raises(BrokenPluginError, match="does not provide"):
        registry.get("v2>Gate")
    assert registry.legacy_names(p) == {}


def test_refresh_copes_with_stale_modules_already_gone(
    fake_dist: FakeDist, site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = "layerhub_edge_stale"
    plugin(fake_dist, p, f"import {p}.helpers\nraise ImportError('no luck')\n", "Stale")
    (site / p / "helpers.py").write_text("VALUE = 1\n")
    registry = Registry()
    with pytest.warns(PluginWarning, match="no luck"):
        registry.load_all()
    monkeypatch.delitem(sys.modules, f"{p}.helpers")  # someone else cleaned up already
    registry.refresh()
    (record,) = registry.list("Stale")
    assert (record.status, record.error) == ("installed", None)


def test_refresh_lets_a_plugin_warn_again(fake_dist: FakeDist) -> None:
    p = "layerhub_edge_again"
    plugin(fake_dist, p, "raise ImportError('still bad')\n", "Again")
    registry = Registry()
    for _ in range(2):
        with pytest.warns(PluginWarning, match="still bad"):
            registry.load_all()
        registry.refresh()


# -- lookup ----------------------------------------------------------------------------------------


def test_unknown_name_suggests_the_three_closest_best_first() -> None:
    # Similarity to "Conv": Conv1 .89, Conv12 .8, Conv123 .73, Conv1234 .67, Dense 0.
    names = ["Dense", "Conv1234", "Conv123", "Conv12", "Conv1"]
    registry = Registry([record(n, f"p>{n}") for n in names])
    with pytest.raises(PluginNotFoundError) as caught:
        registry.get("Conv")
    assert str(caught.value) == (
        "no installed layerhub plugin provides 'Conv'; did you mean Conv1, Conv12, Conv123?"
    )
    with pytest.raises(PluginNotFoundError) as caught:
        registry.get("Zzzzzz")
    assert str(caught.value) == "no installed layerhub plugin provides 'Zzzzzz'"


def test_ambiguous_class_name_names_itself_and_the_candidates() -> None:
    registry = Registry([record("Twin", "q>Twin"), record("Twin", "p>Twin")])
    with pytest.raises(AmbiguousNameError) as caught:
        registry.get("Twin")
    assert caught.value.name == "Twin"
    assert caught.value.registered_names == ("p>Twin", "q>Twin")
    assert str(caught.value) == (
        "'Twin' is provided by several plugins (p>Twin, q>Twin); "
        "ask for one of these registered names instead"
    )


def test_legacy_names_of_a_plugin_not_loaded_are_empty() -> None:
    registry = Registry([record("Never", "never>Never")])
    assert registry.legacy_names("never") == {}
    assert registry.legacy_names("nobody") == {}


@pytest.mark.usefixtures("quiet")
def test_object_a_hand_registered_plugin_lacks_is_not_provided(
    fake_dist: FakeDist, site: Path
) -> None:
    # Registered by hand first, then installed with more objects: the module in use wins.
    p = "layerhub_edge_hand"
    (site / p).mkdir()
    (site / p / "__init__.py").write_text(SIMPLE.format(cls="Mine"))
    module = importlib.import_module(p)
    registry = Registry()
    registry.register(module)
    fake_dist("layerhub-edge-hand", plugin=p, objects={"Mine": f"{p}:Mine", "Later": f"{p}:Later"})
    registry.refresh()
    assert registry.get("Mine") is module.Mine
    with pytest.raises(BrokenPluginError) as caught:
        registry.get("Later")
    assert str(caught.value) == f"plugin {p!r} does not provide {p}>Later: hooks do not provide it"


# -- registering by hand ---------------------------------------------------------------------------


def test_registering_a_submodule_names_the_plugin_after_its_package(site: Path) -> None:
    p = "layerhub_edge_sub"
    (site / p).mkdir()
    (site / p / "__init__.py").write_text("")
    (site / p / "hooks.py").write_text(SIMPLE.format(cls="Sub").replace("__name__", repr(p)))
    hooks = importlib.import_module(f"{p}.hooks")
    registry = Registry(autoload=False)
    assert registry.register(hooks) == [
        LayerRecord("Sub", f"{p}>Sub", p, f"{p}.hooks", None, None, status="loaded")
    ]
    assert registry.load_plugin(p) is hooks
    assert registry.get("Sub") is hooks.Sub
    assert registry.legacy_names(p) == {"Sub": hooks.Sub}


def test_a_hand_registered_name_with_a_marker_keeps_all_after_the_package(site: Path) -> None:
    # As discovery names "p>v1>Gate" from the entry point "v1>Gate": the plugin is the package
    # before the first ">", the rest is the name.
    p = "layerhub_edge_handgate"
    (site / f"{p}.py").write_text(
        HEADER
        + "\nclass Gate(keras.layers.Layer):\n    pass\n\nlayer(Gate, name='v1>Gate')\n"
        + "\n@hookimpl\ndef layerhub_layers():\n    return [Gate]\n"
    )
    module = importlib.import_module(p)
    (record,) = Registry(autoload=False).register(module)
    assert (record.name, record.registered_name) == ("v1>Gate", f"{p}>v1>Gate")


def test_registering_an_installed_plugin_by_hand_is_a_conflict(fake_dist: FakeDist) -> None:
    p = "layerhub_edge_installed"
    plugin(fake_dist, p, SIMPLE.format(cls="Inst"), "Inst")
    module = importlib.import_module(p)
    registry = Registry()
    with pytest.raises(PluginConflictError) as caught:
        registry.register(module)
    assert str(caught.value) == f"plugin {p!r} is already registered"
    assert registry.list("Inst")[0].status == "installed"


def test_a_module_pluggy_rejects_is_a_broken_plugin(site: Path) -> None:
    p = "layerhub_edge_badsig"
    (site / f"{p}.py").write_text(
        "from layerhub import hookimpl\n\n"
        "@hookimpl\ndef layerhub_layers(unexpected):\n    return []\n"
    )
    module = importlib.import_module(p)
    with pytest.raises(BrokenPluginError) as caught:
        Registry(autoload=False).register(module)
    said = str(caught.value)
    assert said.startswith(f"cannot register plugin {p!r}: PluginValidationError: ")
    assert "\n" not in said


@pytest.mark.usefixtures("quiet")
def test_registering_by_hand_skips_what_is_not_a_keras_object(site: Path) -> None:
    p = "layerhub_edge_junk"
    source = SIMPLE.format(cls="Real") + (
        "\n@hookimpl(specname='layerhub_layers')\ndef more_layers():\n    return None\n"
        "\n@hookimpl(specname='layerhub_layers')\ndef junk_layers():\n    return [[1, 2], 'Real']\n"
    )
    (site / f"{p}.py").write_text(source)
    module = importlib.import_module(p)
    registry = Registry(autoload=False)
    (real,) = registry.register(module)
    assert (real.registered_name, real.status) == (f"{p}>Real", "mismatch")
    assert registry.get("Real") is module.Real


# -- loading everything, import time limit ---------------------------------------------------------


def test_load_all_goes_on_past_a_plugin_already_loaded(fake_dist: FakeDist) -> None:
    p = "layerhub_aaa_edge_first"  # sorts before every installed plugin
    plugin(fake_dist, p, SIMPLE.format(cls="First"), "First")
    registry = Registry()
    registry.load_plugin(p)
    assert p == min(r.plugin for r in registry.list())
    registry.load_all()
    assert "installed" not in {r.status for r in registry.list()}


@pytest.mark.parametrize("value", ["0", "-3", "", "  ", "soon", "nan", "inf"])
def test_import_time_limit_that_makes_no_sense_means_the_default(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    from layerhub._private.registry.plugins import import_timeout

    monkeypatch.setenv("LAYERHUB_IMPORT_TIMEOUT", value)
    assert import_timeout() == 60


def test_a_zero_import_time_limit_does_not_break_plugins(
    fake_dist: FakeDist, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = "layerhub_edge_zero"
    slow = "import time\ntime.sleep(0.1)\n" + SIMPLE.format(cls="Zero")
    plugin(fake_dist, p, slow, "Zero")
    monkeypatch.setenv("LAYERHUB_IMPORT_TIMEOUT", "0")
    registry = Registry()
    registry.get("Scale")  # keras is imported before the timed import
    assert registry.load_plugin(p) is sys.modules[p]


@pytest.mark.usefixtures("quiet")
def test_custom_objects_include_the_keras_2_name_of_a_renamed_class(fake_dist: FakeDist) -> None:
    # Keras 2 files saved "OldName"; the class is now "NewName", and the metadata declares both.
    p = "layerhub_edge_renamed"
    source = SIMPLE.format(cls="NewName").replace('{"NewName": NewName}', '{"OldName": NewName}')
    plugin(fake_dist, p, source, "NewName", "OldName")
    registry = Registry()
    new = registry.get("NewName")
    assert registry.legacy_objects(["OldName"]) == {"OldName": new}
    objects = registry.custom_objects()
    assert objects["OldName"] is new
    assert objects["NewName"] is new
