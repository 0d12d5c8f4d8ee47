"""``check_layer``: runs the conformance rules (one module each, in ``rules/``) and reports."""

from __future__ import annotations

import importlib
import logging
import os
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np

from layerhub._private.registry.plugins import Registry
from layerhub._private.registry.plugins import registry as installed_registry
from layerhub.testing.rules import DEFAULT_FIX, MODULES, RULES
from layerhub.testing.rules._common import Broken, Case, Shape, checking, random_array, summary
from layerhub.testing.rules.compiled import POLICIES

__all__ = ["RULES", "ConformanceError", "ConformanceNote", "ConformanceReport", "check_layer"]

# Rule number -> its check, ``check(case)`` of its module; replaceable in tests.
_CHECKS: Final[dict[int, Callable[[Case], None]]] = {
    rule: importlib.import_module(f"layerhub.testing.rules.{module}").check
    for rule, module in MODULES.items()
}


class ConformanceNote(UserWarning):
    """Something ``check_layer`` could not check, or a choice worth knowing (not a failure)."""


class ConformanceReport:
    """What a passing ``check_layer`` returns: the rules it ran and its notes.

    Attributes:
        rules: the numbers of the rules that ran.
        notes: what was not checked and why, such as a layer without masking support.
    """

    def __init__(self, rules: Sequence[int], notes: Sequence[str]) -> None:
        self.rules = list(rules)
        self.notes = list(notes)

    def __repr__(self) -> str:
        return f"ConformanceReport(rules={self.rules}, notes={self.notes})"


class ConformanceError(AssertionError):
    """``check_layer`` found broken rules.

    The message has one paragraph per broken rule: ``[layerhub rule N: title]``, what was seen,
    and the usual fix. A failure that another rule's failure explains comes after it, marked
    ``(a consequence of rule N)``; the notes come last.

    Attributes:
        failures: rule number -> that rule's paragraph, causes first, then consequences.
        consequences: rule number -> the number of the rule whose failure explains it.
        notes: what was not checked, and why.
    """

    def __init__(
        self,
        failures: Mapping[int, str],
        consequences: Mapping[int, int] | None = None,
        notes: Sequence[str] = (),
    ) -> None:
        self.consequences = dict(consequences or {})
        order = sorted(failures, key=lambda rule: (rule in self.consequences, rule))
        self.failures = {rule: failures[rule] for rule in order}
        self.notes = list(notes)
        text = "\n\n".join(self.failures.values())
        if self.notes:
            text += "\n\nNotes:\n" + "\n".join(f"- {note}" for note in self.notes)
        super().__init__(text)

    @property
    def rules(self) -> list[int]:
        """The numbers of the broken rules, in rule order."""
        return sorted(self.failures)

    @property
    def causes(self) -> list[int]:
        """The broken rules that no other broken rule explains: fix these first."""
        return [rule for rule in self.failures if rule not in self.consequences]


def check_layer(
    layer_cls: type[Any],
    init_kwargs: Mapping[str, Any] | None,
    input_shape: Shape | Sequence[Shape] | None,
    *,
    input_dtype: str = "float32",
    input_data: Any = None,
    rules: Iterable[int] | None = None,
    skip: Iterable[int] = (),
    config_exempt: Iterable[str] = (),
    mixed_precision: str | Sequence[str] | None = POLICIES,
    tmp_path: str | os.PathLike[str] | None = None,
    atol: float = 1e-4,
    rtol: float = 1e-4,
    seed: int = 0,
    registry: Registry | None = None,
) -> ConformanceReport:
    """Check that a layer class follows the layerhub rules, and explain any it breaks.

    Modelled on the checks Keras runs on its own layers. Every selected rule runs on fresh
    instances, so one run reports every broken rule, the failures another one explains marked
    as its consequences; about five seconds per layer on a CPU, most of it the one fresh
    interpreter of rule 2.

    1. ``from_config(get_config())`` gives an equal config; every constructor argument is in it,
       the config holds plain JSON values (no arrays, no lambdas), and a layer made with
       ``name=``, ``trainable=False`` and ``dtype="float64"`` keeps them.
    2. Saved with ``layerhub.save_model``, loaded with ``layerhub.load_model`` in a fresh
       interpreter without ``custom_objects``, the model gives the same outputs.
    3. ``compute_output_shape`` equals the real output shapes; an unknown batch size works.
    4. Weights are created in ``build()`` only: calling the layer creates none.
    5. Every trainable weight receives a gradient: with seeded weights, inputs and loss, each
       weight's largest gradient is above ``1e-6`` times the layer's largest. The layer is used
       as initialised: if a weight is initialised so that it blocks the others' gradient (a zero
       gate such as PAM's ``gamma``), pass ``init_kwargs`` that make it non-zero, such as
       ``{"gamma_initializer": "ones"}``.
    6. It works in a model compiled with ``jit_compile=True`` (predict and a training step), and
       under each ``mixed_precision`` dtype policy: outputs in the compute dtype, weights in
       float32, all finite. The global dtype policy is always restored.
    7. It is registered as ``"<top-level package>>ClassName"`` and its plugin's hooks and
       entry-point metadata agree (it is provided by an installed, loaded plugin).
    8. A layer that supports masking (``supports_masking``, ``compute_mask`` or a ``mask``
       argument of ``call``) returns a mask that fits its outputs, runs behind
       ``keras.layers.Masking``, and its unmasked outputs ignore the masked steps. It needs one
       float input of rank 3 or more, ``(batch, steps, features)``; otherwise, or when the
       layer does not support masking, the report gets a note instead.

    Notes (what was not checked) are returned in the report and issued as ``ConformanceNote``
    warnings, which pytest lists in its warnings summary.

    Example:

    >>> from layerhub.testing import check_layer
    >>> from layerhub_scale import Scale
    >>> check_layer(Scale, {"axis": -1}, (2, 3))  # doctest: +SKIP

    Args:
        layer_cls: the layer class.
        init_kwargs: constructor arguments of the instances checked.
        input_shape: the input shape with a batch size, such as ``(2, 3)``; a list of shapes for
            a layer that takes a list of inputs. Optional when ``input_data`` is given.
        input_dtype: dtype of the generated inputs; floats are standard normal, integers lie in
            ``[0, 10)``.
        input_data: inputs to use instead of random ones (an array, or a list of arrays).
        rules: check only these rule numbers.
        skip: rule numbers not to check, such as ``(2, 7)`` for a layer defined in a test
            module rather than in an installed plugin.
        config_exempt: constructor arguments that rule 1 lets get_config() leave out, such as
            a runtime-only switch that a saved model should not pin.
        mixed_precision: the dtype policies of rule 6: one name, several, or ``None`` (or
            ``()``) to leave mixed precision out. By default both ``"mixed_float16"`` (whose
            range ends at 65504, so a ``1e9`` mask constant becomes inf) and
            ``"mixed_bfloat16"``.
        tmp_path: where rule 2 writes its files (a temporary directory by default).
        atol: absolute tolerance of output comparisons.
        rtol: relative tolerance of output comparisons.
        seed: seed of the generated inputs and of the weights of rules 5 and 8.
        registry: the registry of rule 7 (the installed plugins by default).

    Returns:
        A ``ConformanceReport`` with the rules run and the notes.

    Raises:
        ConformanceError: an ``AssertionError`` with one paragraph per broken rule.
        ValueError: unknown rule numbers, or neither ``input_shape`` nor ``input_data``.
    """
    __tracebackhide__ = True
    selected = sorted(set(RULES if rules is None else rules) - set(skip))
    if unknown := sorted(set(selected) - set(RULES)):
        raise ValueError(f"rules are numbered 1 to {len(RULES)}. Received: rules={unknown}")
    if isinstance(mixed_precision, str):
        policies: tuple[str, ...] = (mixed_precision,)
    else:
        policies = tuple(mixed_precision or ())
    case = _make_case(
        layer_cls,
        dict(init_kwargs or {}),
        frozenset(config_exempt),
        input_shape,
        input_dtype,
        input_data,
        policies,
        Path(tmp_path) if tmp_path is not None else None,
        atol,
        rtol,
        seed,
        registry or installed_registry,
    )
    try:
        case.new_layer()
    except Exception as error:
        message = _message(
            1,
            case,
            f"{layer_cls.__name__}(**{case.init_kwargs!r}) raised {summary(error)}",
            "pass init_kwargs the constructor accepts",
        )
        raise ConformanceError({1: message}) from error
    broken: dict[int, Broken] = {}
    # Each check makes new models and tf.functions on purpose: TF's retracing advice is noise.
    tf_logger = logging.getLogger("tensorflow")
    level = tf_logger.level
    tf_logger.setLevel(logging.ERROR)
    try:
        with checking(layer_cls):
            for rule in selected:
                try:
                    _CHECKS[rule](case)
                except Broken as error:
                    broken[rule] = error
    finally:
        tf_logger.setLevel(level)
    for note in case.notes:
        warnings.warn(f"{layer_cls.__name__}: {note}", ConformanceNote, stacklevel=2)
    if broken:
        raise _error(case, broken)
    return ConformanceReport(selected, case.notes)


def _error(case: Case, broken: Mapping[int, Broken]) -> ConformanceError:
    """The report of the broken rules: the causes first, the failures they explain after."""
    consequences = {
        rule: error.cause
        for rule, error in broken.items()
        if error.cause is not None and error.cause != rule and error.cause in broken
    }
    failures = {}
    for rule, error in broken.items():
        if rule in consequences:
            cause = consequences[rule]
            seen = f"(a consequence of rule {cause}: {RULES[cause]}) {error.seen}"
            fix = f"fix rule {cause} first; this failure should then go away"
        else:
            seen, fix = error.seen, error.fix or DEFAULT_FIX[rule]
            if rule == error.cause:  # the pointer to itself adds nothing
                seen = seen.replace(f" (weights are being created in call(): see rule {rule})", "")
        failures[rule] = _message(rule, case, seen, fix)
    roots = [r for r in sorted(broken) if r not in consequences]
    first = broken[roots[0]] if roots else next(iter(broken.values()))
    report = ConformanceError(failures, consequences, case.notes)
    report.__cause__ = first.__cause__
    return report


def _make_case(
    cls: type[Any],
    init_kwargs: dict[str, Any],
    config_exempt: frozenset[str],
    input_shape: Shape | Sequence[Shape] | None,
    dtype: str,
    input_data: Any,
    mixed_precision: tuple[str, ...],
    tmp_path: Path | None,
    atol: float,
    rtol: float,
    seed: int,
    registry: Registry,
) -> Case:
    rng = np.random.default_rng(seed)
    if input_data is not None:
        multi = isinstance(input_data, (list, tuple))
        inputs = [np.asarray(x) for x in input_data] if multi else [np.asarray(input_data)]
        shapes: list[Shape] = [tuple(x.shape) for x in inputs]
    elif input_shape is None:
        raise ValueError("check_layer needs input_shape or input_data")
    else:
        multi = bool(input_shape) and all(isinstance(s, (list, tuple)) for s in input_shape)
        raw = list(input_shape) if multi else [input_shape]
        shapes = [tuple(s) for s in raw]  # type: ignore[arg-type]
        if any(d is None for s in shapes for d in s):
            raise ValueError(
                f"input_shape must be fully known, batch size included. Received: {input_shape}"
            )
        inputs = [random_array(rng, s, dtype) for s in shapes]  # type: ignore[arg-type]
    return Case(
        cls,
        init_kwargs,
        config_exempt,
        shapes,
        multi,
        inputs,
        mixed_precision,
        tmp_path,
        atol,
        rtol,
        registry,
        rng,
        seed,
    )


def _message(rule: int, case: Case, seen: str, fix: str) -> str:
    return f"[layerhub rule {rule}: {RULES[rule]}] {case.cls.__name__}: {seen}\n  Fix: {fix}"
