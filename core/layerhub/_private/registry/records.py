"""What the registry knows about one provided object, as plain serialisable data."""

from __future__ import annotations

from typing import Any, Final, Literal, NamedTuple

Status = Literal["installed", "loaded", "broken", "conflict", "mismatch"]
STATUSES: Final[tuple[Status, ...]] = ("installed", "loaded", "broken", "conflict", "mismatch")


class LayerRecord(NamedTuple):
    """One object a plugin provides, as its distribution's metadata declares it.

    A named tuple rather than a dataclass: importing ``dataclasses`` alone would cost listing a
    quarter of its time.

    Attributes:
        name: the object's own name, such as ``"Scale"``.
        registered_name: the name Keras writes into saved files, ``"<plugin>>name"``.
        plugin: the plugin's import package, such as ``"layerhub_scale"``.
        module: the module the ``layerhub`` entry point names (imported to load the plugin).
        distribution: the installed distribution's PEP 503 normalised name, such as
            ``"layerhub-scale"``; ``None`` for a plugin registered by hand, which has none.
        version: the distribution's version; ``None`` when ``distribution`` is.
        status: ``installed`` (found, not imported), ``loaded``, ``broken`` (import failed),
            ``conflict`` (claimed by two distributions) or ``mismatch`` (hooks and metadata
            disagree).
        error: a one-line cause when the status is not ``installed`` or ``loaded``.
    """

    name: str
    registered_name: str
    plugin: str
    module: str
    distribution: str | None
    version: str | None
    status: Status = "installed"
    error: str | None = None

    @property
    def pip_command(self) -> str | None:
        """``pip install <distribution>``, or ``None`` for a plugin registered by hand."""
        return None if self.distribution is None else f"pip install {self.distribution}"

    def to_dict(self) -> dict[str, str | None]:
        return dict(self._asdict())

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LayerRecord:
        unknown = set(data) - set(cls._fields)
        if unknown:
            raise ValueError(f"unknown record fields: {sorted(unknown)}")
        if data.get("status", "installed") not in STATUSES:
            raise ValueError(f"unknown record status: {data['status']!r}")
        return cls(**data)


def one_line(error: BaseException) -> str:
    """An exception as ``Type: first line of its message`` (not yet escaped: see ``shown``)."""
    try:
        text = str(error).strip().splitlines()
    except Exception:  # a broken __str__ (a plugin's exception, say) must not replace the error
        text = []
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__
