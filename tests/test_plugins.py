"""One parametrised check over every first-party plugin directory and every installed object."""

from __future__ import annotations

import doctest
import inspect
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from layerhub import registry

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
PLUGIN_DIRS = sorted(p for p in (ROOT / "plugins").iterdir() if (p / "pyproject.toml").exists())


def project(directory: Path) -> dict[str, Any]:
    with (directory / "pyproject.toml").open("rb") as stream:
        data: dict[str, Any] = tomllib.load(stream)["project"]
    return data


@pytest.mark.parametrize("directory", PLUGIN_DIRS, ids=lambda p: p.name)
def test_plugin_directory_follows_the_layout(directory: Path) -> None:
    meta = project(directory)
    package = directory.name.replace("-", "_")
    assert meta["name"] == directory.name
    assert (directory / package / "__init__.py").is_file()
    assert meta["entry-points"]["layerhub"] == {package: package}
    objects = meta["entry-points"]["layerhub.layers"]
    assert objects, "a plugin provides at least one object"
    for name, target in objects.items():
        module, _, attribute = target.partition(":")
        assert module.split(".")[0] == package
        assert attribute == name, "entry names are the names objects are registered under"
    assert any(dep.startswith("layerhub") for dep in meta["dependencies"])
    assert f"pip install {directory.name}" in (directory / "README.md").read_text()
    assert list((directory / "tests").glob("test_*.py")), "every plugin has tests"
    assert f"{{tox_root}}/plugins/{directory.name}" in (ROOT / "tox.ini").read_text()


@pytest.mark.parametrize("directory", PLUGIN_DIRS, ids=lambda p: p.name)
def test_installed_plugin_matches_its_directory(directory: Path) -> None:
    meta = project(directory)
    records = [r for r in registry.list() if r.distribution == directory.name]
    assert sorted(r.name for r in records) == sorted(meta["entry-points"]["layerhub.layers"])
    assert {r.version for r in records} == {meta["version"]}


@pytest.mark.parametrize("record", registry.list(), ids=lambda r: r.registered_name)
def test_every_installed_object_loads_and_is_documented(record: Any) -> None:
    import keras

    obj = registry.get(record.registered_name)
    assert keras.saving.get_registered_name(obj) == record.registered_name
    assert keras.saving.get_registered_object(record.registered_name) is obj
    assert registry.list(record.registered_name)[0].status == "loaded"
    doc = obj.__doc__ or ""
    assert "Example" in doc, "a docstring example"
    assert ">>>" in doc, "the example is runnable (a doctest)"
    assert ("Args:" in doc) or ("Call arguments:" in doc)
    # The example runs: one doctest run here serves every plugin's objects.
    (example,) = doctest.DocTestFinder(recurse=False).find(obj, globs=vars(inspect.getmodule(obj)))
    results = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS).run(example)
    assert results.failed == 0, f"the docstring example of {record.registered_name} fails"


@pytest.mark.parametrize("directory", PLUGIN_DIRS, ids=lambda p: p.name)
def test_plugin_builds_alone_into_a_wheel(directory: Path, tmp_path: Path) -> None:
    pytest.importorskip("hatchling")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(directory),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("*.whl")
    package = directory.name.replace("-", "_")
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        text = zf.read(entry_points).decode()
    top_level = {n.split("/")[0] for n in names if ".dist-info/" not in n}
    assert top_level == {package}, "the wheel holds the plugin package only (no tests)"
    assert f"[layerhub]\n{package} = {package}" in text
    assert "[layerhub.layers]" in text
