"""Check a Keras 3 model against the Keras 2 file it came from, never against itself.

Two witnesses that layerhub did not produce: the tensors the file stores, read straight from its
``.h5`` datasets or checkpoint, compared with the model's variables by identity (layer path and
attribute); and, where tf-keras is installed, the original file run by tf-keras in a child
interpreter on the same deterministic inputs as the Keras 3 model.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Final, NamedTuple

from layerhub._private.errors import ModelFileError
from layerhub._private.formats.model_file import OpenedModel
from layerhub._private.guard import isolated
from layerhub._private.guard.untrusted import shown, shown_path
from layerhub._private.keras2 import placement

# float32 models: what two correct implementations of the same float32 arithmetic differ by.
TOLERANCE: Final = 1e-5
# Models computing in float16 or bfloat16 (mixed precision): one half-precision step is ~1e-3
# relative, and a few layers accumulate it.
MIXED_TOLERANCE: Final = 1e-2
_BATCH: Final = 2
_FREE_SIZE: Final = 4
_REFERENCE_TIMEOUT: Final = 600

# Run by tf-keras in an isolated child: the original file, the inputs the Keras 3 model got.
_TF_KERAS: Final = """
import json, sys
import numpy as np
import tensorflow as tf
import tf_keras
source, given, spec, out = sys.argv[1:5]
spec = json.loads(spec)
with np.load(given) as data:
    arrays = [data[key] for key in spec["keys"]]
if spec["kind"] == "dict":
    inputs = dict(zip(spec["keys"], arrays))
elif spec["kind"] == "list":
    inputs = arrays
else:
    inputs = arrays[0]
model = tf_keras.models.load_model(source, compile=False)
outputs = tf.nest.flatten(model(inputs, training=False))
np.savez(out, **{f"y{i}": np.asarray(y) for i, y in enumerate(outputs)})
"""


class LayerCheck(NamedTuple):
    """The stored weights of one layer against the model's variables."""

    layer: str
    weights: int
    max_difference: float


class Verification(NamedTuple):
    """What ``verify`` compared, and how far apart it found them.

    Attributes:
        source: the Keras 2 file.
        target: the Keras 3 file checked, or ``None`` when the source's own load was.
        layers: each layer with stored weights, and the largest difference from the model.
        outputs: the largest difference per model output from tf-keras running the original;
            empty when tf-keras did not run it (``reference`` says why).
        reference: what the outputs were compared with, in words.
        tolerance: ``|difference| <= tolerance * (1 + |reference|)`` per value.
    """

    source: Path
    target: Path | None
    layers: tuple[LayerCheck, ...]
    outputs: tuple[float, ...]
    reference: str
    tolerance: float

    @property
    def weights_equal(self) -> bool:
        return all(check.max_difference == 0.0 for check in self.layers)

    @property
    def ok(self) -> bool:
        return self.weights_equal and all(d <= self.tolerance for d in self.outputs)

    def lines(self) -> list[str]:
        checked = shown_path(self.target) if self.target else "its layerhub load"
        lines = [f"verified {shown_path(self.source)} against {checked}"]
        lines.append(f"  {'layer':<40} {'weights':>7}  max |stored - loaded|")
        for check in self.layers:
            mark = "" if check.max_difference == 0.0 else "  DIFFERENT"
            lines.append(
                f"  {shown(check.layer, 40):<40} {check.weights:>7}  {check.max_difference:.3g}"
                + mark
            )
        if self.outputs:
            worst = max(self.outputs)
            verdict = "ok" if worst <= self.tolerance else "DIFFERENT"
            lines.append(
                f"  outputs vs {self.reference}: max relative |difference| = {worst:.3g} "
                f"(tolerance {self.tolerance:g}): {verdict}"
            )
        else:
            lines.append(f"  outputs: {self.reference}")
        lines.append(f"  {'ok' if self.ok else 'FAILED'}")
        return lines

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": os.fspath(self.source),
            "target": os.fspath(self.target) if self.target else None,
            "ok": self.ok,
            "weights_equal": self.weights_equal,
            "layers": [c._asdict() for c in self.layers],
            "outputs": list(self.outputs),
            "reference": self.reference,
            "tolerance": self.tolerance,
        }


def verify(
    source: str | os.PathLike[str],
    target: str | os.PathLike[str] | None = None,
    *,
    reference: bool = True,
    model: Any = None,
) -> Verification:
    """Compare a Keras 2 file with its Keras 3 model: stored tensors, then tf-keras' outputs.

    Args:
        source: the Keras 2 ``.h5`` file or SavedModel directory.
        target: a converted ``.keras`` file to check instead of the source's own load.
        reference: run the original under tf-keras when it is installed.
        model: the Keras 3 model to check, already loaded (``target`` then only names it).

    Returns:
        The per-layer and per-output differences; ``ok`` says whether they are within bounds.

    Raises:
        ModelFileError: the source is not a Keras 2 file, or a stored weight has no variable
            of the same identity in the model.
    """
    from layerhub._private.loading import load_model, open_model

    opened = open_model(source)
    if not opened.keras2:
        raise ModelFileError(
            f"{shown_path(opened.path)} is a {opened.description}, not a Keras 2 file; verify "
            "compares a Keras 2 file with the Keras 3 model layerhub makes of it"
        )
    if model is None:
        model = load_model(target if target is not None else source, compile=False)
    layers = stored_checks(opened, model)
    outputs: tuple[float, ...] = ()
    said = "not compared: tf-keras is not installed (pip install tf-keras)"
    if not reference:
        said = "not compared (reference=False)"
    elif has_tf_keras():
        spec = deterministic_inputs(model)
        outputs, said = compare_outputs(predict(model, spec), *tf_keras_outputs(opened.path, spec))
    return Verification(
        source=opened.path,
        target=Path(target) if target is not None else None,
        layers=layers,
        outputs=outputs,
        reference=said,
        tolerance=tolerance_of(model),
    )


def stored_checks(opened: OpenedModel, model: Any) -> tuple[LayerCheck, ...]:
    """Every tensor the Keras 2 file stores against ``model``'s variable of the same identity."""
    with opened.source(None, None) as original:
        stored = original.weights()
    return _layer_checks(placement.match(model, stored, shown_path(opened.path)))


def tolerance_of(model: Any) -> float:
    return MIXED_TOLERANCE if _mixed(model) else TOLERANCE


def _layer_checks(pairs: list[placement.Placed]) -> tuple[LayerCheck, ...]:
    import numpy as np

    worst: dict[str, tuple[int, float]] = {}
    for pair in pairs:
        loaded = _numpy(pair.variable)
        stored = np.asarray(pair.stored.value)
        if _same_bits(loaded, stored):
            difference = 0.0
        else:
            wide, given = loaded.astype("float64"), stored.astype("float64")
            difference = float(np.max(np.abs(wide - given), initial=0.0))
            if np.isnan(difference) or not np.array_equal(np.isnan(wide), np.isnan(given)):
                difference = float("inf")
        layer = "/".join(pair.stored.layer)
        count, so_far = worst.get(layer, (0, 0.0))
        worst[layer] = (count + 1, max(so_far, difference))
    return tuple(LayerCheck(name, n, d) for name, (n, d) in worst.items())


def _numpy(variable: Any) -> Any:
    import keras
    import numpy as np

    if keras.backend.backend() == "tensorflow":
        # One copy of the variable; keras.ops.convert_to_numpy makes two there.
        return np.asarray(variable)
    return np.asarray(keras.ops.convert_to_numpy(variable.value))


# Elements compared at a time: two blocks and their comparison stay in the CPU's cache, which
# makes the check of a 16 MiB weight about 4x faster than one comparison of the whole arrays.
_BLOCK: Final = 1 << 16


def _same_bits(a: Any, b: Any) -> bool:
    """Whether two arrays hold the same bytes (the rule for a faithful load; NaN included)."""
    import numpy as np

    if a.dtype != b.dtype or a.shape != b.shape or a.dtype.itemsize not in (1, 2, 4, 8):
        return False
    unsigned = f"u{a.dtype.itemsize}"
    a = np.ascontiguousarray(a).reshape(-1).view(unsigned)
    b = np.ascontiguousarray(b).reshape(-1).view(unsigned)
    return all(
        np.array_equal(a[i : i + _BLOCK], b[i : i + _BLOCK]) for i in range(0, a.size, _BLOCK)
    )


def _mixed(model: Any) -> bool:
    return any(
        str(getattr(layer, "compute_dtype", "float32")) in ("float16", "bfloat16")
        for layer in model._flatten_layers()
    )


def has_tf_keras() -> bool:
    import importlib.util

    return importlib.util.find_spec("tf_keras") is not None


class InputSpec(NamedTuple):
    """How a model takes its inputs: one array, a list, or a dict by name."""

    kind: str
    keys: list[str]
    arrays: list[Any]

    def structured(self) -> Any:
        if self.kind == "dict":
            return dict(zip(self.keys, self.arrays, strict=True))
        return self.arrays if self.kind == "list" else self.arrays[0]


def deterministic_inputs(model: Any, seed: int = 0) -> InputSpec:
    """Seeded inputs of the model's shapes and dtypes, in the structure the model takes."""
    import numpy as np

    struct = getattr(model, "_inputs_struct", None)
    if isinstance(struct, dict):
        keys = sorted(struct)
        tensors, kind = [struct[k] for k in keys], "dict"
    else:
        tensors = list(model.inputs)
        keys = [f"x{i}" for i in range(len(tensors))]
        # A functional model built with a list of one input wants that list back.
        kind = "list" if len(tensors) > 1 or isinstance(struct, (list, tuple)) else "single"
    rng = np.random.default_rng(seed)
    arrays = []
    for tensor in tensors:
        shape = [_BATCH if i == 0 else (d or _FREE_SIZE) for i, d in enumerate(tensor.shape)]
        dtype = np.dtype(str(tensor.dtype))
        if np.issubdtype(dtype, np.integer):
            arrays.append(rng.integers(0, 4, size=shape).astype(dtype))
        elif dtype == np.bool_:
            arrays.append(rng.integers(0, 2, size=shape).astype(dtype))
        else:
            arrays.append(rng.normal(size=shape).astype(dtype))
    return InputSpec(kind, keys, arrays)


def predict(model: Any, spec: InputSpec) -> list[Any]:
    """The model's outputs on these inputs, flattened as ``keras.tree`` orders them."""
    import keras
    import numpy as np

    outputs = model(spec.structured(), training=False)
    return [np.asarray(keras.ops.convert_to_numpy(y)) for y in keras.tree.flatten(outputs)]


class ChildRun(NamedTuple):
    """What an isolated child made of a model file on given inputs."""

    outputs: list[Any] | None
    last_words: str
    report: str = ""


def run_on_inputs(
    code: str,
    model_file: Path,
    spec: InputSpec,
    extra: list[str],
    environment: dict[str, str],
    timeout: float | None = None,
) -> ChildRun:
    """Run ``code`` in an isolated child, from a scratch directory, with ``sys.argv[1:]`` the
    model file, an ``.npz`` of the inputs, their structure, the ``.npz`` to write the outputs
    to (``y0``, ``y1``, ...) and ``extra``; the outputs, or ``None`` and the child's last line.

    Isolated and run from the scratch directory: nothing in the user's working directory is
    imported (``isolated.python_command`` keeps PYTHONPATH's absolute entries, which ``-I``
    alone would drop). A timeout is raised as ``subprocess.TimeoutExpired``.
    """
    import numpy as np

    with tempfile.TemporaryDirectory(prefix="lh-") as scratch:
        given, got = Path(scratch) / "x.npz", Path(scratch) / "y.npz"
        np.savez(given, **dict(zip(spec.keys, spec.arrays, strict=True)))
        arguments = [os.path.abspath(model_file), str(given)]
        arguments += [json.dumps({"kind": spec.kind, "keys": spec.keys}), str(got), *extra]
        child = subprocess.run(
            isolated.python_command(code, arguments, environment),
            capture_output=True,
            text=True,
            check=False,
            cwd=scratch,
            env=environment,
            timeout=timeout,
        )
        if child.returncode != 0:
            return ChildRun(None, (child.stderr.strip().splitlines() or ["(no output)"])[-1])
        with np.load(got) as data:
            outputs = [data[f"y{i}"] for i in range(sum(f.startswith("y") for f in data.files))]
            return ChildRun(outputs, "", str(data["report"]) if "report" in data.files else "")


def tf_keras_outputs(source: Path, spec: InputSpec) -> tuple[list[Any] | None, str]:
    """tf-keras' outputs for the original file on these inputs, in an isolated child, and what
    ran them in words (or why they are missing)."""
    environment = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
    try:
        run = run_on_inputs(_TF_KERAS, source, spec, [], environment, _REFERENCE_TIMEOUT)
    except subprocess.TimeoutExpired:
        return None, f"not compared: tf-keras did not finish in {_REFERENCE_TIMEOUT} s"
    if run.outputs is None:
        said = shown(run.last_words, 160)
        return None, f"not compared: tf-keras cannot run the original ({said})"
    from importlib import metadata

    try:
        return run.outputs, f"tf-keras {metadata.version('tf-keras')} running the original"
    except metadata.PackageNotFoundError:
        return run.outputs, "tf-keras running the original"


def compare_outputs(
    ours: list[Any], theirs: list[Any] | None, said: str
) -> tuple[tuple[float, ...], str]:
    """The largest relative difference per output, ``|d| / (1 + |reference|)``."""
    import numpy as np

    if theirs is None:
        return (), said
    if len(theirs) != len(ours):
        return (float("inf"),), f"tf-keras (it gives {len(theirs)} outputs, not {len(ours)})"
    differences = []
    for mine, reference in zip(ours, theirs, strict=True):
        if mine.shape != reference.shape:
            differences.append(float("inf"))
            continue
        scale = 1.0 + np.abs(reference.astype("float64"))
        relative = np.abs(mine.astype("float64") - reference) / scale
        differences.append(float(np.nanmax(relative, initial=0.0)))
        if np.isnan(relative).any():
            differences[-1] = float("inf")
    return tuple(differences), said
