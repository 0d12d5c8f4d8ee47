"""What every rule shares: the case under check, the ``Broken`` report, and small helpers."""

from __future__ import annotations

import contextlib
import contextvars
import copy
import dataclasses
import inspect
import linecache
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Final

import keras
import numpy as np
from keras import ops

from layerhub._private.registry.plugins import Registry
from layerhub.testing import _training

Shape = tuple[int | None, ...]

# The layer's source files while a check runs, so that errors can name the layer's own line.
_LAYER_FILES: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar(
    "layerhub_layer_files", default=()
)


def tensorflow() -> bool:
    """Whether TensorFlow's exact tools (tape, variable creator, tf.function) are available."""
    return _training._tensorflow()


class Broken(Exception):
    """A broken rule: what was seen, the fix, and the rule whose failure explains it (if any)."""

    def __init__(self, seen: str, fix: str | None = None, cause: int | None = None) -> None:
        super().__init__(seen)
        self.seen = seen
        self.fix = fix
        self.cause = cause


@contextlib.contextmanager
def checking(cls: type[Any]) -> Iterator[None]:
    """Within the block, errors raised from the source files of ``cls`` name the layer."""
    token = _LAYER_FILES.set(_source_files(cls))
    try:
        yield
    finally:
        _LAYER_FILES.reset(token)


def _source_files(cls: type[Any]) -> tuple[str, ...]:
    try:
        source = inspect.getsourcefile(cls)
    except (TypeError, OSError):
        return ()
    return (os.path.realpath(source),) if source else ()


@contextlib.contextmanager
def doing(what: str, fix: str | None = None) -> Iterator[None]:
    """Report any exception raised inside as a broken rule, saying what was being done."""
    __tracebackhide__ = True
    try:
        yield
    except Broken:
        raise
    except Exception as error:  # the layer under test may raise anything
        raise broken_by(error, what, fix) from error


def broken_by(error: BaseException, what: str, fix: str | None = None) -> Broken:
    """The report of ``error``, raised while doing ``what``: the layer's own line when it is."""
    summary = _summary(error)
    cause = 4 if _state_in_call(error) else None
    site = _layer_site(error)
    if site is None:
        return Broken(f"{what} raised {summary}", fix, cause)
    where, code = site
    seen = f"{what}: the layer raised {summary}, at {where}: `{code}`"
    backend = keras.backend.backend()
    if backend != "tensorflow" and re.search(r"\btf\.", code):
        fix = (
            f"the layer calls TensorFlow directly, which cannot run on the {backend} backend: "
            "use keras.ops (ops.tensordot, ops.matmul, ...) so that it runs on every backend"
        )
    return Broken(seen, fix, cause)


def _layer_site(error: BaseException) -> tuple[str, str] | None:
    """``(file:line, source line)`` of the innermost frame in the layer's own source file."""
    files = _LAYER_FILES.get()
    if not files:
        return None
    found: tuple[str, str] | None = None
    seen: set[int] = set()
    chain: BaseException | None = error
    while chain is not None and id(chain) not in seen:
        seen.add(id(chain))
        tb: TracebackType | None = chain.__traceback__
        while tb is not None:
            filename = tb.tb_frame.f_code.co_filename
            if os.path.realpath(filename) in files:
                code = linecache.getline(filename, tb.tb_lineno).strip()
                found = (f"{Path(filename).name}:{tb.tb_lineno}", code)
            tb = tb.tb_next
        if found is not None:
            return found
        chain = chain.__cause__ or chain.__context__
    return None


def _state_in_call(error: BaseException) -> bool:
    text = str(error)
    return "tf.Variable" in text or "cannot add new elements of state" in text


_ANSI: Final = re.compile(r"\x1b\[[0-9;]*m")
_NESTED: Final = re.compile(r"^\s*(\w+(?:Error|Exception)): ", re.MULTILINE)
_NOISE: Final = re.compile(r"Exception encountered when calling|Arguments received by|•")


def _summary(error: BaseException) -> str:
    """``Type: the first informative line``, past the boilerplate Keras and tf.function add."""
    name, text = type(error).__name__, _ANSI.sub("", str(error))
    if "in user code:" in text and (nested := list(_NESTED.finditer(text))):
        # tf.function prints the traceback first and the error it wraps last.
        name, text = nested[-1].group(1), text[nested[-1].end() :]
    lines = [line.strip() for line in text.splitlines()]
    useful = [line for line in lines if line and not _NOISE.match(line)]
    summary = useful[0] if useful else ""
    if (end := summary.find(". ", 30)) > 0:
        summary = summary[: end + 1]
    if len(summary) > 240:
        summary = summary[:237] + "..."
    if _state_in_call(error):
        summary += " (weights are being created in call(): see rule 4)"
    return f"{name}: {summary}" if summary else name


summary = _summary


@dataclasses.dataclass
class Case:
    """One layer class with its arguments and inputs, as every rule sees it."""

    cls: type[Any]
    init_kwargs: dict[str, Any]
    config_exempt: frozenset[str]
    shapes: list[Shape]
    multi: bool
    inputs: list[np.ndarray[Any, Any]]
    mixed_precision: tuple[str, ...]
    tmp_path: Path | None
    atol: float
    rtol: float
    registry: Registry
    rng: np.random.Generator
    seed: int = 0
    notes: list[str] = dataclasses.field(default_factory=list)

    def new_layer(self, **overrides: Any) -> Any:
        return self.cls(**{**copy.deepcopy(self.init_kwargs), **overrides})

    def arg(self, items: Sequence[Any]) -> Any:
        return list(items) if self.multi else items[0]

    def shape_arg(self, batch: int | bool | None = True) -> Any:
        """The input shape(s) as ``build`` receives them; ``batch=None`` for an unknown batch."""
        shapes = self.shapes if batch is True else [(batch, *s[1:]) for s in self.shapes]
        return self.arg(shapes)

    def symbolic_inputs(self, known_batch: bool = False) -> list[Any]:
        return [
            keras.Input(shape=s[1:], batch_size=s[0] if known_batch else None, dtype=x.dtype.name)
            for s, x in zip(self.shapes, self.inputs, strict=True)
        ]

    def bigger_batch(self) -> list[np.ndarray[Any, Any]]:
        return [np.concatenate([x, x[:1]]) for x in self.inputs]

    def call(
        self, layer: Any, context: str = "", fix: str | None = None, **kwargs: Any
    ) -> list[Any]:
        __tracebackhide__ = True
        what = f"calling the layer on inputs of shape {show(self.shape_arg())}{context}"
        with doing(what, fix):
            return list(keras.tree.flatten(layer(self.arg(self.inputs), **kwargs)))


def show(shapes: Any) -> str:
    return repr(shapes).replace("'", "")


def shape_list(value: Any) -> list[Shape]:
    """A shape, or a nested structure of shapes, as a flat list of tuples."""
    if _is_shape(value):
        return [tuple(None if d is None else int(d) for d in value)]
    if isinstance(value, Mapping):
        return [s for key in sorted(value) for s in shape_list(value[key])]
    if isinstance(value, (list, tuple)):
        return [s for item in value for s in shape_list(item)]
    raise TypeError(f"not a shape: {value!r}")


def _is_shape(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and all(
        d is None or isinstance(d, (int, np.integer)) for d in value
    )


def is_float(tensor: Any) -> bool:
    return "float" in keras.backend.standardize_dtype(tensor.dtype)


def weight_name(layer: Any, weight: Any) -> str:
    """The weight's path inside the layer, without the instance's auto-numbered name."""
    return str(weight.path).removeprefix(f"{layer.name}/")


def numpy(tensor: Any) -> np.ndarray[Any, Any]:
    return np.asarray(ops.convert_to_numpy(tensor))


def random_array(
    rng: np.random.Generator, shape: tuple[int, ...], dtype: str
) -> np.ndarray[Any, Any]:
    kind = np.dtype(dtype).kind
    if kind == "f":
        return rng.standard_normal(shape).astype(dtype)
    if kind == "b":
        return rng.random(shape) < 0.5
    return rng.integers(0, 10, size=shape).astype(dtype)


def model(case: Case, layer: Any) -> Any:
    """A functional model of the layer alone, at a known batch size (unknown is rule 3's)."""
    inputs = case.symbolic_inputs(known_batch=True)
    outputs = layer(case.arg(inputs))
    return keras.Model(case.arg(inputs), outputs)
