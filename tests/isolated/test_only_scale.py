"""Run in the ``isolated`` tox environment: the core and layerhub-scale only, no TensorFlow."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np

import layerhub


def test_only_scale_is_listed_and_tensorflow_is_absent() -> None:
    assert [(r.name, r.distribution, r.status) for r in layerhub.registry.list()] == [
        ("Scale", "layerhub-scale", "installed")
    ]
    assert importlib.util.find_spec("tensorflow") is None


def test_a_scale_model_loads_with_only_its_plugin(tmp_path: Path) -> None:
    import keras
    from layerhub_scale import Scale

    inputs = keras.Input((4,))
    model = keras.Model(inputs, Scale(gamma_initializer="random_normal")(inputs))
    path = layerhub.save_model(model, tmp_path / "scale.keras")
    x = np.arange(8, dtype="float32").reshape(2, 4)
    code = textwrap.dedent(
        """
        import json, sys
        import numpy as np
        import layerhub
        model = layerhub.load_model(sys.argv[1])
        print(json.dumps(np.asarray(model(np.arange(8, dtype="float32").reshape(2, 4))).tolist()))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(path)],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        check=True,
    )
    np.testing.assert_allclose(json.loads(out.stdout), np.asarray(model(x)), rtol=1e-6)
