"""Run code in a fresh Python interpreter, and round-trip a model through one."""

from __future__ import annotations

import os
import subprocess
import tempfile
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from layerhub._private.guard.isolated import python_command, safe_directory

# The child loads the model through layerhub alone: no custom_objects, nothing imported before.
_LOAD_AND_PREDICT: Final = """
import sys

import numpy as np

import layerhub

model = layerhub.load_model(sys.argv[1])
import keras

with np.load(sys.argv[2]) as data:
    inputs = [data[name] for name in sorted(data.files)]
outputs = model(inputs if len(inputs) > 1 else inputs[0], training=False)
flat = [keras.ops.convert_to_numpy(o) for o in keras.tree.flatten(outputs)]
np.savez(sys.argv[3], **{f"y{i:04d}": y for i, y in enumerate(flat)})
"""


class RoundTripError(AssertionError):
    """A model did not survive saving and loading in a fresh interpreter.

    Attributes:
        seen: what went wrong.
        fix: what usually fixes it.
    """

    def __init__(self, seen: str, fix: str) -> None:
        self.seen = seen
        self.fix = fix
        super().__init__(f"[layerhub rule 2: fresh-interpreter round trip] {seen}\n  Fix: {fix}")


def run_in_fresh_interpreter(
    code: str,
    *args: str,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    timeout: float = 600,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a new, isolated interpreter, like a user's next session.

    The child inherits the environment, with ``TF_CPP_MIN_LOG_LEVEL=2`` unless it is set, so
    TensorFlow's start-up chatter stays out of the captured output. It runs ``python -I`` in
    an empty temporary directory unless ``cwd`` is given, so a ``json.py`` or ``keras.py`` in
    the current directory is never imported; the absolute entries of ``PYTHONPATH`` (which
    ``-I`` ignores) are put on its ``sys.path`` all the same.

    Args:
        code: Python source; common indentation is removed, so a triple-quoted block works.
        *args: the child's ``sys.argv[1:]``.
        env: variables to set on top of the inherited environment.
        cwd: the child's working directory (an empty temporary one by default); never on its
            ``sys.path``.
        timeout: seconds before the child is killed.
        check: raise ``AssertionError`` (with the child's output) when it exits non-zero.

    Returns:
        The finished process, with ``stdout`` and ``stderr`` as text.
    """
    child_env = {"TF_CPP_MIN_LOG_LEVEL": "2", **os.environ, **(env or {})}
    with safe_directory(cwd) as directory:
        process = subprocess.run(
            python_command(textwrap.dedent(code), args, child_env),
            env=child_env,
            cwd=directory,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    if check and process.returncode != 0:
        raise AssertionError(
            f"the fresh interpreter exited with status {process.returncode}\n"
            f"--- stdout ---\n{_tail(process.stdout)}\n--- stderr ---\n{_tail(process.stderr)}"
        )
    return process


def _tail(text: str, lines: int = 30) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def _last_line(text: str) -> str:
    found = [line for line in text.strip().splitlines() if line.strip()]
    return found[-1].strip() if found else "(no output)"


def assert_roundtrip(
    model: Any,
    inputs: Any,
    tmp_path: str | os.PathLike[str] | None = None,
    *,
    atol: float = 1e-5,
    rtol: float = 1e-5,
    env: Mapping[str, str] | None = None,
) -> None:
    """Save ``model`` with ``layerhub.save_model``, load it in a fresh interpreter, compare.

    The child calls ``layerhub.load_model`` without ``custom_objects``, so this passes only when
    every custom object the model uses comes from an installed plugin. One subprocess per call.

    Args:
        model: a built Keras model.
        inputs: a NumPy array, or a list of arrays for a model with several inputs.
        tmp_path: a directory for the model and the arrays (a temporary one by default).
        atol: absolute tolerance of the output comparison.
        rtol: relative tolerance of the output comparison.
        env: extra environment variables for the child.

    Raises:
        RoundTripError: an ``AssertionError`` naming rule 2, what differed and the usual fix.
    """
    import keras
    import numpy as np

    import layerhub

    arrays = [np.asarray(x) for x in inputs] if isinstance(inputs, (list, tuple)) else [inputs]
    call_arg = arrays if len(arrays) > 1 else arrays[0]
    expected = [
        np.asarray(keras.ops.convert_to_numpy(y))
        for y in keras.tree.flatten(model(call_arg, training=False))
    ]
    with tempfile.TemporaryDirectory(prefix="layerhub-roundtrip-") as scratch:
        directory = Path(tmp_path) if tmp_path is not None else Path(scratch)
        directory.mkdir(parents=True, exist_ok=True)
        model_file = directory / "roundtrip.keras"
        inputs_file = directory / "roundtrip_inputs.npz"
        outputs_file = directory / "roundtrip_outputs.npz"
        layerhub.save_model(model, model_file)
        named: dict[str, Any] = {f"x{i:04d}": x for i, x in enumerate(arrays)}
        np.savez(inputs_file, **named)
        process = run_in_fresh_interpreter(
            _LOAD_AND_PREDICT,
            str(model_file),
            str(inputs_file),
            str(outputs_file),
            env=env,
            check=False,
        )
        if process.returncode != 0:
            raise RoundTripError(
                f"loading the saved model in a fresh interpreter failed: "
                f"{_last_line(process.stderr)}",
                "register the class at import with "
                "@keras.saving.register_keras_serializable(package=<plugin package>), declare it "
                "in the plugin's entry points, and make get_config() return every constructor "
                f"argument\n--- child stderr ---\n{_tail(process.stderr)}",
            )
        with np.load(outputs_file) as data:
            loaded = [data[name] for name in sorted(data.files)]
    _compare(expected, loaded, atol=atol, rtol=rtol)


def _compare(expected: Sequence[Any], loaded: Sequence[Any], *, atol: float, rtol: float) -> None:
    import numpy as np

    if len(expected) != len(loaded):
        raise RoundTripError(
            f"the loaded model has {len(loaded)} outputs, the saved one {len(expected)}",
            "make get_config() return every constructor argument that changes the outputs",
        )
    for index, (want, got) in enumerate(zip(expected, loaded, strict=True)):
        if want.shape != got.shape:
            raise RoundTripError(
                f"output {index} has shape {got.shape} after loading, {want.shape} before",
                "make get_config() return every constructor argument that changes the shapes",
            )
        if not np.allclose(got, want, atol=atol, rtol=rtol, equal_nan=True):
            diff = float(np.max(np.abs(got.astype("float64") - want.astype("float64"))))
            raise RoundTripError(
                f"output {index} differs after loading in a fresh interpreter "
                f"(max abs difference {diff:.3g})",
                "create every weight in build() so the saved weights are restored, keep the "
                "weight order stable, and make get_config() return every constructor argument",
            )
