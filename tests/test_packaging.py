"""What the core, every plugin and the template ship: licence files, sdist contents, READMEs."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from layerhub._private.cli.scaffold import plugin_names, write_plugin

ROOT = Path(__file__).resolve().parents[1]
PLUGIN_DIRS = sorted(p for p in (ROOT / "plugins").iterdir() if (p / "pyproject.toml").exists())
TEMPLATE_README = ROOT / "core" / "layerhub" / "_private" / "cli" / "template" / "README.md.tmpl"
LICENSE_TEXT = (ROOT / "LICENSE").read_text(encoding="utf-8")

# A markdown link or image whose target has no URL scheme: dead once the README is a package
# index page. Anchors within the page (#...) still work.
_RELATIVE_LINK = re.compile(r"\]\(\s*(?![a-zA-Z][a-zA-Z0-9+.-]*:|#)[^)\s]+[^)]*\)")
_RELATIVE_REFERENCE = re.compile(r"^\s*\[[^\]]+\]:\s*(?![a-zA-Z][a-zA-Z0-9+.-]*:|#)\S+", re.M)

_BUILD = """
import sys
from hatchling.build import build_sdist, build_wheel
print(build_sdist(sys.argv[1]))
print(build_wheel(sys.argv[1]))
"""


def build(project: Path, out: Path) -> tuple[list[str], dict[str, bytes]]:
    """Build ``project`` with hatchling; return the sdist's names and the wheel's files."""
    pytest.importorskip("hatchling")
    result = subprocess.run(
        [sys.executable, "-c", _BUILD, str(out)],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    sdist_name, wheel_name = result.stdout.split()
    with tarfile.open(out / sdist_name) as tar:
        sdist = [name.split("/", 1)[1] for name in tar.getnames() if "/" in name]
    with zipfile.ZipFile(out / wheel_name) as zf:
        wheel = {name: zf.read(name) for name in zf.namelist()}
    return sdist, wheel


def wheel_license(wheel: dict[str, bytes]) -> str:
    (name,) = [n for n in wheel if re.fullmatch(r"[^/]+\.dist-info/licenses/LICENSE", n)]
    return wheel[name].decode()


def test_core_sdist_holds_the_core_only(tmp_path: Path) -> None:
    sdist, wheel = build(ROOT, tmp_path)
    assert not [name for name in sdist if name.startswith("plugins/")]
    assert not [name for name in sdist if name.startswith("tests/")]
    assert {"LICENSE", "README.md", "pyproject.toml", "core/layerhub/__init__.py"} <= set(sdist)
    assert "core/layerhub/_private/cli/template/LICENSE.tmpl" in sdist
    assert wheel_license(wheel) == LICENSE_TEXT
    assert "layerhub/_private/cli/template/LICENSE.tmpl" in wheel


@pytest.mark.parametrize("directory", PLUGIN_DIRS, ids=lambda p: p.name)
def test_plugin_ships_the_license(directory: Path, tmp_path: Path) -> None:
    sdist, wheel = build(directory, tmp_path)
    assert "LICENSE" in sdist
    assert wheel_license(wheel) == LICENSE_TEXT
    assert (directory / "LICENSE").read_text(encoding="utf-8") == LICENSE_TEXT


def test_generated_plugin_ships_its_license(tmp_path: Path) -> None:
    root, _ = write_plugin(plugin_names("swish", "Swish"), tmp_path / "src")
    sdist, wheel = build(root, tmp_path)
    assert "LICENSE" in sdist
    text = wheel_license(wheel)
    assert text == (root / "LICENSE").read_text(encoding="utf-8")
    assert "The layerhub-swish developers" in text


README_CASES = [(d / "README.md", d.name) for d in PLUGIN_DIRS] + [
    (TEMPLATE_README, "${distribution}")
]


@pytest.mark.parametrize(("readme", "distribution"), README_CASES, ids=lambda c: str(c))
def test_readme_works_as_a_package_index_page(readme: Path, distribution: str) -> None:
    text = readme.read_text(encoding="utf-8")
    assert _RELATIVE_LINK.findall(text) == []
    assert _RELATIVE_REFERENCE.findall(text) == []
    # The plugin alone installs no Keras backend.
    assert f'pip install "layerhub[tensorflow]" {distribution}' in text


def test_link_patterns_catch_relative_links() -> None:
    bad = "see [layerhub](../../README.md) and ![x](img/a.png)\n[ref]: docs/a.md\n"
    good = "see [paper](https://arxiv.org/abs/1) and [below](#usage) <https://doi.org/1>\n"
    assert len(_RELATIVE_LINK.findall(bad)) == 2
    assert len(_RELATIVE_REFERENCE.findall(bad)) == 1
    assert _RELATIVE_LINK.findall(good) == []
    assert _RELATIVE_REFERENCE.findall(good) == []


# -- the demo (tox -e demo) -----------------------------------------------------------------------


@pytest.mark.slow
def test_demo_prints_its_results_only_with_aligned_columns() -> None:
    pytest.importorskip("tensorflow")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TF_")}
    env["KERAS_BACKEND"] = "tensorflow"
    result = subprocess.run(
        [sys.executable, str(ROOT / "docs" / "demo.py")],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    # TensorFlow's start-up notices (absl preamble, oneDNN, CUDA) are hidden.
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("NAME "))
    header, rows = lines[start], lines[start + 1 :]
    assert any(row.startswith("LocallyConnected1D ") for row in rows)
    # Every column starts at the same offset in every row, however long the names are.
    columns = [header.index(title) for title in ("REGISTERED NAME", "DISTRIBUTION", "VERSION")]
    for row in rows:
        for offset in columns:
            assert row[offset - 2 : offset] == "  ", row
            assert row[offset] != " ", row
