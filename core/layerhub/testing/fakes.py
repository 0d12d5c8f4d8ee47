"""Fake installed plugin distributions, for testing discovery without installing anything.

A fake distribution is a ``<name>-<version>.dist-info`` directory with ``METADATA`` and
``entry_points.txt``, plus optional module files, written into a directory that the caller puts
on ``sys.path`` (or ``PYTHONPATH`` for a subprocess). ``importlib.metadata`` finds it exactly as
it finds a wheel installed by pip.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

__all__ = ["write_fake_distribution"]


def write_fake_distribution(
    root: Path,
    distribution: str,
    *,
    version: str = "1.0",
    plugin: str | None = None,
    objects: Mapping[str, str] | None = None,
    modules: Mapping[str, str] | None = None,
) -> Path:
    """Write a fake installed distribution under ``root`` and return its ``.dist-info`` path.

    Args:
        root: a directory to put on ``sys.path``.
        distribution: the distribution name, such as ``"layerhub-broken"``.
        version: its version.
        plugin: the plugin's import package (its ``layerhub`` entry point); ``None`` for none.
        objects: ``layerhub.layers`` entries, ``name -> "module:attribute"``.
        modules: module files to write, ``relative path -> source``, such as
            ``{"layerhub_broken/__init__.py": "raise RuntimeError('boom')"}``.
    """
    normalized = distribution.replace("-", "_").lower()
    info = root / f"{normalized}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {distribution}\nVersion: {version}\n", encoding="utf-8"
    )
    lines = []
    if plugin is not None:
        lines += ["[layerhub]", f"{plugin} = {plugin}", ""]
    if objects:
        lines += ["[layerhub.layers]", *(f"{k} = {v}" for k, v in objects.items()), ""]
    (info / "entry_points.txt").write_text("\n".join(lines), encoding="utf-8")
    for relative, source in (modules or {}).items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source, encoding="utf-8")
    return info
