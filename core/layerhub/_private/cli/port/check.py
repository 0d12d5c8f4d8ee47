"""``layerhub port --check``: the original class under tf-keras against the port under Keras 3.

Two child interpreters, one for all the layers checked. The first is isolated (``python -I``)
with ``TF_USE_LEGACY_KERAS=1`` and imports the ORIGINAL module with ``keras`` resolving to
tf-keras; it builds each layer on seeded random inputs and saves its weights by name, its
outputs, and the gradient of ``sum(outputs * cotangent)`` with respect to the inputs. The
second imports the port, builds it on the same inputs, sets every weight from the first child
BY NAME (a weight of a sublayer by the attribute path to it, then its name; never by position),
and compares outputs and input gradients.

tf-keras is Keras 2.x as TensorFlow 2 ships it; code written for Keras 2.0-2.2 (the era of
``keras.engine.topology`` and ``K.image_dim_ordering``) used APIs tf-keras dropped. The first
child supplies exactly those, each a plain alias: the ``keras.engine`` modules, a
``K.image_dim_ordering`` that reads the image data format, a settable ``trainable_weights``
list, TF1 dimensions (``input_shape[i].value``), and the ``keras.legacy.interfaces``
decorators (which only converted Keras 1 argument names).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from layerhub._private.errors import LayerHubError

TOLERANCE: Final = 1e-5
_SEED: Final = 0

# Shared by both children: a layer's weights by name. A sublayer's weights are named by the
# attribute that holds the sublayer; a weight whose Keras 2 name was built from the layer's
# name ("l2norm_gamma") loses that prefix.
_NAMED_WEIGHTS: Final = r"""
def named_weights(layer, base, prefix=""):
    subs = sorted((k, v) for k, v in vars(layer).items()
                  if isinstance(v, base) and v is not layer and not k.startswith("_"))
    inner = {id(w) for _, sub in subs for w in sub.weights}
    named = {}
    for weight in layer.weights:
        if id(weight) in inner:
            continue
        name = weight.name.split("/")[-1].split(":")[0]
        if name.startswith(layer.name + "_"):
            name = name[len(layer.name) + 1:]
        if prefix + name in named:
            raise ValueError("two weights are named " + prefix + name)
        named[prefix + name] = weight
    for attr, sub in subs:
        named.update(named_weights(sub, base, prefix + attr + "."))
    return named


def arrays(shape, seed):
    import numpy as np
    rng = np.random.default_rng(seed)
    if isinstance(shape[0], (list, tuple)):
        return [rng.normal(size=s).astype("float32") for s in shape]
    return [rng.normal(size=shape).astype("float32")]


def cotangents(outputs, seed):
    import numpy as np
    rng = np.random.default_rng(seed + 1)
    return [rng.normal(size=tuple(o.shape)).astype("float32") for o in outputs]
"""

_ORIGINAL: Final = (
    _NAMED_WEIGHTS
    + r'''
import importlib.abc, importlib.util, json, sys, types, warnings
warnings.simplefilter("ignore")
job = json.loads(sys.argv[1])
import numpy as np
import tensorflow as tf
if job["tf1_dimensions"]:
    tf.compat.v1.disable_v2_tensorshape()
import tf_keras

backend = types.ModuleType("keras.backend")
backend.__dict__.update({k: getattr(tf_keras.backend, k) for k in dir(tf_keras.backend)})
backend.image_dim_ordering = lambda: (
    "tf" if tf_keras.backend.image_data_format() == "channels_last" else "th")


class Layer(tf_keras.layers.Layer):
    """tf-keras' Layer, with Keras 2.0's settable weight lists."""

    @property
    def trainable_weights(self):
        listed = self.__dict__.get("_port_trainable")
        return list(listed) if listed is not None else super().trainable_weights

    @trainable_weights.setter
    def trainable_weights(self, value):
        self.__dict__["_port_trainable"] = list(value)

    @property
    def non_trainable_weights(self):
        listed = self.__dict__.get("_port_frozen")
        return list(listed) if listed is not None else super().non_trainable_weights

    @non_trainable_weights.setter
    def non_trainable_weights(self, value):
        self.__dict__["_port_frozen"] = list(value)


def engine(name):
    module = types.ModuleType(name)
    module.Layer = Layer
    module.InputSpec = tf_keras.layers.InputSpec
    return module


def layers_module():
    module = types.ModuleType("keras.layers")
    module.__dict__.update({k: getattr(tf_keras.layers, k) for k in dir(tf_keras.layers)})
    module.Layer = Layer
    return module


legacy = types.ModuleType("keras.legacy.interfaces")
legacy.__getattr__ = lambda name: (lambda function: function)
SPECIAL = {
    "keras.backend": lambda: backend,
    "keras.engine": lambda: engine("keras.engine"),
    "keras.engine.topology": lambda: engine("keras.engine.topology"),
    "keras.engine.base_layer": lambda: engine("keras.engine.base_layer"),
    "keras.layers": layers_module,
    "keras.legacy": lambda: types.ModuleType("keras.legacy"),
    "keras.legacy.interfaces": lambda: legacy,
}


class Keras2(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path, target=None):
        if name == "keras" or name.startswith("keras."):
            return importlib.util.spec_from_loader(name, self, is_package=True)
        return None

    def create_module(self, spec):
        name = spec.name
        if name in SPECIAL:
            return SPECIAL[name]()
        if name == "keras":
            module = types.ModuleType("keras")
            module.__dict__.update({k: getattr(tf_keras, k) for k in dir(tf_keras)
                                    if not k.startswith("__")})
            module.backend = backend
            return module
        rest = name[len("keras."):]
        for candidate in ("tf_keras." + rest, "tf_keras.src." + rest):
            try:
                return importlib.import_module(candidate)
            except ImportError:
                continue
        raise ImportError("tf-keras has no " + name)

    def exec_module(self, module):
        module.__path__ = []


sys.meta_path.insert(0, Keras2())
for name in [n for n in sys.modules if n == "keras" or n.startswith("keras.")]:
    del sys.modules[name]
modules = {}
out = {}
for item in job["items"]:
    key = str(item["index"])
    try:
        if item["source"] not in modules:
            spec = importlib.util.spec_from_file_location(
                "_layerhub_port_original_" + str(len(modules)), item["source"])
            modules[item["source"]] = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(modules[item["source"]])
        cls = getattr(modules[item["source"]], item["class"])
        xs = arrays(item["input_shape"], job["seed"])
        layer = cls(**item["init_kwargs"])
        tensors = [tf.constant(x) for x in xs]
        given = tensors if len(tensors) > 1 else tensors[0]
        with tf.GradientTape() as tape:
            tape.watch(tensors)
            result = layer(given)
            outputs = list(result) if isinstance(result, (list, tuple)) else [result]
            cots = cotangents(outputs, job["seed"])
            loss = tf.add_n([tf.reduce_sum(tf.cast(o, "float32") * c)
                             for o, c in zip(outputs, cots)])
        grads = tape.gradient(loss, tensors)
        weights = {k: w.numpy() for k, w in named_weights(layer, tf_keras.layers.Layer).items()}
        saved = None
        try:
            # The same layer in a Keras 2 model saved to .h5, as users have them.
            several = isinstance(item["input_shape"][0], (list, tuple))
            shapes = item["input_shape"] if several else [item["input_shape"]]
            inputs = [tf_keras.Input(shape=tuple(s[1:])) for s in shapes]
            twin = cls(**item["init_kwargs"])
            model = tf_keras.Model(inputs, twin(inputs if several else inputs[0]))
            twin.set_weights(layer.get_weights())
            model.save(job["out"] + "/" + key + ".h5")
        except Exception as error:
            saved = (type(error).__name__ + ": " + " ".join(str(error).split()))[:200]
        np.savez(job["out"] + "/" + key + ".npz",
                 **{"output/" + str(i): o.numpy() for i, o in enumerate(outputs)},
                 **{"grad/" + str(i): (np.zeros_like(x) if g is None else g.numpy())
                    for i, (x, g) in enumerate(zip(xs, grads))},
                 **{"weight/" + k: v for k, v in weights.items()})
        out[key] = {"error": None, "h5": saved}
    except Exception as error:
        out[key] = {"error": (type(error).__name__ + ": " + " ".join(str(error).split()))[:400]}
print("ORIGINAL" + json.dumps(out))
'''
)

_PORTED: Final = (
    _NAMED_WEIGHTS
    + r"""
import importlib, json, os, sys, warnings
warnings.simplefilter("ignore")
job = json.loads(sys.argv[1])
import numpy as np
import keras
from keras import ops
from layerhub.testing import input_gradients

rows = {}
for index, item in enumerate(job["items"]):
    key = str(index)
    if item["reference_error"] is not None:
        continue
    try:
        sys.path.insert(0, item["root"])
        cls = getattr(importlib.import_module(item["package"]), item["class"])
        stored = np.load(job["out"] + "/" + key + ".npz")
        xs = arrays(item["input_shape"], job["seed"])
        given = xs if len(xs) > 1 else xs[0]
        layer = cls(**item["init_kwargs"])
        layer(given)
        renames = getattr(cls, "keras2_weight_names", None) or {}
        old = {}
        for k in stored.files:
            if k.startswith("weight/"):
                *path, last = k[len("weight/"):].split(".")
                old[".".join([*path, renames.get(last, last)])] = stored[k]
        new = named_weights(layer, keras.layers.Layer)
        if sorted(old) != sorted(new):
            rows[key] = {"error": "weights differ by name: tf-keras " + ", ".join(sorted(old))
                         + "; port " + ", ".join(sorted(new))}
            continue
        for name, variable in new.items():
            if tuple(variable.shape) != old[name].shape:
                raise ValueError("weight " + name + " has shape " + str(tuple(variable.shape))
                                 + " in the port, " + str(old[name].shape) + " in tf-keras")
            variable.assign(old[name])
        result = layer(given)
        outputs = list(result) if isinstance(result, (list, tuple)) else [result]
        cots = cotangents([ops.convert_to_numpy(o) for o in outputs], job["seed"])

        def loss(y):
            ys = list(y) if isinstance(y, (list, tuple)) else [y]
            return sum(ops.sum(ops.cast(o, "float32") * c) for o, c in zip(ys, cots))

        grads = input_gradients(layer, given, loss)
        out_diff = max(float(np.max(np.abs(ops.convert_to_numpy(o) - stored["output/" + str(i)])))
                       if np.size(stored["output/" + str(i)]) else 0.0
                       for i, o in enumerate(outputs))
        grad_diff = max(float(np.max(np.abs((np.zeros_like(x) if g is None else g)
                                            - stored["grad/" + str(i)])))
                        for i, (x, g) in enumerate(zip(xs, grads)))
        scale = max(1.0, max(float(np.max(np.abs(stored[k]))) for k in stored.files
                             if not k.startswith("weight/") and np.size(stored[k])))
        h5 = job["out"] + "/" + key + ".h5"
        if item["h5_error"] is not None or not os.path.exists(h5):
            loaded = "skipped: tf-keras could not save the original: " + str(item["h5_error"])
        else:
            try:
                import layerhub
                from layerhub import AmbiguousNameError, MissingPluginError
                try:
                    model = layerhub.load_model(h5, compile=False)
                    loaded = None
                except MissingPluginError:
                    model, loaded = None, "skipped: the plugin is not installed"
                except AmbiguousNameError as error:
                    model = None
                    loaded = ("skipped: another installed plugin has the same Keras 2 name: "
                              + " ".join(str(error).split()))[:300]
                used = sorted({type(x).__module__ + "." + type(x).__name__
                               for x in (model.layers if model is not None else ())
                               if type(x).__name__ == item["class"]})
                if model is not None and not all(
                        u.startswith(item["package"] + ".") for u in used):
                    loaded = ("skipped: the bare name resolved to another plugin's class "
                              + ", ".join(used))
                elif model is not None:
                    again = model(given)
                    again = list(again) if isinstance(again, (list, tuple)) else [again]
                    loaded = max(
                        float(np.max(np.abs(ops.convert_to_numpy(o) - stored["output/" + str(i)])))
                        if np.size(stored["output/" + str(i)]) else 0.0
                        for i, o in enumerate(again))
            except Exception as error:
                loaded = ("failed: " + type(error).__name__ + ": "
                          + " ".join(str(error).split()))[:300]
        rows[key] = {"output": out_diff, "gradient": grad_diff, "scale": scale,
                     "weights": sorted(new), "h5": loaded}
    except Exception as error:
        rows[key] = {"error": (type(error).__name__ + ": " + " ".join(str(error).split()))[:400]}
print("PORTED" + json.dumps(rows))
"""
)


class ParityError(LayerHubError):
    """The parity check could not run (no tf-keras, or a child died)."""


@dataclasses.dataclass(frozen=True)
class Item:
    """One layer and example to check.

    Attributes:
        source: the original Keras 2 module.
        cls: the class name (the same in the original and the port).
        root: the plugin's directory, holding its package.
        package: the plugin's import package.
        init_kwargs: constructor arguments.
        input_shape: an input shape with a batch size, or a list of them.
    """

    source: Path
    cls: str
    root: Path
    package: str
    init_kwargs: dict[str, Any]
    input_shape: Any


@dataclasses.dataclass(frozen=True)
class Row:
    """The result for one item: the largest differences, or why there are none."""

    item: Item
    output: float | None = None
    gradient: float | None = None
    scale: float = 1.0
    weights: tuple[str, ...] = ()
    error: str | None = None
    h5: float | str | None = None

    @property
    def h5_ok(self) -> bool:
        """The Keras 2 ``.h5`` file loads and predicts alike, or could not be made here."""
        if isinstance(self.h5, (int, float)):
            return self.h5 <= TOLERANCE * self.scale
        return self.h5 is None or self.h5.startswith("skipped")

    @property
    def ok(self) -> bool:
        return (
            self.error is None
            and self.output is not None
            and self.gradient is not None
            and self.output <= TOLERANCE * self.scale
            and self.gradient <= TOLERANCE * self.scale
            and self.h5_ok
        )


def tf_keras_installed() -> bool:
    """Whether the tf-keras reference can run here."""
    return all(importlib.util.find_spec(m) is not None for m in ("tf_keras", "tensorflow"))


def _child(
    code: str, tag: str, job: dict[str, Any], env: dict[str, str], isolated: bool, timeout: float
) -> dict[str, Any]:
    flags = ["-I"] if isolated else []
    result = subprocess.run(
        [sys.executable, *flags, "-c", code, json.dumps(job)],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )
    for line in result.stdout.splitlines():
        if line.startswith(tag):
            found: dict[str, Any] = json.loads(line[len(tag) :])
            return found
    tail = (result.stderr.strip().splitlines() or ["no output"])[-1]
    raise ParityError(f"the {tag.lower()} child failed: {tail[:300]}")


def parity(items: Sequence[Item], timeout: float = 900) -> list[Row]:
    """Run every item's original under tf-keras and its port under Keras 3; compare.

    Raises:
        ParityError: tf-keras is not installed, or a child interpreter failed outright.
    """
    if not tf_keras_installed():
        raise ParityError("--check needs tf-keras (pip install tf-keras)")
    rows: list[Row] = []
    base_env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    base_env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    with tempfile.TemporaryDirectory(prefix="layerhub-port-check-") as out:
        # One child for every source, or two: TF1 dimensions (for `.value`) are a global switch.
        groups: dict[bool, list[dict[str, Any]]] = {}
        texts: dict[Path, str] = {}
        for index, item in enumerate(items):
            if item.source not in texts:
                texts[item.source] = item.source.read_text(encoding="utf-8")
            groups.setdefault(".value" in texts[item.source], []).append(
                {
                    "index": index,
                    "source": str(item.source),
                    "class": item.cls,
                    "init_kwargs": item.init_kwargs,
                    "input_shape": item.input_shape,
                }
            )
        errors: dict[int, str | None] = {}
        unsaved: dict[int, str | None] = {}
        env = {**base_env, "TF_USE_LEGACY_KERAS": "1"}
        for tf1, group in groups.items():
            job = {"seed": _SEED, "out": out, "tf1_dimensions": tf1, "items": group}
            found = _child(_ORIGINAL, "ORIGINAL", job, env, True, timeout)
            for entry in group:
                result = found.get(str(entry["index"])) or {"error": "not run"}
                errors[entry["index"]] = result["error"]
                unsaved[entry["index"]] = result.get("h5")
        ported_job = {
            "seed": _SEED,
            "out": out,
            "items": [
                {
                    "class": it.cls,
                    "root": str(it.root),
                    "package": it.package,
                    "init_kwargs": it.init_kwargs,
                    "input_shape": it.input_shape,
                    "reference_error": errors.get(i, "not run"),
                    "h5_error": unsaved.get(i),
                }
                for i, it in enumerate(items)
            ],
        }
        ported = _child(_PORTED, "PORTED", ported_job, base_env, False, timeout)
    for index, item in enumerate(items):
        reference = errors.get(index)
        if reference is not None:
            rows.append(Row(item, error=f"the original failed under tf-keras: {reference}"))
            continue
        found_row = ported.get(str(index), {"error": "not run"})
        rows.append(
            Row(
                item,
                output=found_row.get("output"),
                gradient=found_row.get("gradient"),
                scale=found_row.get("scale", 1.0),
                weights=tuple(found_row.get("weights", ())),
                error=found_row.get("error"),
                h5=found_row.get("h5"),
            )
        )
    return rows
