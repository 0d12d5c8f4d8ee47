"""The ``layerhub`` command: list, explain and check installed plugins, and start new ones.

Exit status: 0 success; 1 something is missing or broken (``inspect``, ``doctor``) or an
unexpected error; 2 bad usage or bad input (a missing file, a corrupt archive, an unknown name).

Every subcommand takes ``--json``: its output, and any error, is then one JSON document on
stdout; an error is ``{"error": {"type": "ModelFileError", "message": "..."}}`` with the exit
status above, and its message is escaped exactly as on stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import json
import os
import sys
import traceback
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NoReturn

from layerhub._private.cli import scaffold
from layerhub._private.errors import LayerHubError, MissingPluginError
from layerhub._private.guard.untrusted import (
    MAX_PATH,
    described,
    distribution_name,
    shown,
    shown_path,
    version_string,
)
from layerhub._private.registry.backend import missing_backend
from layerhub._private.registry.plugins import PluginWarning, origin, registry
from layerhub._private.registry.records import LayerRecord, one_line

PROG = "layerhub"
EXIT_OK = 0
EXIT_PROBLEM = 1
EXIT_USAGE = 2
_WIDTH = 100
# The longest error message printed (README, "Security model").
MAX_MESSAGE = 1000
_HEALTHY = ("installed", "loaded")

Handler = Callable[[argparse.Namespace], int]


class UsageError(Exception):
    """Bad command-line usage; reported in one line with exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line instead of argparse's usage block; the hint points at the full help.
        raise UsageError(f"{message} (see '{self.prog} --help')")


# -- output helpers -------------------------------------------------------------------------------


def table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    """Rows of cells as left-aligned columns separated by two spaces; every cell escaped."""
    lines = [list(header), *([shown(c, MAX_PATH) for c in r] for r in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return [
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines
    ]


def _emit(lines: Iterable[str]) -> None:
    for line in lines:
        print(line)


# -- list -----------------------------------------------------------------------------------------


def cmd_list(args: argparse.Namespace) -> int:
    records = registry.list(args.pattern)
    if args.json:
        data = registry.to_dict()
        if args.pattern is not None:
            matched = {r.registered_name for r in records}
            data["records"] = [r for r in data["records"] if r["registered_name"] in matched]
        print(json.dumps(data, indent=2))
        return EXIT_OK
    if not records:
        print(
            f"no installed layer matches {args.pattern!r}"
            if args.pattern is not None
            else "no layerhub plugins are installed"
        )
        return EXIT_OK
    header = ("NAME", "REGISTERED NAME", "PLUGIN", "DISTRIBUTION", "VERSION", "STATUS")
    rows = [
        (
            r.name,
            r.registered_name,
            r.plugin,
            origin(r) if r.distribution is None else r.distribution,
            r.version or "-",
            r.status,
        )
        for r in records
    ]
    _emit(table(header, rows))
    _emit(_problem_lines(records))
    return EXIT_OK


def _problem_lines(records: Iterable[LayerRecord]) -> list[str]:
    """One line per plugin with a problem: which distribution, what status, why."""
    causes: dict[tuple[str, str], str] = {}
    for r in records:
        if r.status not in _HEALTHY:
            causes.setdefault((r.plugin, origin(r)), shown(f"{r.status}: {r.error}", MAX_PATH))
    if not causes:
        return []
    return ["", "problems:"] + [
        f"  {shown(plugin)} ({shown(source, MAX_PATH)}): {cause}"
        for (plugin, source), cause in sorted(causes.items())
    ]


# -- info -----------------------------------------------------------------------------------------


def cmd_info(args: argparse.Namespace) -> int:
    if (no_backend := missing_backend()) is not None:
        # Every plugin would fail to import the same way; say why once.
        return _fail_json(args, "MissingBackend", no_backend, EXIT_PROBLEM)
    obj = registry.get(args.name)
    record = next(r for r in registry.list() if args.name in (r.name, r.registered_name))
    legacy = sorted(n for n, o in registry.legacy_names(record.plugin).items() if o is obj)
    fields = [
        ("name", record.name),
        ("summary", summary(obj)),
        ("signature", signature(obj, width=_WIDTH - 17)),
        ("registered name", record.registered_name),
        ("module", f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', '?')}"),
        ("plugin", record.plugin),
        ("distribution", origin(record)),
        ("status", record.status + (f": {record.error}" if record.error else "")),
        ("legacy names", ", ".join(legacy) if legacy else "none (not loadable from Keras 2 .h5)"),
        ("install", record.pip_command or "-"),
    ]
    if args.json:
        data: dict[str, str | list[str]] = {key.replace(" ", "_"): value for key, value in fields}
        data["legacy_names"] = legacy
        print(json.dumps(data, indent=2))
        return EXIT_OK
    key_width = max(len(key) for key, _ in fields) + 2
    for key, value in fields:
        first, *rest = value.splitlines() or [""]
        print(f"{key.ljust(key_width)}{first}")
        _emit(" " * key_width + line for line in rest)
    return EXIT_OK


def summary(obj: Any) -> str:
    """The first line of the object's own docstring (not one inherited from keras)."""
    doc = obj.__dict__.get("__doc__") if isinstance(obj, type) else getattr(obj, "__doc__", None)
    lines = inspect.cleandoc(doc).splitlines() if isinstance(doc, str) else []
    return lines[0] if lines and lines[0] else "(no docstring)"


def signature(obj: Any, *, width: int = _WIDTH) -> str:
    """``Name(arg=default, ...)`` without annotations; one argument a line when too long."""
    try:
        if isinstance(obj, type):
            # Not signature(obj): keras.layers.Layer defines __new__(*args, **kwargs).
            init = inspect.getattr_static(obj, "__init__")
            params = list(inspect.signature(init).parameters.values())[1:]
        else:
            params = list(inspect.signature(obj).parameters.values())
    except (TypeError, ValueError):
        return f"{getattr(obj, '__name__', obj)}(...)"
    parts = _parameter_strings(params)
    name = getattr(obj, "__name__", "?")
    one_line_form = f"{name}({', '.join(parts)})"
    if len(one_line_form) <= width or not parts:
        return one_line_form
    return "\n".join([f"{name}(", *(f"    {p}," for p in parts), ")"])


def _parameter_strings(params: Sequence[inspect.Parameter]) -> list[str]:
    parts: list[str] = []
    star_done = False
    for i, p in enumerate(params):
        bare = p.replace(annotation=inspect.Parameter.empty)
        if p.kind is p.VAR_POSITIONAL:
            star_done = True
        if p.kind is p.KEYWORD_ONLY and not star_done:
            parts.append("*")
            star_done = True
        parts.append(str(bare))
        last_positional_only = p.kind is p.POSITIONAL_ONLY and (
            i + 1 == len(params) or params[i + 1].kind is not p.POSITIONAL_ONLY
        )
        if last_positional_only:
            parts.append("/")
    return parts


# -- inspect --------------------------------------------------------------------------------------


def cmd_inspect(args: argparse.Namespace) -> int:
    from layerhub._private.guard import checks
    from layerhub._private.loading import open_model
    from layerhub._private.registry import resolve

    if args.json and args.requirements:
        raise UsageError("argument --requirements: not allowed with argument --json")
    opened = open_model(args.model)
    checks.check_config(opened.path, opened.config, safe_mode=False)
    if opened.keras2 and not args.verbose:
        # Which Keras 2 names are Keras' own is asked of Keras; .keras files need no keras.
        _import_keras_quietly()
    needs = resolve.needs(opened, registry)
    saved = opened.manifest.objects if opened.manifest is not None else {}
    rows = [_need_row(need, saved.get(need.name)) for need in needs]
    problems = [
        (need, row[-1])
        for need, row in zip(needs, rows, strict=True)
        if not row[-1].startswith("ok")
    ]
    if args.requirements:
        return _print_requirements(needs, saved)
    if args.json:
        print(json.dumps(_inspect_json(opened, rows, problems), indent=2))
        return EXIT_PROBLEM if problems else EXIT_OK
    print(f"{shown_path(opened.path)}: {opened.description}{_origin(opened)}")
    if not needs:
        print("it uses only Keras built-in objects")
        return EXIT_OK
    _emit(table(("NAME", "PLUGIN", "SAVED WITH", "INSTALLED", "STATUS"), rows))
    _emit(_remedy_lines(problems, opened))
    return EXIT_PROBLEM if problems else EXIT_OK


def _inspect_json(opened: Any, rows: Sequence[Sequence[str]], problems: Sequence[Any]) -> Any:
    """``inspect --json``: stable keys, every string from the file escaped as in the table."""
    keys = ("name", "plugin", "saved_with", "installed", "status")
    return {
        "file": shown_path(opened.path),
        "format": opened.description,
        "layerhub_version": (
            _claimed_version(opened.manifest.layerhub_version)
            if opened.manifest is not None
            else None
        ),
        "needs": [dict(zip(keys, row, strict=True)) for row in rows],
        "ok": not problems,
    }


def _print_requirements(needs: Sequence[Any], saved: Any) -> int:
    """One ``name==version`` line per plugin distribution the model needs, for ``pip -r``."""
    from layerhub._private.registry import resolve

    lines: set[str] = set()
    unknown = []
    for need in needs:
        entry = resolve.missing_entry(need.name, saved.get(need.name))
        installed = [p for p in need.providers if p.distribution is not None]
        if entry.distribution is not None and entry.version is not None:
            lines.add(f"{entry.distribution}=={entry.version}")
        elif installed:
            lines.add(f"{installed[0].distribution}=={installed[0].version}")
        elif entry.distribution is not None:
            lines.add(entry.distribution)
        elif not need.by_keras:
            unknown.append(shown(need.name))
    _emit(sorted(lines))
    if unknown:
        print(f"{PROG}: no distribution is known for {', '.join(unknown)}", file=sys.stderr)
        return EXIT_PROBLEM
    return EXIT_OK


# -- requirements ---------------------------------------------------------------------------------


def cmd_requirements(args: argparse.Namespace) -> int:
    """The requirement lines a worker needs for this file, for ``pip install -r``."""
    from layerhub._private import engines
    from layerhub._private.loading import open_model

    if open_model(args.model).keras2 and not args.verbose:
        _import_keras_quietly()
    found = engines.needs_of(args.model)
    lines = [*engines.core_requirements(), *found.lines] if args.with_core else list(found.lines)
    unknown = [shown(name) for name in found.unknown]
    if args.json:
        print(json.dumps({"requirements": lines, "unknown": unknown, "ok": not unknown}, indent=2))
    else:
        _emit(lines)
    if unknown:
        if not args.json:
            print(f"{PROG}: no distribution is known for {', '.join(unknown)}", file=sys.stderr)
        return EXIT_PROBLEM
    return EXIT_OK


def _origin(opened: Any) -> str:
    if opened.keras2:
        return ""
    if opened.manifest is None:
        return " without a layerhub manifest (saved with plain model.save)"
    return f", layerhub manifest from layerhub {_claimed_version(opened.manifest.layerhub_version)}"


def _need_row(need: Any, entry: Any) -> tuple[str, str, str, str, str]:
    """NAME, PLUGIN, SAVED WITH, INSTALLED, STATUS for one needed name; file strings escaped."""
    providers = need.providers
    saved_version = version_string(entry.version) if entry is not None else None
    if need.by_keras:
        status = "ok (registered with Keras)"
    elif getattr(need, "skipped", False):
        # As Keras: the model's own compile() means the training config is never read.
        status = "ok (not compiled: the model overrides compile())"
    elif not providers:
        status = "missing" + (" (training config)" if need.compile_only else "")
    elif len({p.registered_name for p in providers}) > 1:
        status = "ambiguous"
    elif providers[0].status not in _HEALTHY:
        status = providers[0].status
    elif saved_version is not None and saved_version != providers[0].version:
        status = f"ok (saved with {saved_version})"
    else:
        status = "ok"
    saved = _saved_with(entry) if entry is not None else ""
    return (
        shown(need.name),
        ", ".join(sorted({p.plugin for p in providers})) or "-",
        saved or "-",
        ", ".join(sorted({f"{p.distribution} {p.version}" for p in providers})) or "-",
        status,
    )


def _claimed_version(version: object) -> str:
    """A version from the file: its normal form if valid, else only what it is."""
    valid = version_string(version)
    return valid if valid is not None else f"(not a valid version: {described(version)})"


def _saved_with(entry: Any) -> str:
    """SAVED WITH: the manifest's distribution and version, each only if ``packaging`` accepts
    it; a claim that fails validation is described, never echoed, not even escaped."""
    parts = []
    if entry.distribution is not None:
        name = distribution_name(entry.distribution)
        parts.append(name if name is not None else f"({described(entry.distribution)})")
    if entry.version is not None:
        parts.append(_claimed_version(entry.version))
    return " ".join(parts)


def _remedy_lines(problems: Sequence[tuple[Any, str]], opened: Any) -> list[str]:
    """What to do about each (need, status) that is not ok."""
    from layerhub._private.registry import resolve

    if not problems:
        return []
    saved = opened.manifest.objects if opened.manifest is not None else {}
    lines = [""]
    entries = []
    for need, status in problems:
        if need.providers:
            lines.append(f"{shown(need.name)}: {status}; run 'layerhub doctor' for the cause")
            continue
        entry = resolve.missing_entry(need.name, saved.get(need.name))
        entries.append(entry)
        if entry.note is not None:
            lines.append(f"{shown(need.name)}: {entry.note}")
        elif entry.distribution is None:
            lines.append(f"{shown(need.name)}: no installed plugin provides it; {resolve.HINT}")
    pip = MissingPluginError(entries).pip_command if entries else None
    if pip is not None:
        lines.append(f"missing plugins; install them with: {pip}")
    return lines


# -- doctor ---------------------------------------------------------------------------------------


def cmd_doctor(args: argparse.Namespace) -> int:
    no_backend = missing_backend()
    if no_backend is None:
        registry.load_all()
    records = registry.list()
    if args.json:
        unhealthy = [r for r in records if r.status not in _HEALTHY]
        report = {
            "backend_problem": no_backend,
            "records": [r.to_dict() for r in records],
            "ok": no_backend is None and not unhealthy,
        }
        print(json.dumps(report, indent=2))
        return EXIT_OK if report["ok"] else EXIT_PROBLEM
    if not records:
        print("no layerhub plugins are installed")
        return EXIT_OK
    plugins: dict[tuple[str, str, str], list[LayerRecord]] = defaultdict(list)
    for r in records:
        distribution = origin(r) if r.distribution is None else r.distribution
        plugins[(r.plugin, distribution, r.version or "-")].append(r)
    rows = []
    for (plugin, distribution, version), group in sorted(plugins.items()):
        status = next((r.status for r in group if r.status not in _HEALTHY), "ok")
        if no_backend is not None and status == "ok":
            status = "unchecked"
        rows.append((status, plugin, distribution, version, ", ".join(r.name for r in group)))
    _emit(table(("STATUS", "PLUGIN", "DISTRIBUTION", "VERSION", "OBJECTS"), rows))
    if no_backend is not None:
        print()
        print(f"cannot import any plugin: {no_backend}")
        return EXIT_PROBLEM
    problems = _problem_lines(records)
    _emit(problems)
    _emit(_ambiguity_lines(records))
    broken = sum(1 for row in rows if row[0] != "ok")
    print()
    if broken:
        print(f"{broken} of {_plural(len(rows), 'plugin')} with problems")
        return EXIT_PROBLEM
    print(f"{_plural(len(rows), 'plugin')} checked: each loads and agrees with its metadata")
    return EXIT_OK


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _ambiguity_lines(records: Iterable[LayerRecord]) -> list[str]:
    by_name: dict[str, set[str]] = defaultdict(set)
    for r in records:
        by_name[r.name].add(r.registered_name)
    return [
        f"note: {name} is provided as {', '.join(sorted(regs))}; use the registered name, "
        "and Keras 2 .h5 files naming it cannot be resolved"
        for name, regs in sorted(by_name.items())
        if len(regs) > 1
    ]


# -- convert --------------------------------------------------------------------------------------


def cmd_verify(args: argparse.Namespace) -> int:
    from layerhub._private.keras2.verify import verify

    done = verify(args.source, args.target, reference=args.reference)
    if args.json:
        print(json.dumps(done.as_dict(), indent=2))
    else:
        _emit(done.lines())
    return EXIT_OK if done.ok else EXIT_PROBLEM


def cmd_convert(args: argparse.Namespace) -> int:
    from layerhub._private.keras2.convert import convert

    done = convert(args.source, args.target, compile=args.compile, atol=args.atol)
    if args.json:
        report = {
            "source": shown_path(done.source),
            "target": shown_path(done.target),
            "format": done.description,
            "plugin_objects": {shown(k): v for k, v in sorted(done.plugin_layers.items())},
            "weights": done.weights,
            "max_difference": done.max_difference,
            "atol": done.atol,
            "verification": done.verification.as_dict() if done.verification else None,
            "ok": done.ok,
        }
        print(json.dumps(report, indent=2))
        return EXIT_OK if done.ok else EXIT_PROBLEM
    _emit(done.lines())
    return EXIT_OK if done.ok else EXIT_PROBLEM


# -- new ------------------------------------------------------------------------------------------


def cmd_new(args: argparse.Namespace) -> int:
    layers = [scaffold.plugin_names(args.name, layer) for layer in args.layer]
    names = layers[0]
    root, files = scaffold.write_plugin(names, args.dir, more=layers[1:])
    if args.json:
        created = {
            "root": str(root),
            "distribution": names.distribution,
            "layers": [n.class_name for n in layers],
            "files": [str(path) for path in files],
        }
        print(json.dumps(created, indent=2))
        return EXIT_OK
    classes = ", ".join(n.class_name for n in layers)
    plural = "s" if len(layers) > 1 else ""
    print(f"created {root} (distribution {names.distribution}, layer{plural} {classes})")
    _emit(f"  {path.relative_to(root.parent)}" for path in files)
    where = os.path.relpath(root)
    print()
    print("next:")
    for layer in layers:
        print(f"  edit {os.path.join(where, layer.package, layer.module + '.py')}")
    print(f"  pip install -e {where}")
    print(f"  pytest {where}")
    print(f"  layerhub list {names.class_name}")
    return EXIT_OK


def cmd_add_layer(args: argparse.Namespace) -> int:
    names, files = scaffold.add_layer(args.dir, args.layer)
    if args.json:
        added = {
            "distribution": names.distribution,
            "layer": names.class_name,
            "files": [str(path) for path in files],
            "reinstall_needed": True,
        }
        print(json.dumps(added, indent=2))
        return EXIT_OK
    root = os.path.relpath(args.dir)
    print(f"added layer {names.class_name} to {names.distribution} ({root})")
    _emit(f"  {os.path.relpath(path)}" for path in files)
    print()
    print("reinstall needed: the plugin's entry points changed, and they take effect only when")
    print("it is installed again:")
    print(f"  pip install -e {root}")
    print(f"  pytest {root}")
    return EXIT_OK


def cmd_port(args: argparse.Namespace) -> int:
    # layerhub port (issue 27): its own module, imported only when used (it needs libcst).
    from layerhub._private.cli.port.command import run

    return run(args)


# -- entry point ----------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    from layerhub import __version__

    common = _Parser(add_help=False)
    # SUPPRESS: a subcommand's unset flag must not reset one given before the subcommand.
    common.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="show full tracebacks"
    )
    common.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=argparse.SUPPRESS,
        help="show the Keras backend's start-up logs",
    )
    common.add_argument(
        "--json",
        action="store_true",
        default=argparse.SUPPRESS,
        help="print the output, and any error, as JSON on stdout",
    )
    parser = _Parser(
        prog=PROG,
        description="List, explain and check installed layerhub plugins, and start new ones.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="show the Keras backend's start-up logs"
    )
    parser.add_argument(
        "--json", action="store_true", help="print the output, and any error, as JSON on stdout"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, handler: Handler, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, parents=[common], help=help, description=help)
        p.set_defaults(handler=handler)
        return p

    p = command("list", cmd_list, "installed layers, from metadata only (imports no plugin)")
    p.add_argument("pattern", nargs="?", metavar="PATTERN", help="fnmatch wildcard, like '*norm*'")

    p = command("info", cmd_info, "one layer: summary, signature, registration and versions")
    p.add_argument("name", metavar="NAME", help="class name or registered name")

    p = command("inspect", cmd_inspect, "what a model file needs (builds nothing, imports nothing)")
    p.add_argument("model", metavar="MODEL", help=".keras or .h5 file, or SavedModel directory")
    p.add_argument(
        "--requirements",
        action="store_true",
        help="print the plugin requirements (name==version), for pip install -r",
    )

    p = command("requirements", cmd_requirements, "what a worker needs to install for a model file")
    p.add_argument("model", metavar="MODEL", help=".keras or .h5 file, or SavedModel directory")
    p.add_argument(
        "--with-core",
        action="store_true",
        help="also keras and layerhub, pinned to the versions installed here",
    )

    command("doctor", cmd_doctor, "import every plugin and report broken or inconsistent ones")

    p = command("convert", cmd_convert, "convert a Keras 2 model to .keras and check the result")
    p.add_argument("source", metavar="OLD", help=".h5 file or Keras 2 SavedModel directory")
    p.add_argument("target", metavar="NEW", help="the .keras file to write")
    p.add_argument("--atol", type=float, default=1e-5, help="largest accepted difference")
    p.add_argument(
        "--compile",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="carry the training configuration over (default: yes)",
    )

    p = command(
        "verify", cmd_verify, "compare a Keras 2 file's stored weights and tf-keras' outputs"
    )
    p.add_argument("source", metavar="OLD", help=".h5 file or Keras 2 SavedModel directory")
    p.add_argument(
        "target", metavar="NEW", nargs="?", help="a converted .keras file (default: OLD's load)"
    )
    p.add_argument(
        "--reference",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="run the original under tf-keras when it is installed (default: yes)",
    )

    p = command("new", cmd_new, "write a new plugin distribution from the template")
    p.add_argument("name", metavar="NAME", help="'layerhub-foo', or 'foo' (then prefixed)")
    p.add_argument(
        "--layer",
        required=True,
        action="append",
        metavar="CLASS",
        help="layer class name, like Foo; repeat for several layers",
    )
    p.add_argument("--dir", default=".", metavar="DIR", help="parent directory (default: .)")

    p = command("add-layer", cmd_add_layer, "add a layer to a plugin made by 'layerhub new'")
    p.add_argument("dir", metavar="DIR", help="the plugin's directory (with pyproject.toml)")
    p.add_argument("layer", metavar="CLASS", help="layer class name, like Bar")

    p = command("port", cmd_port, "port a Keras 2 layer module to a tested Keras 3 plugin")
    p.add_argument("source", metavar="SOURCE", help="a .py module defining Keras 2 layers")
    p.add_argument(
        "--class",
        dest="classes",
        action="append",
        default=[],
        metavar="NAME",
        help="port only this layer class; repeat for several (default: every layer class)",
    )
    p.add_argument("--dir", default=".", metavar="DIR", help="parent directory (default: .)")
    p.add_argument("--dist", metavar="NAME", help="'layerhub-foo' (default: from SOURCE's name)")
    p.add_argument(
        "--example",
        action="append",
        default=[],
        metavar="CLASS=JSON",
        help="the kit's example for CLASS: [init_kwargs, input_shape], instead of the probe's",
    )
    p.add_argument(
        "--check",
        action="store_true",
        help="run the original under tf-keras and the port under Keras 3; compare",
    )
    return parser


_NEEDS_KERAS = (cmd_info, cmd_doctor, cmd_convert, cmd_verify)


def _import_keras_quietly() -> None:
    """Import keras now, with the process's stderr (file descriptor 2) sent to /dev/null.

    TensorFlow writes its start-up notices (absl's ``InitializeLog`` warning, oneDNN and CUDA
    lines) from C++ before it reads ``TF_CPP_MIN_LOG_LEVEL``, so only the descriptor silences
    them. A failed import is left for the registry to report when a plugin needs keras.
    """
    if "keras" in sys.modules or missing_backend() is not None:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        with contextlib.suppress(Exception):
            import keras  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``layerhub`` command; return its exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    _tolerant_output()
    debug = "--debug" in argv
    as_json = "--json" in argv
    verbose = "-v" in argv or "--verbose" in argv
    if not verbose:
        # Before anything imports keras: TensorFlow reads it once, at import.
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        args = build_parser().parse_args(argv)
        handler: Handler = args.handler
        if not verbose and handler in _NEEDS_KERAS:
            _import_keras_quietly()
        with warnings.catch_warnings():
            # Plugin problems are reported in the output (status column, doctor), not as warnings.
            if not debug:
                warnings.simplefilter("ignore", PluginWarning)
                warnings.showwarning = _warning_line
            return handler(args)
    except (UsageError, LayerHubError, OSError) as error:
        return _fail(error, debug, EXIT_USAGE, as_json=as_json)
    except KeyboardInterrupt:
        return 130
    except Exception as error:
        hint = " (run with --debug for the traceback)"
        return _fail(error, debug, EXIT_PROBLEM, hint=hint, as_json=as_json)


def _warning_line(message: Warning | str, category: type[Warning], *_: Any, **__: Any) -> None:
    """A warning as one escaped line on stderr, not Python's source line of the call."""
    text = str(message).removeprefix(f"{PROG}: ")
    print(f"{PROG}: warning: {shown(text, MAX_MESSAGE)}", file=sys.stderr)


def _tolerant_output() -> None:
    """Never fail on printing: a character stdout's encoding lacks is written as an escape."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            with contextlib.suppress(Exception):  # a replaced stream (pytest's capture ...)
                reconfigure(errors="backslashreplace")


def _fail_json(args: argparse.Namespace, kind: str, message: str, status: int) -> int:
    """Report a problem that is not an exception: JSON on stdout or a line on stderr."""
    if getattr(args, "json", False):
        print(json.dumps({"error": {"type": kind, "message": shown(message, MAX_MESSAGE)}}))
    else:
        print(f"{PROG}: {shown(message, MAX_MESSAGE)}", file=sys.stderr)
    return status


def _fail(
    error: BaseException, debug: bool, status: int, hint: str = "", *, as_json: bool = False
) -> int:
    if isinstance(error, BrokenPipeError):
        # The reader went away (`layerhub list | head`): stop quietly, and keep the interpreter's
        # final flush of stdout from failing again (the recipe of Python's signal docs).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_PROBLEM
    if debug:
        traceback.print_exc()
    message = str(error) if isinstance(error, (UsageError, LayerHubError)) else one_line(error)
    first_line = message.strip().splitlines()[0] if message.strip() else type(error).__name__
    # Already escaped when layerhub raised it; an OSError or a bug may carry a raw path.
    first_line = shown(first_line, MAX_MESSAGE)
    if as_json:
        kind = "UsageError" if isinstance(error, UsageError) else type(error).__name__
        print(json.dumps({"error": {"type": kind, "message": first_line}}))
    print(f"{PROG}: error: {first_line}{'' if debug else hint}", file=sys.stderr)
    return status
