"""Benchmark 6: loading and converting big Keras 2 models, against tf-keras on the same files.

tf-keras writes each model once, as ``.h5`` and as a SavedModel: Dense layers of 2048 x 2048
float32 (16 MiB each) in a nested model with BatchNormalization between them (the case whose
weights 0.1 placed by position), adding up to about ``size`` bytes of weights. Each contender
runs in a fresh interpreter, as a user's next session would, and times only its own work
(TensorFlow, Keras and tf-keras are imported before the clock starts):

- load: ``tf_keras.models.load_model(path, compile=False)`` against
  ``layerhub.load_model(path, compile=False)``. Goal: <= 1.10x.
- convert: tf-keras' load plus ``keras.saving.save_model`` of the same model and an ``fsync``
  of its file (what converting by hand costs at least, each half timed in its own process),
  against ``layerhub.convert(path, target)``'s load and atomic save. Goal: <= 1.10x.
- what the conversion adds to prove itself: the stored-tensor check (every tensor of the
  source against the reloaded variable of the same identity), timed on its own after a load
  of the converted file, against one read of every tensor of the source by h5py or
  TensorFlow's checkpoint reader (goal: at most one read and the comparison, 2x); and the
  whole proof's wall time (the reload with that check, beside tf-keras running the original).
- memory: the peak RSS each process reached above what it held before its work (imports
  done), as a multiple of the weights' size. Goals: layerhub's load at most one copy of the
  weights beyond tf-keras' load; the conversion at most one copy beyond the larger of tf-keras'
  load and Keras' load and save of the converted model.

Each figure is the median over ``--rounds`` rounds (3, and 1 from 500 MB up, where a round
takes minutes); the contenders of a round run back to back, the two loads in alternating order.
Sizes: 100 MB and 1 GB by default (``--sizes``; 1 GB needs about 4 GB of disk and 8 GB of
memory).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _timing import child_result, verdict

MB = 10**6
WIDTH = 2048

_PRELUDE = r"""
import json, os, resource, sys, time
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np
import tensorflow as tf
import tf_keras
import keras
import layerhub
def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6
def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3
def report(**fields):
    print("RESULT " + json.dumps(fields), flush=True)
path = sys.argv[1]
"""

_WRITE = r"""
layers = int(sys.argv[2])
inputs = tf_keras.Input((WIDTH,))
inner = tf_keras.Sequential(name="inner")
for i in range(layers):
    inner.add(tf_keras.layers.Dense(WIDTH, name=f"dense_{i}"))
    inner.add(tf_keras.layers.BatchNormalization(name=f"norm_{i}"))
model = tf_keras.Model(inputs, tf_keras.layers.Dense(8, name="head")(inner(inputs)))
# Moving statistics that differ from their initial values, so a misplaced one shows.
for layer in inner.layers:
    if isinstance(layer, tf_keras.layers.BatchNormalization):
        layer.moving_variance.assign(np.random.default_rng(0).uniform(0.5, 2, WIDTH))
model.save(path + ".h5")
model.save(path + ".savedmodel", save_format="tf")
report(weights=int(sum(np.prod(w.shape) for w in model.weights)) * 4)
"""

_LOAD = r"""
which = sys.argv[2]
before = rss_mb()
start = time.perf_counter()
if which == "tf-keras":
    model = tf_keras.models.load_model(path, compile=False)
else:
    model = layerhub.load_model(path, compile=False)
seconds = time.perf_counter() - start
report(seconds=seconds, rise_mb=peak_mb() - before)
"""

_CONVERT = r"""
target = sys.argv[2]
before = rss_mb()
from layerhub._private.keras2 import convert as module
phases = {}
def timed(name, function):
    def run(*args, **kwargs):
        start = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            phases[name] = phases.get(name, 0.0) + time.perf_counter() - start
    return run
module.load_model = timed("load", module.load_model)
module.save_model = timed("save", module.save_model)
start = time.perf_counter()
done = layerhub.convert(path, target, compile=False)
total = time.perf_counter() - start
assert done.ok, done.lines()
phases["proof"] = total - phases["load"] - phases["save"]
report(seconds=total, phases=phases, rise_mb=peak_mb() - before)
"""

# Keras' own save of the same model, made durable: the other half of converting by hand.
_SAVE = r"""
before = rss_mb()
model = keras.saving.load_model(path, compile=False)
target = sys.argv[2]
start = time.perf_counter()
keras.saving.save_model(model, target)
with open(target, "rb") as f:
    os.fsync(f.fileno())
report(seconds=time.perf_counter() - start, rise_mb=peak_mb() - before)
"""

# What the conversion's reload child does beyond loading the new file: every stored tensor of
# the source compared with the variable of the same identity.
_STORED = r"""
from layerhub._private.keras2.verify import stored_checks
from layerhub._private.loading import open_model
model = layerhub.load_model(sys.argv[2], compile=False)
start = time.perf_counter()
stored_checks(open_model(path), model)
report(seconds=time.perf_counter() - start)
"""

_READ = r"""
start = time.perf_counter()
if path.endswith(".h5"):
    import h5py
    def read(_, item):
        if isinstance(item, h5py.Dataset):
            item[()]
    with h5py.File(path, "r") as h5:
        h5.visititems(read)
else:
    reader = tf.train.load_checkpoint(path + "/variables/variables")
    for key in reader.get_variable_to_shape_map():
        reader.get_tensor(key)
report(seconds=time.perf_counter() - start)
"""


def child(code: str, *args: str) -> dict:
    backend = {"KERAS_BACKEND": os.environ.get("KERAS_BACKEND", "tensorflow")}
    result = child_result((_PRELUDE + code).replace("WIDTH", str(WIDTH)), args, backend)
    if "error" in result:
        raise RuntimeError(f"child {result['error']}")
    return result


def median(results: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[100, 1000], help="MB of weights")
    parser.add_argument(
        "--rounds", type=int, help="rounds per size (default: 3, and 1 from 500 MB up)"
    )
    args = parser.parse_args()
    print(
        f"a fresh interpreter per run, median of the rounds; Dense {WIDTH}x{WIDTH}"
        " and BatchNormalization in a nested model, written by tf-keras"
    )
    header = (
        "| weights | format | tf-keras load | layerhub load | ratio | tf-keras load + Keras save +"
        " fsync | layerhub load + save | ratio | stored-tensor check / one read of the source"
        " | proof (reload and check, beside tf-keras' reference) | peak rise, x weights: load"
        " tf-keras / layerhub; Keras save / convert |"
    )
    print(header)
    print("|" + "|".join("---" for _ in header.split("|")[1:-1]) + "|")
    verdicts = []
    for size in args.sizes:
        layers = max(1, round(size * MB / (WIDTH * WIDTH * 4)))
        with tempfile.TemporaryDirectory(prefix="lh-bench-", dir=os.environ.get("TMPDIR")) as d:
            base = str(Path(d) / "model")
            weights = child(_WRITE, base, str(layers))["weights"]
            for suffix in (".h5", ".savedmodel"):
                path = base + suffix
                target = str(Path(d) / "converted.keras")
                loads: dict[str, list[dict]] = {"tf-keras": [], "layerhub": []}
                converts, saves, reads, checks = [], [], [], []
                order = ["tf-keras", "layerhub"]
                for _ in range(args.rounds or (3 if size < 500 else 1)):
                    for which in order:
                        loads[which].append(child(_LOAD, path, which))
                    converts.append(child(_CONVERT, path, target))
                    saves.append(child(_SAVE, target, target + ".again.keras"))
                    checks.append(child(_STORED, path, target))
                    reads.append(child(_READ, path))
                    for leftover in (target, target + ".again.keras"):
                        os.unlink(leftover)
                    order.reverse()
                load = {w: median(r, "seconds") for w, r in loads.items()}
                by_hand = load["tf-keras"] + median(saves, "seconds")
                phases = {
                    p: statistics.median(r["phases"][p] for r in converts)
                    for p in ("load", "save", "proof")
                }
                rise = {w: median(r, "rise_mb") * MB / weights for w, r in loads.items()}
                rise["save"] = median(saves, "rise_mb") * MB / weights
                rise["convert"] = median(converts, "rise_mb") * MB / weights
                load_ratio = load["layerhub"] / load["tf-keras"]
                ours = phases["load"] + phases["save"]
                convert_ratio = ours / by_hand
                check, read = median(checks, "seconds"), median(reads, "seconds")
                print(
                    f"| {weights / MB:.0f} MB | {suffix[1:]} | {load['tf-keras']:.2f} s"
                    f" | {load['layerhub']:.2f} s | {load_ratio:.2f} | {by_hand:.2f} s"
                    f" | {ours:.2f} s | {convert_ratio:.2f} | {check:.2f} s / {read:.2f} s"
                    f" | {phases['proof']:.2f} s"
                    f" | {rise['tf-keras']:.2f} / {rise['layerhub']:.2f};"
                    f" {rise['save']:.2f} / {rise['convert']:.2f} |",
                    flush=True,
                )
                extra = rise["layerhub"] - rise["tf-keras"]
                # Keras' own save holds the model it loaded and what it writes; the convert
                # process holds the same plus what the load needed.
                extra_convert = rise["convert"] - max(rise["save"], rise["tf-keras"])
                verdicts.append(
                    f"{weights / MB:.0f} MB {suffix[1:]}: load {verdict(load_ratio, 1.10)};"
                    f" convert {verdict(convert_ratio, 1.10)}; stored-tensor check"
                    f" {check / read:.2f} reads ({verdict(check / read, 2.0)}, the read and"
                    f" the comparison); memory beyond tf-keras' load {extra:+.2f} copies of the"
                    f" weights ({verdict(extra, 1.0)}); convert beyond Keras' load and save"
                    f" {extra_convert:+.2f} copies ({verdict(extra_convert, 1.0)})"
                )
    print("\n".join(["", *verdicts]))


if __name__ == "__main__":
    main()
