"""The exceptions layerhub raises; every one is a ``LayerHubError`` with a one-line message."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

__all__ = [
    "AmbiguousNameError",
    "BrokenPluginError",
    "LayerHubError",
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
        self.name = name
        self.registered_names = tuple(registered_names)
        listed = ", ".join(self.registered_names)
        super().__init__(
            f"{name!r} is provided by several plugins ({listed}); "
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


class MissingPluginError(LayerHubError, ImportError):
    """A model needs objects that no installed plugin provides.

    Attributes:
        names: the registered (or Keras 2 class) names that could not be resolved.
        requirements: ``distribution -> version`` (``None`` when unknown) of what to install.
        pip_command: the exact ``pip install`` line, or ``None`` when no distribution is known.
    """

    def __init__(
        self,
        missing: Mapping[str, tuple[str | None, str | None]],
        *,
        reason: str | None = None,
    ) -> None:
        self.names = tuple(sorted(missing))
        self.requirements = {d: v for d, v in sorted(missing.values(), key=str) if d is not None}
        self.pip_command = (
            "pip install " + " ".join(_requirement(d, v) for d, v in self.requirements.items())
            if self.requirements
            else None
        )
        described = ", ".join(
            f"{name} ({_requirement(dist, version, ' ')})" if dist else name
            for name, (dist, version) in sorted(missing.items())
        )
        message = f"the model needs {described}, " + (
            reason or "which no installed layerhub plugin provides"
        )
        if self.pip_command is not None:
            message += f"; run: {self.pip_command}"
        super().__init__(message)


def _requirement(distribution: str, version: str | None, separator: str = "==") -> str:
    return f"{distribution}{separator}{version}" if version else distribution
