"""The ``layerhub port`` subcommand: port, report, and with ``--check`` compare with tf-keras."""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
from pathlib import Path
from typing import Any

from layerhub._private.cli.port import PortError, parse_example, port
from layerhub._private.guard.untrusted import MAX_PATH, shown

EXIT_OK = 0
EXIT_PROBLEM = 1


def run(args: argparse.Namespace) -> int:
    """Run ``layerhub port``; exit status 1 when code was left untranslated, a layer has no
    example, or the parity check failed."""
    if importlib.util.find_spec("libcst") is None:
        raise PortError("layerhub port needs libcst: pip install 'layerhub[port]'")
    from layerhub._private.cli.command import _import_keras_quietly
    from layerhub._private.cli.port import check, report

    # The port looks names up in Keras 3; TensorFlow's start-up lines are noise here.
    _import_keras_quietly()

    examples = dict(parse_example(text) for text in args.example)
    ported = port(
        args.source,
        classes=args.classes,
        parent=args.dir,
        distribution=args.dist,
        examples=examples,
    )
    lines = report.findings(os.path.basename(args.source), ported.findings)
    rows: list[check.Row] = []
    if args.check:
        items = [
            check.Item(Path(args.source), name, ported.root, ported.package, *example)
            for name, example in ported.examples.items()
            if example is not None
        ]
        rows = check.parity(items) if items else []
    failed = not ported.complete or any(not row.ok for row in rows)
    if args.json:
        print(json.dumps(_as_json(ported, lines, rows), indent=2))
        return EXIT_PROBLEM if failed else EXIT_OK
    plural = "s" if len(ported.layers) > 1 else ""
    print(
        f"created {shown(str(ported.root), MAX_PATH)} (distribution {ported.distribution}, "
        f"layer{plural} {', '.join(ported.layers)}, code in {ported.package}/{ported.module}.py)"
    )
    todo = sum(1 for f in ported.findings if f.todo)
    print()
    print(
        f"report: {todo} construct(s) left marked TODO(port), {len(ported.findings) - todo} note(s)"
    )
    for line in lines:
        print(f"  {line}")
    print()
    print("examples the kit runs (LAYERHUB_EXAMPLES):")
    for name, example in ported.examples.items():
        shown_example = (
            "none found: TODO(port), give one with --example"
            if example is None
            else (f"init_kwargs={example[0]!r}, input_shape={example[1]!r}")
        )
        print(f"  {name}: {shown(shown_example, 300)}")
    if args.check:
        print()
        print("tf-keras (original) against Keras 3 (port), same inputs, weights copied by name:")
        for line in report.parity_table(rows):
            print(f"  {line}")
    where = os.path.relpath(ported.root)
    print()
    print("next:")
    if todo:
        print(f"  fix each TODO(port) in {os.path.join(where, ported.package, ported.module)}.py")
    print(f"  pip install -e {where}")
    print(f"  pytest {where}")
    return EXIT_PROBLEM if failed else EXIT_OK


def _as_json(ported: Any, lines: list[str], rows: list[Any]) -> dict[str, Any]:
    return {
        "root": str(ported.root),
        "distribution": ported.distribution,
        "package": ported.package,
        "module": ported.module,
        "layers": ported.layers,
        "complete": ported.complete,
        "findings": [
            {"line": f.line, "todo": f.todo, "class": f.cls, "message": shown(f.message, 300)}
            for f in ported.findings
        ],
        "report": lines,
        "examples": {
            name: None if ex is None else {"init_kwargs": ex[0], "input_shape": ex[1]}
            for name, ex in ported.examples.items()
        },
        "check": [
            {
                "class": r.item.cls,
                "input_shape": r.item.input_shape,
                "output": r.output,
                "gradient": r.gradient,
                "ok": r.ok,
                "error": r.error,
                "weights": list(r.weights),
            }
            for r in rows
        ],
    }
