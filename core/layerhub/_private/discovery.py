"""Read installed plugins from entry-point metadata, importing nothing."""

from __future__ import annotations

import importlib.metadata as metadata
import re
from collections import defaultdict
from typing import Final

from layerhub._private.records import LayerRecord

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


def scan() -> list[LayerRecord]:
    """Every object declared by installed plugins, with conflicts marked."""
    eps = metadata.entry_points()
    identities: dict[int, tuple[str, str]] = {}

    def identity(dist: metadata.Distribution | None) -> tuple[str, str]:
        if dist is None:
            return "unknown", "unknown"
        if id(dist) not in identities:
            identities[id(dist)] = _name_and_version(dist)
        return identities[id(dist)]

    plugins_of: dict[str, list[metadata.EntryPoint]] = defaultdict(list)
    for ep in eps.select(group=PLUGIN_GROUP):
        plugins_of[identity(ep.dist)[0]].append(ep)

    records: list[LayerRecord] = []
    for ep in eps.select(group=OBJECT_GROUP):
        distribution, version = identity(ep.dist)
        owners = plugins_of.get(distribution, [])
        error = None
        if len(owners) == 1:
            plugin, module = owners[0].name, owners[0].value
        else:
            plugin = module = ep.value.partition(":")[0].partition(".")[0]
            error = (
                f"{distribution} declares objects but no plugin in the {PLUGIN_GROUP!r} group"
                if not owners
                else f"{distribution} declares {len(owners)} plugins, not one"
            )
        records.append(
            LayerRecord(
                name=ep.name,
                registered_name=f"{plugin}>{ep.name}",
                plugin=plugin,
                module=module,
                distribution=distribution,
                version=version,
                status="installed" if error is None else "broken",
                error=error,
            )
        )
    return mark_conflicts(records)


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
