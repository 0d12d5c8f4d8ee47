"""Read installed plugins from entry-point metadata, importing nothing."""

from __future__ import annotations

import importlib.metadata as metadata
from collections import defaultdict
from typing import Final

from layerhub._private.records import LayerRecord

PLUGIN_GROUP: Final = "layerhub"
OBJECT_GROUP: Final = "layerhub.layers"


def _name_and_version(dist: metadata.Distribution) -> tuple[str, str]:
    # Parsing METADATA costs more than the whole entry-point scan; an installed wheel's
    # ``<name>-<version>.dist-info`` directory already says both (binary distribution format).
    path = getattr(dist, "_path", None)
    stem, dot, suffix = getattr(path, "name", "").rpartition(".")
    if dot and suffix == "dist-info" and stem.count("-") == 1:
        name, version = stem.split("-")
        return name.replace("_", "-").lower(), version
    return dist.metadata["Name"] or "unknown", dist.version or "unknown"


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
        owners[record.plugin].add(record.distribution)
    marked = []
    for record in records:
        claimants = owners[record.plugin]
        if len(claimants) > 1 and record.status == "installed":
            others = ", ".join(sorted(claimants - {record.distribution}))
            record = record._replace(
                status="conflict",
                error=f"plugin {record.plugin!r} is also provided by {others}",
            )
        marked.append(record)
    return marked
