"""Machine-readable CLI output: inspect --json, inspect --requirements, doctor --json."""

from __future__ import annotations

import json
import os
import subprocess
import sysconfig
from collections.abc import Callable
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


# Errors as JSON, for every subcommand (issue 25) ---------------------------------------------


def _fifo(tmp_path: Path) -> list[str]:
    fifo = tmp_path / "pipe.keras"
    os.mkfifo(fifo)
    return ["inspect", str(fifo)]


def _loop(tmp_path: Path) -> list[str]:
    loop = tmp_path / "loop.keras"
    loop.symlink_to(loop.name)
    return ["inspect", str(loop)]


def _corrupt(tmp_path: Path) -> list[str]:
    bad = tmp_path / "bad.keras"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    return ["inspect", str(bad)]


# (id, argv builder, error type): every subcommand, failing for a reason of its own.
FAILING = [
    ("list", lambda tmp: ["list", "--no-such-flag"], "UsageError"),
    ("info", lambda tmp: ["info", "NoSuchLayerAnywhere"], "PluginNotFoundError"),
    ("inspect-missing", lambda tmp: ["inspect", str(tmp / "absent.keras")], "ModelFileError"),
    ("inspect-fifo", _fifo, "ModelFileError"),
    ("inspect-loop", _loop, "ModelFileError"),
    ("inspect-corrupt", _corrupt, "ModelFileError"),
    ("inspect-long-name", lambda tmp: ["inspect", str(tmp / ("n" * 300))], "ModelFileError"),
    (
        "inspect-json-and-requirements",
        lambda tmp: ["inspect", str(tmp / "m.keras"), "--requirements"],
        "UsageError",
    ),
    ("doctor", lambda tmp: ["doctor", "--no-such-flag"], "UsageError"),
    (
        "convert",
        lambda tmp: ["convert", str(tmp / "old.h5"), str(tmp / "new.keras")],
        "ModelFileError",
    ),
    ("verify", lambda tmp: ["verify", str(tmp / "old.h5")], "ModelFileError"),
    ("requirements", lambda tmp: ["requirements", str(tmp / "absent.keras")], "ModelFileError"),
    ("port", lambda tmp: ["port", str(tmp / "absent.py")], "ModelFileError"),
    (
        "new",
        lambda tmp: ["new", "Not A Name", "--layer", "Foo", "--dir", str(tmp)],
        "ScaffoldError",
    ),
    ("add-layer", lambda tmp: ["add-layer", str(tmp), "Bar"], "ScaffoldError"),
    ("no-command", lambda tmp: ["no-such-command"], "UsageError"),
]


@pytest.mark.parametrize("where", ["after", "before"])
@pytest.mark.parametrize(("argv", "kind"), [pytest.param(a, k, id=i) for i, a, k in FAILING])
def test_json_errors_are_json_on_stdout(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    argv: Callable[[Path], list[str]],
    kind: str,
    where: str,
) -> None:
    from layerhub._private.cli import command

    args = argv(tmp_path)
    args = [*args, "--json"] if where == "after" else ["--json", *args]
    status = command.main(args)
    out, err = capsys.readouterr()
    assert status == command.EXIT_USAGE, (out, err)
    report = json.loads(out)
    assert set(report) == {"error"}
    assert report["error"]["type"] == kind, report
    message = report["error"]["message"]
    assert message, report
    assert "\n" not in message, message
    assert len(message) <= 1000, message
    assert err.startswith(f"layerhub: error: {message}"), err


def test_json_error_messages_are_escaped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from layerhub._private.cli import command

    hostile = tmp_path / "\x1b[2J\u202eevil\x07\ud800.keras"
    assert command.main(["inspect", str(hostile), "--json"]) == command.EXIT_USAGE
    out, _ = capsys.readouterr()
    message = json.loads(out)["error"]["message"]
    assert "\\x1b[2J\\u202eevil\\x07" in message, message
    assert not any(c in message for c in "\x1b\u202e\x07\ud800"), message


def test_json_error_on_a_real_stdout() -> None:
    result = run("inspect", "/no/such/model.keras", "--json")
    assert result.returncode == 2
    assert json.loads(result.stdout) == {
        "error": {"type": "ModelFileError", "message": "no such model file: /no/such/model.keras"}
    }


def test_new_and_add_layer_report_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from layerhub._private.cli import command

    assert command.main(["new", "demo", "--layer", "Foo", "--dir", str(tmp_path), "--json"]) == 0
    created = json.loads(capsys.readouterr().out)
    assert created["distribution"] == "layerhub-demo"
    assert created["layers"] == ["Foo"]
    assert all(Path(f).is_file() for f in created["files"])
    assert command.main(["add-layer", created["root"], "Bar", "--json"]) == 0
    added = json.loads(capsys.readouterr().out)
    assert added["layer"] == "Bar"
    assert added["reinstall_needed"] is True
    assert all(Path(f).is_file() for f in added["files"])
