"""A model with every plugin layer, saved on one Keras backend, loads on each of the others.

Each save and each load runs in a fresh interpreter with ``KERAS_BACKEND`` set, so no state
crosses backends. A backend whose package is not installed in this environment is skipped
(``tox -e torch`` installs all three).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from layerhub.testing import run_in_fresh_interpreter

HERE = Path(__file__).resolve().parent
BACKENDS = ("tensorflow", "jax", "torch")

SAVE = """
import sys
sys.path.insert(0, sys.argv[1])
import numpy as np
import keras
import layerhub
from _every_layer import every_layer_data, every_layer_model

assert keras.backend.backend() == sys.argv[3], keras.backend.backend()
model = every_layer_model()
x, _ = every_layer_data()
layerhub.save_model(model, sys.argv[2] + "/model.keras")
np.savez(sys.argv[2] + "/io.npz", image=x[0], sequence=x[1], table=x[2],
         y=keras.ops.convert_to_numpy(model(x, training=False)))
"""

# Nothing but layerhub is imported before the load: the plugins come from the file's names.
LOAD = """
import sys
import numpy as np
import layerhub

model = layerhub.load_model(sys.argv[1] + "/model.keras")
import keras

assert keras.backend.backend() == sys.argv[2], keras.backend.backend()
data = np.load(sys.argv[1] + "/io.npz")
y = keras.ops.convert_to_numpy(model([data["image"], data["sequence"], data["table"]]))
np.testing.assert_allclose(y, data["y"], rtol=1e-5, atol=1e-5)
print("max|diff|", float(np.max(np.abs(y - data["y"]))))
"""


def _installed(backend: str) -> bool:
    return importlib.util.find_spec(backend) is not None


def _require(backend: str) -> None:
    if not _installed(backend):
        pytest.skip(
            f"the {backend} package is not installed in this environment "
            "(tox -e torch installs TensorFlow, JAX and PyTorch)"
        )


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One saved model (and its inputs and predictions) per installed backend, made lazily."""
    return {}


def _saved_on(backend: str, saved: dict[str, Path], factory: pytest.TempPathFactory) -> Path:
    if backend not in saved:
        directory = factory.mktemp(f"saved_on_{backend}")
        run_in_fresh_interpreter(
            SAVE, str(HERE), str(directory), backend, env={"KERAS_BACKEND": backend}
        )
        saved[backend] = directory
    return saved[backend]


@pytest.mark.parametrize(
    ("source", "target"),
    [(s, t) for s in BACKENDS for t in BACKENDS if s != t],
    ids=lambda b: b,
)
def test_saved_on_one_backend_loads_on_another(
    source: str, target: str, saved: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> None:
    _require(source)
    _require(target)
    directory = _saved_on(source, saved, tmp_path_factory)
    process = run_in_fresh_interpreter(LOAD, str(directory), target, env={"KERAS_BACKEND": target})
    assert "max|diff|" in process.stdout
    assert np.load(directory / "io.npz")["y"].shape == (8, 1)
