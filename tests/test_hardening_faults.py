"""Saving is atomic: a save killed at any moment leaves the earlier file or the new one, never a
broken one, and only recognisable temporary files; bad targets give clear errors."""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import _hardening as H
import keras
import numpy as np
import pytest
from layerhub_scale import Scale

import layerhub
from layerhub.testing import run_in_fresh_interpreter

# The one pattern a temporary file of layerhub.save_model may have (README, "Security model").
TEMP_GLOB = ".*.layerhub-tmp*"
KILLS = int(os.environ.get("LAYERHUB_FAULT_KILLS") or 5)
WIDTH = 5000  # Dense(5000 x 5000) float32: 100 MB of weights

BIG_SAVER = """
import sys, time
from pathlib import Path
import keras, numpy as np
import layerhub
from layerhub_scale import Scale

target, flags, width = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
keras.utils.set_random_seed(7)
inputs = keras.Input((width,))
hidden = keras.layers.Dense(width, kernel_initializer="random_normal")(inputs)
model = keras.Model(inputs, keras.layers.Dense(3)(Scale()(hidden)))
x = np.linspace(-1, 1, width, dtype="float32").reshape(1, width)
np.save(flags / "expected.npy", keras.ops.convert_to_numpy(model(x, training=False)))
(flags / "ready").touch()
while not (flags / "go").exists():
    time.sleep(0.001)
start = time.perf_counter()
layerhub.save_model(model, target)
(flags / "saved").write_text(str(time.perf_counter() - start))
"""


def small_model() -> Any:
    inputs = keras.Input((WIDTH,))
    hidden = Scale(gamma_initializer="random_normal")(inputs)
    return keras.Model(inputs, keras.layers.Dense(3)(hidden))


def start_saver(target: Path, flags: Path) -> subprocess.Popen[str]:
    flags.mkdir()
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(BIG_SAVER), str(target), str(flags), str(WIDTH)],
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_ready(process: subprocess.Popen[str], flag: Path, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not flag.exists():
        if process.poll() is not None:
            raise AssertionError(f"the saver exited early: {process.communicate()[1][-2000:]}")
        assert time.monotonic() < deadline, "the saver never got ready"
        time.sleep(0.01)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.slow
def test_killed_save_leaves_the_old_or_the_new_file(tmp_path: Path) -> None:
    directory = tmp_path / "models"
    directory.mkdir()
    target = directory / "big.keras"
    old = small_model()
    x = np.linspace(-1, 1, WIDTH, dtype="float32").reshape(1, WIDTH)
    old_prediction = keras.ops.convert_to_numpy(old(x, training=False))
    # Every saver starts now (TensorFlow start-up overlaps); each one waits for its own "go".
    savers = [start_saver(target, tmp_path / f"flags{i}") for i in range(KILLS + 1)]
    rng = random.Random(1234)
    try:
        for i, process in enumerate(savers):
            wait_ready(process, tmp_path / f"flags{i}" / "ready")
        new_prediction = np.load(tmp_path / "flags0" / "expected.npy")

        # A save that completes: measure it, and it leaves nothing but the target behind.
        layerhub.save_model(old, target)
        (tmp_path / "flags0" / "go").touch()
        _stdout, stderr = savers[0].communicate(timeout=300)
        assert savers[0].returncode == 0, stderr[-2000:]
        duration = float((tmp_path / "flags0" / "saved").read_text())
        assert sorted(p.name for p in directory.iterdir()) == ["big.keras"]
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(layerhub.load_model(target)(x, training=False)),
            new_prediction,
            rtol=1e-5,
        )

        outcomes = []
        for i, process in enumerate(savers[1:], start=1):
            layerhub.save_model(old, target)
            old_digest = digest(target)
            before = {p.name for p in directory.iterdir()}
            delay = rng.uniform(0, duration)
            (tmp_path / f"flags{i}" / "go").touch()
            time.sleep(delay)
            process.send_signal(signal.SIGKILL)
            process.communicate(timeout=60)

            new = {p.name for p in directory.iterdir()} - before
            stray = sorted(n for n in new if not fnmatch.fnmatch(n, TEMP_GLOB))
            assert stray == [], f"killed after {delay:.2f}s: unrecognisable files {stray}"
            assert all(n.startswith(f".{target.name}.") for n in new), sorted(new)
            assert target.exists(), f"killed after {delay:.2f}s: the target is gone"
            if digest(target) == old_digest:
                got = keras.ops.convert_to_numpy(layerhub.load_model(target)(x, training=False))
                np.testing.assert_allclose(got, old_prediction, rtol=1e-5)
                outcomes.append("old")
            else:
                try:
                    got = keras.ops.convert_to_numpy(layerhub.load_model(target)(x, training=False))
                except Exception as error:
                    raise AssertionError(
                        f"killed after {delay:.2f}s of {duration:.2f}s: the target is broken: "
                        f"{type(error).__name__}: {str(error)[:300]}"
                    ) from error
                np.testing.assert_allclose(got, new_prediction, rtol=1e-5)
                outcomes.append("new")
            for name in new:  # a leftover is never what load_model reads; clear it for the next
                (directory / name).unlink()
        print("outcomes after SIGKILL:", outcomes, f"(save takes {duration:.2f}s)")
    finally:
        for process in savers:
            if process.poll() is None:
                process.kill()
            process.communicate()


def test_successful_save_leaves_no_temporary_files(tmp_path: Path) -> None:
    model = H.scale_model()
    target = tmp_path / "m.keras"
    layerhub.save_model(model, target)
    layerhub.save_model(model, target)  # over an existing file too
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.keras"]


def test_save_creates_missing_directories(tmp_path: Path) -> None:
    model = H.scale_model()
    target = tmp_path / "a" / "b" / "m.keras"
    layerhub.save_model(model, target)
    x = np.ones((1, 3, 4), "float32")
    np.testing.assert_allclose(
        layerhub.load_model(target).predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6
    )
    assert sorted(p.name for p in target.parent.iterdir()) == ["m.keras"]


def test_save_over_a_directory_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "m.keras"
    target.mkdir()
    (target / "inside").write_text("keep me")
    with pytest.raises(layerhub.LayerHubError) as caught:
        layerhub.save_model(H.scale_model(), target)
    H.assert_one_line(caught.value)
    assert (target / "inside").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.keras"]


READ_ONLY_SAVER = """
import json, os, sys
import layerhub
sys.path.insert(0, sys.argv[2])
from _hardening import scale_model

model = scale_model()
# Everything saving needs is imported while still root: a tox environment is private to root.
import layerhub._private.saving
if os.geteuid() == 0:  # root ignores directory permissions: become nobody first
    os.setgid(65534)
    os.setuid(65534)
try:
    layerhub.save_model(model, sys.argv[1])
    outcome = {"raised": None}
except BaseException as error:
    outcome = {
        "raised": type(error).__name__,
        "layerhub": isinstance(error, layerhub.LayerHubError),
        "message": str(error),
    }
print(json.dumps(outcome))
"""


@pytest.mark.slow
def test_read_only_directory_gives_a_clear_error() -> None:
    # Not under tmp_path: pytest's base directory is private to root, and nobody must reach it.
    root = Path(tempfile.mkdtemp(prefix="layerhub-readonly-"))
    try:
        root.chmod(0o755)
        read_only = root / "ro"
        read_only.mkdir()
        read_only.chmod(0o555)
        target = read_only / "m.keras"
        out = run_in_fresh_interpreter(
            READ_ONLY_SAVER,
            str(target),
            str(Path(__file__).parent),
            env={"KERAS_HOME": str(root / "keras-home"), "HOME": str(root)},
        )
        outcome = json.loads(out.stdout.strip().splitlines()[-1])
        assert outcome["raised"] is not None, "saved into a read-only directory"
        assert outcome["layerhub"], f"{outcome['raised']}: {outcome['message'][:300]}"
        message = outcome["message"]
        assert "\n" not in message, message[:300]
        assert len(message) <= H.MAX_MESSAGE, message[:300]
        assert str(read_only) in message, message
        assert list(read_only.iterdir()) == []
    finally:
        (root / "ro").chmod(0o755)
        import shutil

        shutil.rmtree(root, ignore_errors=True)
