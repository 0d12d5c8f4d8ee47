"""The layerhub manifest: which distribution and version provided each registered name.

It is written as the ``.keras`` archive's zip comment, so that adding it never rewrites the
archive; files saved by layerhub 0.1 keep it in ``metadata.json["layerhub"]``. A manifest is
read from an untrusted file: it is advisory, entries of the wrong shape are ignored, and its
strings are validated before they reach a message (see ``untrusted``).
"""

from __future__ import annotations

import json
from typing import Any, Final, NamedTuple

FORMAT: Final = 1
METADATA_KEY: Final = "layerhub"
COMMENT_PREFIX: Final = b"layerhub-manifest:"
# A zip comment holds at most 65,535 bytes.
MAX_COMMENT: Final = 0xFFFF


class Entry(NamedTuple):
    """What a file says about one registered name: untrusted strings, or ``None``.

    ``distribution`` is ``None`` for an object registered by hand (no distribution).
    """

    distribution: object
    version: object


class Manifest(NamedTuple):
    layerhub_version: object
    objects: dict[str, Entry]


def build(records: dict[str, tuple[str | None, str | None]]) -> dict[str, Any]:
    """The manifest for these registered names -> (distribution, version)."""
    from layerhub import __version__

    return {
        "format": FORMAT,
        "layerhub_version": __version__,
        "objects": {
            name: {"distribution": dist, "version": version}
            for name, (dist, version) in sorted(records.items())
        },
    }


def as_comment(manifest: dict[str, Any]) -> bytes | None:
    """The manifest as a zip comment, or ``None`` if it is too large for one."""
    comment = COMMENT_PREFIX + json.dumps(manifest, separators=(",", ":")).encode()
    return comment if len(comment) <= MAX_COMMENT else None


def from_comment(comment: bytes) -> Manifest | None:
    if not comment.startswith(COMMENT_PREFIX):
        return None
    try:
        return parse(json.loads(comment[len(COMMENT_PREFIX) :].decode("utf-8")))
    except (ValueError, RecursionError):
        return None


def parse(raw: Any) -> Manifest | None:
    """A manifest from decoded JSON; ``None`` if it is not one. Ill-formed entries are dropped."""
    if not isinstance(raw, dict):
        return None
    objects = raw.get("objects")
    entries = {
        name: Entry(entry.get("distribution"), entry.get("version"))
        for name, entry in (objects.items() if isinstance(objects, dict) else ())
        if isinstance(name, str) and isinstance(entry, dict)
    }
    return Manifest(raw.get("layerhub_version"), entries)
