"""Rule 8: a layer that supports masking propagates the mask as declared and honours it.

The rule puts ``keras.layers.Masking`` in front of the layer, so it needs one floating-point
input of rank 3 or more, ``(batch, steps, features)``: the last steps of some samples are
masked. It checks that the output mask (``compute_mask``) fits the outputs, that a model with
``Masking`` in front runs, and that the outputs at unmasked positions do not depend on the
values at masked ones. A layer without masking support, or inputs the rule cannot mask, get a
note in the report instead.
"""

from __future__ import annotations

import inspect
from typing import Any

import keras
import numpy as np

from layerhub.testing.rules import RULES
from layerhub.testing.rules._common import Broken, Case, doing, is_float, numpy, show

_TITLE = f"rule 8 ({RULES[8]})"


def _declares_masking(layer: Any) -> tuple[bool, bool, bool]:
    """``(supports_masking, own compute_mask, call takes mask)``."""
    own = type(layer).compute_mask is not keras.layers.Layer.compute_mask
    takes = "mask" in inspect.signature(layer.call).parameters
    return bool(layer.supports_masking), own, takes


def check(case: Case) -> None:
    __tracebackhide__ = True
    name = case.cls.__name__
    layer = case.new_layer()
    supports, own_mask, takes_mask = _declares_masking(layer)
    if not (supports or own_mask or takes_mask):
        case.notes.append(
            f"{_TITLE}: {name} does not support masking (supports_masking is False and it "
            "defines no compute_mask), so Keras drops a mask that reaches it; set "
            "self.supports_masking = True in __init__ if it computes each step on its own"
        )
        return
    x = case.inputs[0]
    if case.multi or x.ndim < 3 or x.shape[1] < 2 or not np.issubdtype(x.dtype, np.floating):
        case.notes.append(
            f"{_TITLE}: {name} supports masking, but masking was not checked: the rule puts "
            "keras.layers.Masking in front, which needs one float input of shape (batch, steps, "
            f"features) or more dimensions with at least 2 steps; the inputs are "
            f"{show(case.shape_arg())}"
        )
        return
    mask = np.ones(x.shape[:-1], dtype=bool)
    mask[0, -1:] = False
    if len(x) > 1 and x.shape[1] > 2:
        mask[1, -2:] = False
    padded = np.where(mask[..., None], x, 0).astype(x.dtype)
    noisy = np.where(mask[..., None], x, np.random.default_rng(case.seed + 1).normal(size=x.shape))
    noisy = noisy.astype(x.dtype)

    keras.utils.set_random_seed(case.seed)
    # A call() without a mask argument never sees the mask: Keras only propagates it.
    given = {"mask": mask} if takes_mask else {}
    with doing(f"calling the layer with a mask of shape {show(mask.shape)}"):
        outputs = keras.tree.flatten(layer(padded, **given))
        again = keras.tree.flatten(layer(noisy, **given))
    with doing(f"compute_mask(inputs, mask of shape {show(mask.shape)})"):
        out_mask = layer.compute_mask(padded, mask)
    masks = keras.tree.flatten(out_mask) if out_mask is not None else []
    masks = [m for m in masks if m is not None]
    if supports and not masks:
        _check_mask_not_dropped(case, outputs, mask, takes_mask)
    for index, (tensor, m) in enumerate(zip(outputs, masks, strict=False)):
        shape, mshape = tuple(tensor.shape), tuple(m.shape)
        if shape[: len(mshape)] != mshape:
            how = (
                "supports_masking = True passes the input mask through unchanged"
                if not own_mask
                else "compute_mask returns"
            )
            raise Broken(
                f"{how}, a mask of shape {show(mshape)}, but output {index} has shape "
                f"{show(shape)}; the mask must cover the output's leading axes",
            )
    _check_model(case, padded)
    _check_masked_values_ignored(case, outputs, again, masks, out_mask, takes_mask)


def _check_mask_not_dropped(
    case: Case, outputs: list[Any], mask: np.ndarray[Any, Any], takes_mask: bool
) -> None:
    """A layer that keeps the steps must hand the mask on: ``None`` drops it silently.

    Keras warns when a layer without masking support drops a mask; one that sets
    ``supports_masking`` and returns ``None`` from ``compute_mask`` drops it without a word, and
    the layers after it (an LSTM, a masked loss) then treat the padded steps as data.
    """
    __tracebackhide__ = True
    kept = [
        index
        for index, tensor in enumerate(outputs)
        if len(tensor.shape) == mask.ndim + 1 and tuple(tensor.shape[: mask.ndim]) == mask.shape
    ]
    if not kept:
        return  # the steps are gone (pooled, flattened): ending the mask is right
    name = case.cls.__name__
    seen = (
        f"{name} sets supports_masking = True, but compute_mask returns None although output "
        f"{kept[0]} keeps the steps of its input (shape {show(tuple(outputs[kept[0]].shape))}): "
        "the mask the layer before it produced is dropped, and the layers after it treat the "
        "masked steps as data"
    )
    fix = (
        "return the mask from compute_mask (return mask), or delete compute_mask so that "
        "supports_masking passes the mask through"
    )
    if not takes_mask:
        raise Broken(seen, fix)
    # call() takes the mask, so the layer may end the masking on purpose: say so, do not fail.
    case.notes.append(
        f"{_TITLE}: {seen}; if {name} consumes the mask on purpose, nothing is wrong, otherwise "
        f"{fix}"
    )


def _check_model(case: Case, padded: np.ndarray[Any, Any]) -> None:
    """A model with ``Masking`` in front runs."""
    __tracebackhide__ = True
    with doing("calling a model keras.Input -> keras.layers.Masking(0.0) -> the layer"):
        inputs = keras.Input(padded.shape[1:], dtype=padded.dtype.name)
        built = keras.Model(inputs, case.new_layer()(keras.layers.Masking(0.0)(inputs)))
        built(padded, training=False)


def _check_masked_values_ignored(
    case: Case,
    outputs: list[Any],
    again: list[Any],
    masks: list[Any],
    out_mask: Any,
    takes_mask: bool,
) -> None:
    __tracebackhide__ = True
    for index, (first, second) in enumerate(zip(outputs, again, strict=True)):
        if not is_float(first):
            continue
        a, b = numpy(first), numpy(second)
        if index < len(masks):
            keep = np.asarray(numpy(masks[index]), dtype=bool)
            where = "at unmasked positions"
        elif out_mask is None and takes_mask:
            keep = np.ones(a.shape[:1], dtype=bool)  # it consumes the mask: nothing may change
            where = "anywhere (compute_mask returns None, so the mask is consumed)"
        else:
            continue
        a, b = a[keep], b[keep]
        scale = 1 + float(np.max(np.abs(a))) if a.size else 1.0
        if not np.allclose(a, b, atol=case.atol * scale, rtol=case.rtol, equal_nan=True):
            diff = float(np.max(np.abs(a.astype("float64") - b.astype("float64"))))
            raise Broken(
                f"changing only the masked input steps changed output {index} {where} (max "
                f"abs difference {diff:.3g}): the layer claims masking support but mixes the "
                "masked steps into the others",
                "take mask=None in call() and leave the masked steps out (e.g. add a large "
                "negative number to masked attention scores, or weight a mean by the mask); "
                "or, if it cannot, set supports_masking = False",
            )
