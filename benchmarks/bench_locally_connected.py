"""Forward+backward step: layerhub's LocallyConnected1D/2D vs tf-keras's, per implementation.

Both run on TensorFlow in one process, on the same input and the same weights
(copied from the tf-keras layer), each step inside a `tf.function` (graph mode,
as in `fit`), computing the gradient of a fixed linear loss with respect to the
input and all weights. Calls of the two layers are interleaved; the table shows
the median of N timed steps after a warm-up, and the ratio ours / tf-keras
(goal: <= 1.0).

Usage:
    python benchmarks/bench_locally_connected.py [--repeats 30] [--warmup 5]

Needs `tensorflow` and `tf-keras` next to `keras` 3 and the plugin (e.g.
`PYTHONPATH=plugins/layerhub-locally-connected`).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ["KERAS_BACKEND"] = "tensorflow"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np
import tensorflow as tf
import tf_keras

try:
    from layerhub_locally_connected.locally_connected1d import LocallyConnected1D
    from layerhub_locally_connected.locally_connected2d import LocallyConnected2D
except ImportError:  # run from a checkout without the plugin installed
    sys.path.append(str(Path(__file__).resolve().parents[1] / "plugins/layerhub-locally-connected"))
    from layerhub_locally_connected.locally_connected1d import LocallyConnected1D
    from layerhub_locally_connected.locally_connected2d import LocallyConnected2D

# (name, rank, input shape (channels_last), layer kwargs)
CASES = [
    ("2D 32x32x3, k3, f16, b16", 2, (16, 32, 32, 3), {"filters": 16, "kernel_size": 3}),
    ("2D 16x16x8, k3, f16, b32", 2, (32, 16, 16, 8), {"filters": 16, "kernel_size": 3}),
    (
        "2D 28x28x4, k3 s2, f8, b32",
        2,
        (32, 28, 28, 4),
        {"filters": 8, "kernel_size": 3, "strides": 2},
    ),
    ("1D 128x16, k5, f32, b64", 1, (64, 128, 16), {"filters": 32, "kernel_size": 5}),
    ("2D 8x8x4, k3, f8, b256", 2, (256, 8, 8, 4), {"filters": 8, "kernel_size": 3}),
    ("1D 16x8, k3, f8, b256", 1, (256, 16, 8), {"filters": 8, "kernel_size": 3}),
]


def make_step(layer, variables):
    @tf.function
    def step(x, upstream):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x)
            loss = tf.reduce_sum(y * upstream)
        return tape.gradient(loss, [x, *variables])

    return step


def time_pair(steps, args, warmup, repeats, min_sample=0.02):
    """Median seconds per call of each step, calls interleaved.

    Each sample averages enough back-to-back calls to last `min_sample`
    seconds, so that sub-millisecond steps are not lost in timer noise. Eager
    TensorFlow on CPU returns from a call once its outputs are computed.
    """
    for _ in range(warmup):
        for step in steps:
            step(*args)
    start = time.perf_counter()
    for step in steps:
        step(*args)
    inner = max(1, int(min_sample / max((time.perf_counter() - start) / len(steps), 1e-6)))
    times = [[] for _ in steps]
    for _ in range(repeats):
        for i, step in enumerate(steps):
            start = time.perf_counter()
            for _ in range(inner):
                step(*args)
            times[i].append((time.perf_counter() - start) / inner)
    return [statistics.median(t) * 1e3 for t in times]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    print(
        f"keras {keras.__version__}, tf-keras {tf_keras.__version__}, tensorflow {tf.__version__},"
        f" {platform.machine()}, {os.cpu_count()} CPUs; median of {args.repeats} steps"
    )
    header = f"| {'case':<26} | impl | ours path | tf-keras ms | ours ms | ours/tf-keras |"
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    for name, rank, shape, kwargs in CASES:
        theirs_cls = (
            tf_keras.layers.LocallyConnected1D if rank == 1 else tf_keras.layers.LocallyConnected2D
        )
        ours_cls = LocallyConnected1D if rank == 1 else LocallyConnected2D
        x = tf.constant(rng.normal(size=shape).astype("float32"))
        for implementation in (1, 2, 3):
            theirs = theirs_cls(
                **kwargs, implementation=implementation, bias_initializer="random_normal"
            )
            y = theirs(x)
            ours = ours_cls(**kwargs, implementation=implementation)
            ours.build(x.shape)
            ours.set_weights(theirs.get_weights())
            upstream = tf.constant(rng.normal(size=y.shape).astype("float32"))
            np.testing.assert_allclose(
                keras.ops.convert_to_numpy(ours(x)), y.numpy(), atol=1e-4, rtol=1e-4
            )
            steps = [
                make_step(theirs, theirs.trainable_weights),
                make_step(ours, [v.value for v in ours.trainable_weights]),
            ]
            path = "dense" if ours._dense_path else "local"
            t_theirs, t_ours = time_pair(steps, (x, upstream), args.warmup, args.repeats)
            print(
                f"| {name:<26} | {implementation:>4} | {path:<9} | {t_theirs:>11.2f} |"
                f" {t_ours:>7.2f} | {t_ours / t_theirs:>13.2f} |"
            )


if __name__ == "__main__":
    main()
