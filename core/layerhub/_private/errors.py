"""The exceptions layerhub raises; every one is a ``LayerHubError`` with a one-line message."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, NamedTuple

__all__ = [
    "AmbiguousNameError",
    "BrokenPluginError",
    "LayerHubError",
    "Missing",
    "MissingPluginError",
    "ModelFileError",
    "PluginConflictError",
    "PluginNotFoundError",
    "UnsafeModelError",
]


class LayerHubError(Exception):
    """Base class of every error layerhub raises on purpose."""


class PluginNotFoundError(LayerHubError, LookupError):
    """No installed plugin provides the requested name."""


class AmbiguousNameError(LayerHubError, LookupError):
    """A bare class name is provided by more than one plugin."""

    def __init__(self, name: str, registered_names: Sequence[str]) -> None:
        from layerhub._private.guard.untrusted import shown

        self.name = name
        self.registered_names = tuple(registered_names)
        # Names come from installed metadata and from the caller: escaped all the same.
        listed = ", ".join(shown(n) for n in self.registered_names)
        super().__init__(
            f"{shown(name)!r} is provided by several plugins ({listed}); "
            "ask for one of these registered names instead"
        )


class BrokenPluginError(LayerHubError, ImportError):
    """A plugin failed to import or disagrees with its own metadata."""


class PluginConflictError(LayerHubError):
    """Two installed distributions claim the same plugin or registered name."""


class ModelFileError(LayerHubError, ValueError):
    """A model path is missing, unreadable, corrupt or not a Keras model."""


class UnsafeModelError(LayerHubError, ValueError):
    """A model holds Python bytecode and ``safe_mode`` is on."""


class Missing(NamedTuple):
    """One object a model needs that nothing resolves.

    Attributes:
        name: the name as the file spells it (escaped whenever it is shown).
        distribution: a validated distribution to install, or ``None`` when none is known.
        version: a validated version of it, or ``None``.
        note: a sentence about this name for the message (already safe to show), or ``None``.
    """

    name: str
    distribution: str | None = None
    version: str | None = None
    note: str | None = None


class MissingPluginError(LayerHubError, ImportError):
    """A model needs objects that neither Keras nor any installed plugin resolves.

    Attributes:
        names: the names that could not be resolved, as the file spells them.
        requirements: ``distribution -> version`` (``None`` when unknown) of what to install.
        pip_command: the exact ``pip install`` line, or ``None`` when no distribution is known;
            built only from names and versions that ``packaging`` accepts.
    """

    def __init__(
        self,
        missing: Sequence[Missing],
        *,
        reason: str = "which no installed layerhub plugin provides",
        hint: str | None = None,
    ) -> None:
        from layerhub._private.guard.untrusted import requirement, shown

        entries = sorted(missing, key=lambda m: m.name)
        self.names = tuple(m.name for m in entries)
        self.requirements = {
            m.distribution: m.version for m in entries if m.distribution is not None
        }
        self.pip_command = (
            "pip install " + " ".join(requirement(d, v) for d, v in self.requirements.items())
            if self.requirements
            else None
        )
        described = [_described(m, shown(m.name)) for m in entries[:_MAX_LISTED]]
        if len(entries) > _MAX_LISTED:
            described.append(f"and {len(entries) - _MAX_LISTED} more")
        parts = [f"the model needs {', '.join(described)}, {reason}"]
        notes = "; ".join(m.note for m in entries[:_MAX_LISTED] if m.note)
        if notes:
            parts.append(notes if len(notes) <= _MAX_NOTES else notes[:_MAX_NOTES] + "...")
        if self.pip_command is not None:
            parts.append(f"run: {self.pip_command}")
        if hint and any(m.distribution is None for m in entries):
            parts.append(hint)
        super().__init__("; ".join(parts))


_MAX_LISTED: Final = 5
# With the names, the pip line and the hint, a message stays well under 1,000 characters.
_MAX_NOTES: Final = 400


def _described(missing: Missing, name: str) -> str:
    if missing.distribution is None:
        return name
    pin = f" {missing.version}" if missing.version else ""
    return f"{name} ({missing.distribution}{pin})"
