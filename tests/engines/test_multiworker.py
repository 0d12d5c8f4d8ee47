"""Multi-worker training: ``MultiWorkerMirroredStrategy`` over two local processes.

Two fresh interpreters with ``TF_CONFIG`` naming each other on 127.0.0.1 train a model with a
plugin layer (``Dense``, ``Scale``, ``Dense``) for a few steps of a custom training loop (Keras
3.15's ``model.fit`` fails under this strategy inside Keras, before any layerhub code runs). The
chief saves with ``layerhub.save_model``, the other worker to a temporary path, as Keras
documents. A third interpreter loads the chief's file, first with plain
``keras.saving.load_model`` (the negative control: "Could not locate class"), then with
``layerhub.load_model``, and runs the same steps without a strategy: the loaded weights equal
the single-process ones.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("tensorflow")

WORKERS = 2
TIMEOUT = 300

TRAIN = """
import json, os, sys, tempfile
mode, out = sys.argv[1], sys.argv[2]
import tensorflow as tf

# The strategy first: it must exist before any other TensorFlow operation.
strategy = tf.distribute.MultiWorkerMirroredStrategy() if mode == "worker" else None
import keras, numpy as np
import layerhub
from layerhub_scale import Scale

GLOBAL_BATCH, STEPS = 16, 4


def build():
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((8,)), keras.layers.Dense(6), Scale(), keras.layers.Dense(1)]
    )
    return model, keras.optimizers.SGD(0.05)


rng = np.random.default_rng(1)
x = rng.normal(size=(GLOBAL_BATCH * STEPS, 8)).astype("float32")
y = rng.normal(size=(GLOBAL_BATCH * STEPS, 1)).astype("float32")
dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(GLOBAL_BATCH)


def step_fn(model, optimizer):
    @tf.function
    def step(xb, yb):
        with tf.GradientTape() as tape:
            squared = tf.reduce_sum(tf.square(model(xb, training=True) - yb), axis=-1)
            # The mean over the global batch: each replica's share, summed by all-reduce.
            loss = tf.reduce_sum(squared) / GLOBAL_BATCH
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss
    return step


if strategy is None:
    model, optimizer = build()
    step = step_fn(model, optimizer)
    for xb, yb in dataset:
        step(xb, yb)
    np.savez(out, *model.get_weights())
else:
    assert strategy.num_replicas_in_sync == 2, strategy.num_replicas_in_sync
    with strategy.scope():
        model, optimizer = build()
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    batches = strategy.experimental_distribute_dataset(dataset.with_options(options))
    step = step_fn(model, optimizer)
    for xb, yb in batches:
        strategy.run(step, args=(xb, yb))
    chief = strategy.cluster_resolver.task_id == 0
    # Every worker saves (saving may run collective ops); only the chief's file is kept.
    target = out if chief else os.path.join(tempfile.mkdtemp(), "model.keras")
    layerhub.save_model(model, target)
print(json.dumps({"mode": mode, "ok": True}))
"""

# Loads the chief's file (plain Keras first, before anything imports the plugin), then runs the
# single-process reference in the same interpreter: one TensorFlow import instead of two.
LOAD_THEN_SINGLE = (
    """
import json, sys
import numpy as np
import keras
try:
    keras.saving.load_model(sys.argv[1])
    plain = "loaded"
except Exception as error:
    plain = str(error)
import layerhub
model = layerhub.load_model(sys.argv[1])
np.savez(sys.argv[2], *model.get_weights())
print(json.dumps({"plain": plain, "scale": type(model.layers[1]).__name__}))
sys.argv[1:] = ["single", sys.argv[3]]
"""
    + TRAIN
)


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _weights(path: Path) -> list[np.ndarray]:
    data = np.load(path)
    return [data[f"arr_{i}"] for i in range(len(data.files))]


def test_two_workers_train_save_and_match_one_process(
    tmp_path: Path, plugin_site: Path, plugin_absent_here: None, tools: Any
) -> None:
    cluster = {"worker": [f"127.0.0.1:{port}" for port in _free_ports(WORKERS)]}
    saved = tmp_path / "trained.keras"
    workers = []
    for index in range(WORKERS):
        config = {"cluster": cluster, "task": {"type": "worker", "index": index}}
        env = tools.child_env(plugin_site, TF_CONFIG=json.dumps(config))
        workers.append(
            subprocess.Popen(
                [sys.executable, "-c", TRAIN, "worker", str(saved)],
                env=env,
                cwd=tmp_path,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    try:
        results = [w.communicate(timeout=TIMEOUT) for w in workers]
    finally:
        for w in workers:
            w.kill()
    for w, (out, err) in zip(workers, results, strict=True):
        assert w.returncode == 0, f"{out}\n{err[-5000:]}"
    out = tools.run_child(
        LOAD_THEN_SINGLE,
        str(saved),
        str(tmp_path / "loaded.npz"),
        str(tmp_path / "single.npz"),
        env=tools.child_env(plugin_site),
        cwd=tmp_path,
    )
    found = next(json.loads(line) for line in out.splitlines() if '"plain"' in line)
    assert "Could not locate class 'Scale'" in found["plain"], found["plain"]
    assert found["scale"] == "Scale"
    single, loaded = _weights(tmp_path / "single.npz"), _weights(tmp_path / "loaded.npz")
    assert len(single) == len(loaded) == 6  # two Dense kernels and biases, gamma and beta
    for a, b in zip(loaded, single, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # It trained: Scale's gamma left its initial value.
    assert not np.allclose(single[2], 1.0)
    assert os.path.getsize(saved) > 0
