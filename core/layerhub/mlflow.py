"""MLflow: log a model with plugin layers so that it loads anywhere its requirements install.

MLflow's Keras flavor loads with no custom objects, and infers its requirements by loading the
model, which fails for a plugin layer: it logs ``keras`` alone. Here the model is stored as the
``.keras`` file ``layerhub.save_model`` writes, as a ``python_function`` model whose loader is
this module; its ``pip_requirements`` come from the file's manifest (``keras``, ``layerhub``,
the backend and each plugin, pinned) without loading it::

    import layerhub.mlflow

    info = layerhub.mlflow.log_model(model, "model")  # a Keras model or a .keras file
    # anywhere the requirements are installed:
    mlflow.pyfunc.load_model(info.model_uri).predict(df)  # loads through layerhub.load_model
    layerhub.mlflow.load_model(info.model_uri)  # the Keras model itself

MLflow is imported only when a function is called (``pip install 'layerhub[mlflow]'``).
"""

from __future__ import annotations

import contextlib
import inspect
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

from layerhub._private.engines import EngineNotInstalledError, require, requirements

__all__ = ["EngineNotInstalledError", "load_model", "log_model", "save_model"]

# The pyfunc configuration names this module as the loader; load_model checks it.
LOADER_MODULE: Final = "layerhub.mlflow"
_FILE_NAME: Final = "model.keras"


def _pyfunc(user: str) -> Any:
    return require("mlflow.pyfunc", "mlflow", user)


@contextlib.contextmanager
def _model_file(model: Any) -> Iterator[str]:
    """A path to the model as a file ``layerhub.save_model`` wrote: the given one, or a new one."""
    if isinstance(model, (str, os.PathLike)):
        yield os.fspath(model)
        return
    from layerhub._private.saving import save_model as layerhub_save

    with tempfile.TemporaryDirectory(prefix="layerhub-mlflow-") as folder:
        file = os.path.join(folder, _FILE_NAME)
        layerhub_save(model, file)
        yield file


def _requirements(file: str, given: Any) -> Any:
    # The file's requirements, unless the caller names them; MLflow adds its own line.
    return given if given is not None else requirements(file, with_core=True, with_backend=True)


def save_model(
    model: Any,
    path: str | os.PathLike[str],
    *,
    pip_requirements: Any = None,
    **kwargs: Any,
) -> None:
    """Save ``model`` as an MLflow model directory that loads through ``layerhub.load_model``.

    Args:
        model: a Keras model (saved with ``layerhub.save_model``) or the path of a model file
            saved with it (stored as is).
        path: the directory to create.
        pip_requirements: the requirements to log instead of the file's own.
        **kwargs: more of ``mlflow.pyfunc.save_model``'s arguments (``signature``,
            ``input_example``, ``extra_pip_requirements``, ``metadata``...).

    Raises:
        EngineNotInstalledError: mlflow is not installed.
        MissingPluginError: a name in the file has no known distribution.
    """
    pyfunc = _pyfunc("layerhub.mlflow.save_model")
    with _model_file(model) as file:
        pyfunc.save_model(
            os.fspath(path),
            loader_module=LOADER_MODULE,
            data_path=file,
            pip_requirements=_requirements(file, pip_requirements),
            **kwargs,
        )


def log_model(
    model: Any,
    name: str,
    *,
    pip_requirements: Any = None,
    **kwargs: Any,
) -> Any:
    """Log ``model`` to the active MLflow run (started if there is none), as ``save_model`` does.

    Args:
        model: a Keras model or the path of a model file saved with ``layerhub.save_model``.
        name: the model's name in the run (MLflow 2's ``artifact_path``).
        pip_requirements: the requirements to log instead of the file's own.
        **kwargs: more of ``mlflow.pyfunc.log_model``'s arguments (``registered_model_name``,
            ``signature``, ``input_example``...).

    Returns:
        MLflow's ``ModelInfo`` (``.model_uri`` loads it).
    """
    pyfunc = _pyfunc("layerhub.mlflow.log_model")
    # MLflow 3 names the model `name` and deprecates `artifact_path`; MLflow 2 has only the latter.
    key = "name" if "name" in inspect.signature(pyfunc.log_model).parameters else "artifact_path"
    with _model_file(model) as file:
        return pyfunc.log_model(
            loader_module=LOADER_MODULE,
            data_path=file,
            pip_requirements=_requirements(file, pip_requirements),
            **{key: name},
            **kwargs,
        )


def load_model(model_uri: str, *, dst_path: str | None = None, compile: bool = False) -> Any:
    """The Keras model logged by ``log_model`` or ``save_model``, loaded by layerhub.

    Args:
        model_uri: any MLflow model URI (``runs:/<run>/model``, ``models:/name/1``, a path).
        dst_path: where to download the model (default: a temporary directory).
        compile: passed to ``layerhub.load_model``.
    """
    from layerhub._private.errors import ModelFileError
    from layerhub._private.guard.untrusted import shown
    from layerhub._private.loading import load_model as layerhub_load

    user = "layerhub.mlflow.load_model"
    artifacts = require("mlflow.artifacts", "mlflow", user)
    models = require("mlflow.models", "mlflow", user)
    local = Path(artifacts.download_artifacts(artifact_uri=model_uri, dst_path=dst_path))
    conf = models.Model.load(str(local / "MLmodel")).flavors.get("python_function", {})
    if conf.get("loader_module") != LOADER_MODULE or not isinstance(conf.get("data"), str):
        raise ModelFileError(
            f"{shown(model_uri)} was not logged by layerhub.mlflow (its python_function loader "
            f"is {shown(conf.get('loader_module'))})"
        )
    return layerhub_load(local / conf["data"], compile=compile)


def _load_pyfunc(data_path: str) -> _PyFuncModel:
    """MLflow's entry point: ``mlflow.pyfunc.load_model`` calls it with the stored file."""
    from layerhub._private.loading import load_model as layerhub_load

    return _PyFuncModel(layerhub_load(data_path, compile=False))


class _PyFuncModel:
    """What ``mlflow.pyfunc`` wraps: ``predict`` on DataFrames, arrays or dicts of arrays."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> Any:
        import numpy as np

        frame = hasattr(data, "to_numpy") and hasattr(data, "columns")
        if frame:
            # One row per sample; each column one feature (or an array-valued column).
            names = [getattr(t, "name", None) for t in self.model.inputs]
            if len(names) > 1 and all(n in data.columns for n in names):
                feed: Any = {n: _column(data[n]) for n in names}
            elif len(data.columns) == 1 and data[data.columns[0]].dtype == object:
                feed = _column(data[data.columns[0]])
            else:
                feed = data.to_numpy(dtype=np.float32)
        else:
            feed = data
        # Of MLflow's inference params, only batch_size means something to Keras here.
        batch_size = (params or {}).get("batch_size")
        outputs = self.model.predict(feed, batch_size=batch_size, verbose=0)
        if frame and isinstance(outputs, np.ndarray) and outputs.ndim <= 2:
            # The caller's DataFrame class, so that pandas is not imported here.
            return type(data)(outputs, index=data.index)
        return outputs


def _column(values: Any) -> Any:
    import numpy as np

    return (
        np.stack([np.asarray(v) for v in values]) if values.dtype == object else values.to_numpy()
    )
