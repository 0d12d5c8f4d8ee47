"""PAM training step: dense vs chunked attention vs two peers, time and peak memory.

Contenders, each a one-layer model on a `(size, size, 64)` map, batch 2, trained with
`train_on_batch` (SGD, MSE) with and without `jit_compile`:

- `dense`: `PAM(attention_chunk_size=None)`, the N x N attention in one piece;
- `chunked`: `PAM(attention_chunk_size=1024)`, exact, 1024 query positions at a time with a
  recomputing custom gradient;
- `plain`: the same attention written plainly with `keras.ops` (Dense projections, transpose,
  matmul, softmax, matmul, gamma residual);
- `mha`: `keras.layers.MultiHeadAttention(num_heads=1, key_dim=8, value_dim=64)` on the
  flattened map (self-attention; it adds an output projection PAM does not have).

Time: one child process per (size, jit) runs all contenders' steps interleaved, median of
`--repeats` steps after warm-up; each timed step follows an untimed step of the same model, as
in a training loop. The ratios are against `dense` and against the faster peer.
Memory: one fresh child process per (contender, size, jit), peak RSS from
`resource.getrusage(RUSAGE_SELF).ru_maxrss` after two steps, total and the rise over the
RSS just before the first step (imports, model and data already in memory). Dense and peer
cases whose N x N scores would take the process past `--memory-budget-gb` (128x128: 2 GiB per
score matrix) are skipped and reported as such.

Usage:
    python benchmarks/bench_pam.py            # quick: 32x32 and 64x64, memory at 64x64
    python benchmarks/bench_pam.py --full     # 32, 64, 96, 128; memory at every size

Needs `keras` 3 and the plugin (e.g. `PYTHONPATH=plugins/layerhub-pam`); the backend is
`KERAS_BACKEND` (TensorFlow by default).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

CHANNELS = 64
BATCH = 2
CONTENDERS = ("dense", "chunked", "plain", "mha")
PLUGIN = Path(__file__).resolve().parents[1] / "plugins/layerhub-pam"

CHILD = r"""
import json, os, resource, statistics, sys, time
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np
import keras
from keras import ops
try:
    from layerhub_pam import PAM
except ImportError:
    sys.path.append(PLUGIN)
    from layerhub_pam import PAM


class PlainAttention(keras.layers.Layer):
    # Dense attention as one would write it with keras.ops.
    def build(self, input_shape):
        c = input_shape[-1]
        self.q = keras.layers.Dense(c // 8)
        self.k = keras.layers.Dense(c // 8, use_bias=False)
        self.v = keras.layers.Dense(c)
        for d in (self.q, self.k, self.v):
            d.build(input_shape)
        self.gamma = self.add_weight(shape=(1,), initializer="ones", name="gamma")

    def call(self, x):
        s = ops.shape(x)
        flat = ops.reshape(x, (s[0], -1, s[-1]))
        q, k, v = self.q(flat), self.k(flat), self.v(flat)
        att = ops.softmax(ops.matmul(q, ops.transpose(k, (0, 2, 1))), axis=-1)
        return self.gamma * ops.reshape(ops.matmul(att, v), s) + x


def model_for(name, size):
    inputs = keras.Input((size, size, CHANNELS))
    if name == "dense":
        out = PAM(gamma_initializer="ones", attention_chunk_size=None)(inputs)
    elif name == "chunked":
        out = PAM(gamma_initializer="ones", attention_chunk_size=1024)(inputs)
    elif name == "plain":
        out = PlainAttention()(inputs)
    else:
        flat = keras.layers.Reshape((size * size, CHANNELS))(inputs)
        att = keras.layers.MultiHeadAttention(num_heads=1, key_dim=8, value_dim=CHANNELS)
        out = keras.layers.Reshape((size, size, CHANNELS))(att(flat, flat))
    model = keras.Model(inputs, out)
    model.compile(optimizer="sgd", loss="mse", jit_compile=JIT)
    return model


rng = np.random.default_rng(0)
x = rng.normal(size=(BATCH, SIZE, SIZE, CHANNELS)).astype("float32")
y = rng.normal(size=x.shape).astype("float32")
models = {name: model_for(name, SIZE) for name in NAMES}
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
for _ in range(WARMUP):
    for model in models.values():
        model.train_on_batch(x, y)
times = {name: [] for name in NAMES}
for _ in range(REPEATS):
    for name, model in models.items():
        # Untimed: the first step after another contender's pays for evicting its data (after
        # the heavier MultiHeadAttention, about 2 ms of a 14 ms step at 32x32 with jit).
        model.train_on_batch(x, y)
        start = time.perf_counter()
        float(model.train_on_batch(x, y))
        times[name].append(time.perf_counter() - start)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print("RESULT " + json.dumps({
    "ms": {n: statistics.median(t) * 1e3 for n, t in times.items()} if REPEATS else {},
    "peak_mb": peak / 1024, "before_mb": before / 1024,
}))
"""


def child(names, size, jit, repeats, warmup):
    code = (
        f"PLUGIN = {str(PLUGIN)!r}; CHANNELS = {CHANNELS}; BATCH = {BATCH}; SIZE = {size};"
        f" JIT = {jit}; NAMES = {list(names)!r}; REPEATS = {repeats}; WARMUP = {warmup}\n" + CHILD
    )
    env = {**os.environ, "KERAS_BACKEND": os.environ.get("KERAS_BACKEND", "tensorflow")}
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False
    )
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    return {"error": f"exit {proc.returncode}: {tail[:200]}"}


def dense_fits(size, budget_gb):
    # A dense training step holds about four N x N float32 matrices per image.
    n = size * size
    return 4 * BATCH * n * n * 4 / 2**30 <= budget_gb


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="all sizes, memory at every size")
    parser.add_argument("--sizes", type=int, nargs="*", help="map sizes (overrides the set)")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--memory-budget-gb", type=float, default=6.0)
    args = parser.parse_args()
    sizes = args.sizes or ([32, 64, 96, 128] if args.full else [32, 64])
    memory_sizes = sizes if (args.full or args.sizes) else [64]
    repeats = args.repeats or (10 if args.full else 5)

    from importlib.metadata import version

    print(
        f"keras {version('keras')}, backend {os.environ.get('KERAS_BACKEND', 'tensorflow')},"
        f" {platform.machine()}, {os.cpu_count()} CPUs; input (size, size, {CHANNELS}), batch"
        f" {BATCH}; median of {repeats} train_on_batch steps, contenders interleaved"
    )
    print("\nstep time (ms); ratios: chunked/dense, dense/faster peer")
    header = "| size | jit | dense | chunked | plain | mha | chunked/dense | dense/best peer |"
    print(header)
    print("|" + "|".join("-" * len(c) for c in header.split("|")[1:-1]) + "|")
    for size in sizes:
        for jit in (False, True):
            names = CONTENDERS if dense_fits(size, args.memory_budget_gb) else ("chunked",)
            result = child(names, size, jit, repeats, args.warmup)
            if "error" in result:
                print(f"| {size}x{size} | {jit!s:<5} | {result['error']} |")
                continue
            ms = result["ms"]
            cells = [f"{ms[n]:.1f}" if n in ms else "skipped" for n in CONTENDERS]
            if "dense" in ms:
                ratio = f"{ms['chunked'] / ms['dense']:.2f}"
                peer = f"{ms['dense'] / min(ms['plain'], ms['mha']):.2f}"
            else:
                ratio = peer = "-"
            print(f"| {size}x{size} | {jit!s:<5} | {' | '.join(cells)} | {ratio} | {peer} |")

    print("\npeak RSS per fresh process (MB): total / rise over the RSS before the first step")
    header = "| size | jit | dense | chunked | plain | mha | chunked/dense (rise) |"
    print(header)
    print("|" + "|".join("-" * len(c) for c in header.split("|")[1:-1]) + "|")
    for size in memory_sizes:
        for jit in (False, True) if args.full else (False,):
            row = {}
            for name in CONTENDERS:
                if name != "chunked" and not dense_fits(size, args.memory_budget_gb):
                    row[name] = None
                    continue
                row[name] = child([name], size, jit, 0, 2)
            cells = []
            for name in CONTENDERS:
                r = row[name]
                if r is None:
                    cells.append(f"skipped (> {args.memory_budget_gb:g} GB)")
                elif "error" in r:
                    cells.append(r["error"])
                else:
                    cells.append(f"{r['peak_mb']:.0f} / {r['peak_mb'] - r['before_mb']:.0f}")
            d, c = row["dense"], row["chunked"]
            ratio = "-"
            if d and c and "error" not in d and "error" not in c:
                rise_d = d["peak_mb"] - d["before_mb"]
                rise_c = c["peak_mb"] - c["before_mb"]
                ratio = f"{c['peak_mb'] / d['peak_mb']:.2f} ({rise_c / rise_d:.2f})"
            print(f"| {size}x{size} | {jit!s:<5} | {' | '.join(cells)} | {ratio} |")


if __name__ == "__main__":
    main()
