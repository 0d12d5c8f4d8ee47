"""Discovery's fast metadata reader and the fake distributions tests and benchmarks rely on."""

from __future__ import annotations

import importlib.metadata as metadata
import locale
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from layerhub._private.registry import discovery
from layerhub._private.registry.records import LayerRecord
from layerhub.testing.fakes import write_fake_distribution, write_upgrading_plugin

FakeDist = Callable[..., Path]


def records_of(distribution: str) -> list[LayerRecord]:
    return sorted(
        (r for r in discovery.scan() if r.distribution == distribution), key=lambda r: r.name
    )


def email_parser_answer(info: Path) -> tuple[str, str]:
    """Name and version as ``importlib.metadata`` parses them from the whole file."""
    dist = metadata.PathDistribution(info)
    return discovery.canonical_name(dist.metadata["Name"]), dist.version


def forbid_email_parser(monkeypatch: pytest.MonkeyPatch, info: Path) -> None:
    """Make ``dist.metadata`` (and so ``dist.version``) fail for the distribution at ``info``."""
    original = metadata.Distribution.metadata

    def guarded(self: metadata.Distribution) -> object:
        if Path(getattr(self, "_path", "")) == info:
            raise AssertionError(f"discovery parsed all of {info.name} with the email parser")
        return original.fget(self)  # type: ignore[attr-defined]

    monkeypatch.setattr(metadata.Distribution, "metadata", property(guarded))


# --- discovery: Name and Version come from the header, without the email parser -----------


def test_name_and_version_are_read_from_the_metadata_header_alone(
    fake_dist: FakeDist, monkeypatch: pytest.MonkeyPatch
) -> None:
    info = fake_dist("Layerhub_Fast", version="2.5", plugin="layerhub_fast",
                     objects={"F": "layerhub_fast:F"})  # fmt: skip
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: Layerhub_Fast\nSummary: fast\nVersion: 2.5\n\nbody\n",
        encoding="utf-8",
    )
    assert email_parser_answer(info) == ("layerhub-fast", "2.5")
    forbid_email_parser(monkeypatch, info)
    assert [(r.distribution, r.version, r.status) for r in records_of("layerhub-fast")] == [
        ("layerhub-fast", "2.5", "installed")
    ]


def test_pkg_info_header_is_read_without_the_email_parser(
    fake_dist: FakeDist, monkeypatch: pytest.MonkeyPatch
) -> None:
    info = fake_dist("layerhub-pkgfast", version="3.1", plugin="layerhub_pkgfast",
                     objects={"P": "layerhub_pkgfast:P"})  # fmt: skip
    (info / "METADATA").rename(info / "PKG-INFO")
    forbid_email_parser(monkeypatch, info)
    assert [r.version for r in records_of("layerhub-pkgfast")] == ["3.1"]


def test_a_colon_inside_a_header_value_is_part_of_the_value(
    fake_dist: FakeDist, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A header is split at its first colon (RFC 822), as the email parser does.
    info = fake_dist("layerhub-colon", plugin="layerhub_colon", objects={"C": "layerhub_colon:C"})
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: layerhub-colon\nVersion: 1.0:odd\n", encoding="utf-8"
    )
    expected = email_parser_answer(info)
    assert expected == ("layerhub-colon", "1.0:odd")
    forbid_email_parser(monkeypatch, info)
    assert [(r.distribution, r.version) for r in records_of("layerhub-colon")] == [expected]


def test_each_distribution_metadata_is_read_once_per_scan(
    fake_dist: FakeDist, monkeypatch: pytest.MonkeyPatch
) -> None:
    info = fake_dist("layerhub-many", plugin="layerhub_many",
                     objects={n: f"layerhub_many:{n}" for n in ("A", "B", "C")})  # fmt: skip
    reads: list[str] = []
    original = metadata.PathDistribution.read_text

    def counting(self: metadata.PathDistribution, filename: str) -> str | None:
        if Path(str(self._path)) == info:
            reads.append(filename)
        return original(self, filename)

    monkeypatch.setattr(metadata.PathDistribution, "read_text", counting)
    assert len(records_of("layerhub-many")) == 3
    assert reads.count("METADATA") == 1


@pytest.mark.parametrize(
    ("value", "package"),
    [
        ("layerhub_modonly.sub", "layerhub_modonly"),  # a module, no attribute
        ("layerhub_dotted:Outer.Inner", "layerhub_dotted"),  # a dotted attribute
    ],
)
def test_an_orphan_object_is_named_after_its_top_level_package(
    fake_dist: FakeDist, value: str, package: str
) -> None:
    distribution = package.replace("_", "-")
    fake_dist(distribution, objects={"X": value})
    (record,) = records_of(distribution)
    assert (record.registered_name, record.plugin, record.module, record.status) == (
        f"{package}>X", package, package, "broken",
    )  # fmt: skip


# --- layerhub.testing.fakes ---------------------------------------------------------------


def only_distribution(root: Path) -> metadata.Distribution:
    (dist,) = metadata.distributions(path=[str(root)])
    return dist


def test_fake_distribution_looks_installed_to_importlib_metadata(tmp_path: Path) -> None:
    root = tmp_path / "not" / "yet" / "site"  # created on demand
    info = write_fake_distribution(
        root, "Layerhub-Fake", version="0.3", plugin="layerhub_fake",
        objects={"Fake": "layerhub_fake.deep.mod:Fake"},
        modules={"layerhub_fake/deep/mod.py": "VALUE = 1\n"},
    )  # fmt: skip
    # The wheel spec's directory name: the name with "-" as "_", lower case, then the version.
    assert info == root / "layerhub_fake-0.3.dist-info"
    dist = only_distribution(root)
    assert (dist.metadata["Name"], dist.version) == ("Layerhub-Fake", "0.3")
    assert {(ep.group, ep.name, ep.value) for ep in dist.entry_points} == {
        ("layerhub", "layerhub_fake", "layerhub_fake"),
        ("layerhub.layers", "Fake", "layerhub_fake.deep.mod:Fake"),
    }
    assert (root / "layerhub_fake" / "deep" / "mod.py").read_text(encoding="utf-8") == (
        "VALUE = 1\n"
    )


def test_fake_distribution_without_plugin_declares_only_objects(tmp_path: Path) -> None:
    write_fake_distribution(tmp_path, "layerhub-noplug", objects={"N": "layerhub_noplug:N"})
    dist = only_distribution(tmp_path)
    assert [(ep.group, ep.name) for ep in dist.entry_points] == [("layerhub.layers", "N")]
    assert dist.version == "1.0"


def test_upgrading_plugin_distribution_is_named_after_its_package(tmp_path: Path) -> None:
    info = write_upgrading_plugin(tmp_path, "layerhub_up_grade")
    dist = only_distribution(tmp_path)
    assert (dist.metadata["Name"], dist.version) == ("layerhub-up-grade", "2.0")
    assert info.name == "layerhub_up_grade-2.0.dist-info"
    assert {(ep.group, ep.name, ep.value) for ep in dist.entry_points} == {
        ("layerhub", "layerhub_up_grade", "layerhub_up_grade"),
        ("layerhub.layers", "Shift", "layerhub_up_grade:Shift"),
    }


@pytest.fixture
def ascii_locale() -> Iterator[None]:
    """Switch the C library's character set to ASCII, the default encoding of ``open``."""
    if sys.flags.utf8_mode:
        pytest.skip("in UTF-8 mode the locale does not change the default file encoding")
    previous = locale.setlocale(locale.LC_CTYPE)
    locale.setlocale(locale.LC_CTYPE, "C")
    try:
        if locale.getpreferredencoding(False).lower() in ("utf-8", "utf8"):
            pytest.skip("the C locale is UTF-8 here")
        yield
    finally:
        locale.setlocale(locale.LC_CTYPE, previous)


@pytest.mark.usefixtures("ascii_locale")
def test_fake_distribution_files_are_utf8_whatever_the_locale(tmp_path: Path) -> None:
    # Core metadata and entry_points.txt are UTF-8 by spec, and so is Python source by default;
    # an ASCII locale must not change (or break) what the fake writes.
    write_fake_distribution(
        tmp_path, "layerhub-caf\u00e9", plugin="layerhub_accent",
        objects={"Caf\u00e9": "layerhub_accent:Caf\u00e9"},
        modules={"layerhub_accent/__init__.py": "NAME = 'caf\u00e9'\n"},
    )  # fmt: skip
    dist = only_distribution(tmp_path)
    assert dist.metadata["Name"] == "layerhub-caf\u00e9"
    assert {ep.name for ep in dist.entry_points} == {"layerhub_accent", "Caf\u00e9"}
    source = (tmp_path / "layerhub_accent" / "__init__.py").read_bytes()
    assert source == "NAME = 'caf\u00e9'\n".encode()
