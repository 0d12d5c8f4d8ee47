"""Convert a Keras 2 model (or any model layerhub loads) to ``.keras``, and prove the result.

The converted file is reloaded in a fresh interpreter, as a user's next session would, and its
predictions on random inputs are compared with the model's before saving.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any, Final, NamedTuple

from layerhub._private.errors import LayerHubError
from layerhub._private.loading import load_model, open_model
from layerhub._private.registry import Registry, registry
from layerhub._private.saving import save_model
from layerhub._private.untrusted import shown, shown_path

# Unknown sizes other than the batch get this length in the random inputs.
_FREE_SIZE: Final = 4
_BATCH: Final = 2

_RELOAD: Final = """
import json, sys
import numpy as np
import layerhub
target, inputs, outputs, compile = sys.argv[1:5]
model = layerhub.load_model(target, compile=compile == "1")
data = np.load(inputs)
xs = [data[f"x{i}"] for i in range(len(data.files))]
ys = model.predict(xs if len(xs) > 1 else xs[0], verbose=0)
ys = ys if isinstance(ys, (list, tuple)) else [ys]
np.savez(outputs, **{f"y{i}": np.asarray(y) for i, y in enumerate(ys)})
"""


class ConversionError(LayerHubError, ValueError):
    """The converted model does not reload, or predicts differently from the original."""


class Conversion(NamedTuple):
    """What ``convert`` did.

    Attributes:
        source: the file or directory converted.
        target: the ``.keras`` file written.
        description: the source's format in words.
        plugin_layers: ``registered name -> count`` of the plugin objects in the model.
        weights: the number of weight values (``model.count_params()``).
        max_difference: the largest absolute difference between the predictions of the model
            before saving and of the file reloaded in a fresh interpreter.
        atol: the tolerance it was held to.
    """

    source: Path
    target: Path
    description: str
    plugin_layers: dict[str, int]
    weights: int
    max_difference: float
    atol: float

    @property
    def ok(self) -> bool:
        return self.max_difference <= self.atol

    def lines(self) -> list[str]:
        used = ", ".join(f"{n} x{c}" for n, c in sorted(self.plugin_layers.items())) or "none"
        verdict = "ok" if self.ok else "DIFFERENT"
        return [
            f"converted {shown_path(self.source)} ({self.description}) -> {self.target}",
            f"  plugin objects: {used}",
            f"  weights: {self.weights:,}",
            f"  reloaded in a fresh interpreter: max |difference| = {self.max_difference:.3g} "
            f"(atol {self.atol:g}): {verdict}",
        ]


def convert(
    source: str | os.PathLike[str],
    target: str | os.PathLike[str],
    *,
    compile: bool = True,
    atol: float = 1e-5,
    safe_mode: bool = True,
    registry: Registry = registry,
) -> Conversion:
    """Load ``source`` (``.h5``, SavedModel directory or ``.keras``), save it as ``target``.

    The saved file is reloaded in a fresh interpreter with nothing but layerhub, and its
    predictions on random inputs of the model's input shapes are compared with the loaded
    model's.

    Args:
        source: the model to convert.
        target: the ``.keras`` file to write (atomically).
        compile: carry the training configuration over (and check that it reloads).
        atol: the largest absolute difference of predictions accepted.
        safe_mode: as for ``load_model``; never weakened.
        registry: the registry to resolve plugins with.

    Returns:
        What was converted; ``ok`` says whether the predictions agree within ``atol``.

    Raises:
        ConversionError: the file does not reload in a fresh interpreter.
        ModelFileError, MissingPluginError, UnsafeModelError: as ``load_model``.
    """
    import numpy as np

    described = open_model(source).description
    model = load_model(source, compile=compile, safe_mode=safe_mode, registry=registry)
    written = save_model(model, target, registry=registry)
    inputs = random_inputs(model)
    expected = _predict(model, inputs)
    with tempfile.TemporaryDirectory(prefix="layerhub-convert-") as scratch:
        given, got = Path(scratch) / "inputs.npz", Path(scratch) / "outputs.npz"
        np.savez(given, **{f"x{i}": x for i, x in enumerate(inputs)})
        child = subprocess.run(
            [sys.executable, "-c", _RELOAD, str(written), str(given), str(got), str(int(compile))],
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3")},
        )
        if child.returncode != 0:
            last = (child.stderr.strip().splitlines() or ["(no output)"])[-1]
            raise ConversionError(
                f"{written} was written but does not reload in a fresh interpreter: "
                f"{shown(last, 300)}"
            )
        with np.load(got) as data:
            reloaded = [data[f"y{i}"] for i in range(len(data.files))]
    difference = max(
        (
            float(np.max(np.abs(a.astype("float64") - b)))
            for a, b in zip(expected, reloaded, strict=True)
        ),
        default=0.0,
    )
    return Conversion(
        source=Path(source),
        target=written,
        description=described,
        plugin_layers=_plugin_objects(written),
        weights=int(model.count_params()),
        max_difference=difference,
        atol=atol,
    )


def random_inputs(model: Any, seed: int = 0) -> list[Any]:
    """Random arrays of the model's input shapes and dtypes (integers for integer inputs)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    arrays = []
    for tensor in model.inputs:
        shape = [_BATCH if i == 0 else (d or _FREE_SIZE) for i, d in enumerate(tensor.shape)]
        dtype = np.dtype(str(tensor.dtype))
        if np.issubdtype(dtype, np.integer):
            arrays.append(rng.integers(0, 4, size=shape).astype(dtype))
        else:
            arrays.append(rng.normal(size=shape).astype(dtype))
    return arrays


def _predict(model: Any, inputs: list[Any]) -> list[Any]:
    import numpy as np

    outputs = model.predict(inputs if len(inputs) > 1 else inputs[0], verbose=0)
    return [np.asarray(y) for y in (outputs if isinstance(outputs, (list, tuple)) else [outputs])]


def _plugin_objects(path: Path) -> dict[str, int]:
    """How often each registered name appears in the saved config."""
    import zipfile

    from layerhub._private.config_tree import objects

    with zipfile.ZipFile(path) as archive:
        config = json.loads(archive.read("config.json"))
    counts = Counter(
        node["registered_name"]
        for node in objects(config)
        if isinstance(node.get("registered_name"), str) and ">" in node["registered_name"]
    )
    return dict(counts)
