"""Fixtures for the engine tests (``tox -e engines``): a plugin wheel, and a model that needs it.

The test process itself has no plugin installed: layerhub-scale is built into a temporary wheel
directory, unpacked into a separate site directory for the processes that should have it (the
child that writes the model, Spark's Python workers, MLflow's loader), and installed by Ray from
the wheel directory through the runtime_env that ``layerhub.ray.runtime_env`` builds.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = "layerhub-scale"
# Longest time a child interpreter (TensorFlow import included) may take.
CHILD_TIMEOUT = 300


class SavedModel(NamedTuple):
    """A model with a ``Scale`` layer, saved by ``layerhub.save_model`` with the plugin present.

    Attributes:
        path: the ``.keras`` file.
        x: inputs, float32, shape (64, 8).
        y: the model's predictions for ``x`` in one process (the reference).
        plugin_version: the layerhub-scale version the manifest records.
    """

    path: Path
    x: np.ndarray
    y: np.ndarray
    plugin_version: str


def child_env(*paths: Path, **extra: str) -> dict[str, str]:
    """This process's environment with ``paths`` put first on ``PYTHONPATH``."""
    env = dict(os.environ)
    carried = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join([*map(str, paths), *carried])
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.update(extra)
    return env


def run_child(code: str, *args: str, env: Mapping[str, str], cwd: Path) -> str:
    """Run ``code`` in a fresh interpreter; its stdout, or a failure showing its stderr."""
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        env=dict(env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT,
        check=False,
    )
    if done.returncode != 0:
        pytest.fail(
            f"child failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-6000:]}"
        )
    return done.stdout


@pytest.fixture(scope="session")
def plugin_absent_here() -> None:
    """The test process must not have the plugin: the tests show the workers get it."""
    try:
        found = importlib.metadata.version(PLUGIN)
    except importlib.metadata.PackageNotFoundError:
        return
    pytest.fail(
        f"{PLUGIN} {found} is installed in the test environment; run these in tox -e engines"
    )


@pytest.fixture(scope="session")
def wheel_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding the plugin's wheel only, built without network access."""
    folder = tmp_path_factory.mktemp("wheels")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(folder),
            str(ROOT / "plugins" / PLUGIN),
        ],
        check=True,
        timeout=CHILD_TIMEOUT,
    )
    assert [p.name for p in folder.iterdir()] == ["layerhub_scale-0.1.0-py3-none-any.whl"]
    return folder


@pytest.fixture(scope="session")
def plugin_site(wheel_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The plugin installed into a directory of its own (entry points included)."""
    site = tmp_path_factory.mktemp("plugin-site")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-index",
            "--target",
            str(site),
            *map(str, wheel_dir.iterdir()),
        ],
        check=True,
        timeout=CHILD_TIMEOUT,
    )
    return site


_SAVE = """
import json, sys
import keras, numpy as np
import layerhub
from layerhub_scale import Scale

keras.utils.set_random_seed(0)
model = keras.Sequential(
    [keras.Input((8,)), keras.layers.Dense(6), Scale(), keras.layers.Dense(3)]
)
scale = model.layers[1]
# Not the identity it starts as: the predictions depend on the plugin's weights.
scale.set_weights([np.linspace(0.5, 2.0, 6, dtype="float32"), np.full(6, 0.25, "float32")])
x = np.random.default_rng(0).normal(size=(64, 8)).astype("float32")
layerhub.save_model(model, sys.argv[1])
np.savez(sys.argv[2], x=x, y=model.predict(x, verbose=0))
import importlib.metadata
print(json.dumps({"plugin_version": importlib.metadata.version("layerhub-scale")}))
"""


@pytest.fixture(scope="session")
def scale_model(
    plugin_site: Path, plugin_absent_here: None, tmp_path_factory: pytest.TempPathFactory
) -> SavedModel:
    folder = tmp_path_factory.mktemp("model")
    path, reference = folder / "scale.keras", folder / "reference.npz"
    out = run_child(_SAVE, str(path), str(reference), env=child_env(plugin_site), cwd=folder)
    data = np.load(reference)
    return SavedModel(
        path, data["x"], data["y"], json.loads(out.splitlines()[-1])["plugin_version"]
    )


def json_line(stdout: str) -> Any:
    """The last line a child printed, as JSON."""
    return json.loads(stdout.strip().splitlines()[-1])


class Tools(NamedTuple):
    """The helpers above, for test modules (``--import-mode=importlib`` cannot import conftest)."""

    child_env: Any
    run_child: Any
    json_line: Any


@pytest.fixture(scope="session")
def tools() -> Tools:
    return Tools(child_env, run_child, json_line)
