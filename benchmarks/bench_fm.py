"""FMLayer training step vs the same factorization machine written plainly with keras.ops,
and vs DeepCTR's ``FM`` layer where DeepCTR is installed.

All are one-layer models trained with `train_on_batch` (SGD, MSE) on the same data and the
same weights (copied, outputs checked equal first), with and without `jit_compile`. The table
shows the median of N timed steps after a warm-up and the ratios FMLayer / plain (goal: <= 1.05,
i.e. the layer costs no more than the math) and FMLayer / DeepCTR, each from its own pair of
models stepped in turns. DeepCTR's ``FM`` is the pairwise term only, on a (batch, fields, k)
tensor of embeddings; the DeepCTR contender is what its users write for dense features: the
linear term, plus ``FM`` of each feature times its factor row. DeepCTR runs on tf-keras, so the
process sets ``TF_USE_LEGACY_KERAS=1`` (it changes ``tf.keras`` only; ``keras`` stays Keras 3).

Usage:
    python benchmarks/bench_fm.py [--repeats 30] [--warmup 3]

Needs `keras` 3 and the plugin (e.g. `PYTHONPATH=plugins/layerhub-fm`); the backend is
`KERAS_BACKEND` (TensorFlow by default).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # tf.keras for DeepCTR; `keras` stays 3

import keras
import numpy as np
from keras import ops

try:
    from layerhub_fm import FMLayer
except ImportError:  # run from a checkout without the plugin installed
    sys.path.append(str(Path(__file__).resolve().parents[1] / "plugins/layerhub-fm"))
    from layerhub_fm import FMLayer

# (batch, features, factor_order, output_dim)
CASES = [(256, 32, 8, 1), (1024, 128, 16, 1), (4096, 256, 32, 4)]


class PlainFM(keras.layers.Layer):
    """Linear term plus 0.5 * sum((xV)^2 - x^2 V^2), as one writes it with keras.ops."""

    def __init__(self, output_dim, factor_order, **kwargs):
        super().__init__(**kwargs)
        self.output_dim, self.factor_order = output_dim, factor_order

    def build(self, input_shape):
        d = input_shape[-1]
        self.w = self.add_weight(shape=(d, self.output_dim), name="w")
        self.v = self.add_weight(shape=(d, self.factor_order), name="v")
        self.b = self.add_weight(shape=(self.output_dim,), initializer="zeros", name="b")

    def call(self, x):
        xv = ops.matmul(x, self.v)
        pairwise = 0.5 * ops.sum(
            ops.square(xv) - ops.matmul(ops.square(x), ops.square(self.v)), axis=-1, keepdims=True
        )
        return ops.matmul(x, self.w) + self.b + pairwise


def deepctr_model(features, k, out, weights, jit):
    """DeepCTR's FM with the linear term, as a tf-keras model, or None without DeepCTR."""
    # DeepCTR asks PyPI for its latest version on import, on a thread with no timeout; a closed
    # local port makes that fail at once, with or without a network (nothing here needs one).
    os.environ["HTTPS_PROXY"] = "http://127.0.0.1:9"
    try:
        import tensorflow as tf
        from deepctr.layers.interaction import FM
    except ImportError:
        return None
    w, v, b = weights

    class LinearPlusFM(tf.keras.layers.Layer):
        def build(self, input_shape):
            self.w = self.add_weight(name="w", shape=w.shape, initializer="zeros")
            self.v = self.add_weight(name="v", shape=v.shape, initializer="zeros")
            self.b = self.add_weight(name="b", shape=b.shape, initializer="zeros")
            self.fm = FM()

        def call(self, x):
            embeddings = tf.expand_dims(x, -1) * self.v  # feature i times its factor row
            return tf.matmul(x, self.w) + self.b + self.fm(embeddings)

    inputs = tf.keras.Input((features,))
    layer = LinearPlusFM()
    model = tf.keras.Model(inputs, layer(inputs))
    layer.set_weights([w, v, b])
    model.compile(optimizer="sgd", loss="mse", jit_compile=jit)
    return model


def step_time(models, x, y, warmup, repeats, min_sample=0.02):
    for _ in range(warmup):
        for model in models:
            model.train_on_batch(x, y)
    start = time.perf_counter()
    for model in models:
        model.train_on_batch(x, y)
    inner = max(1, int(min_sample / max((time.perf_counter() - start) / len(models), 1e-6)))
    times = [[] for _ in models]
    for _ in range(repeats):
        for i, model in enumerate(models):
            start = time.perf_counter()
            for _ in range(inner):
                loss = model.train_on_batch(x, y)
            float(loss)
            times[i].append((time.perf_counter() - start) / inner)
    return [statistics.median(t) * 1e3 for t in times]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args()
    print(
        f"keras {keras.__version__}, backend {keras.backend.backend()}, {platform.machine()},"
        f" {os.cpu_count()} CPUs; median of {args.repeats} train_on_batch steps, interleaved"
    )
    header = (
        f"| {'batch x features, k, out':<26} | jit   | plain ms | FMLayer ms | FMLayer/plain |"
        " DeepCTR ms | FMLayer/DeepCTR |"
    )
    print(header)
    print("|" + "|".join("-" * len(c) for c in header.split("|")[1:-1]) + "|")
    rng = np.random.default_rng(0)
    for batch, features, k, out in CASES:
        x = rng.normal(size=(batch, features)).astype("float32")
        y = rng.normal(size=(batch, out)).astype("float32")
        for jit in (False, True):
            ours, plain = FMLayer(out, k), PlainFM(out, k)
            ours.build(x.shape)
            plain.build(x.shape)
            plain.set_weights(ours.get_weights())  # W, V, b in both
            np.testing.assert_allclose(
                ops.convert_to_numpy(plain(x)), ops.convert_to_numpy(ours(x)), rtol=1e-4, atol=1e-4
            )
            models = []
            for layer in (plain, ours):
                inputs = keras.Input((features,))
                model = keras.Model(inputs, layer(inputs))
                model.compile(optimizer="sgd", loss="mse", jit_compile=jit)
                models.append(model)
            deepctr = deepctr_model(features, k, out, ours.get_weights(), jit)
            if deepctr is not None:
                np.testing.assert_allclose(
                    deepctr.predict(x, verbose=0),
                    ops.convert_to_numpy(ours(x)),
                    rtol=1e-4,
                    atol=1e-4,
                )
            # Each ratio from its own interleaved pair: DeepCTR's large tensors would slow
            # whichever model steps after it.
            t_plain, t_ours = step_time(models, x, y, args.warmup, args.repeats)
            versus = f" {'-':>10} | {'not installed':>15} |"
            if deepctr is not None:
                t_deepctr, t_ours_again = step_time(
                    [deepctr, models[1]], x, y, args.warmup, args.repeats
                )
                versus = f" {t_deepctr:>10.3f} | {t_ours_again / t_deepctr:>15.2f} |"
            name = f"{batch} x {features}, {k}, {out}"
            print(
                f"| {name:<26} | {jit!s:<5} | {t_plain:>8.3f} | {t_ours:>10.3f} |"
                f" {t_ours / t_plain:>13.2f} |{versus}"
            )


if __name__ == "__main__":
    main()
