"""Machine-readable CLI output: inspect --json, inspect --requirements, doctor --json."""

from __future__ import annotations

import json
import subprocess
import sysconfig
from pathlib import Path

import keras
import pytest
from layerhub_scale import Scale

import layerhub

LAYERHUB = str(Path(sysconfig.get_path("scripts")) / "layerhub")


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([LAYERHUB, *map(str, args)], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def scale_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    inputs = keras.Input((3,))
    model = keras.Model(inputs, Scale()(inputs))
    return layerhub.save_model(model, tmp_path_factory.mktemp("json") / "scale.keras")


def test_inspect_json_has_stable_keys(scale_file: Path) -> None:
    result = run("inspect", scale_file, "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert set(report) == {"file", "format", "layerhub_version", "needs", "ok"}
    assert report["ok"] is True
    assert report["layerhub_version"] == layerhub.__version__
    (need,) = report["needs"]
    (record,) = layerhub.registry.list("Scale")
    assert need == {
        "name": "layerhub_scale>Scale",
        "plugin": "layerhub_scale",
        "saved_with": f"layerhub-scale {record.version}",
        "installed": f"layerhub-scale {record.version}",
        "status": "ok",
    }


def test_inspect_requirements_feed_pip(scale_file: Path) -> None:
    result = run("inspect", scale_file, "--requirements")
    assert result.returncode == 0, result.stderr
    (record,) = layerhub.registry.list("Scale")
    assert result.stdout.splitlines() == [f"layerhub-scale=={record.version}"]


@pytest.mark.slow
def test_doctor_json_lists_every_record() -> None:
    result = run("doctor", "--json")
    report = json.loads(result.stdout)
    assert set(report) == {"backend_problem", "records", "ok"}
    assert report["backend_problem"] is None
    names = {r["registered_name"] for r in report["records"]}
    assert "layerhub_scale>Scale" in names
    assert result.returncode == (0 if report["ok"] else 1)
