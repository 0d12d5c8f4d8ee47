"""``layerhub info`` and ``doctor`` without a Keras backend, and without TensorFlow's noise."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from layerhub._private.registry import backend

NO_BACKEND = (
    "no Keras backend is installed (KERAS_BACKEND=tensorflow needs tensorflow): "
    "pip install 'layerhub[tensorflow]', or install jax or torch and set KERAS_BACKEND"
)
TF_NOISE = ("absl::InitializeLog", "oneDNN", "cuda", "cpu_feature_guard", "I0000")


def layerhub_script() -> str:
    beside = Path(sys.executable).with_name("layerhub")
    found = str(beside) if beside.exists() else shutil.which("layerhub")
    assert found is not None, "the layerhub console script is not installed"
    return found


def run(argv: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    return subprocess.run(
        argv, capture_output=True, text=True, env={**environ, **env}, timeout=300, check=False
    )


def torch_is_installed() -> bool:
    return backend._installed("torch")


# -- the helper -----------------------------------------------------------------------------------


def test_installed_backend_is_not_a_problem(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KERAS_BACKEND", "numpy")
    assert backend.missing_backend() is None


def test_no_backend_at_all_is_said_plainly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    monkeypatch.setenv("KERAS_HOME", "/nonexistent")
    monkeypatch.setattr(backend, "_installed", lambda module: False)
    assert backend.missing_backend() == NO_BACKEND


def test_backend_from_keras_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    (tmp_path / "keras.json").write_text('{"backend": "jax"}')
    assert backend.configured_backend() == "jax"
    (tmp_path / "keras.json").write_text("not json")
    assert backend.configured_backend() == "tensorflow"


@pytest.mark.skipif(torch_is_installed(), reason="simulates a missing backend with torch")
def test_other_installed_backends_are_suggested(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KERAS_BACKEND", "torch")
    message = backend.missing_backend() or ""
    assert message.startswith(
        "the Keras backend is not installed (KERAS_BACKEND=torch needs torch)"
    )
    assert "pip install torch, or set KERAS_BACKEND to " in message


@pytest.mark.parametrize(
    ("installed", "expected"),
    [
        ({"jax"}, "pip install torch, or set KERAS_BACKEND to jax"),
        ({"tensorflow", "jax"}, "pip install torch, or set KERAS_BACKEND to tensorflow or jax"),
    ],
)
def test_the_installed_backends_are_named_in_order(
    monkeypatch: pytest.MonkeyPatch, installed: set[str], expected: str
) -> None:
    monkeypatch.setenv("KERAS_BACKEND", "torch")
    monkeypatch.setattr(backend, "_installed", lambda module: module in installed)
    assert backend.missing_backend() == (
        f"the Keras backend is not installed (KERAS_BACKEND=torch needs torch): {expected}"
    )


def test_torch_is_suggested_when_tensorflow_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KERAS_BACKEND", "tensorflow")
    monkeypatch.setattr(backend, "_installed", lambda module: module == "torch")
    assert (backend.missing_backend() or "").endswith(
        "pip install tensorflow, or set KERAS_BACKEND to torch"
    )


def test_a_backend_layerhub_does_not_know_is_left_to_keras(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KERAS_BACKEND", "mlx")
    monkeypatch.setattr(backend, "_installed", lambda module: False)
    assert backend.missing_backend() is None


@pytest.mark.parametrize(
    "content", ['{"backend": 3}', '{"backend": ""}', '["jax"]', '{"floatx": "float32"}']
)
def test_keras_json_without_a_usable_backend_means_tensorflow(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: str
) -> None:
    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    (tmp_path / "keras.json").write_text(content)
    assert backend.configured_backend() == "tensorflow"


def test_keras_json_is_read_from_the_home_directory_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    monkeypatch.delenv("KERAS_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".keras").mkdir()
    (tmp_path / ".keras" / "keras.json").write_text('{"backend": "torch"}', encoding="utf-8")
    assert backend.configured_backend() == "torch"
    monkeypatch.setenv("KERAS_BACKEND", "jax")  # the variable wins over the file
    assert backend.configured_backend() == "jax"


def test_module_lookup_errors_mean_not_installed() -> None:
    assert backend._installed("json") is True
    assert backend._installed("layerhub_no_such_backend") is False
    assert backend._installed("") is False  # find_spec raises ValueError for an empty name
    assert backend._installed("layerhub_no_such_backend.sub") is False  # ModuleNotFoundError


# -- the commands, in fresh processes -------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.skipif(torch_is_installed(), reason="simulates a missing backend with torch")
@pytest.mark.parametrize("command", ["info", "doctor"])
def test_commands_explain_a_missing_backend_once(command: str) -> None:
    argv = [layerhub_script(), command, *(["Scale"] if command == "info" else [])]
    result = run(argv, KERAS_BACKEND="torch")
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert output.count("KERAS_BACKEND=torch needs torch") == 1, output
    assert "failed to load" not in output
    assert "broken" not in output


@pytest.mark.slow
@pytest.mark.skipif(torch_is_installed(), reason="simulates a missing backend with torch")
def test_registry_failure_names_the_missing_backend() -> None:
    code = textwrap.dedent(
        """
        from layerhub import BrokenPluginError, registry
        try:
            registry.get("Scale")
        except BrokenPluginError as error:
            print(error)
        print(registry.list("Scale")[0].error)
        """
    )
    result = run([sys.executable, "-W", "ignore", "-c", code], KERAS_BACKEND="torch")
    lines = result.stdout.splitlines()
    assert len(lines) == 2, result.stdout + result.stderr
    assert "failed to load: the Keras backend is not installed" in lines[0]
    assert lines[1].startswith("the Keras backend is not installed (KERAS_BACKEND=torch")


@pytest.mark.slow
def test_doctor_with_no_backend_installed_at_all() -> None:
    # Hide every backend from the import system, as after `pip install layerhub-scale` alone.
    code = textwrap.dedent(
        """
        import sys

        class Hide:
            def find_spec(self, name, path=None, target=None):
                if name.partition(".")[0] in {"tensorflow", "jax", "torch"}:
                    raise ModuleNotFoundError(f"No module named {name!r}", name=name)
                return None

        sys.meta_path.insert(0, Hide())
        from layerhub._private.cli import command
        sys.exit(command.main(["doctor"]))
        """
    )
    result = run([sys.executable, "-c", code], KERAS_BACKEND="tensorflow")
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"cannot import any plugin: {NO_BACKEND}" in result.stdout
    assert "unchecked  layerhub_scale" in result.stdout
    assert "failed to load" not in result.stdout + result.stderr


# -- start-up noise -------------------------------------------------------------------------------


@pytest.mark.slow
def test_info_prints_no_backend_start_up_noise() -> None:
    result = run([layerhub_script(), "info", "Scale"])
    assert result.returncode == 0, result.stderr
    assert "registered name  layerhub_scale>Scale" in result.stdout
    noise = [line for line in result.stderr.splitlines() if any(n in line for n in TF_NOISE)]
    assert noise == []


@pytest.mark.slow
def test_verbose_keeps_the_backend_logs() -> None:
    if os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow":
        pytest.skip("only TensorFlow writes start-up logs")
    result = run([layerhub_script(), "-v", "info", "Scale"])
    assert result.returncode == 0, result.stderr
    assert any(n in result.stderr for n in TF_NOISE)
    assert run([layerhub_script(), "info", "--verbose", "Scale"]).returncode == 0
