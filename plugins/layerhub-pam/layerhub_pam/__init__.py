"""layerhub-pam: DANet position and channel attention layers for Keras 3."""

from __future__ import annotations

from layerhub import hookimpl
from layerhub_pam.cam_layer import CAM
from layerhub_pam.pam_layer import PAM

__all__ = ["CAM", "PAM"]


@hookimpl
def layerhub_layers() -> list[object]:
    return [PAM, CAM]


@hookimpl
def layerhub_legacy_names() -> dict[str, object]:
    # Keras 2 code saved these layers under their bare class names.
    return {"PAM": PAM, "CAM": CAM}
