"""Convert a Keras 2 model (or any model layerhub loads) to ``.keras``, and prove the result.

The converted file is reloaded in a fresh interpreter, as a user's next session would, and its
predictions on random inputs are compared with the model's before saving. A Keras 2 source is
also the judge of the new file: every tensor it stores must equal the reloaded variable of the
same identity, and tf-keras, running the original beside the reload, must give the same outputs.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Final, NamedTuple

from layerhub._private.errors import LayerHubError, ModelFileError
from layerhub._private.guard.untrusted import shown, shown_path
from layerhub._private.keras2.verify import (
    LayerCheck,
    Verification,
    compare_outputs,
    deterministic_inputs,
    has_tf_keras,
    predict,
    run_on_inputs,
    tf_keras_outputs,
    tolerance_of,
)
from layerhub._private.loading import load_model, open_model
from layerhub._private.registry.plugins import Registry, registry
from layerhub._private.saving import save_model

# The converted file as the user's next session meets it: a fresh interpreter, nothing but
# layerhub. Its outputs, and (for a Keras 2 source) every tensor the source stores compared with
# the variable of the same identity in the reloaded model: the check is of the new file, and it
# costs one read of the source, not another load of the model.
_RELOAD: Final = """
import json, sys
import numpy as np
import layerhub
from layerhub._private.keras2.verify import InputSpec, predict, stored_checks
from layerhub._private.loading import open_model
target, inputs, spec, outputs, compile, source = sys.argv[1:7]
model = layerhub.load_model(target, compile=compile == "1")
spec = json.loads(spec)
with np.load(inputs) as data:
    given = InputSpec(spec["kind"], spec["keys"], [data[key] for key in spec["keys"]])
ys = predict(model, given)
report = ""
if source:
    try:
        report = json.dumps({"layers": stored_checks(open_model(source), model)})
    except layerhub.LayerHubError as error:
        report = json.dumps({"error": str(error)})
np.savez(outputs, report=np.array(report), **{f"y{i}": y for i, y in enumerate(ys)})
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
        verification: a Keras 2 source's stored weights and tf-keras' outputs against the
            converted file (``None`` for a Keras 3 source).
    """

    source: Path
    target: Path
    description: str
    plugin_layers: dict[str, int]
    weights: int
    max_difference: float
    atol: float
    verification: Verification | None = None

    @property
    def ok(self) -> bool:
        verified = self.verification is None or self.verification.ok
        return self.max_difference <= self.atol and verified

    def lines(self) -> list[str]:
        used = ", ".join(f"{n} x{c}" for n, c in sorted(self.plugin_layers.items())) or "none"
        verdict = "ok" if self.ok else "FAILED"
        return [
            f"converted {shown_path(self.source)} ({self.description}) -> {self.target}",
            f"  plugin objects: {used}",
            f"  parameters: {self.weights:,}",
            f"  reloaded in a fresh interpreter: max |difference| = {self.max_difference:.3g} "
            f"(atol {self.atol:g}): {'ok' if self.max_difference <= self.atol else 'DIFFERENT'}",
            *(self.verification.lines() if self.verification else []),
            f"  conversion: {verdict}",
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

    opened = open_model(source)
    model = load_model(source, compile=compile, safe_mode=safe_mode, registry=registry)
    written = save_model(model, target, registry=registry)
    spec = deterministic_inputs(model)
    expected = predict(model, spec)
    environment = {
        **os.environ,
        "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3"),
    }
    keras2_source = os.path.abspath(opened.path) if opened.keras2 else ""
    # The two witnesses run side by side, each in its own interpreter: the new file reloaded
    # (and checked against the source's tensors), and tf-keras running the original.
    with ThreadPoolExecutor(max_workers=2) as pool:
        reloading = pool.submit(
            run_on_inputs, _RELOAD, written, spec, [str(int(compile)), keras2_source], environment
        )
        referring = (
            pool.submit(tf_keras_outputs, opened.path, spec)
            if opened.keras2 and has_tf_keras()
            else None
        )
        run = reloading.result()
        theirs, said = (
            referring.result()
            if referring is not None
            else (None, "not compared: tf-keras is not installed (pip install tf-keras)")
        )
    if run.outputs is None:
        raise ConversionError(
            f"{written} was written but does not reload in a fresh interpreter: "
            f"{shown(run.last_words, 300)}"
        )
    reloaded = run.outputs
    difference = max(
        (
            float(np.max(np.abs(a.astype("float64") - b), initial=0.0))
            for a, b in zip(expected, reloaded, strict=True)
        ),
        default=0.0,
    )
    checked = None
    if opened.keras2:
        # Against what wrote the source, never against layerhub's own reload alone.
        report = json.loads(run.report)
        if "error" in report:
            raise ModelFileError(report["error"])
        outputs, said = compare_outputs(reloaded, theirs, said)
        checked = Verification(
            source=opened.path,
            target=written,
            layers=tuple(LayerCheck(*row) for row in report["layers"]),
            outputs=outputs,
            reference=said,
            tolerance=tolerance_of(model),
        )
    return Conversion(
        source=Path(source),
        target=written,
        description=opened.description,
        plugin_layers=_plugin_objects(written),
        weights=int(model.count_params()),
        max_difference=difference,
        atol=atol,
        verification=checked,
    )


def _plugin_objects(path: Path) -> dict[str, int]:
    """How often each registered name appears in the saved config."""
    import zipfile

    from layerhub._private.guard.config_tree import objects

    with zipfile.ZipFile(path) as archive:
        config = json.loads(archive.read("config.json"))
    counts = Counter(
        node["registered_name"]
        for node in objects(config)
        if isinstance(node.get("registered_name"), str) and ">" in node["registered_name"]
    )
    return dict(counts)
