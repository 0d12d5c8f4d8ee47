"""Distributed training with the engines Keras already has, on one 2-core CPU machine.

``tf.distribute.MirroredStrategy`` over two logical CPU devices, and
``keras.distribution.DataParallel`` over two JAX host devices: a model with every plugin layer
trains a few steps and ends with the weights of a single-device run from the same weights and
data; saved with ``layerhub.save_model`` under the strategy, it loads in a fresh interpreter with
and without one. Each run is a fresh interpreter: devices are configured before anything else.
The MirroredStrategy child also reproduces, with built-in layers only, the two Keras traps the
README's "Distributed training" section states, so the section is told when Keras changes.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

from layerhub.testing import run_in_fresh_interpreter

HERE = Path(__file__).resolve().parent
TOLERANCE = 1e-5

_TWO_CPUS = """
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
"""

MIRRORED = (
    _TWO_CPUS
    + """
import sys
sys.path.insert(0, sys.argv[1])
import keras
import numpy as np
import layerhub
from _every_layer import every_layer_data, every_layer_model

out = sys.argv[2]
x, y = every_layer_data(n=16)


def train(model):
    model.compile(optimizer=keras.optimizers.SGD(0.005), loss="mse")
    history = model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    return history.history["loss"]


single = every_layer_model()
initial = single.get_weights()
single_loss = train(single)

strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
assert strategy.num_replicas_in_sync == 2
with strategy.scope():
    mirrored = every_layer_model()
    mirrored.set_weights(initial)
mirrored_loss = train(mirrored)
np.testing.assert_allclose(mirrored_loss, single_loss, rtol=1e-5, atol=1e-5)
for a, b in zip(mirrored.get_weights(), single.get_weights(), strict=True):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
assert any(not np.allclose(a, b) for a, b in zip(initial, single.get_weights())), "it trained"
with strategy.scope():
    layerhub.save_model(mirrored, out + "/model.keras")
np.savez(out + "/io.npz", image=x[0], sequence=x[1], table=x[2],
         y=mirrored.predict(x, verbose=0))
print("losses", single_loss, mirrored_loss)

# Trap 1: compile(jit_compile=True) under MirroredStrategy, built-in layers only.
xs, ys = np.ones((8, 3), "float32"), np.ones((8, 1), "float32")
with strategy.scope():
    dense = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    dense.compile("sgd", "mse", jit_compile=True)
try:
    dense.fit(xs, ys, batch_size=8, verbose=0)
    print("TRAP1 fixed")
except Exception as error:
    print("TRAP1", "Trying to access resource" in str(error) and "CPU:1" in str(error))


# Trap 2: a rank-1 output and target double the loss with 2 replicas.
def rank1():
    keras.utils.set_random_seed(0)
    i = keras.Input((3,))
    o = keras.layers.Reshape(())(keras.layers.Dense(1, kernel_initializer="ones")(i))
    m = keras.Model(i, o)
    m.compile("sgd", "mse")
    return m


xr = np.arange(24, dtype="float32").reshape(8, 3) / 10
yr = np.ones((8,), "float32")
alone = rank1().evaluate(xr, yr, batch_size=8, verbose=0)
with strategy.scope():
    replicated = rank1()
print("TRAP2", replicated.evaluate(xr, yr, batch_size=8, verbose=0) / alone)
"""
)

DATA_PARALLEL = """
import sys
sys.path.insert(0, sys.argv[1])
import jax
import keras
import numpy as np
import layerhub
from _every_layer import every_layer_data, every_layer_model

assert keras.backend.backend() == "jax"
assert len(jax.devices()) == 2, jax.devices()
out = sys.argv[2]
x, y = every_layer_data(n=16)


def train(model):
    model.compile(optimizer=keras.optimizers.SGD(0.005), loss="mse")
    history = model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    return history.history["loss"]


single = every_layer_model()
initial = single.get_weights()
single_loss = train(single)

keras.distribution.set_distribution(keras.distribution.DataParallel(devices=jax.devices()))
parallel = every_layer_model()
parallel.set_weights(initial)
parallel_loss = train(parallel)
np.testing.assert_allclose(parallel_loss, single_loss, rtol=1e-5, atol=1e-5)
for a, b in zip(parallel.get_weights(), single.get_weights(), strict=True):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
assert any(not np.allclose(a, b) for a, b in zip(initial, single.get_weights())), "it trained"
layerhub.save_model(parallel, out + "/model.keras")
np.savez(out + "/io.npz", image=x[0], sequence=x[1], table=x[2],
         y=parallel.predict(x, verbose=0))
print("losses", single_loss, parallel_loss)
"""

# Loads with nothing imported but layerhub (and the device setup, when a strategy is wanted).
LOAD = """
import sys
import numpy as np
import layerhub

mode, directory = sys.argv[1], sys.argv[2]
if mode == "mirrored":
    import tensorflow as tf

    # Before TensorFlow starts its devices (import layerhub imports neither keras nor TF).
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        model = layerhub.load_model(directory + "/model.keras")
elif mode == "data_parallel":
    import jax
    import keras

    keras.distribution.set_distribution(keras.distribution.DataParallel(devices=jax.devices()))
    model = layerhub.load_model(directory + "/model.keras")
else:
    model = layerhub.load_model(directory + "/model.keras")
data = np.load(directory + "/io.npz")
y = model.predict([data["image"], data["sequence"], data["table"]], verbose=0)
np.testing.assert_allclose(y, data["y"], rtol=1e-5, atol=1e-5)
print("loaded", mode)
"""


def _only_on(backend: str, environment: str) -> None:
    """Run each engine once per tox run, in the environment of its own backend."""
    current = os.environ.get("KERAS_BACKEND", "tensorflow")
    if current != backend:
        pytest.skip(f"runs in the {backend} environment ({environment}), not under {current}")


def test_mirrored_strategy_matches_one_device_and_round_trips(tmp_path: Path) -> None:
    pytest.importorskip("tensorflow")
    _only_on("tensorflow", "tox -e py")
    env = {"KERAS_BACKEND": "tensorflow"}
    trained = run_in_fresh_interpreter(MIRRORED, str(HERE), str(tmp_path), env=env)
    lines = dict(line.split(" ", 1) for line in trained.stdout.splitlines() if " " in line)
    assert lines.get("TRAP1") == "True", (
        "Keras changed: compile(jit_compile=True) under MirroredStrategy no longer fails as "
        f"the README says ({lines.get('TRAP1')!r})"
    )
    assert abs(float(lines["TRAP2"]) - 2.0) < 1e-4, (
        f"Keras changed: a rank-1 loss under 2 replicas is now {lines['TRAP2']} x the "
        "single-device loss, not 2 x as the README says"
    )
    run_in_fresh_interpreter(LOAD, "none", str(tmp_path), env=env)
    run_in_fresh_interpreter(LOAD, "mirrored", str(tmp_path), env=env)


def test_jax_data_parallel_matches_one_device_and_round_trips(tmp_path: Path) -> None:
    if importlib.util.find_spec("jax") is None:
        pytest.skip("jax is not installed in this environment (tox -e jax has it)")
    _only_on("jax", "tox -e jax")
    env = {"KERAS_BACKEND": "jax", "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    run_in_fresh_interpreter(DATA_PARALLEL, str(HERE), str(tmp_path), env=env)
    run_in_fresh_interpreter(LOAD, "none", str(tmp_path), env=env)
    run_in_fresh_interpreter(LOAD, "data_parallel", str(tmp_path), env=env)
