"""A plugin that misbehaves never takes the others down; hand-registered plugins; refresh."""

from __future__ import annotations

import json
import re
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from _hardening import plugin

from layerhub import (
    AmbiguousNameError,
    BrokenPluginError,
    PluginConflictError,
    PluginNotFoundError,
    PluginWarning,
    Registry,
)
from layerhub._private.cli import command
from layerhub._private.registry import discovery

FakeDist = Callable[..., Path]

GOOD = """
import keras
from layerhub import hookimpl

@keras.saving.register_keras_serializable(package="{plugin}")
class {cls}(keras.layers.Layer):
    def call(self, x):
        return x

@hookimpl
def layerhub_layers():
    return [{cls}]
"""


@pytest.fixture(autouse=True)
def _plugin_warnings_are_expected() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PluginWarning)
        yield


def assert_others_work(registry: Registry) -> None:
    assert registry.get("Scale").__name__ == "Scale"
    assert registry.list("Scale")[0].status == "loaded"
    registry.load_all()
    objects = registry.custom_objects()
    assert objects["Scale"].__name__ == "Scale"
    assert registry.list()  # never raises


# -- B. imports that raise BaseException, or hang -------------------------------------------------


@pytest.mark.parametrize(
    ("raised", "said"),
    [
        ("SystemExit('code: 3')", "raised SystemExit while importing: code: 3"),
        ("KeyboardInterrupt()", "raised KeyboardInterrupt while importing"),
    ],
)
def test_plugin_whose_import_raises_base_exception_is_broken(
    fake_dist: FakeDist, raised: str, said: str
) -> None:
    name = f"layerhub_exits_{raised[:3].lower()}"
    plugin(fake_dist, name, f"raise {raised}\n", "Exits")
    registry = Registry()
    registry.load_all()
    (record,) = registry.list("Exits")
    assert record.status == "broken"
    kind = raised.partition("(")[0]
    assert record.error == said
    assert "\n" not in (record.error or "")
    with pytest.raises(BrokenPluginError, match=f"raised {kind}"):
        registry.get("Exits")
    assert record in registry.problems()
    assert_others_work(registry)


def test_plugin_whose_import_hangs_is_broken_after_the_timeout(
    fake_dist: FakeDist, site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (site / "layerhub_test_gate.py").write_text("import threading\nOPEN = threading.Event()\n")
    import layerhub_test_gate  # type: ignore[import-not-found]

    plugin(
        fake_dist,
        "layerhub_hangs",
        "import layerhub_test_gate\nlayerhub_test_gate.OPEN.wait(60)\n"
        + GOOD.format(plugin="layerhub_hangs", cls="Hangs"),
        "Hangs",
    )
    monkeypatch.setenv("LAYERHUB_IMPORT_TIMEOUT", "0.5")
    registry = Registry()
    registry.get("Scale")  # keras is imported before the timed plugin imports
    try:
        start = time.monotonic()
        registry.load_all()
        assert time.monotonic() - start < 10
        (record,) = registry.list("Hangs")
        assert (record.status, record.error) == (
            "broken",
            "did not finish importing within 0.5 s",
        )
        assert_others_work(registry)
    finally:
        layerhub_test_gate.OPEN.set()


def test_import_timeout_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from layerhub._private.registry.plugins import import_timeout

    monkeypatch.delenv("LAYERHUB_IMPORT_TIMEOUT", raising=False)
    assert import_timeout() == 60
    for value, expected in (("2.5", 2.5), ("nonsense", 60), ("-1", 60), ("inf", 60)):
        monkeypatch.setenv("LAYERHUB_IMPORT_TIMEOUT", value)
        assert import_timeout() == expected


def test_a_real_interrupt_of_the_caller_is_not_swallowed(
    fake_dist: FakeDist, site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Ctrl-C is SIGINT to the main thread, which is waiting for the importing thread.
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        pytest.skip("this process does not turn SIGINT into KeyboardInterrupt (mutmut's runner)")
    (site / "layerhub_test_gate2.py").write_text("import threading\nOPEN = threading.Event()\n")
    import layerhub_test_gate2  # type: ignore[import-not-found]

    plugin(
        fake_dist,
        "layerhub_slow",
        "import layerhub_test_gate2\nlayerhub_test_gate2.OPEN.wait(60)\n",
        "Slow",
    )
    monkeypatch.setenv("LAYERHUB_IMPORT_TIMEOUT", "30")
    registry = Registry()
    registry.get("Scale")
    main = threading.main_thread().ident
    assert main is not None
    timer = threading.Timer(0.3, signal.pthread_kill, (main, signal.SIGINT))
    start = time.monotonic()
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            registry.load_plugin("layerhub_slow")
        assert time.monotonic() - start < 10
    finally:
        timer.cancel()
        layerhub_test_gate2.OPEN.set()


# -- B. hooks that return garbage, names outside the plugin's package -----------------------------

GARBAGE = {
    "none": "None",
    "string": "'Garbage'",
    "number": "42",
    "strings": "['Garbage']",
    "unhashable": "[[1, 2]]",
    "builtin": "[keras.layers.Dense]",
    "unregistered": "[Unregistered]",
    "foreign": "[Foreign]",
    "keras_package": "[KerasNamed]",
}

# What the record says first (for "foreign" and "keras_package" it depends on which test
# registered the name with Keras first).
GARBAGE_SAID = {
    "none": "its layerhub_layers hook returned None (NoneType), not a list",
    "string": "its layerhub_layers hook returned 'Garbage' (str), not a list",
    "number": "its layerhub_layers hook returned 42 (int), not a list",
    "strings": "its layerhub_layers hook returned 'Garbage' (str)",
    "unhashable": "its layerhub_layers hook returned [1, 2] (list)",
    "builtin": "Dense is not registered with keras.saving",
    "unregistered": "Unregistered is not registered with keras.saving",
}

GARBAGE_PLUGIN = """
import keras
from layerhub import hookimpl

class Unregistered(keras.layers.Layer):
    pass

@keras.saving.register_keras_serializable(package="Custom")
class Foreign(keras.layers.Layer):
    pass

@keras.saving.register_keras_serializable(package="keras")
class KerasNamed(keras.layers.Layer):
    pass

@hookimpl
def layerhub_layers():
    return {value}
"""


@pytest.mark.parametrize("kind", sorted(GARBAGE))
def test_hook_returning_garbage_is_a_mismatch(fake_dist: FakeDist, kind: str) -> None:
    name = f"layerhub_garbage_{kind}"
    plugin(fake_dist, name, GARBAGE_PLUGIN.format(value=GARBAGE[kind]), "Garbage")
    registry = Registry()
    registry.load_all()
    (record,) = registry.list("Garbage")
    assert record.status == "mismatch"
    assert "\n" not in (record.error or "")
    assert f"{name}>Garbage but the hooks do not provide it" in (record.error or "")
    if kind in GARBAGE_SAID:
        assert (record.error or "").partition("; ")[0] == GARBAGE_SAID[kind]
    with pytest.raises(BrokenPluginError):
        registry.get("Garbage")
    objects = registry.custom_objects()
    assert "Dense" not in objects
    assert "Foreign" not in objects
    assert "KerasNamed" not in objects
    assert record in registry.problems()
    assert_others_work(registry)


def test_object_registered_outside_the_plugin_package_is_not_served(
    fake_dist: FakeDist,
) -> None:
    plugin(fake_dist, "layerhub_squatter", GARBAGE_PLUGIN.format(value="[Foreign]"), "Foreign")
    registry = Registry()
    registry.load_all()
    (record,) = registry.list("Foreign")
    assert record.status == "mismatch"
    assert "Custom>Foreign is registered outside the plugin's package 'layerhub_squatter'" in (
        record.error or ""
    )
    with pytest.raises(BrokenPluginError):
        registry.get("Foreign")
    assert "Foreign" not in registry.custom_objects()


@pytest.mark.parametrize(
    ("hook", "body"),
    [
        ("layerhub_layers", "raise RuntimeError('hook exploded')"),
        ("layerhub_layers", "raise SystemExit(1)"),
        ("layerhub_legacy_names", "raise RuntimeError('hook exploded')"),
    ],
)
def test_hook_that_raises_makes_the_plugin_broken(
    fake_dist: FakeDist, hook: str, body: str
) -> None:
    name = f"layerhub_raiser_{hook.rpartition('_')[2]}_{body.split()[1][:6].lower()}"
    source = GOOD.format(plugin=name, cls="Raiser")
    if hook == "layerhub_layers":
        source = source.replace("    return [Raiser]", f"    {body}")
    else:
        source += f"\n@hookimpl\ndef {hook}():\n    {body}\n"
    plugin(fake_dist, name, source, "Raiser")
    registry = Registry()
    registry.load_all()
    (record,) = registry.list("Raiser")
    assert record.status == "broken"
    assert f"its {hook} hook raised" in (record.error or "")
    assert "\n" not in (record.error or "")
    assert record in registry.problems()
    assert_others_work(registry)


def test_legacy_names_that_are_garbage_or_foreign_are_not_served(fake_dist: FakeDist) -> None:
    source = GOOD.format(plugin="layerhub_oldlies", cls="OldLies") + (
        "\n@hookimpl\ndef layerhub_legacy_names():\n    return {'OldLies': keras.layers.Dense}\n"
    )
    plugin(fake_dist, "layerhub_oldlies", source, "OldLies")
    registry = Registry()
    registry.load_all()
    (record,) = registry.list("OldLies")
    assert record.status == "mismatch"
    assert "legacy name OldLies maps to an object the plugin lacks" in (record.error or "")
    assert registry.legacy_objects(["OldLies"]) == {}
    assert registry.custom_objects()["OldLies"].__name__ == "OldLies"


# -- B. a conflicting pair ------------------------------------------------------------------------


def test_conflicting_pair_does_not_stop_load_all_custom_objects_or_doctor(
    fake_dist: FakeDist, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for dist in ("layerhub-pair-one", "layerhub-pair-two"):
        fake_dist(
            dist,
            plugin="layerhub_pair",
            objects={"Scale": "layerhub_pair:Scale"},
            modules={"layerhub_pair/__init__.py": GOOD.format(plugin="layerhub_pair", cls="Scale")},
        )
    registry = Registry()
    registry.load_all()
    assert {r.status for r in registry.list("layerhub_pair>*")} == {"conflict"}
    assert "layerhub_pair" not in sys.modules
    objects = registry.custom_objects()
    assert objects["Scale"].__name__ == "Scale"
    assert objects["PAM"].__name__ == "PAM"
    assert len([r for r in registry.problems() if r.plugin == "layerhub_pair"]) == 2
    assert {r.status for r in registry.list("layerhub_pair>*")} == {"conflict"}

    monkeypatch.setattr(command, "registry", Registry())
    assert command.main(["doctor"]) == 1
    out = capsys.readouterr().out
    assert re.search(r"^conflict +layerhub_pair +layerhub-pair-one +1\.0 +Scale$", out, re.M)
    assert re.search(r"^ok +layerhub_scale +layerhub-scale ", out, re.M)


def test_bare_name_two_plugins_provide_is_left_out_of_custom_objects(
    fake_dist: FakeDist,
) -> None:
    plugin(fake_dist, "layerhub_squat", GOOD.format(plugin="layerhub_squat", cls="Scale"), "Scale")
    registry = Registry()
    with pytest.warns(
        PluginWarning, match=r"Scale is provided as layerhub_scale>Scale, layerhub_sq"
    ):
        objects = registry.custom_objects()
    assert "Scale" not in objects
    assert objects["PAM"].__name__ == "PAM"
    assert registry.get("layerhub_squat>Scale") is not registry.get("layerhub_scale>Scale")


# -- A. hand-registered plugins, refresh, serialisation -------------------------------------------


def test_hand_registered_plugin_has_no_distribution(
    fake_dist: FakeDist, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    plugin(fake_dist, "layerhub_byhand", GOOD.format(plugin="layerhub_byhand", cls="ByHand"))
    import layerhub_byhand  # type: ignore[import-not-found]

    registry = Registry(autoload=False)
    (record,) = registry.register(layerhub_byhand)
    assert (record.distribution, record.version, record.pip_command) == (None, None, None)
    assert record.status == "loaded"
    data = json.loads(json.dumps(registry.to_dict()))
    assert data["records"][0]["distribution"] is None

    monkeypatch.setattr(command, "registry", registry)
    for argv in (["list"], ["info", "ByHand"], ["doctor"]):
        assert command.main(argv) == 0
        out = capsys.readouterr().out
        assert "(registered by hand)" in out, argv
        assert not re.search(r"\bNone\b", out.replace("=None", "")), argv
    command.main(["info", "ByHand"])
    out = capsys.readouterr().out
    assert "distribution     (registered by hand)\n" in out
    assert "install          -\n" in out


def test_refresh_keeps_plugins_registered_by_hand(fake_dist: FakeDist) -> None:
    plugin(fake_dist, "layerhub_kept", GOOD.format(plugin="layerhub_kept", cls="Kept"))
    import layerhub_kept  # type: ignore[import-not-found]

    registry = Registry()
    registry.register(layerhub_kept)
    registry.refresh()
    assert [(r.name, r.status) for r in registry.list("Kept")] == [("Kept", "loaded")]
    assert registry.get("Kept") is layerhub_kept.Kept
    with pytest.raises(PluginConflictError, match="already registered"):
        registry.register(layerhub_kept)
    assert registry.get("Scale").__name__ == "Scale"


def test_refresh_retries_a_plugin_fixed_by_a_new_install(fake_dist: FakeDist, site: Path) -> None:
    info = plugin(
        fake_dist,
        "layerhub_fixed",
        "import layerhub_fixed.helpers\nraise ImportError('needs a newer numpy')\n",
        "Fixed",
        version="1.0",
    )
    (site / "layerhub_fixed" / "helpers.py").write_text("VALUE = 1\n")
    registry = Registry()
    registry.load_all()
    assert registry.list("Fixed")[0].status == "broken"
    assert "layerhub_fixed.helpers" in sys.modules

    # "pip install layerhub-fixed==1.1": new metadata, new code.
    for path in info.iterdir():
        path.unlink()
    info.rmdir()
    plugin(
        fake_dist,
        "layerhub_fixed",
        GOOD.format(plugin="layerhub_fixed", cls="Fixed"),
        "Fixed",
        version="1.1",
    )
    registry.refresh()
    assert "layerhub_fixed.helpers" not in sys.modules
    (record,) = registry.list("Fixed")
    assert (record.version, record.status, record.error) == ("1.1", "installed", None)
    assert registry.get("Fixed").__name__ == "Fixed"
    assert registry.list("Fixed")[0].status == "loaded"
    assert registry.problems() == [r for r in registry.problems() if r.plugin != "layerhub_fixed"]


def test_refresh_then_load_all_reloads_what_was_loaded(fake_dist: FakeDist) -> None:
    registry = Registry()
    registry.load_all()
    scale = registry.get("Scale")
    registry.refresh()
    assert registry.list("Scale")[0].status == "installed"
    registry.load_all()  # registering the same plugins again must not raise
    assert registry.get("Scale") is scale


# -- C. distribution names ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["layerhub-scale", "LayerHub_Scale", "layerhub.scale", "Layerhub__-._scale", "A"]
)
def test_canonical_name_agrees_with_packaging(name: str) -> None:
    from packaging.utils import canonicalize_name

    assert discovery.canonical_name(name) == canonicalize_name(name)


def test_distribution_name_is_read_from_metadata_and_normalised(fake_dist: FakeDist) -> None:
    info = fake_dist(
        "LayerHub.Odd_Name",
        version="2.0",
        plugin="layerhub_odd",
        objects={"Odd": "layerhub_odd:Odd"},
    )
    # A .dist-info directory whose name says nothing useful: the metadata decides.
    info.rename(info.with_name("whatever.dist-info"))
    (record,) = Registry().list("Odd")
    assert (record.distribution, record.version) == ("layerhub-odd-name", "2.0")
    assert record.pip_command == "pip install layerhub-odd-name"


# -- F. first calls, fresh registries, threads -----------------------------------------------------


def test_load_plugin_returns_the_module_from_the_first_call_on(fake_dist: FakeDist) -> None:
    plugin(
        fake_dist,
        "layerhub_firstcall",
        GOOD.format(plugin="layerhub_firstcall", cls="First"),
        "First",
    )
    registry = Registry()
    module = registry.load_plugin("layerhub_firstcall")
    assert module is sys.modules["layerhub_firstcall"]
    assert registry.load_plugin("layerhub_firstcall") is module
    (record,) = registry.list("First")
    assert record.status == "loaded"


def test_a_fresh_registry_of_good_plugins_has_no_problems(fake_dist: FakeDist) -> None:
    plugin(fake_dist, "layerhub_fine", GOOD.format(plugin="layerhub_fine", cls="Fine"), "Fine")
    registry = Registry()
    assert registry.problems() == []
    registry.load_all()
    assert [r.status for r in registry.list("Fine")] == ["loaded"]
    assert [r for r in registry.problems() if r.plugin == "layerhub_fine"] == []


def test_threads_on_a_fresh_registry_scan_once_and_agree(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    scans: list[int] = []
    real_scan = discovery.scan

    def slow_scan() -> list[object]:
        scans.append(threading.get_ident())
        time.sleep(0.05)  # wide enough for every thread to arrive while the first one scans
        return real_scan()  # type: ignore[return-value]

    monkeypatch.setattr(discovery, "scan", slow_scan)
    registry = Registry()
    start = threading.Barrier(8)
    seen: list[list[str]] = []

    def ask(i: int) -> None:
        start.wait()
        if i % 2:
            seen.append([r.registered_name for r in registry.list()])
        else:
            registry.get("Scale")
            seen.append([r.registered_name for r in registry.list()])

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(scans) == 1
    assert len(seen) == 8
    assert all(names == seen[0] for names in seen)
    assert "layerhub_scale>Scale" in seen[0]


def test_an_import_slower_than_the_limit_is_broken_and_not_waited_for(
    fake_dist: FakeDist, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A new name each run: the import finishes in the background and stays in sys.modules.
    name = f"layerhub_late_{time.monotonic_ns()}"
    source = "import threading, time\n" + (
        "SEEN = (threading.current_thread().name, threading.current_thread().daemon)\n"
        "time.sleep(1.5)\n"
    )
    plugin(fake_dist, name, source + GOOD.format(plugin=name, cls="Late"), "Late")
    monkeypatch.setenv("LAYERHUB_IMPORT_TIMEOUT", "0.25")
    registry = Registry()
    start = time.monotonic()
    with pytest.raises(BrokenPluginError) as caught:
        registry.load_plugin(name)
    assert time.monotonic() - start < 1.2
    assert str(caught.value).endswith("did not finish importing within 0.25 s")
    (record,) = registry.list("Late")
    assert record.error == "did not finish importing within 0.25 s"
    while name not in sys.modules or not hasattr(sys.modules[name], "Late"):
        time.sleep(0.05)  # the import goes on in its own thread
    assert (f"layerhub import {name}", True) == sys.modules[name].SEEN


@pytest.mark.parametrize(
    ("backend_says", "said"),
    [
        (
            None,
            "cannot import keras: ModuleNotFoundError: import of keras halted; None in sys.modules",
        ),
        ("no Keras backend is installed", "no Keras backend is installed"),
    ],
)
def test_a_keras_that_does_not_import_is_blamed_not_the_plugin(
    monkeypatch: pytest.MonkeyPatch, backend_says: str | None, said: str
) -> None:
    from layerhub._private.registry import backend

    monkeypatch.setitem(sys.modules, "keras", None)
    monkeypatch.setattr(backend, "missing_backend", lambda: backend_says)
    registry = Registry()
    with pytest.raises(BrokenPluginError) as caught:
        registry.load_plugin("layerhub_scale")
    assert str(caught.value).endswith(f"failed to load: {said}")


def test_origin_names_distribution_and_version() -> None:
    from layerhub._private.registry.plugins import BY_HAND, origin
    from layerhub._private.registry.records import LayerRecord

    record = LayerRecord("X", "layerhub_x>X", "layerhub_x", "layerhub_x:X", "layerhub-x", "1.2")
    assert origin(record) == "layerhub-x 1.2"
    assert origin(record._replace(version=None)) == "layerhub-x"
    assert origin(record._replace(distribution=None, version=None)) == BY_HAND


def test_from_dict_holds_exactly_the_records_given() -> None:
    from layerhub._private.registry.records import LayerRecord

    record = LayerRecord("Made", "layerhub_made>Made", "layerhub_made", "m:Made", "made", "1")
    data = {"format": 1, "records": [record.to_dict()]}
    assert Registry.from_dict(data).list() == [record]
    with pytest.raises(ValueError, match=r"^unsupported registry format: 99$"):
        Registry.from_dict({"format": 99, "records": []})


def test_to_dict_sorts_records_by_name_ignoring_case() -> None:
    names = [r["name"] for r in Registry().to_dict()["records"]]
    assert names == sorted(names, key=str.lower)
    assert names != sorted(names)  # the plugins mix cases, so the order is not the default


def test_load_for_returns_the_objects_it_found_by_registered_name() -> None:
    registry = Registry()
    found = registry.load_for(["layerhub_scale>Scale", "nobody>Nothing"])
    assert list(found) == ["layerhub_scale>Scale"]
    assert found["layerhub_scale>Scale"].__name__ == "Scale"


def test_refresh_lets_a_still_broken_plugin_warn_again(fake_dist: FakeDist) -> None:
    plugin(fake_dist, "layerhub_still", "raise ImportError('still broken')\n", "Still")
    registry = Registry()
    with pytest.warns(PluginWarning, match="still broken"):
        registry.load_all()
    with warnings.catch_warnings():
        warnings.simplefilter("error", PluginWarning)
        registry.load_all()  # told once: nothing new
        assert registry.list("Still")[0].status == "broken"
    registry.refresh()
    with pytest.warns(PluginWarning, match="still broken"):
        registry.load_all()


def test_unknown_names_suggest_at_most_three_close_ones() -> None:
    from layerhub._private.registry.records import LayerRecord

    def record(name: str) -> LayerRecord:
        return LayerRecord(name, f"p>{name}", "p", "p", "p", "1")

    registry = Registry([record(n) for n in ("Scale1", "Scale2", "Scale3", "Scale4", "PAM")])
    with pytest.raises(PluginNotFoundError) as caught:
        registry.get("Scale")
    said = str(caught.value)
    assert said.startswith("no installed layerhub plugin provides 'Scale'; did you mean ")
    names = said.rpartition("mean ")[2].removesuffix("?").split(", ")
    assert len(names) == 3
    assert set(names) < {"Scale1", "Scale2", "Scale3", "Scale4"}
    with pytest.raises(PluginNotFoundError) as caught:
        registry.get("Zzzzzz")
    assert str(caught.value) == "no installed layerhub plugin provides 'Zzzzzz'"
    with pytest.raises(AmbiguousNameError) as ambiguous:
        Registry([record("Twin"), record("Twin")._replace(registered_name="q>Twin")]).get("Twin")
    assert "p>Twin, q>Twin" in str(ambiguous.value)
    assert "'Twin'" in str(ambiguous.value)
