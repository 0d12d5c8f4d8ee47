"""Strings read from a model file, made safe to show: one line, escaped, bounded; pip lines only
from names and versions that ``packaging`` accepts."""

from __future__ import annotations

import os
import re
import shlex
from typing import Final

MAX_SHOWN: Final = 120
# Paths are the user's own, and often long; bounded all the same, since a hub cache or a file
# name can come from elsewhere.
MAX_PATH: Final = 400
# Longer names and versions are valid to packaging but are no real distribution's; a pip line
# built from them would swamp the message.
MAX_NAME: Final = 100
# C0 and C1 controls, DEL, and the Unicode line and paragraph separators and bidi overrides a
# terminal would act on instead of showing.
_UNPRINTABLE: Final = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_IDENTIFIER_PATH: Final = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*")


def shown(value: object, limit: int = MAX_SHOWN) -> str:
    """``value`` as one printable line of at most ``limit`` characters (plus an ellipsis)."""
    text = value if isinstance(value, str) else repr(value)
    escaped = _UNPRINTABLE.sub(lambda m: repr(m.group())[1:-1], text)
    return escaped if len(escaped) <= limit else escaped[:limit] + "..."


def shown_path(path: str | os.PathLike[str]) -> str:
    """A file path as :func:`shown` gives it, bounded at ``MAX_PATH`` characters."""
    return shown(os.fspath(path), MAX_PATH)


def distribution_name(name: object) -> str | None:
    """The canonical form of a valid PEP 508 distribution name, or ``None``."""
    from packaging.utils import InvalidName, canonicalize_name

    if not isinstance(name, str) or len(name) > MAX_NAME:
        return None
    try:
        return str(canonicalize_name(name, validate=True))
    except InvalidName:
        return None


def version_string(version: object) -> str | None:
    """A valid PEP 440 version in its normal form, or ``None``."""
    from packaging.version import InvalidVersion, Version

    if not isinstance(version, str) or len(version) > MAX_NAME:
        return None
    try:
        return str(Version(version))
    except InvalidVersion:
        return None


def requirement(distribution: str, version: str | None) -> str:
    """One shell-quoted ``name==version`` argument; the parts must already be validated."""
    return shlex.quote(f"{distribution}=={version}" if version else distribution)


def conventional_distribution(registered_name: str) -> str | None:
    """The distribution the plugin convention implies for a registered name, or ``None``.

    A plugin's import package, registration package and distribution share one name
    (``layerhub_pam>PAM`` comes from ``layerhub-pam``).
    """
    package = registered_name.partition(">")[0]
    if not _IDENTIFIER_PATH.fullmatch(package) or "." in package:
        return None
    return distribution_name(package)
