"""Write the ported module as a plugin, through ``layerhub new``'s template and writer.

``scaffold.write_plugin`` writes the distribution (pyproject with one entry point per layer,
README, LICENSE, ``__init__.py`` with the hooks, one test per layer) into a scratch directory;
this module then puts the ported module in place of the template's placeholder layers, fills
``LAYERHUB_EXAMPLES`` from the probe, turns on the ``layerhub_legacy_names`` hook (Keras 2
files saved the classes under their bare names) and writes tests that run the kit on every
example and fail while ``PORT_TODO`` is not empty.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from layerhub._private.cli import scaffold
from layerhub._private.cli.port.rewrite import LayerInfo, Rewritten
from layerhub._private.cli.scaffold import PluginNames, ScaffoldError

HELPERS_MODULE: Final = "_keras2"
# Input shapes the probe tries, in order: rank 3 first (the kit's masking rule needs it), then
# rank 2, images, images with enough channels for reductions such as C // 8, and two inputs.
CANDIDATE_SHAPES: Final[list[Any]] = [
    (2, 3, 4),
    (2, 5),
    (2, 4, 4, 3),
    (2, 4, 4, 16),
    (2, 3, 16),
    [(2, 3), (2, 3)],
    [(2, 3, 4), (2, 3, 4)],
]
# A value tried for a required constructor argument (sizes such as output_dim, units).
REQUIRED_VALUE: Final = 3
_ZERO_INITIALIZERS: Final = frozenset({"zeros", "zero"})


def ported_module_name(source: Path, names: Sequence[PluginNames]) -> str:
    """The module of the plugin that holds the ported code: the source file's own name."""
    module = scaffold.snake_case(source.stem).replace("-", "_")
    taken = {n.module for n in names} | {HELPERS_MODULE, "annotations", "hookimpl"}
    if not scaffold._importable(module) or module in taken:
        module = f"{module}_ported"
    if not scaffold._importable(module):
        module = "ported"
    return module


def write(
    rewritten: Rewritten,
    source: Path,
    layers: Sequence[LayerInfo],
    distribution: str,
    parent: Path,
    examples: dict[str, Any],
    report: str,
) -> tuple[Path, list[Path]]:
    """Write the plugin into ``parent/<distribution>``; return its root and files.

    Raises:
        ScaffoldError: a bad name, or the target exists.
    """
    names = [scaffold.plugin_names(distribution, layer.name) for layer in layers]
    root = parent / names[0].distribution
    if root.exists() or root.is_symlink():
        raise ScaffoldError(f"{root} already exists; refusing to overwrite it")
    parent.mkdir(parents=True, exist_ok=True)
    scratch_parent = parent / f".port-{secrets.token_hex(4)}"
    scratch_parent.mkdir()
    try:
        scratch, _ = scaffold.write_plugin(names[0], scratch_parent, more=names[1:])
        package = names[0].package
        module = ported_module_name(source, names)
        for layer_names in names:
            (scratch / package / f"{layer_names.module}.py").unlink()
            (scratch / "tests" / f"test_{layer_names.module}.py").unlink()
        (scratch / package / f"{module}.py").write_text(rewritten.code, encoding="utf-8")
        helpers = Path(__file__).with_name("keras2_ops.py").read_text(encoding="utf-8")
        (scratch / package / f"{HELPERS_MODULE}.py").write_text(helpers, encoding="utf-8")
        init = scratch / package / "__init__.py"
        init.write_text(
            _init(init.read_text(encoding="utf-8"), names, module, examples), encoding="utf-8"
        )
        readme = scratch / "README.md"
        readme.write_text(
            _readme(readme.read_text(encoding="utf-8"), source, report), encoding="utf-8"
        )
        for layer_names in names:
            test = scratch / "tests" / f"test_{layer_names.module}.py"
            test.write_text(_test(layer_names, module), encoding="utf-8")
        scratch.rename(root)
    finally:
        shutil.rmtree(scratch_parent, ignore_errors=True)
    files = sorted(p for p in root.rglob("*") if p.is_file())
    return root, files


def _init(text: str, names: Sequence[PluginNames], module: str, examples: dict[str, Any]) -> str:
    package = names[0].package
    text = re.sub(
        rf"^from {package}\.\w+ import (\w+)$",
        rf"from {package}.{module} import \1",
        text,
        flags=re.MULTILINE,
    )
    text, count = _with_examples(text, names, examples)
    legacy = "".join(f'        "{n.class_name}": {n.class_name},\n' for n in names)
    hook = (
        "# Keras 2 code saved these layers to .h5 files under their bare class names; layerhub\n"
        "# loads those files with them.\n"
        "@hookimpl\n"
        "def layerhub_legacy_names() -> dict[str, object]:\n"
        f"    return {{\n{legacy}    }}\n"
    )
    text, hooks = re.subn(
        r"^# If Keras 2 code saved.*\Z", hook, text, flags=re.MULTILINE | re.DOTALL
    )
    if count != 1 or hooks != 1:
        raise ScaffoldError(
            "the plugin template's __init__.py changed; layerhub port needs "
            "its LAYERHUB_EXAMPLES and legacy-names comment"
        )
    return text


def _with_examples(
    text: str, names: Sequence[PluginNames], examples: dict[str, Any]
) -> tuple[str, int]:
    body = "".join(_example_line(n.class_name, examples.get(n.class_name)) for n in names)
    return re.subn(
        r"^(LAYERHUB_EXAMPLES: dict\[str, object\] = \{\n).*?^\}",
        lambda m: m.group(1) + body + "}",
        text,
        flags=re.MULTILINE | re.DOTALL,
    )


def set_examples(root: Path, names: Sequence[PluginNames], examples: dict[str, Any]) -> None:
    """Write ``examples`` (class -> (init_kwargs, input_shape) or None) into the plugin."""
    init = root / names[0].package / "__init__.py"
    text, _ = _with_examples(init.read_text(encoding="utf-8"), names, examples)
    init.write_text(text, encoding="utf-8")


def _example_line(class_name: str, example: Any) -> str:
    if example is None:
        return (
            f"    # TODO(port): layerhub port found no constructor arguments and input shape\n"
            f"    # that build and run {class_name}; give them here.\n"
            f'    "{class_name}": None,\n'
        )
    kwargs, shape = example
    shape_code = (
        repr(tuple(shape))
        if not isinstance(shape[0], (list, tuple))
        else repr([tuple(s) for s in shape])
    )
    return f'    "{class_name}": ({kwargs!r}, {shape_code}),\n'


def _readme(text: str, source: Path, report: str) -> str:
    section = (
        "## What it computes\n\n"
        f"Ported from the Keras 2 module `{source.name}` by `layerhub port`; the layers compute\n"
        "what the Keras 2 code computed (see the module's docstrings). What the port did:\n\n"
        "```\n" + report.rstrip() + "\n```\n\n"
    )
    return re.sub(r"## What it computes\n.*?(?=## Usage)", lambda _: section, text, flags=re.DOTALL)


def _test(names: PluginNames, module: str) -> str:
    cls, package = names.class_name, names.package
    return textwrap.dedent(f'''\
        """Tests of {cls}, ported from Keras 2 by layerhub port: the conformance kit."""

        from __future__ import annotations

        from typing import Any

        import pytest
        from {package} import LAYERHUB_EXAMPLES, {cls}
        from {package}.{module} import PORT_TODO

        from layerhub.testing import check_layer


        def _examples() -> list[Any]:
            value = LAYERHUB_EXAMPLES["{cls}"]
            return value if isinstance(value, list) else [value]


        def test_port_is_complete() -> None:
            # Every construct layerhub port could not translate is listed in PORT_TODO and
            # marked TODO(port) in the code; the port is done when this list is empty.
            assert not PORT_TODO, "layerhub port left untranslated code:\\n" + "\\n".join(PORT_TODO)


        @pytest.mark.parametrize("example", _examples())
        def test_conformance(example: Any) -> None:
            assert not PORT_TODO, "layerhub port left untranslated code:\\n" + "\\n".join(PORT_TODO)
            if example is None:
                pytest.fail("TODO(port): no example for {cls} in LAYERHUB_EXAMPLES")
            if isinstance(example, dict):
                check_layer({cls}, **example)
            else:
                check_layer({cls}, *example)
    ''')


# -- the probe: which arguments and input shapes build and run each layer ----------------------

_PROBE: Final = r"""
import importlib, json, sys, warnings
warnings.simplefilter("ignore")
import numpy as np
import keras
from layerhub.testing import weight_gradients

job = json.loads(sys.argv[1])
sys.path.insert(0, job["root"])
module = importlib.import_module(job["package"] + "." + job["module"])


def arrays(shape, rng):
    if isinstance(shape[0], (list, tuple)):
        return [rng.normal(size=s).astype("float32") for s in shape]
    return rng.normal(size=shape).astype("float32")


def shapes(x):
    return [tuple(a.shape) for a in x] if isinstance(x, list) else tuple(x.shape)


def flat(y):
    return list(y) if isinstance(y, (list, tuple)) else [y]


def works(cls, kwargs, shape):
    rng = np.random.default_rng(0)
    x = arrays(shape, rng)
    layer = cls(**kwargs)
    y = layer(x)
    outs = [keras.ops.convert_to_numpy(t) for t in flat(y)]
    if not all(np.all(np.isfinite(o)) for o in outs if o.dtype.kind == "f"):
        return "outputs not finite"
    if type(layer).compute_output_shape is not keras.layers.Layer.compute_output_shape:
        declared = layer.compute_output_shape(shapes(x))
        declared = declared if isinstance(declared, list) else [declared]
        if [tuple(d) for d in declared] != [o.shape for o in outs]:
            return "compute_output_shape disagrees"
    if layer.trainable_weights:
        grads = weight_gradients(cls(**kwargs), x)
        peaks = [0.0 if g is None else float(np.max(np.abs(g))) if g.size else 0.0 for g in grads]
        if max(peaks) <= 0 or min(peaks) <= 1e-6 * max(peaks):
            return "a weight gets no gradient"
    return None


results = {}
for info in job["layers"]:
    cls = getattr(module, info["name"])
    base = {name: job["required_value"] for name in info["required"]}
    variants = [base]
    zeros = {n: "ones" for n, d in info["arguments"].items()
             if d is not None and d.strip("'\"") in job["zero_initializers"] and "init" in n}
    if zeros:
        variants.append({**base, **zeros})
    found = None
    # The first example that runs but leaves a weight without gradient, if none is perfect:
    # the kit then says so (rule 5) instead of the plugin having no example at all.
    fallback = None
    for kwargs in variants:
        for shape in job["shapes"]:
            try:
                why = works(cls, kwargs, shape)
            except Exception:
                continue
            if why is None:
                found = [kwargs, shape]
                break
            if why == "a weight gets no gradient" and fallback is None:
                fallback = [kwargs, shape]
        if found:
            break
    results[info["name"]] = found or fallback
print("PROBE" + json.dumps(results))
"""


def probe(
    root: Path, package: str, module: str, layers: Sequence[LayerInfo], timeout: float = 600
) -> dict[str, Any]:
    """Constructor arguments and an input shape that build and run each layer, or None.

    A required argument gets ``REQUIRED_VALUE``; when a weight gets no gradient and an
    initializer argument defaults to zeros (PAM's gamma), the example sets it to ``"ones"``,
    as the kit's rule 5 asks. When no example gives every weight a gradient, the first that
    runs is kept, and the kit's rule 5 reports the weight. Runs in a child interpreter, so
    nothing of the ported code is imported here.
    """
    job = {
        "root": str(root),
        "package": package,
        "module": module,
        "layers": [
            {"name": i.name, "required": i.required, "arguments": i.arguments} for i in layers
        ],
        "required_value": REQUIRED_VALUE,
        "zero_initializers": sorted(_ZERO_INITIALIZERS),
        "shapes": CANDIDATE_SHAPES,
    }
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(job)],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )
    for line in result.stdout.splitlines():
        if line.startswith("PROBE"):
            found: dict[str, Any] = json.loads(line[len("PROBE") :])
            return found
    return {i.name: None for i in layers}
