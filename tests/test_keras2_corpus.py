"""A corpus of real Keras 2 architectures, written by tf-keras, loaded by layerhub (issue 24).

One tf-keras interpreter (``keras2_corpus.py``, session scoped) writes every model as ``.h5`` and
as a SavedModel directory, with its inputs and the outputs tf-keras computed. Then ONE fresh
Keras 3 interpreter, with nothing but ``import layerhub; layerhub.load_model(path)`` (no
``custom_objects``), loads every file and runs it on the stored inputs: a single child keeps the
TensorFlow start-up cost to one per session. Each (model, format) is a test of its own, which
fails with the child's one-line error or the largest difference from tf-keras.

Setting ``LAYERHUB_KERAS2_CORPUS=DIR`` keeps the corpus in ``DIR`` between runs (the generator
runs only when ``DIR/index.json`` is missing); the loads are always done afresh.
"""

from __future__ import annotations

import importlib.util
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from string import Template
from typing import Any, TypeVar

import numpy as np
import pytest

from layerhub.testing import run_in_fresh_interpreter

GENERATOR = Path(__file__).with_name("keras2_corpus.py")
CORPUS_ENV = "LAYERHUB_KERAS2_CORPUS"
BOTH = ("h5", "savedmodel")
# What the generator writes, known before it runs so that every case is collected (and a model
# the generator stops writing fails test_the_corpus_holds_every_case instead of vanishing).
FORMATS: dict[str, tuple[str, ...]] = {
    "nested_sequential_bn": BOTH,
    "nested_norm_stack": BOTH,
    "nested_functional_bn": BOTH,
    "shared_dense": BOTH,
    "dict_io": BOTH,
    "time_distributed": BOTH,
    "bidirectional_lstm": BOTH,
    "bidirectional_gru": BOTH,
    "embedding_mask_lstm": BOTH,
    "embedding_mask_gru": BOTH,
    "conv1d_gru": BOTH,
    "mixed_float16": BOTH,
    "twin_submodels": BOTH,
    # tf-keras raises NotImplementedError when a subclassed model is saved as .h5.
    "subclassed": ("savedmodel",),
    "mobilenet_v2": BOTH,
    "densenet121": BOTH,
    "efficientnet_b0": BOTH,
}
CASES = [(name, fmt) for name, formats in FORMATS.items() for fmt in formats]
FLOAT32_TOLERANCE = 1e-5
# mixed_float16 computes in float16 (10-bit mantissa, a rounding step of 2**-11, about 5e-4,
# relative): each layer's output is rounded to it, and Keras 3 and tf-keras may cast at other
# points (the bias add, BatchNormalization's arithmetic), so outputs of order one may differ by a
# few float16 steps, 2e-3 or so. 1e-2 leaves room for that and still catches a misplaced weight,
# which moves these outputs by their own order of magnitude.
MIXED_TOLERANCE = 1e-2
MIXED = {"mixed_float16"}

Test = TypeVar("Test", bound=Callable[..., None])


def keras2(test: Test) -> Test:
    marked: Test = pytest.mark.slow(pytest.mark.keras2(test))
    return marked


# Each child writes report.json again after every case, so that a crash loses only the cases it
# had not reached; a case missing from the report says so with the child's last words. The same
# loop serves layerhub (Keras 3) and tf-keras, whose own reload of each file must give the stored
# outputs, or the reference itself is wrong.
LOADER = Template("""
import json, sys, time
from pathlib import Path

started = time.perf_counter()
$imports
import numpy as np

corpus, out = Path(sys.argv[1]), Path(sys.argv[2])
index = json.loads((corpus / "index.json").read_text())["models"]
report = {"import_seconds": round(time.perf_counter() - started, 2), "cases": {}}
report["module"] = $module.__file__  # which copy of layerhub (or tf-keras) was tested


def first_line(error):
    lines = str(error).strip().splitlines()
    return f"{type(error).__module__}.{type(error).__qualname__}: {lines[0] if lines else ''}"


for name, entry in index.items():
    xs = [np.load(corpus / f"{name}.x{i}.npy") for i in range(entry["inputs"])]
    keys = entry["input_keys"]
    feed = dict(zip(keys, xs)) if keys else (xs if len(xs) > 1 else xs[0])
    for fmt in entry["formats"]:
        path = corpus / (f"{name}.h5" if fmt == "h5" else f"{name}_savedmodel")
        case = report["cases"][f"{name}/{fmt}"] = {}
        begun = time.perf_counter()
        try:
            model = $load(path)
        except Exception as error:
            case.update(stage="load", error=first_line(error))
        else:
            try:
                ys = [np.asarray(y) for y in $flatten(model(feed, training=False))]
            except Exception as error:
                case.update(stage="predict", error=first_line(error))
            else:
                np.savez(out / f"{name}.{fmt}.npz", *ys)
        case["seconds"] = round(time.perf_counter() - begun, 2)
        keras.backend.clear_session()
        report["seconds"] = round(time.perf_counter() - started, 2)
        (out / "report.json").write_text(json.dumps(report, indent=1))
""")
LOAD_WITH_LAYERHUB = LOADER.substitute(
    imports="import keras\nimport layerhub",
    module="layerhub",
    load="layerhub.load_model",
    flatten="keras.tree.flatten",
)
LOAD_WITH_TF_KERAS = LOADER.substitute(
    imports="import tensorflow as tf\nimport tf_keras as keras",
    module="keras",
    load="keras.models.load_model",
    flatten="tf.nest.flatten",
)


class Loads:
    """What one child interpreter made of every file: arrays per case, or the error."""

    def __init__(self, out: Path, process: Any, seconds: float) -> None:
        self.out = out
        self.seconds = seconds
        report_file = out / "report.json"
        self.report: dict[str, Any] = (
            json.loads(report_file.read_text()) if report_file.is_file() else {"cases": {}}
        )
        lines = [line for line in (process.stderr or "").strip().splitlines() if line.strip()]
        self.last_words = lines[-1] if lines else f"exit status {process.returncode}"

    def outputs(self, name: str, fmt: str) -> list[np.ndarray]:
        case = self.report["cases"].get(f"{name}/{fmt}")
        if case is None:
            pytest.fail(f"the loader child never reached {name}/{fmt}: {self.last_words}")
        if "error" in case:
            pytest.fail(f"{case['stage']} failed: {case['error']}", pytrace=False)
        with np.load(self.out / f"{name}.{fmt}.npz") as saved:
            return [saved[f"arr_{i}"] for i in range(len(saved.files))]


def run_loads(code: str, corpus: Path, out: Path, legacy: bool) -> Loads:
    out.mkdir(parents=True, exist_ok=True)
    begun = time.perf_counter()
    process = run_in_fresh_interpreter(
        code,
        str(corpus),
        str(out),
        env={"TF_USE_LEGACY_KERAS": "1" if legacy else "0"},
        timeout=900,
        check=False,
    )
    return Loads(out, process, round(time.perf_counter() - begun, 2))


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every corpus model with its reference arrays, written by one tf-keras interpreter."""
    if importlib.util.find_spec("tf_keras") is None:
        pytest.skip("tf-keras (a test dependency) is not installed")
    kept = os.environ.get(CORPUS_ENV)
    out = Path(kept) if kept else tmp_path_factory.mktemp("keras2_corpus")
    if not (out / "index.json").is_file():  # the generator writes its index last
        out.mkdir(parents=True, exist_ok=True)
        run_in_fresh_interpreter(
            GENERATOR.read_text(), str(out), env={"TF_USE_LEGACY_KERAS": "1"}, timeout=600
        )
    return out


@pytest.fixture(scope="session")
def layerhub_loads(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Loads:
    return run_loads(LOAD_WITH_LAYERHUB, corpus, tmp_path_factory.mktemp("layerhub"), False)


@pytest.fixture(scope="session")
def tf_keras_loads(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Loads:
    return run_loads(LOAD_WITH_TF_KERAS, corpus, tmp_path_factory.mktemp("tf_keras"), True)


def expected_outputs(corpus: Path, name: str) -> list[np.ndarray]:
    count = json.loads((corpus / "index.json").read_text())["models"][name]["outputs"]
    return [np.load(corpus / f"{name}.y{i}.npy") for i in range(count)]


def assert_close(name: str, got: list[np.ndarray], expected: list[np.ndarray]) -> None:
    """Every output within the tolerance of ``name``, relative to the output's scale if larger
    than one (application logits reach tens), else absolute."""
    tolerance = MIXED_TOLERANCE if name in MIXED else FLOAT32_TOLERANCE
    assert len(got) == len(expected), f"{len(got)} outputs, tf-keras gave {len(expected)}"
    for i, (y, want) in enumerate(zip(got, expected, strict=True)):
        assert y.shape == want.shape, f"output {i}: shape {y.shape}, tf-keras gave {want.shape}"
        difference = np.abs(y.astype("float64") - want.astype("float64"))
        scale = max(1.0, float(np.max(np.abs(want))))
        worst = float(np.max(difference))
        assert worst <= tolerance * scale, (
            f"output {i}: max |diff| {worst:.3g} from tf-keras (outputs up to {scale:.3g}, "
            f"tolerance {tolerance:g} x that)"
        )


def case_id(case: tuple[str, str]) -> str:
    return f"{case[0]}-{case[1]}"


@keras2
def test_the_corpus_holds_every_case(corpus: Path) -> None:
    index = json.loads((corpus / "index.json").read_text())
    written = {name: tuple(entry["formats"]) for name, entry in index["models"].items()}
    assert written == FORMATS
    reasons = {name: entry["not_written"] for name, entry in index["models"].items()}
    assert {name: sorted(r) for name, r in reasons.items() if r} == {"subclassed": ["h5"]}
    assert reasons["subclassed"]["h5"].startswith("NotImplementedError: Saving the model to HDF5")
    # Reference outputs of a misplaced weight must differ: no output is constant or tiny.
    for name in FORMATS:
        for y in expected_outputs(corpus, name):
            assert np.all(np.isfinite(y))
            assert float(np.std(y)) > 1e-3, name


@keras2
def test_keras2_auto_named_the_twin_submodels_as_users_have_them(corpus: Path) -> None:
    weights = json.loads((corpus / "twin_submodels.weights.json").read_text())["h5"]
    layers = {layer: [n for n, _ in names] for layer, names in weights.items() if names}
    assert layers["model"] == [
        "dense/kernel:0",
        "dense/bias:0",
        "dense_1/kernel:0",
        "dense_1/bias:0",
    ]
    assert layers["model_1"] == [
        "dense_2/kernel:0",
        "dense_2/bias:0",
        "dense_3/kernel:0",
        "dense_3/bias:0",
    ]


@keras2
@pytest.mark.parametrize(("name", "fmt"), CASES, ids=[case_id(c) for c in CASES])
def test_tf_keras_reload_gives_the_stored_outputs(
    corpus: Path, tf_keras_loads: Loads, name: str, fmt: str
) -> None:
    assert_close(name, tf_keras_loads.outputs(name, fmt), expected_outputs(corpus, name))


# A subclassed model's layers exist only in its Python code: the SavedModel's config names the
# class and its arguments, and no installed plugin provides the class.
REFUSED = {("subclassed", "savedmodel"): "holds a subclassed Keras 2 model (Subclassed)"}


@keras2
@pytest.mark.parametrize(
    ("name", "fmt"),
    [c for c in CASES if c not in REFUSED],
    ids=[case_id(c) for c in CASES if c not in REFUSED],
)
def test_layerhub_loads_the_keras2_model_as_tf_keras_computes_it(
    corpus: Path, layerhub_loads: Loads, name: str, fmt: str
) -> None:
    assert_close(name, layerhub_loads.outputs(name, fmt), expected_outputs(corpus, name))


@keras2
@pytest.mark.parametrize(
    ("name", "fmt"), sorted(REFUSED), ids=[case_id(c) for c in sorted(REFUSED)]
)
def test_layerhub_refuses_what_it_cannot_rebuild_in_one_line(
    layerhub_loads: Loads, name: str, fmt: str
) -> None:
    case = layerhub_loads.report["cases"][f"{name}/{fmt}"]
    assert "error" in case
    assert case["stage"] == "load"
    assert case["error"].startswith("layerhub._private.errors.ModelFileError: "), case["error"]
    assert REFUSED[(name, fmt)] in case["error"]
    assert "\n" not in case["error"]
