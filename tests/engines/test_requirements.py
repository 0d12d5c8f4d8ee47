"""``layerhub requirements``: what a worker installs for a file, read from it without loading it.

This process has no plugin: the plugin's line comes from the file's manifest alone. A name
whose manifest entry has no distribution (a class registered by hand) is an error rather than a
silently short list. Importing ``layerhub.ray``, ``layerhub.spark`` or ``layerhub.mlflow``
imports no engine.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

import layerhub
from layerhub._private.engines import core_requirements, requirements


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "layerhub", *args], capture_output=True, text=True, check=False
    )


def test_lines_come_from_the_manifest(scale_model: Any) -> None:
    plugin = f"layerhub-scale=={scale_model.plugin_version}"
    done = _cli("requirements", str(scale_model.path))
    assert (done.returncode, done.stdout.splitlines()) == (0, [plugin]), done.stderr
    done = _cli("requirements", str(scale_model.path), "--with-core")
    assert done.stdout.splitlines() == [*core_requirements(), plugin]
    done = _cli("requirements", "--json", str(scale_model.path), "--with-core")
    assert json.loads(done.stdout) == {
        "requirements": [*core_requirements(), plugin],
        "unknown": [],
        "ok": True,
    }
    assert requirements(scale_model.path) == [*core_requirements(), plugin]


def test_a_name_without_distribution_is_an_error(
    scale_model: Any, tmp_path: Path, plugin_absent_here: None
) -> None:
    # As layerhub.save_model records a class registered by hand: no distribution, no version.
    path = tmp_path / "by-hand.keras"
    shutil.copyfile(scale_model.path, path)
    manifest = {
        "format": 1,
        "layerhub_version": layerhub.__version__,
        "objects": {"layerhub_scale>Scale": {"distribution": None, "version": None}},
    }
    with zipfile.ZipFile(path, "a") as archive:
        archive.comment = b"layerhub-manifest:" + json.dumps(manifest).encode()
    done = _cli("requirements", str(path))
    assert done.returncode == 1
    assert "no distribution is known for layerhub_scale>Scale" in done.stderr
    assert done.stdout == ""
    with pytest.raises(layerhub.MissingPluginError, match="layerhub_scale>Scale"):
        requirements(path)


def test_importing_the_engine_modules_imports_no_engine(tools: Any, tmp_path: Path) -> None:
    code = (
        "import sys, layerhub.ray, layerhub.spark, layerhub.mlflow\n"
        "print([m for m in ('ray', 'pyspark', 'mlflow', 'keras') if m in sys.modules])"
    )
    assert tools.run_child(code, env=tools.child_env(), cwd=tmp_path).strip() == "[]"
