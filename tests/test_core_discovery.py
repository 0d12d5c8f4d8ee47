"""Discovery: records from entry-point metadata alone, conflicts, names."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from layerhub._private.registry import discovery
from layerhub._private.registry.records import LayerRecord

FakeDist = Callable[..., Path]


def records_of(distribution: str) -> list[LayerRecord]:
    return sorted(
        (r for r in discovery.scan() if r.distribution == distribution), key=lambda r: r.name
    )


def test_one_plugin_declares_its_objects(fake_dist: FakeDist) -> None:
    fake_dist(
        "layerhub-one", version="2.5", plugin="layerhub_one",
        objects={"A": "layerhub_one.layers:A", "B": "layerhub_one:B"},
    )  # fmt: skip
    assert records_of("layerhub-one") == [
        LayerRecord("A", "layerhub_one>A", "layerhub_one", "layerhub_one", "layerhub-one", "2.5"),
        LayerRecord("B", "layerhub_one>B", "layerhub_one", "layerhub_one", "layerhub-one", "2.5"),
    ]


def test_a_distribution_declaring_two_plugins_is_broken(fake_dist: FakeDist) -> None:
    info = fake_dist("layerhub-two", objects={"Two": "layerhub_two_a.layers:Two"})
    (info / "entry_points.txt").write_text(
        "[layerhub]\nlayerhub_two_a = layerhub_two_a\nlayerhub_two_b = layerhub_two_b\n\n"
        "[layerhub.layers]\nTwo = layerhub_two_a.layers:Two\n"
    )
    (record,) = records_of("layerhub-two")
    # The registered name falls back to the object's top-level package.
    assert record == LayerRecord(
        "Two", "layerhub_two_a>Two", "layerhub_two_a", "layerhub_two_a", "layerhub-two", "1.0",
        status="broken", error="layerhub-two declares 2 plugins, not one",
    )  # fmt: skip


def test_objects_without_a_plugin_are_broken(fake_dist: FakeDist) -> None:
    fake_dist("layerhub-orphan", objects={"Lost": "layerhub_orphan.sub.mod:Lost"})
    (record,) = records_of("layerhub-orphan")
    assert (record.registered_name, record.plugin, record.module) == (
        "layerhub_orphan>Lost", "layerhub_orphan", "layerhub_orphan",
    )  # fmt: skip
    assert (record.status, record.error) == (
        "broken",
        "layerhub-orphan declares objects but no plugin in the 'layerhub' group",
    )


def test_a_plugin_without_objects_has_no_records(fake_dist: FakeDist) -> None:
    fake_dist("layerhub-empty", plugin="layerhub_empty")
    assert records_of("layerhub-empty") == []


def test_twins_are_conflicts_and_others_are_not(fake_dist: FakeDist) -> None:
    for distribution in ("layerhub-twin-a", "layerhub-twin-b"):
        fake_dist(distribution, plugin="layerhub_twin", objects={"T": "layerhub_twin:T"})
    fake_dist("layerhub-other", plugin="layerhub_other", objects={"O": "layerhub_other:O"})
    (a,) = records_of("layerhub-twin-a")
    (b,) = records_of("layerhub-twin-b")
    assert (a.status, a.error) == ("conflict", "plugin 'layerhub_twin' is also provided by "
                                   "layerhub-twin-b")  # fmt: skip
    assert (b.status, b.error) == ("conflict", "plugin 'layerhub_twin' is also provided by "
                                   "layerhub-twin-a")  # fmt: skip
    assert records_of("layerhub-other")[0].status == "installed"


def test_mark_conflicts_keeps_other_statuses_and_lists_every_other_claimant() -> None:
    def record(dist: str | None, status: str = "installed") -> LayerRecord:
        return LayerRecord("X", "p>X", "p", "p", dist, "1", status)  # type: ignore[arg-type]

    marked = discovery.mark_conflicts(
        [record("c"), record("a"), record("b", "broken"), record(None), record("solo")._replace(
            plugin="q")]
    )  # fmt: skip
    assert [(r.status, r.error) for r in marked] == [
        ("conflict", "plugin 'p' is also provided by , a, b"),
        ("conflict", "plugin 'p' is also provided by , b, c"),
        ("broken", None),
        ("conflict", "plugin 'p' is also provided by a, b, c"),
        ("installed", None),
    ]
    single = [record("a"), record("a")]
    assert discovery.mark_conflicts(single) == single


def test_distribution_name_is_canonical(fake_dist: FakeDist) -> None:
    info = fake_dist("layerhub-canon", plugin="layerhub_canon", objects={"C": "layerhub_canon:C"})
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: LayerHub__Canon.\nVersion: 3\n")
    assert [r.version for r in records_of("layerhub-canon-")] == ["3"]


def test_version_in_the_description_is_not_the_version(fake_dist: FakeDist) -> None:
    # Name and Version are read from the header block only; without Version there, the email
    # parser's answer (no version) is used, never a line of the description.
    info = fake_dist("layerhub-body", plugin="layerhub_body", objects={"B": "layerhub_body:B"})
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: layerhub-body\n\nVersion: 9\n")
    (record,) = records_of("layerhub-body")
    assert record.version == "unknown"


def test_pkg_info_is_read_when_there_is_no_metadata(fake_dist: FakeDist) -> None:
    info = fake_dist("layerhub-pkg", plugin="layerhub_pkg", objects={"P": "layerhub_pkg:P"})
    (info / "METADATA").rename(info / "PKG-INFO")
    (record,) = records_of("layerhub-pkg")
    assert record.version == "1.0"


def test_unusual_metadata_falls_back_to_the_email_parser(fake_dist: FakeDist) -> None:
    # Header names are case-insensitive; the fast reader knows only "Name" and "Version".
    info = fake_dist("layerhub-fold", plugin="layerhub_fold", objects={"F": "layerhub_fold:F"})
    (info / "METADATA").write_text("Metadata-Version: 2.1\nname: layerhub-fold\nversion: 4.2\n")
    (record,) = records_of("layerhub-fold")
    assert record.version == "4.2"


def test_metadata_without_a_name_is_unknown(fake_dist: FakeDist) -> None:
    info = fake_dist("layerhub-anon", plugin="layerhub_anon", objects={"N": "layerhub_anon:N"})
    (info / "METADATA").write_text("Metadata-Version: 2.1\nSummary: no name\n")
    records = [r for r in discovery.scan() if r.plugin == "layerhub_anon"]
    assert [(r.distribution, r.version) for r in records] == [("unknown", "unknown")]


def test_canonical_name() -> None:
    assert discovery.canonical_name("Layer_Hub.-Scale") == "layer-hub-scale"
    assert discovery.canonical_name("a") == "a"


def test_installed_first_party_plugins_are_discovered() -> None:
    # tests/test_plugins.py parametrises over registry.list() at collection time: with nothing
    # discovered it would become one skipped empty parameter set. This fails instead.
    found = {r.distribution for r in discovery.scan()}
    plugins = Path(__file__).resolve().parents[1] / "plugins"
    expected = {p.name for p in plugins.glob("layerhub-*") if (p / "pyproject.toml").exists()}
    assert "layerhub-scale" in found
    assert expected <= found
