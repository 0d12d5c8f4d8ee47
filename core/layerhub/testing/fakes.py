"""Fake installed plugin distributions, for testing discovery without installing anything.

A fake distribution is a ``<name>-<version>.dist-info`` directory with ``METADATA`` and
``entry_points.txt``, plus optional module files, written into a directory that the caller puts
on ``sys.path`` (or ``PYTHONPATH`` for a subprocess). ``importlib.metadata`` finds it exactly as
it finds a wheel installed by pip.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

__all__ = ["write_fake_distribution", "write_upgrading_plugin"]


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


_UPGRADING_PLUGIN = """
import keras
from layerhub import hookimpl

@keras.saving.register_keras_serializable(package="{package}")
class Shift(keras.layers.Layer):
    def __init__(self, offset=0.0, **kwargs):
        super().__init__(**kwargs)
        self.offset = offset

    def call(self, x):
        return x + self.offset

    def get_config(self):
        config = super().get_config()
        config.update({{"offset": self.offset}})
        return config

@hookimpl
def layerhub_layers():
    return [Shift]

@hookimpl
def layerhub_upgrade_config(registered_name, config, saved_version):
    if registered_name != "{package}>Shift" or saved_version != "1.0":
        return None
    # Version 1.0 called the argument "bias".
    config = dict(config)
    config["offset"] = config.pop("bias")
    return config
"""


def write_upgrading_plugin(root: Path, package: str, *, version: str = "2.0") -> Path:
    """A fake plugin whose ``Shift(offset)`` layer was ``Shift(bias)`` in its version 1.0.

    Its ``layerhub_upgrade_config`` hook renames the argument in configs saved by 1.0, so tests
    and benchmarks can exercise the upgrade path of ``load_model``.
    """
    return write_fake_distribution(
        root,
        package.replace("_", "-"),
        version=version,
        plugin=package,
        objects={"Shift": f"{package}:Shift"},
        modules={f"{package}/__init__.py": _UPGRADING_PLUGIN.format(package=package)},
    )
