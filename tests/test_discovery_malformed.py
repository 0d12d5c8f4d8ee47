"""A malformed entry point or entry_points.txt breaks its own distribution, never the listing."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from _hardening import plugin

from layerhub import BrokenPluginError, PluginWarning, Registry
from layerhub._private.registry import discovery

FakeDist = Callable[..., Path]

GOOD = """
import keras
from layerhub import hookimpl

@keras.saving.register_keras_serializable(package="layerhub_fine")
class Fine(keras.layers.Layer):
    def call(self, x):
        return x

@hookimpl
def layerhub_layers():
    return [Fine]
"""

# entry_points.txt texts that importlib.metadata's own parser raises on (TypeError for a line
# without "=", UnicodeDecodeError for bytes that are not UTF-8).
UNPARSEABLE = {
    "line_without_equals": b"[layerhub]\nlayerhub_bad\n",
    "not_utf8": b"\xff\xfe[layerhub]\nlayerhub_bad = layerhub_bad\n",
}

# Parsed, but not entry points layerhub can use.
MALFORMED = {
    "empty_plugin_name": "[layerhub]\n = layerhub_bad\n[layerhub.layers]\nBad = layerhub_bad:Bad\n",
    "plugin_not_a_module": "[layerhub]\nlayerhub_bad = no such module!\n"
    "[layerhub.layers]\nBad = layerhub_bad:Bad\n",
    "object_value_garbage": "[layerhub]\nlayerhub_bad = layerhub_bad\n"
    "[layerhub.layers]\nBad = !!!\n",
    "object_name_with_escape": "[layerhub]\nlayerhub_bad = layerhub_bad\n"
    "[layerhub.layers]\nB\x1bad = layerhub_bad:Bad\n",
}


@pytest.fixture(autouse=True)
def _plugin_warnings_are_expected() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PluginWarning)
        yield


def bad_distribution(fake_dist: FakeDist, entry_points: bytes) -> Path:
    info = fake_dist("layerhub-bad", modules={"layerhub_bad/__init__.py": "raise SystemExit"})
    (info / "entry_points.txt").write_bytes(entry_points)
    return info


def assert_listing_goes_on(registry: Registry) -> None:
    records = registry.list()
    fine = [r for r in records if r.registered_name == "layerhub_fine>Fine"]
    assert [r.status for r in fine] == ["installed"]
    assert registry.get("Fine").__name__ == "Fine"
    assert registry.list("Scale")[0].status in ("installed", "loaded")


@pytest.mark.parametrize("kind", sorted(UNPARSEABLE))
def test_an_unparseable_entry_points_txt_marks_its_distribution_broken(
    fake_dist: FakeDist, kind: str
) -> None:
    plugin(fake_dist, "layerhub_fine", GOOD, "Fine")
    bad_distribution(fake_dist, UNPARSEABLE[kind])
    registry = Registry()
    (bad,) = [r for r in registry.list() if r.distribution == "layerhub-bad"]
    assert bad.status == "broken"
    assert bad.error is not None
    assert "entry_points.txt that cannot be parsed" in bad.error
    assert bad in registry.problems()
    assert_listing_goes_on(registry)


def test_an_unparseable_entry_points_txt_of_another_project_is_ignored(
    fake_dist: FakeDist,
) -> None:
    plugin(fake_dist, "layerhub_fine", GOOD, "Fine")
    info = fake_dist("unrelated-project")
    (info / "entry_points.txt").write_bytes(b"[console_scripts]\nbroken line\n")
    registry = Registry()
    assert not [r for r in registry.list() if r.distribution == "unrelated-project"]
    assert_listing_goes_on(registry)


@pytest.mark.parametrize("kind", sorted(MALFORMED))
def test_a_malformed_entry_point_marks_its_distribution_broken(
    fake_dist: FakeDist, kind: str
) -> None:
    plugin(fake_dist, "layerhub_fine", GOOD, "Fine")
    bad_distribution(fake_dist, MALFORMED[kind].encode())
    registry = Registry()
    bad = [r for r in registry.list() if r.distribution == "layerhub-bad"]
    assert bad
    assert {r.status for r in bad} == {"broken"}
    for record in bad:
        assert record.error is not None
        assert "malformed entry point" in record.error
        assert "\x1b" not in record.error
        assert "!!!" not in record.error
        assert "\x1b" not in record.name
        with pytest.raises(BrokenPluginError):  # never imported: its module would exit
            registry.load_plugin(record.plugin)
    assert_listing_goes_on(registry)
    registry.load_all()  # goes on too


def test_scan_reads_the_well_formed_distributions_beside_a_broken_one(
    fake_dist: FakeDist,
) -> None:
    plugin(fake_dist, "layerhub_fine", GOOD, "Fine")
    bad_distribution(fake_dist, UNPARSEABLE["line_without_equals"])
    names = {r.registered_name: r.status for r in discovery.scan()}
    assert names["layerhub_fine>Fine"] == "installed"
    assert names["layerhub_scale>Scale"] == "installed"
