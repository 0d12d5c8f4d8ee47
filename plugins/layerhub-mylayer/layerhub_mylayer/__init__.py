"""layerhub-mylayer: the classic custom-layer teaching examples as real Keras 3 layers."""

from __future__ import annotations

from layerhub import hookimpl
from layerhub_mylayer.complex_scale import ComplexScale
from layerhub_mylayer.my_layer import MyLayer
from layerhub_mylayer.my_multi_layer import MyMultiLayer

__all__ = ["ComplexScale", "MyLayer", "MyMultiLayer"]

# How `pytest --layerhub-conformance` builds and feeds each layer: (init_kwargs, input_shape).
LAYERHUB_EXAMPLES = {
    "MyLayer": ({"output_dim": 3}, (2, 4)),
    "MyMultiLayer": ({"output_dim": 3}, [(2, 4), (2, 3)]),
    "ComplexScale": ({"alpha_real": 2.0, "alpha_imag": -1.0}, (2, 3)),
}


@hookimpl
def layerhub_layers() -> list[object]:
    return [MyLayer, MyMultiLayer, ComplexScale]


@hookimpl
def layerhub_legacy_names() -> dict[str, object]:
    # Keras 2 code saved this layer under its bare class name. The Keras 2 two-input variant
    # used the same class name, so it cannot be told apart by name and is not mapped here.
    return {"MyLayer": MyLayer}
