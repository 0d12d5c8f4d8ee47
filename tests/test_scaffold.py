"""The scaffold: every name the generator derives gives a plugin that imports."""

from __future__ import annotations

import datetime
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from layerhub._private.cli import scaffold
from layerhub._private.cli.scaffold import ScaffoldError, plugin_names, render, write_plugin


def _compile_all(files: dict[str, str]) -> None:
    for relative, text in files.items():
        if relative.endswith(".py"):
            compile(text, relative, "exec")  # a SyntaxError fails the test


@pytest.mark.parametrize(
    ("class_name", "module"),
    [
        ("Lambda", "lambda_layer"),
        ("Global", "global_layer"),
        ("Import", "import_layer"),
        ("Return", "return_layer"),
        ("Class", "class_layer"),
        ("Async", "async_layer"),
        # Soft keywords import, but would read as syntax in the generated code.
        ("Match", "match_layer"),
        ("Type", "type_layer"),
        # Names the generated __init__.py binds: the submodule would replace them.
        ("Hookimpl", "hookimpl_layer"),
        ("Annotations", "annotations_layer"),
        # Ordinary names are left alone.
        ("FooLayer", "foo_layer"),
        ("LambdaLayer", "lambda_layer"),
        ("LocallyConnected2D", "locally_connected2d"),
    ],
)
def test_module_name_is_always_importable(class_name: str, module: str) -> None:
    names = plugin_names("lam", class_name)
    assert names.module == module
    files = render(names)
    assert f"layerhub_lam/{module}.py" in files
    assert f"tests/test_{module}.py" in files
    assert f"from layerhub_lam.{module} import {class_name}" in files["layerhub_lam/__init__.py"]
    _compile_all(files)


def test_generated_lambda_plugin_imports_and_runs(tmp_path: Path) -> None:
    root, _ = write_plugin(plugin_names("lam", "Lambda"), tmp_path)
    code = (
        "import numpy as np\n"
        "import layerhub_lam\n"
        "layer = layerhub_lam.Lambda()\n"
        "print(layerhub_lam.Lambda.__module__, tuple(layer(np.ones((2, 3), 'float32')).shape))\n"
        "print(callable(layerhub_lam.layerhub_layers))\n"
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]),
    }
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["layerhub_lam.lambda_layer", "(2,", "3)", "True"]


@pytest.mark.parametrize("class_name", ["ValueError", "Exception", "TypeError", "Any"])
def test_class_shadowing_a_builtin_or_import_is_refused(class_name: str) -> None:
    with pytest.raises(ScaffoldError, match=re.escape(f"Received: --layer={class_name!r}")):
        plugin_names("foo", class_name)


@pytest.mark.parametrize("name", ["foo bar", "9foo", "Foo", "foo--bar", "foo.bar", "layerhub-"])
def test_bad_plugin_name_is_refused(name: str) -> None:
    with pytest.raises(ScaffoldError, match=re.escape(f"Received: NAME={name!r}")):
        plugin_names(name, "Foo")


def test_package_name_is_checked_even_with_a_looser_name_pattern(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The package check must not rely on the name pattern alone.
    monkeypatch.setattr(scaffold, "_SUFFIX", re.compile(r".+"))
    with pytest.raises(ScaffoldError, match=r"'layerhub_foo\.bar'.*Received: NAME='foo\.bar'"):
        plugin_names("foo.bar", "Foo")
    assert plugin_names("foo-bar", "Foo").package == "layerhub_foo_bar"


def test_every_generated_file_for_many_names_compiles() -> None:
    for name in ["a", "layerhub-two-words", "layerhub_under_score", "x9"]:
        for class_name in ["A", "Swish", "Return", "Try", "Case", "Conv2DPlus"]:
            _compile_all(render(plugin_names(name, class_name)))


def test_generated_plugin_has_a_license() -> None:
    files = render(plugin_names("swish", "Swish"))
    license_text = files["LICENSE"]
    year = datetime.date.today().year
    assert license_text.startswith("MIT License\n")
    assert f"Copyright (c) {year} The layerhub-swish developers" in license_text
    assert "$" not in license_text
