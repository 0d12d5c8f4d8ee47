"""Loading from many threads imports each plugin once; saving from many processes stays atomic."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest

import layerhub
from layerhub.testing import run_in_fresh_interpreter

THREADS = 8
ROUNDS = 5


def plugin_models() -> dict[str, tuple[Any, np.ndarray, str]]:
    """name -> (model, input, plugin module it needs); one model per plugin object kind."""
    from layerhub_fm import FMLayer
    from layerhub_functions import channel_slice
    from layerhub_l2norm import L2Normalization
    from layerhub_locally_connected import LocallyConnected2D
    from layerhub_mylayer import MyLayer
    from layerhub_pam import CAM, PAM
    from layerhub_scale import Scale

    rng = np.random.default_rng(0)

    def model(shape: tuple[int, ...], *layers: Any) -> tuple[Any, np.ndarray]:
        inputs = keras.Input(shape)
        x = inputs
        for layer in layers:
            x = layer(x)
        return keras.Model(inputs, x), rng.normal(size=(2, *shape)).astype("float32")

    return {
        "scale": (*model((5,), Scale(gamma_initializer="random_normal")), "layerhub_scale"),
        "l2norm": (*model((4, 4, 3), L2Normalization(gamma_init=5.0)), "layerhub_l2norm"),
        "fm": (*model((6,), FMLayer(output_dim=3, factor_order=2)), "layerhub_fm"),
        "pam": (*model((4, 4, 8), PAM(reduction=2, gamma_initializer="ones")), "layerhub_pam"),
        "cam": (*model((4, 4, 8), CAM(gamma_initializer="ones")), "layerhub_pam"),
        "mylayer": (*model((4,), MyLayer(output_dim=3)), "layerhub_mylayer"),
        "lc2d": (
            *model((5, 5, 2), LocallyConnected2D(filters=3, kernel_size=2, implementation=2)),
            "layerhub_locally_connected",
        ),
        "functions": (
            *model(
                (4, 2),
                keras.layers.Lambda(channel_slice, arguments={"index": 1}),
                keras.layers.Flatten(),
                keras.layers.Dense(2),
            ),
            "layerhub_functions",
        ),
    }


# Counts executions of every top-level layerhub_* module: a finder in front of sys.meta_path
# finds the real spec and wraps its loader's exec_module. A module imported twice (removed from
# sys.modules and imported again, reloaded, or exec'd by two racing threads) counts twice.
THREADED_LOADER = """
import importlib.abc, importlib.machinery, json, sys, threading, collections

executions = collections.Counter()
counter_lock = threading.Lock()

class CountingFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if "." in name or not name.startswith("layerhub_"):
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                break
        else:
            return None
        loader = spec.loader
        real_exec = loader.exec_module

        def exec_module(module, _real=real_exec, _name=name):
            with counter_lock:
                executions[_name] += 1
            return _real(module)

        loader.exec_module = exec_module
        return spec

sys.meta_path.insert(0, CountingFinder())

import keras
import numpy as np
import layerhub

cases = json.loads(open(sys.argv[1]).read())
threads, rounds = int(sys.argv[2]), int(sys.argv[3])
errors = []
barrier = threading.Barrier(threads)

def work(index):
    for round_ in range(rounds):
        name = sorted(cases)[(index + round_) % len(cases)]
        case = cases[name]
        try:
            barrier.wait()
            model = layerhub.load_model(case["path"])
            got = keras.ops.convert_to_numpy(model(np.load(case["x"]), training=False))
            want = np.load(case["y"])
            if not np.allclose(got, want, rtol=1e-5, atol=1e-5):
                errors.append(f"{name}: predictions differ by {np.max(np.abs(got - want))}")
        except BaseException as error:
            first = (str(error).splitlines() or [""])[0]
            where = f"{name} (thread {index}, round {round_})"
            errors.append(f"{where}: {type(error).__name__}: {first}")

workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
for worker in workers:
    worker.start()
for worker in workers:
    worker.join()
plugins = sorted(m for m in sys.modules if m.startswith("layerhub_") and "." not in m)
print(json.dumps({"errors": errors, "executions": dict(executions), "plugins": plugins}))
"""


@pytest.mark.slow
def test_threads_load_models_needing_different_plugins(tmp_path: Path) -> None:
    cases = {}
    needed = set()
    for name, (model, x, plugin) in plugin_models().items():
        path = layerhub.save_model(model, tmp_path / f"{name}.keras")
        np.save(tmp_path / f"{name}.x.npy", x)
        np.save(tmp_path / f"{name}.y.npy", keras.ops.convert_to_numpy(model(x, training=False)))
        cases[name] = {
            "path": str(path),
            "x": str(tmp_path / f"{name}.x.npy"),
            "y": str(tmp_path / f"{name}.y.npy"),
        }
        needed.add(plugin)
    (tmp_path / "cases.json").write_text(json.dumps(cases))
    out = run_in_fresh_interpreter(
        THREADED_LOADER, str(tmp_path / "cases.json"), str(THREADS), str(ROUNDS), timeout=300
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["errors"] == []
    assert set(result["plugins"]) == needed
    assert result["executions"] == dict.fromkeys(sorted(needed), 1), (
        "a plugin module was executed more than once (or not at all)"
    )


# Four processes saving different models to one path at the same moment ------------------------

SAVERS = 4
SAVE_ROUNDS = 3

SAVER = """
import json, os, sys, time
from pathlib import Path
import keras, numpy as np
import layerhub
from layerhub_scale import Scale

index, target, flags, rounds = int(sys.argv[1]), sys.argv[2], Path(sys.argv[3]), int(sys.argv[4])
keras.utils.set_random_seed(index)
inputs = keras.Input((8,))
model = keras.Model(inputs, keras.layers.Dense(4)(Scale(gamma_initializer="random_normal")(inputs)))
x = np.linspace(-1, 1, 16, dtype="float32").reshape(2, 8)
np.save(flags / f"expected{index}.npy", keras.ops.convert_to_numpy(model(x, training=False)))
(flags / f"ready{index}").touch()
for round_ in range(rounds):
    while not (flags / f"go{round_}").exists():
        time.sleep(0.002)
    try:
        layerhub.save_model(model, target)
        status = "ok"
    except Exception as error:
        status = f"{type(error).__name__}: {error}"
    (flags / f"done{round_}.{index}").write_text(status)
"""


def wait_for(paths: list[Path], processes: list[subprocess.Popen[str]], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not all(p.exists() for p in paths):
        for process in processes:
            if process.poll() not in (None, 0):
                raise AssertionError(f"a saver died: {process.communicate()[1][-2000:]}")
        assert time.monotonic() < deadline, f"timed out waiting for {paths}"
        time.sleep(0.01)


@pytest.mark.slow
def test_processes_saving_to_one_path_leave_one_complete_model(tmp_path: Path) -> None:
    target_dir = tmp_path / "models"
    target_dir.mkdir()
    target = target_dir / "shared.keras"
    flags = tmp_path / "flags"
    flags.mkdir()
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                textwrap.dedent(SAVER),
                str(i),
                str(target),
                str(flags),
                str(SAVE_ROUNDS),
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(SAVERS)
    ]
    try:
        wait_for([flags / f"ready{i}" for i in range(SAVERS)], processes, 300)
        expected = [np.load(flags / f"expected{i}.npy") for i in range(SAVERS)]
        x = np.linspace(-1, 1, 16, dtype="float32").reshape(2, 8)
        for round_ in range(SAVE_ROUNDS):
            (flags / f"go{round_}").touch()
            done = [flags / f"done{round_}.{i}" for i in range(SAVERS)]
            wait_for(done, processes, 120)
            statuses = [p.read_text() for p in done]
            assert statuses == ["ok"] * SAVERS
            assert sorted(p.name for p in target_dir.iterdir()) == ["shared.keras"], (
                "temporary files were left behind"
            )
            got = keras.ops.convert_to_numpy(layerhub.load_model(target)(x, training=False))
            matches = [i for i, want in enumerate(expected) if np.array_equal(got, want)]
            assert len(matches) == 1, f"round {round_}: the file is none of the saved models"
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
            process.communicate()


# Eight threads make the first loads of a fresh process, which has imported layerhub but not
# Keras: some go straight to resolving names against Keras' registry while another is still
# importing Keras (before issue 25, "partially initialized module 'keras'" in most runs).
FIRST_LOADS = """
import json, sys, threading
import layerhub

assert "keras" not in sys.modules and "numpy" not in sys.modules
cases = json.loads(open(sys.argv[1]).read())
errors, results = [], {}
barrier = threading.Barrier(8)

def work(index):
    case = cases[index % len(cases)]
    try:
        barrier.wait()
        model = layerhub.load_model(case["path"])
        import keras
        import numpy as np  # after the load: importing it first shortens Keras' import

        # through Keras: a torch output that requires grad refuses numpy()
        got = keras.ops.convert_to_numpy(model(np.load(case["x"]), training=False))
        results[index] = bool(np.allclose(got, np.load(case["y"]), rtol=1e-5, atol=1e-6))
    except BaseException as error:
        errors.append(f"{type(error).__name__}: {(str(error).splitlines() or [''])[0]}")

workers = [threading.Thread(target=work, args=(i,)) for i in range(8)]
for worker in workers:
    worker.start()
for worker in workers:
    worker.join()
print(json.dumps({"errors": errors, "results": results}))
"""
FIRST_LOAD_PROCESSES = 4


@pytest.mark.slow
def test_the_first_loads_of_a_fresh_process_from_eight_threads(tmp_path: Path) -> None:
    from layerhub_scale import Scale

    inputs = keras.Input((3,))
    x = np.linspace(-1, 1, 6, dtype="float32").reshape(2, 3)
    np.save(tmp_path / "x.npy", x)
    scaled = keras.Model(inputs, Scale(gamma_initializer="random_normal")(inputs))
    plain = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    layerhub.save_model(scaled, tmp_path / "scaled.keras")
    plain.save(tmp_path / "plain.h5")
    case = {}
    for name, model in (("scaled.keras", scaled), ("plain.h5", plain)):
        np.save(tmp_path / f"{name}.y.npy", keras.ops.convert_to_numpy(model(x)))
        case[name] = {
            "path": str(tmp_path / name),
            "x": str(tmp_path / "x.npy"),
            "y": str(tmp_path / f"{name}.y.npy"),
        }
    # One thread in four imports Keras for a Keras 2 file; the others resolve a plugin's name.
    cases = [case["plain.h5"], *[case["scaled.keras"]] * 3]
    (tmp_path / "cases.json").write_text(json.dumps(cases))
    for _ in range(FIRST_LOAD_PROCESSES):
        result = run_in_fresh_interpreter(FIRST_LOADS, str(tmp_path / "cases.json"))
        report = json.loads(result.stdout.strip().splitlines()[-1])
        assert report["errors"] == []
        assert report["results"] == {str(i): True for i in range(8)}
