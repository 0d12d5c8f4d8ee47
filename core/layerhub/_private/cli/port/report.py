"""What ``layerhub port`` prints: the findings line by line, and the parity table."""

from __future__ import annotations

from collections.abc import Sequence

from layerhub._private.cli.port.check import TOLERANCE, Row
from layerhub._private.cli.port.rewrite import Finding
from layerhub._private.guard.untrusted import MAX_PATH, shown

_MESSAGE = 300
# Why the .h5 column could not be checked, in a word.
_SKIPPED = {
    "could not save": "not saved",
    "not installed": "no plugin",
    "same Keras 2 name": "name taken",
    "another plugin's class": "name taken",
}


def findings(source: str, found: Sequence[Finding]) -> list[str]:
    """One line a finding, ``SOURCE:LINE: TODO(port): ...`` or ``SOURCE:LINE: note: ...``."""
    where = shown(source, MAX_PATH)
    return [
        f"{where}:{f.line}: {'TODO(port)' if f.todo else 'note'}: {shown(f.message, _MESSAGE)}"
        for f in found
    ]


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.2e}"


def _h5(value: float | str | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        for key, short in _SKIPPED.items():
            if key in value:
                return short
        return shown(value, _MESSAGE)
    return _number(value)


def parity_table(rows: Sequence[Row]) -> list[str]:
    """The ``--check`` table: one row a layer and example."""
    header = [
        "layer",
        "input shape",
        "weights",
        "max |out diff|",
        "max |grad diff|",
        "Keras 2 .h5",
        "result",
    ]
    lines = [header]
    for row in rows:
        if row.ok:
            result = "ok"
        elif row.error is not None:
            result = f"FAILED: {shown(row.error, _MESSAGE)}"
        elif not row.h5_ok:
            result = "FAILED: the Keras 2 .h5 file does not load as the original predicts"
        else:
            result = f"FAILED: differs by more than {TOLERANCE:g} x {row.scale:.3g}"
        lines.append(
            [
                shown(row.item.cls),
                shown(row.item.input_shape),
                shown(", ".join(row.weights) or "-"),
                _number(row.output),
                _number(row.gradient),
                _h5(row.h5),
                result,
            ]
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header) - 1)]
    return [
        "  ".join([*(cell.ljust(w) for cell, w in zip(line, widths, strict=False)), line[-1]])
        for line in lines
    ]
