"""PAM training step: chunked attention vs dense vs two peers, per backend, time and memory.

Contenders, each a one-layer model on a `(size, size, 64)` map, batch 2, trained with
`train_on_batch` (SGD, MSE):

- `chunked`: `PAM(attention_chunk_size="auto")`, which chunks at 96x96 and above: exact, a
  block of query positions at a time with a recomputing custom gradient (the chunk size it
  picks is printed);
- `dense`: `PAM(attention_chunk_size=None)`, the N x N attention in one piece;
- `plain`: the same attention written plainly with `keras.ops` (Dense projections, transpose,
  matmul, softmax, matmul, gamma residual);
- `mha`: `keras.layers.MultiHeadAttention(num_heads=1, key_dim=8, value_dim=64)` on the
  flattened map (self-attention; it adds an output projection PAM does not have).

The peers are `plain` and `mha`; the headline ratio is chunked / the faster of them.

Each backend runs in its own child processes (`KERAS_BACKEND` set; a backend whose package is
not installed in this interpreter is skipped, saying so). TensorFlow compiles with
`jit_compile=True` (what Keras' "auto" picks there) and, with `--full`, also without; JAX
always jits; torch runs eagerly. Time: one child per (backend, size, jit) runs all
contenders' steps interleaved, median of `--repeats` steps after warm-up, so the ratios are
measured side by side. Memory: one fresh child per (backend, contender, size), peak RSS from
`resource.getrusage(RUSAGE_SELF).ru_maxrss` after two steps, total and the rise over the RSS
just before the first step (imports, model and data already in memory); the rise is what
the attention adds. Contenders that hold N x N scores are skipped (and reported) when about
five such matrices per step (measured at 96x96: dense 2.1, plain 3.2, MultiHeadAttention 4.1)
would not fit `--memory-budget-gb`, by default 80% of the memory available now (128x128:
2 GiB per matrix for the batch, about 10 GiB).

Usage:
    python benchmarks/bench_pam.py         # quick (~4 min on 2 cores): TensorFlow at 96 and
                                           # 128 (no mha at 128), JAX and torch at 96;
                                           # memory at 96 (TF)
    python benchmarks/bench_pam.py --full  # every backend at 96 and 128, TF with and
                                           # without jit, memory of every contender
    python benchmarks/bench_pam.py --backends tensorflow --sizes 96 64

Needs `keras` 3 and the plugin (e.g. `PYTHONPATH=plugins/layerhub-pam`).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _timing import child_result

CHANNELS = 64
BATCH = 2
CONTENDERS = ("chunked", "dense", "plain", "mha")
PEERS = ("plain", "mha")
PLUGIN = Path(__file__).resolve().parents[1] / "plugins/layerhub-pam"
BACKENDS = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}  # backend: package

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
        layer = PAM(gamma_initializer="ones", attention_chunk_size="auto")
        out = layer(inputs)
        AUTO.append(layer._chunk_for(size * size))
    elif name == "plain":
        out = PlainAttention()(inputs)
    else:
        flat = keras.layers.Reshape((size * size, CHANNELS))(inputs)
        att = keras.layers.MultiHeadAttention(num_heads=1, key_dim=8, value_dim=CHANNELS)
        if keras.backend.backend() == "jax":
            # Keras 3.15's fused JAX path (ops.dot_product_attention) fails on value_dim !=
            # key_dim; asking for the scores takes the einsum path (the scores go unused).
            out, _ = att(flat, flat, return_attention_scores=True)
        else:
            out = att(flat, flat)
        out = keras.layers.Reshape((size, size, CHANNELS))(out)
    model = keras.Model(inputs, out)
    model.compile(optimizer="sgd", loss="mse", jit_compile=JIT)
    return model


AUTO = []
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
        # No untimed step in between: evicting the previous contender's data costs a few ms,
        # nothing beside a step of over a second at 96x96.
        start = time.perf_counter()
        float(model.train_on_batch(x, y))
        times[name].append(time.perf_counter() - start)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print("RESULT " + json.dumps({
    "ms": {n: statistics.median(t) * 1e3 for n, t in times.items()} if REPEATS else {},
    "peak_mb": peak / 1024, "before_mb": before / 1024, "auto": AUTO[0] if AUTO else None,
}))
"""


def child(backend, names, size, jit, repeats, warmup):
    code = (
        f"PLUGIN = {str(PLUGIN)!r}; CHANNELS = {CHANNELS}; BATCH = {BATCH}; SIZE = {size};"
        f" JIT = {jit}; NAMES = {list(names)!r}; REPEATS = {repeats}; WARMUP = {warmup}\n" + CHILD
    )
    return child_result(code, [], {"KERAS_BACKEND": backend})


def available_gb():
    """Memory available now (MemAvailable), or None where /proc/meminfo is missing."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return None


def dense_fits(size, budget_gb):
    # The heaviest dense contender (MultiHeadAttention) peaks at about four N x N float32
    # matrices per image in a training step (measured at 96x96); five leaves a margin.
    n = size * size
    return 5 * BATCH * n * n * 4 / 2**30 <= budget_gb


def fmt(x):
    return f"{x:.2f}" if x is not None else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="every backend and size, more steps")
    parser.add_argument("--backends", nargs="*", choices=sorted(BACKENDS), help="backends")
    parser.add_argument("--sizes", type=int, nargs="*", help="map sizes (overrides the set)")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--warmup", type=int, default=None)
    parser.add_argument("--memory-budget-gb", type=float, default=None)
    args = parser.parse_args()
    repeats = args.repeats or (5 if args.full else 2)
    warmup = args.warmup if args.warmup is not None else (2 if args.full else 1)
    free = available_gb()
    budget = args.memory_budget_gb or (0.8 * free if free else 6.0)

    # (backend, size, jit) rounds. Quick: 128x128 only on TensorFlow (a torch step there
    # takes about 20 s per contender); jit as each backend trains by default.
    backends = args.backends or list(BACKENDS)
    rounds = []
    for backend in backends:
        if args.sizes:
            sizes = args.sizes
        elif args.full or backend == "tensorflow":
            sizes = [96, 128]
        else:
            sizes = [96]
        jits = {"tensorflow": (True, False) if args.full else (True,), "jax": (True,)}.get(
            backend, (False,)
        )
        rounds += [(backend, size, jit) for size in sizes for jit in jits]

    from importlib.metadata import version

    print(
        f"keras {version('keras')}, {platform.machine()}, {os.cpu_count()} CPUs; input (size,"
        f" size, {CHANNELS}), batch {BATCH}; median of {repeats} train_on_batch steps after"
        f" {warmup} warm-up, contenders interleaved; memory budget {budget:.1f} GB"
    )
    installed = {b: importlib.util.find_spec(p) is not None for b, p in BACKENDS.items()}
    for backend in backends:
        if not installed[backend]:
            print(f"{backend}: skipped, `{BACKENDS[backend]}` is not installed here")

    print("\nstep time (ms); chunked = PAM(attention_chunk_size='auto'), auto = its chunk size")
    header = (
        "| backend | size | jit | chunked | dense | plain | mha | auto | chunked/dense"
        " | chunked/best peer |"
    )
    print(header)
    print("|" + "|".join("-" * len(c) for c in header.split("|")[1:-1]) + "|")
    for backend, size, jit in rounds:
        if not installed[backend]:
            continue
        names = CONTENDERS if dense_fits(size, budget) else ("chunked",)
        if not args.full and size > 96:
            # Quick: MultiHeadAttention, the slower peer at 96x96 on every backend (2.2x plain
            # with TensorFlow's jit), would take over a minute of the budget at 128x128.
            names = tuple(n for n in names if n != "mha")
        result = child(backend, names, size, jit, repeats, warmup)
        lead = f"| {backend} | {size}x{size} | {jit!s:<5} |"
        if "error" in result:
            print(f"{lead} {result['error']} |", flush=True)
            continue
        ms = result["ms"]
        cells = [
            f"{ms[n]:.0f}"
            if n in ms
            else ("--full only" if dense_fits(size, budget) else f"skipped (> {budget:.0f} GB)")
            for n in CONTENDERS
        ]
        dense = ms["chunked"] / ms["dense"] if "dense" in ms else None
        peers = [ms[n] for n in PEERS if n in ms]
        best = ms["chunked"] / min(peers) if peers else None
        print(
            f"{lead} {' | '.join(cells)} | {result['auto']} | {fmt(dense)} | {fmt(best)} |",
            flush=True,
        )

    print("\npeak RSS per fresh process (MB): total / rise over the RSS before the first step")
    header = "| backend | size | jit | chunked | dense | plain | mha | chunked/dense total (rise) |"
    print(header)
    print("|" + "|".join("-" * len(c) for c in header.split("|")[1:-1]) + "|")
    memory_rounds = (
        [r for r in rounds if installed[r[0]]]
        if args.full
        else [
            (b, s, False)
            for b in [b for b in backends if installed[b]][:1]
            for s in (args.sizes or [96])
        ]
    )
    for backend, size, jit in memory_rounds:
        if backend == "jax":
            jit = True  # a JAX step without jit runs op by op: not how it trains
        row = {}
        for name in CONTENDERS if args.full else ("chunked", "dense"):
            if name != "chunked" and not dense_fits(size, budget):
                row[name] = {"error": f"skipped (> {budget:.0f} GB)"}
                continue
            row[name] = child(backend, [name], size, jit, 0, 2)
        cells = []
        for name in CONTENDERS:
            r = row.get(name)
            if r is None:
                cells.append("-")
            elif "error" in r:
                cells.append(r["error"])
            else:
                cells.append(f"{r['peak_mb']:.0f} / {r['peak_mb'] - r['before_mb']:.0f}")
        d, c = row.get("dense"), row.get("chunked")
        ratio = "-"
        if d and c and "error" not in d and "error" not in c:
            rise_d = d["peak_mb"] - d["before_mb"]
            rise_c = c["peak_mb"] - c["before_mb"]
            ratio = f"{c['peak_mb'] / d['peak_mb']:.2f} ({rise_c / rise_d:.2f})"
        print(f"| {backend} | {size}x{size} | {jit!s:<5} | {' | '.join(cells)} | {ratio} |")


if __name__ == "__main__":
    main()
