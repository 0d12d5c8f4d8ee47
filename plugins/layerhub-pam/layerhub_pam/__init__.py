"""layerhub-pam: DANet position and channel attention layers for Keras 3."""

from __future__ import annotations

from layerhub import hookimpl
from layerhub_pam.cam_layer import CAM
from layerhub_pam.pam_layer import PAM

__all__ = ["CAM", "PAM"]

# How `pytest --layerhub-conformance` builds and feeds each layer: (init_kwargs, input_shape).
# gamma starts at 0, which blocks every other gradient: the examples open the gate.
LAYERHUB_EXAMPLES = {
    "PAM": ({"reduction": 2, "gamma_initializer": "ones"}, (2, 4, 4, 8)),
    "CAM": ({"gamma_initializer": "ones"}, (2, 4, 4, 8)),
}


@hookimpl
def layerhub_layers() -> list[object]:
    return [PAM, CAM]


@hookimpl
def layerhub_legacy_names() -> dict[str, object]:
    # Keras 2 code saved these layers under their bare class names.
    return {"PAM": PAM, "CAM": CAM}
