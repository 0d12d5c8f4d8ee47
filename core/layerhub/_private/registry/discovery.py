"""Read installed plugins from entry-point metadata, importing nothing."""

from __future__ import annotations

import importlib.metadata as metadata
import re
from collections import defaultdict
from typing import Final

from layerhub._private.registry.records import LayerRecord

PLUGIN_GROUP: Final = "layerhub"
OBJECT_GROUP: Final = "layerhub.layers"
_SEPARATORS: Final = re.compile(r"[-_.]+")


def canonical_name(name: str) -> str:
    """A distribution name normalised as PEP 503 says (what ``packaging.utils`` does).

    Not ``packaging.utils.canonicalize_name`` itself: importing ``packaging.utils`` pulls in
    ``packaging.tags`` and costs listing a third of its time for one regular expression.
    """
    return _SEPARATORS.sub("-", name).lower()


def _name_and_version(dist: metadata.Distribution) -> tuple[str, str]:
    # ``dist.name`` and ``dist.version`` would parse METADATA with the email package each time,
    # which costs more than the whole entry-point scan; Name and Version are single-line headers
    # at the top of the file (core metadata spec), so reading up to the first blank line is
    # enough. ``dist.metadata`` stays the fallback for anything unusual.
    text = dist.read_text("METADATA") or dist.read_text("PKG-INFO") or ""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            break
        key, colon, value = line.partition(":")
        if colon and key in ("Name", "Version"):
            fields.setdefault(key, value.strip())
    if len(fields) < 2:
        fields = {"Name": dist.metadata["Name"] or "", "Version": dist.version or ""}
    return canonical_name(fields["Name"] or "unknown"), fields["Version"] or "unknown"


# What a well-formed entry point of each group looks like: a plugin is an import package named
# after the module it loads; an object is a name Keras can register, pointing at a module.
_PLUGIN_NAME: Final = re.compile(r"[A-Za-z_]\w*")
_MODULE: Final = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*")
_OBJECT_NAME: Final = re.compile(r"\S+")  # and printable: see _object_name_ok
_OBJECT_VALUE: Final = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*(?:\s*:\s*\S+)?")


def _object_name_ok(name: str) -> bool:
    return bool(_OBJECT_NAME.fullmatch(name)) and name.isprintable()


def _malformed(ep: metadata.EntryPoint) -> str | None:
    """Why a layerhub entry point is unusable, or None; its text is described, never echoed."""
    name, value = ep.name, ep.value
    if not isinstance(name, str) or not isinstance(value, str):
        return f"an entry point in the {ep.group!r} group is not text"
    if ep.group == PLUGIN_GROUP:
        good = bool(_PLUGIN_NAME.fullmatch(name) and _MODULE.fullmatch(value))
    else:
        good = (
            _object_name_ok(name) and bool(_OBJECT_VALUE.fullmatch(value)) and value.isprintable()
        )
    if good:
        return None
    return (
        f"a malformed entry point in the {ep.group!r} group (name of {len(name)} characters, "
        f"value of {len(value)})"
    )


def _entry_points(
    dist: metadata.Distribution,
) -> tuple[list[metadata.EntryPoint], str | None]:
    """The distribution's layerhub entry points, and why they are unusable (or None).

    ``entry_points.txt`` is the distribution's own file, read by ``importlib.metadata``'s
    parser, which raises its own errors (``TypeError``, ``ValueError``, ``UnicodeDecodeError``)
    on a malformed one; those stay with that distribution.
    """
    try:
        eps = [ep for ep in dist.entry_points if ep.group in (PLUGIN_GROUP, OBJECT_GROUP)]
    except Exception as error:  # the parser's errors, whatever they are
        try:
            text = dist.read_text("entry_points.txt") or ""
        except Exception:  # undecodable: whether it is a layerhub plugin cannot be told
            text = f"[{PLUGIN_GROUP}]"
        if f"[{PLUGIN_GROUP}" not in text:
            return [], None  # not a layerhub plugin: its own problem, not ours
        return [], f"an entry_points.txt that cannot be parsed ({type(error).__name__})"
    for ep in eps:
        problem = _malformed(ep)
        if problem is not None:
            return eps, problem
    return eps, None


def _distributions() -> list[metadata.Distribution]:
    """Installed distributions, the first on the path of each name, as ``entry_points()``."""
    seen: set[str] = set()
    found = []
    for dist in metadata.distributions():
        try:
            key = str(dist._normalized_name)  # type: ignore[attr-defined]
        except Exception:  # an unusual Distribution: keep it, it cannot be deduplicated
            key = f"id:{id(dist)}"
        if key not in seen:
            seen.add(key)
            found.append(dist)
    return found


def scan() -> list[LayerRecord]:
    """Every object declared by installed plugins, with conflicts marked.

    A distribution whose layerhub entry points are malformed (or whose ``entry_points.txt``
    cannot be parsed) is recorded broken; the others are read as usual.
    """
    identities: dict[int, tuple[str, str]] = {}

    def identity(dist: metadata.Distribution | None) -> tuple[str, str]:
        if dist is None:
            return "unknown", "unknown"
        if id(dist) not in identities:
            try:
                identities[id(dist)] = _name_and_version(dist)
            except Exception:  # unreadable METADATA: named after its directory
                identities[id(dist)] = (canonical_name(_stem(dist)), "unknown")
        return identities[id(dist)]

    plugins_of: dict[str, list[metadata.EntryPoint]] = defaultdict(list)
    objects: list[metadata.EntryPoint] = []
    broken: dict[str, str] = {}
    for dist in _distributions():
        eps, problem = _entry_points(dist)
        if not eps and problem is None:
            continue
        distribution = identity(dist)[0]
        if problem is not None:
            broken[distribution] = f"{distribution} has {problem}"
            if not any(ep.group == OBJECT_GROUP for ep in eps):
                objects.append(_placeholder(dist, distribution))
        for ep in eps:
            if ep.group == PLUGIN_GROUP:
                plugins_of[distribution].append(ep)
            else:
                objects.append(ep)

    records: list[LayerRecord] = []
    for ep in objects:
        distribution, version = identity(ep.dist)
        owners = plugins_of.get(distribution, [])
        error = broken.get(distribution)
        if error is None and len(owners) == 1:
            plugin, module = owners[0].name, owners[0].value
        elif error is not None and len(owners) == 1 and _PLUGIN_NAME.fullmatch(owners[0].name):
            plugin = module = owners[0].name
        else:
            plugin = module = _package(ep.value) or distribution.replace("-", "_")
            error = error or (
                f"{distribution} declares objects but no plugin in the {PLUGIN_GROUP!r} group"
                if not owners
                else f"{distribution} declares {len(owners)} plugins, not one"
            )
        name = ep.name if error is None or _object_name_ok(ep.name) else "?"
        records.append(
            LayerRecord(
                name=name,
                registered_name=f"{plugin}>{name}",
                plugin=plugin,
                module=module,
                distribution=distribution,
                version=version,
                status="installed" if error is None else "broken",
                error=error,
            )
        )
    return mark_conflicts(records)


def _package(value: str) -> str | None:
    """The top-level package an entry point's value names, if it is an identifier."""
    top = value.partition(":")[0].partition(".")[0].strip()
    return top if _PLUGIN_NAME.fullmatch(top) else None


def _stem(dist: metadata.Distribution) -> str:
    path = getattr(dist, "_path", None)
    stem = getattr(path, "stem", "") or "unknown"
    return str(stem).partition("-")[0]


def _placeholder(dist: metadata.Distribution, distribution: str) -> metadata.EntryPoint:
    """One object entry standing for a distribution whose entry points could not be read."""
    package = distribution.replace("-", "_")
    entry: metadata.EntryPoint = metadata.EntryPoint("?", package, OBJECT_GROUP)
    entry._for(dist)  # type: ignore[attr-defined]  # what importlib.metadata does for its own
    return entry


def mark_conflicts(records: list[LayerRecord]) -> list[LayerRecord]:
    """Mark every record whose plugin package is claimed by more than one distribution."""
    owners: dict[str, set[str]] = defaultdict(set)
    for record in records:
        owners[record.plugin].add(record.distribution or "")
    marked = []
    for record in records:
        claimants = owners[record.plugin]
        if len(claimants) > 1 and record.status == "installed":
            others = ", ".join(sorted(claimants - {record.distribution or ""}))
            record = record._replace(
                status="conflict",
                error=f"plugin {record.plugin!r} is also provided by {others}",
            )
        marked.append(record)
    return marked
