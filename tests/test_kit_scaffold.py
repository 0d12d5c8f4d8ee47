"""``layerhub new`` with several layers, and ``layerhub add-layer`` on a generated plugin."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from layerhub._private.cli import command
from layerhub._private.cli.scaffold import ScaffoldError, add_layer, plugin_names, write_plugin


def _compile_tree(root: Path) -> None:
    for path in root.rglob("*.py"):
        compile(path.read_text(encoding="utf-8"), str(path), "exec")


def _namespace(init: Path) -> dict[str, object]:
    """The names the generated ``__init__.py`` binds, without importing its layers."""
    source = init.read_text(encoding="utf-8")
    kept = [line for line in source.splitlines() if not line.startswith("from ")]
    namespace: dict[str, object] = {"hookimpl": lambda f: f}
    names = [n for n in ("Alpha", "Beta", "Gamma", "Old", "Older") if n in source]
    namespace.update({n: n for n in names})
    exec(compile("\n".join(kept), str(init), "exec"), namespace)
    return namespace


def test_new_with_several_layers_writes_each(tmp_path: Path) -> None:
    root, files = write_plugin(
        plugin_names("multi", "Alpha"), tmp_path, more=[plugin_names("multi", "Beta")]
    )
    relative = [str(p.relative_to(root)) for p in files]
    for expected in ["layerhub_multi/alpha.py", "layerhub_multi/beta.py", "tests/test_beta.py"]:
        assert expected in relative
    _compile_tree(root)
    init = root / "layerhub_multi" / "__init__.py"
    namespace = _namespace(init)
    assert namespace["__all__"] == ["Alpha", "Beta"]
    assert list(namespace["LAYERHUB_EXAMPLES"]) == ["Alpha", "Beta"]  # type: ignore[call-overload]
    assert namespace["layerhub_layers"]() == ["Alpha", "Beta"]  # type: ignore[operator]
    assert "from layerhub_multi.beta import Beta\n" in init.read_text()
    pyproject = (root / "pyproject.toml").read_text()
    assert 'Alpha = "layerhub_multi:Alpha"\nBeta = "layerhub_multi:Beta"\n' in pyproject


def test_several_layers_must_have_distinct_names(tmp_path: Path) -> None:
    with pytest.raises(ScaffoldError, match="share the name 'Alpha'"):
        write_plugin(plugin_names("m", "Alpha"), tmp_path, more=[plugin_names("m", "Alpha")])
    assert not list(tmp_path.iterdir())


def test_add_layer_edits_every_place_the_template_lists_a_layer(tmp_path: Path) -> None:
    root, _ = write_plugin(plugin_names("grow", "Alpha"), tmp_path)
    names, changed = add_layer(root, "Gamma")
    assert names.module == "gamma"
    assert [p.relative_to(root).as_posix() for p in changed] == [
        "layerhub_grow/gamma.py",
        "tests/test_gamma.py",
        "layerhub_grow/__init__.py",
        "pyproject.toml",
    ]
    _compile_tree(root)
    namespace = _namespace(root / "layerhub_grow" / "__init__.py")
    assert namespace["__all__"] == ["Alpha", "Gamma"]
    assert namespace["LAYERHUB_EXAMPLES"] == {"Alpha": ({}, (2, 3, 4)), "Gamma": ({}, (2, 3, 4))}
    assert namespace["layerhub_layers"]() == ["Alpha", "Gamma"]  # type: ignore[operator]
    assert 'Gamma = "layerhub_grow:Gamma"' in (root / "pyproject.toml").read_text()
    with pytest.raises(ScaffoldError, match="already exists"):
        add_layer(root, "Gamma")


def test_add_layer_handles_one_line_lists_and_dict_examples(tmp_path: Path) -> None:
    root, _ = write_plugin(plugin_names("old", "Old"), tmp_path)
    init = root / "layerhub_old" / "__init__.py"
    init.write_text(
        '"""An older layout."""\n\n'
        "from layerhub import hookimpl\n"
        "from layerhub_old.old import Old\n\n"
        '__all__ = ["Old"]\n\n'
        'LAYERHUB_EXAMPLES = {"Old": {"init_kwargs": {"a": [1, 2]}, "input_shape": (2, 3)}}\n\n\n'
        "@hookimpl\n"
        "def layerhub_layers() -> list[object]:\n"
        "    return [Old]\n"
    )
    add_layer(root, "Older")
    namespace = _namespace(init)
    assert namespace["__all__"] == ["Old", "Older"]
    assert namespace["LAYERHUB_EXAMPLES"] == {
        "Old": {"init_kwargs": {"a": [1, 2]}, "input_shape": (2, 3)},
        "Older": ({}, (2, 3, 4)),
    }
    assert namespace["layerhub_layers"]() == ["Old", "Older"]  # type: ignore[operator]


def test_add_layer_refuses_what_the_template_did_not_make(tmp_path: Path) -> None:
    with pytest.raises(ScaffoldError, match=r"no pyproject\.toml"):
        add_layer(tmp_path, "Alpha")
    root, _ = write_plugin(plugin_names("bare", "Alpha"), tmp_path)
    (root / "layerhub_bare" / "__init__.py").write_text("from layerhub_bare.alpha import Alpha\n")
    with pytest.raises(ScaffoldError, match="no __all__ as the template writes it"):
        add_layer(root, "Beta")
    assert not (root / "layerhub_bare" / "beta.py").exists()
    with pytest.raises(ScaffoldError, match=r"Received: --layer='beta'"):
        add_layer(root, "beta")


def test_cli_new_takes_several_layers_and_add_layer_says_to_reinstall(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        command.main(["new", "duo", "--layer", "Alpha", "--layer", "Beta", "--dir", str(tmp_path)])
        == 0
    )
    out = capsys.readouterr().out
    assert out.startswith(f"created {tmp_path / 'layerhub-duo'} (distribution layerhub-duo, ")
    assert "layers Alpha, Beta)" in out
    assert "layerhub_duo/beta.py" in out
    root = tmp_path / "layerhub-duo"
    assert command.main(["add-layer", str(root), "Gamma"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("added layer Gamma to layerhub-duo")
    assert "reinstall needed: the plugin's entry points changed" in out
    assert f"pip install -e {os.path.relpath(root)}" in out
    assert command.main(["add-layer", str(root), "Gamma"]) == 2
    assert "already exists" in capsys.readouterr().err


def _pip_target(root: Path, site: Path) -> None:
    install = subprocess.run(
        [
            *(sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check"),
            *("--no-deps", "--no-build-isolation", "--upgrade", "--target", str(site), str(root)),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert install.returncode == 0, install.stderr


@pytest.mark.slow
def test_a_layer_added_after_installing_needs_a_reinstall_and_then_passes(tmp_path: Path) -> None:
    root, _ = write_plugin(plugin_names("later", "Alpha"), tmp_path / "src")
    site = tmp_path / "site"
    _pip_target(root, site)
    add_layer(root, "Beta")
    # The source first (the new module), the stale installed metadata after it.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), str(site)])}
    check = """
        from layerhub.testing import ConformanceError, check_layer
        from layerhub_later import Beta

        try:
            check_layer(Beta, {}, (2, 3, 4), rules=[7])
        except ConformanceError as error:
            print(error)
    """
    stale = subprocess.run(
        [sys.executable, "-c", check.replace("\n        ", "\n")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert "installed entry points do not declare 'layerhub_later>Beta'" in stale.stdout
    assert "reinstall the plugin (pip install -e" in stale.stdout

    _pip_target(root, site)
    tests = subprocess.run(
        [
            *(sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"),
            *("--rootdir", str(root), str(root / "tests")),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(site)},
        cwd=tmp_path,
        timeout=900,
    )
    assert tests.returncode == 0, tests.stdout[-3000:] + tests.stderr[-3000:]
    assert "6 passed" in tests.stdout
