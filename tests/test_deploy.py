"""Every plugin layer deploys without layerhub: TF SavedModel, TFLite and ONNX.

One fresh interpreter (TensorFlow backend) builds a one-layer model per layer, records Keras'
predictions and writes ``model.export(format="tf_saved_model")`` and
``model.export(format="onnx")`` (tf2onnx). A second fresh interpreter, in which any import of
``layerhub*`` raises ``ImportError`` (a ``sys.meta_path`` finder, checked first), loads each
SavedModel with ``tf.saved_model.load``, converts it with ``tf.lite.TFLiteConverter`` (builtin
ops only) and runs it, and runs the ONNX file with onnxruntime; every output must match Keras'
to 1e-5. Inputs with unknown sizes are fed two different sizes. The ONNX part is skipped when
``onnx``, ``onnxruntime`` or ``tf2onnx`` is missing (``tox -e deploy`` installs them);
``LAYERHUB_DEPLOY_MATRIX=path`` writes the layer x target table the README shows.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import pytest

from layerhub.testing import run_in_fresh_interpreter

TOLERANCE = 1e-5

# name -> (import, constructor, input shapes without the batch axis; None is an unknown size)
CASES: dict[str, tuple[str, str, list[tuple[int | None, ...]]]] = {
    "Scale": ("from layerhub_scale import Scale", "Scale()", [(None, None, 3)]),
    "L2Normalization": (
        "from layerhub_l2norm import L2Normalization",
        "L2Normalization(gamma_init=5.0)",
        [(None, None, 3)],
    ),
    "PAM": (
        "from layerhub_pam import PAM",
        "PAM(reduction=2, gamma_initializer='ones')",
        [(None, None, 8)],
    ),
    "PAM(attention_chunk_size=None)": (
        "from layerhub_pam import PAM",
        "PAM(reduction=2, gamma_initializer='ones', attention_chunk_size=None)",
        [(None, None, 8)],
    ),
    "PAM, known size": (
        "from layerhub_pam import PAM",
        "PAM(reduction=2, gamma_initializer='ones')",
        [(6, 6, 8)],
    ),
    "CAM": ("from layerhub_pam import CAM", "CAM(gamma_initializer='ones')", [(None, None, 8)]),
    "FMLayer": ("from layerhub_fm import FMLayer", "FMLayer(output_dim=3, factor_order=2)", [(6,)]),
    "MyLayer": ("from layerhub_mylayer import MyLayer", "MyLayer(output_dim=3)", [(4,)]),
    "MyMultiLayer": (
        "from layerhub_mylayer import MyMultiLayer",
        "MyMultiLayer(output_dim=3)",
        [(4,), (3,)],
    ),
    "ComplexScale": (
        "from layerhub_mylayer import ComplexScale",
        "ComplexScale(alpha_real=2.0, alpha_imag=-1.0)",
        [(None, 3)],
    ),
    "LocallyConnected1D": (
        "from layerhub_locally_connected import LocallyConnected1D",
        "LocallyConnected1D(3, 2)",
        [(6, 4)],
    ),
    "LocallyConnected2D": (
        "from layerhub_locally_connected import LocallyConnected2D",
        "LocallyConnected2D(3, 2, implementation=2)",
        [(5, 5, 2)],
    ),
    "Lambda(channel_slice)": (
        "from layerhub_functions import channel_slice",
        "keras.layers.Lambda(channel_slice, arguments={'index': 1})",
        [(None, 4)],
    ),
}
TARGETS = ("tf_saved_model", "tflite", "onnx")
# Cells that fail today, with why. Not strict: a fix in the layer or the converters shows as
# XPASS, and the README's matrix should then be updated.
_PAM_SCAN = (
    "PAM's default attention_chunk_size='auto' chunks with keras.ops.scan when height * width "
    "is unknown; TensorFlow lowers the scan to TensorList ops, which the TFLite converter "
    "cannot lower with builtin ops only (tf.TensorListReserve needs a static element_shape) "
    "and tf2onnx writes as a tensor of data type 0 that onnxruntime refuses. Use "
    "attention_chunk_size=None (dense) or a known size to deploy"
)
KNOWN_LIMITS = {("PAM", "tflite"): _PAM_SCAN, ("PAM", "onnx"): _PAM_SCAN}

EXPORT = """
import json
import sys

import keras
import numpy as np

cases, out, with_onnx = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3] == "1"
rng = np.random.default_rng(0)
errors = {}
for index, (name, (imports, make, shapes)) in enumerate(cases.items()):
    exec(imports)
    keras.utils.set_random_seed(index)
    inputs = [keras.Input(tuple(s), name=f"x{i}") for i, s in enumerate(shapes)]
    layer = eval(make)
    outputs = layer(inputs if len(inputs) > 1 else inputs[0])
    model = keras.Model(inputs, outputs)
    # Perturb every weight away from its initializer (ones, zeros) so that a lost weight shows.
    model.set_weights([w + rng.normal(size=w.shape).astype(w.dtype) * 0.5
                       for w in model.get_weights()])
    # Two sizes for every unknown axis: the exported graphs must not fix them.
    for trial, sizes in enumerate(((4, 5), (3, 7))):
        xs = []
        for s in shapes:
            concrete, unknown = [], iter(sizes)
            for d in s:
                concrete.append(next(unknown) if d is None else d)
            xs.append(rng.normal(size=(2, *concrete)).astype("float32"))
        ys = model.predict(xs if len(xs) > 1 else xs[0], verbose=0)
        ys = ys if isinstance(ys, (list, tuple)) else [ys]
        np.savez(f"{out}/{index}_{trial}.npz", **{f"x{i}": x for i, x in enumerate(xs)},
                 **{f"y{i}": y for i, y in enumerate(ys)})
        if all(None not in s for s in shapes):
            break
    model.export(f"{out}/{index}_saved_model", format="tf_saved_model", verbose=False)
    if with_onnx:
        try:
            model.export(f"{out}/{index}.onnx", format="onnx", verbose=False)
        except Exception as error:
            errors[name] = f"{type(error).__name__}: {str(error).splitlines()[0][:200]}"
print("EXPORT_ERRORS " + json.dumps(errors))
"""

DEPLOY = """
import importlib.abc
import json
import sys


class NoLayerhub(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0].startswith("layerhub"):
            raise ImportError(f"{name} must not be imported when serving")
        return None


sys.meta_path.insert(0, NoLayerhub())
for blocked in ("layerhub", "layerhub_scale", "layerhub_pam", "layerhub_functions"):
    try:
        __import__(blocked)
    except ImportError:
        pass
    else:
        raise AssertionError(f"{blocked} could be imported")

import glob
import os

import numpy as np
import tensorflow as tf

names, out, with_onnx = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3] == "1"
if with_onnx:
    import onnxruntime
results = {}


def compare(got, data):
    expected = [data[k] for k in sorted(k for k in data.files if k.startswith("y"))]
    assert len(got) == len(expected), (len(got), len(expected))
    worst = 0.0
    for g, e in zip(got, expected):
        g = np.asarray(g)
        assert g.shape == e.shape, (g.shape, e.shape)
        worst = max(worst, float(np.max(np.abs(g - e))))
    return worst


def run(name, target, fn, trials):
    try:
        results[name][target] = max(compare(fn([d[k] for k in sorted(d.files) if k[0] == "x"]), d)
                                    for d in trials)
    except Exception as error:
        results[name][target] = f"{type(error).__name__}: {str(error).splitlines()[0][:300]}"


for index, name in enumerate(names):
    results[name] = {}
    trials = [np.load(p) for p in sorted(glob.glob(f"{out}/{index}_[0-9].npz"))]
    saved = f"{out}/{index}_saved_model"

    loaded = tf.saved_model.load(saved)  # kept referenced: its functions use its variables

    def saved_model(xs):
        # The models are built on a list of inputs, so the endpoint takes a list.
        served = loaded.serve(list(xs))
        served = served if isinstance(served, (list, tuple)) else [served]
        return [s.numpy() for s in served]

    run(name, "tf_saved_model", saved_model, trials)

    def tflite(xs):
        converter = tf.lite.TFLiteConverter.from_saved_model(saved)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        interpreter = tf.lite.Interpreter(model_content=converter.convert())
        runner = interpreter.get_signature_runner("serving_default")
        inputs = sorted(runner.get_input_details())
        got = runner(**{k: x for k, x in zip(inputs, xs)})
        return [got[k] for k in sorted(got, key=lambda k: int(k.rsplit("_", 1)[-1]))]

    run(name, "tflite", tflite, trials)
    if with_onnx and os.path.exists(f"{out}/{index}.onnx"):

        def onnx(xs):
            session = onnxruntime.InferenceSession(f"{out}/{index}.onnx")
            feeds = {i.name: x for i, x in zip(session.get_inputs(), xs)}
            return session.run(None, feeds)

        run(name, "onnx", onnx, trials)
print("RESULTS " + json.dumps(results))
"""


def _with_onnx() -> bool:
    return all(importlib.util.find_spec(m) is not None for m in ("onnx", "onnxruntime", "tf2onnx"))


@pytest.fixture(scope="module")
def matrix(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, object]]:
    pytest.importorskip("tensorflow")
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    if backend != "tensorflow":
        # The exports run on TensorFlow whatever the environment: once is enough.
        pytest.skip(f"deployment runs in the TensorFlow environments (py, deploy), not {backend}")
    out = tmp_path_factory.mktemp("deploy")
    onnx = "1" if _with_onnx() else "0"
    env = {"KERAS_BACKEND": "tensorflow"}
    exported = run_in_fresh_interpreter(EXPORT, json.dumps(CASES), str(out), onnx, env=env)
    (line,) = [x for x in exported.stdout.splitlines() if x.startswith("EXPORT_ERRORS ")]
    errors = json.loads(line.split(" ", 1)[1])
    served = run_in_fresh_interpreter(DEPLOY, json.dumps(list(CASES)), str(out), onnx, env=env)
    (line,) = [x for x in served.stdout.splitlines() if x.startswith("RESULTS ")]
    results: dict[str, dict[str, object]] = json.loads(line.split(" ", 1)[1])
    for name, error in errors.items():
        results[name]["onnx"] = f"export: {error}"
    report = os.environ.get("LAYERHUB_DEPLOY_MATRIX")
    if report:
        Path(report).write_text(_table(results, onnx == "1"))
    return results


def _table(results: dict[str, dict[str, object]], onnx: bool) -> str:
    def cell(value: object) -> str:
        if value is None:
            return "not run"
        if isinstance(value, float):
            return f"yes ({value:.0e})" if value <= TOLERANCE else f"NO ({value:.1e})"
        return f"NO: {value}"

    lines = ["| layer | input | " + " | ".join(TARGETS) + " |", "|---" * (len(TARGETS) + 2) + "|"]
    for name, (_, _, shapes) in CASES.items():
        shown = ", ".join(
            "(b, " + ", ".join("?" if d is None else str(d) for d in s) + ")" for s in shapes
        )
        cells = [cell(results[name].get(t)) for t in TARGETS]
        lines.append(f"| {name} | {shown} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("name", "target"),
    [
        pytest.param(
            name,
            target,
            marks=[pytest.mark.xfail(reason=KNOWN_LIMITS[name, target], strict=False)]
            if (name, target) in KNOWN_LIMITS
            else [],
        )
        for name in CASES
        for target in TARGETS
    ],
)
def test_layer_deploys(name: str, target: str, matrix: dict[str, dict[str, object]]) -> None:
    if target == "onnx" and not _with_onnx():
        pytest.skip("onnx, onnxruntime and tf2onnx are not installed (tox -e deploy has them)")
    value = matrix[name].get(target)
    assert isinstance(value, float), f"{name} -> {target}: {value}"
    assert value <= TOLERANCE, f"{name} -> {target}: max |difference| {value:.3g}"
