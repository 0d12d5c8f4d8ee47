"""layerhub-functions: registered functions for Keras 3 Lambda layers that load under safe_mode."""

from __future__ import annotations

from layerhub import hookimpl
from layerhub_functions.channel_slice import channel_slice
from layerhub_functions.complex_scale import complex_scale

__all__ = ["channel_slice", "complex_scale"]


@hookimpl
def layerhub_layers() -> list[object]:
    return [channel_slice, complex_scale]


@hookimpl
def layerhub_legacy_names() -> dict[str, object]:
    # A Keras 2 Lambda that named its function (rather than holding its bytecode) saved the bare
    # function name.
    return {"channel_slice": channel_slice, "complex_scale": complex_scale}
