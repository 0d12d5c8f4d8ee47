"""MLflow: a plugin model logged by ``layerhub.mlflow`` loads through ``mlflow.pyfunc`` alone.

Against a local file store. A child with the plugin logs the Keras model twice, with
``layerhub.mlflow.log_model`` and with MLflow's own Keras flavor (the negative control); this
process, which has no plugin, saves the same ``.keras`` file by path with
``layerhub.mlflow.save_model`` (its requirements come from the manifest alone). A fresh process
with the plugin installed, which imports nothing but mlflow (and pandas and NumPy for the data),
loads each with ``mlflow.pyfunc.load_model``: layerhub's equal the original's predictions, and
MLflow's own Keras flavor fails with "Could not locate class"; then, in the same process,
``layerhub.mlflow.load_model`` returns the Keras model.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("mlflow")

import layerhub.mlflow
from layerhub._private.engines import backend_requirement, core_requirements

_LOG = """
import json, sys
import mlflow, mlflow.keras
import layerhub, layerhub.mlflow

mlflow.set_tracking_uri(sys.argv[1])
model = layerhub.load_model(sys.argv[2])
with mlflow.start_run():
    ours = layerhub.mlflow.log_model(model, "model")
    # MLflow's own flavor; requirements given, or it spends a child process inferring them
    # by loading the model, which fails for the plugin layer.
    plain = mlflow.keras.log_model(model, name="plain", pip_requirements=["keras"])
print(json.dumps({"ours": ours.model_uri, "plain": plain.model_uri}))
"""

_LOAD = """
import json, sys
import mlflow
import numpy as np
import pandas as pd

mlflow.set_tracking_uri(sys.argv[1])
x = np.load(sys.argv[2])["x"]
frame = pd.DataFrame(x, columns=[f"f{i}" for i in range(x.shape[1])])
found = {}
uris = json.loads(sys.argv[3])
# The plain flavor first: once layerhub has imported the plugin, Keras knows the class.
for key in sorted(uris, key=lambda k: k != "plain"):
    uri = uris[key]
    try:
        found[key] = mlflow.pyfunc.load_model(uri).predict(frame).to_numpy().tolist()
    except Exception as error:
        found[key] = "error: " + str(error)
    if key == "plain":
        found["plugin_imported_by_plain"] = "layerhub_scale" in sys.modules
# Last, the Keras model itself through layerhub.mlflow.load_model.
import layerhub.mlflow

model = layerhub.mlflow.load_model(uris["ours"])
found["keras"] = [type(model.layers[1]).__name__, model.predict(x, verbose=0).tolist()]
print(json.dumps(found))
"""


@pytest.fixture(scope="module")
def logged(scale_model: Any, plugin_site: Path, tools: Any, tmp_path_factory: Any) -> Any:
    folder = tmp_path_factory.mktemp("mlflow")
    store = (folder / "mlruns").as_uri()
    env = tools.child_env(plugin_site, MLFLOW_ALLOW_FILE_STORE="true")
    out = tools.run_child(_LOG, store, str(scale_model.path), env=env, cwd=folder)
    uris = tools.json_line(out)
    saved = folder / "saved-by-path"
    layerhub.mlflow.save_model(scale_model.path, saved)
    uris["by_path"] = str(saved)
    return folder, store, env, uris


def test_pyfunc_loads_in_a_fresh_process_and_the_plain_flavor_fails(
    logged: Any, scale_model: Any, tools: Any
) -> None:
    folder, store, env, uris = logged
    reference = folder / "x.npz"
    np.savez(reference, x=scale_model.x)
    found = tools.json_line(
        tools.run_child(_LOAD, store, str(reference), json.dumps(uris), env=env, cwd=folder)
    )
    for key in ("ours", "by_path"):
        assert not isinstance(found[key], str), found[key]
        np.testing.assert_allclose(np.array(found[key]), scale_model.y, rtol=1e-6, atol=1e-6)
    assert isinstance(found["plain"], str)
    assert "Could not locate class 'Scale'" in found["plain"]
    assert found["plugin_imported_by_plain"] is False
    # layerhub.mlflow.load_model gives the Keras model itself.
    name, predictions = found["keras"]
    assert name == "Scale"
    np.testing.assert_allclose(np.array(predictions), scale_model.y, rtol=1e-6, atol=1e-6)


def test_logged_requirements_name_every_plugin(logged: Any, scale_model: Any) -> None:
    import mlflow.artifacts

    folder, store, _env, uris = logged
    mlflow.set_tracking_uri(store)
    expected = {
        *core_requirements(),
        f"layerhub-scale=={scale_model.plugin_version}",
        backend_requirement(),
    }
    for key in ("ours", "by_path"):
        local = Path(mlflow.artifacts.download_artifacts(uris[key], dst_path=str(folder / key)))
        lines = set((local / "requirements.txt").read_text().split())
        assert expected <= lines, (key, lines)
        # MLflow's conda.yaml and python_env.yaml carry the same list.
        assert f"layerhub-scale=={scale_model.plugin_version}" in (local / "conda.yaml").read_text()


def test_load_model_refuses_a_model_it_did_not_log(logged: Any) -> None:
    import mlflow

    _folder, store, _env, uris = logged
    mlflow.set_tracking_uri(store)
    with pytest.raises(layerhub.ModelFileError, match=r"not logged by layerhub\.mlflow"):
        layerhub.mlflow.load_model(uris["plain"])


def test_without_mlflow_the_error_names_the_extra(
    scale_model: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "mlflow.pyfunc", None)
    with pytest.raises(layerhub.mlflow.EngineNotInstalledError, match=r"layerhub\[mlflow\]"):
        layerhub.mlflow.save_model(scale_model.path, tmp_path / "m")
