"""Which Keras backend is configured, and whether it is installed, without importing keras."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Final

BACKEND_MODULES: Final = {
    "tensorflow": "tensorflow",
    "jax": "jax",
    "torch": "torch",
    "numpy": "numpy",
    "openvino": "openvino",
}
_DEFAULT: Final = "tensorflow"


def configured_backend() -> str:
    """The backend Keras will use: ``KERAS_BACKEND``, else ``keras.json``, else tensorflow."""
    if backend := os.environ.get("KERAS_BACKEND"):
        return backend
    # Keras reads $KERAS_HOME/keras.json, or ~/.keras/keras.json, before the variable.
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    try:
        import json

        config = json.loads((Path(home) / "keras.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return _DEFAULT
    backend = config.get("backend") if isinstance(config, dict) else None
    return backend if isinstance(backend, str) and backend else _DEFAULT


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def missing_backend() -> str | None:
    """``None`` when the configured backend is installed, else a one-line explanation.

    Finds the backend's package without importing it, so it is cheap enough to ask before
    every attempt to import keras.
    """
    backend = configured_backend()
    module = BACKEND_MODULES.get(backend)
    if module is None or _installed(module):
        return None
    others = [b for b in ("tensorflow", "jax", "torch") if b != backend and _installed(b)]
    if not others:
        return (
            f"no Keras backend is installed (KERAS_BACKEND={backend} needs {module}): "
            "pip install 'layerhub[tensorflow]', or install jax or torch and set KERAS_BACKEND"
        )
    return (
        f"the Keras backend is not installed (KERAS_BACKEND={backend} needs {module}): "
        f"pip install {module}, or set KERAS_BACKEND to {' or '.join(others)}"
    )
