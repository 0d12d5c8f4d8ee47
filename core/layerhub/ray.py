"""Ray: install what a model file needs on every worker, and score it with Ray Data.

Ray ships a model file's bytes to its workers, not the classes inside it. ``runtime_env`` reads
the file's layerhub manifest (without loading the model) and returns a ``runtime_env`` whose pip
entry installs exactly the plugins it names; ``Predictor`` is the callable class for
``Dataset.map_batches`` that loads the model once per actor with ``layerhub.load_model``::

    import ray
    from ray.data import ActorPoolStrategy
    import layerhub.ray

    ray.init(runtime_env=layerhub.ray.runtime_env("model.keras", find_links="wheels/"))
    scored = ray.data.from_numpy(blocks).map_batches(
        layerhub.ray.Predictor,
        fn_constructor_kwargs={"model": "/shared/model.keras"},
        compute=ActorPoolStrategy(size=2),
        num_cpus=0.5,
    )

Ray itself is imported by neither; ``runtime_env`` only checks that ``ray`` and ``virtualenv``
(which Ray's pip runtime environments need) are installed (``pip install 'layerhub[ray]'``).
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping, Sequence
from typing import Any

from layerhub._private.engines import EngineNotInstalledError, requirements

__all__ = ["EngineNotInstalledError", "Predictor", "runtime_env"]


def runtime_env(
    model: str | os.PathLike[str],
    find_links: str | os.PathLike[str] | None = None,
    index_url: str | None = None,
    *,
    no_index: bool | None = None,
    with_core: bool = True,
    pip_options: Sequence[str] = (),
    **fields: Any,
) -> dict[str, Any]:
    """A Ray ``runtime_env`` whose ``pip`` entry installs what ``model`` needs.

    The requirements are ``layerhub requirements MODEL --with-core``: ``keras`` and ``layerhub``
    at the versions running here, and each plugin the file's manifest names, pinned.

    Args:
        model: the model file, as ``layerhub.load_model`` takes it (only its config and manifest
            are read).
        find_links: a directory (or URL) of wheels for pip's ``--find-links``.
        index_url: a package index for pip's ``--index-url``.
        no_index: pass ``--no-index``; by default, when ``find_links`` is given without
            ``index_url`` (an offline wheel directory).
        with_core: also require ``keras`` and ``layerhub`` (Ray's pip environments start from
            the driver's, so these are usually satisfied already).
        pip_options: more options for ``pip install``.
        **fields: other ``runtime_env`` fields (``env_vars``, ``working_dir``...).

    Returns:
        ``{"pip": {"packages": [...], "pip_install_options": [...]}, **fields}``.

    Raises:
        EngineNotInstalledError: ``ray`` or ``virtualenv`` is not installed.
        MissingPluginError: a name in the file has no known distribution.
        ModelFileError: the file cannot be read.
    """
    for module in ("ray", "virtualenv"):
        if _find_spec(module) is None:
            raise EngineNotInstalledError(
                f"layerhub.ray.runtime_env needs {module}, which is not installed; "
                "run: pip install 'layerhub[ray]'"
            )
    if "pip" in fields:
        raise TypeError("runtime_env() builds the 'pip' field itself; pass pip_options instead")
    options: list[str] = []
    if no_index if no_index is not None else (find_links is not None and index_url is None):
        options.append("--no-index")
    if find_links is not None:
        options += ["--find-links", os.fspath(find_links)]
    if index_url is not None:
        options += ["--index-url", index_url]
    options += list(pip_options)
    pip: dict[str, Any] = {"packages": requirements(model, with_core=with_core)}
    if options:
        pip["pip_install_options"] = options
    return {"pip": pip, **fields}


def _find_spec(module: str) -> object:
    try:
        return importlib.util.find_spec(module)
    except (ImportError, ValueError):  # ValueError: sys.modules holds None for it
        return None


class Predictor:
    """Callable class for ``Dataset.map_batches``: one ``layerhub.load_model`` per actor.

    A batch is a dict of NumPy arrays (Ray Data's default format). The model's input is taken
    from ``input_columns`` (one column per model input, in order), or by default from the
    columns named like the model's inputs, or else from the batch's only column. Outputs are
    added as ``output_column`` (a model with several outputs: ``output_column_0``, ... or the
    output names of a dict); the input columns are kept unless ``keep_columns`` is false.

    Args:
        model: the model file, readable by every worker (shared storage, or ``hf://...``).
        input_columns: the columns holding the model's inputs.
        output_column: the name of the predictions column.
        keep_columns: keep the batch's columns next to the predictions.
        batch_size: passed to ``model.predict`` (default: the whole Ray batch at once).
        compile: passed to ``layerhub.load_model`` (scoring needs no training configuration).
    """

    def __init__(
        self,
        model: str | os.PathLike[str],
        *,
        input_columns: Sequence[str] | None = None,
        output_column: str = "predictions",
        keep_columns: bool = True,
        batch_size: int | None = None,
        compile: bool = False,
    ) -> None:
        from layerhub._private.loading import load_model

        self.model = load_model(model, compile=compile)
        self.input_columns = list(input_columns) if input_columns is not None else None
        self.output_column = output_column
        self.keep_columns = keep_columns
        self.batch_size = batch_size

    def __call__(self, batch: Mapping[str, Any]) -> dict[str, Any]:
        inputs = self._inputs(batch)
        rows = len(next(iter(batch.values()))) if batch else 0
        outputs = self.model.predict(inputs, batch_size=self.batch_size or max(rows, 1), verbose=0)
        result = dict(batch) if self.keep_columns else {}
        if isinstance(outputs, dict):
            result.update({f"{self.output_column}_{k}": v for k, v in outputs.items()})
        elif isinstance(outputs, (list, tuple)):
            result.update({f"{self.output_column}_{i}": v for i, v in enumerate(outputs)})
        else:
            result[self.output_column] = outputs
        return result

    def _inputs(self, batch: Mapping[str, Any]) -> Any:
        import numpy as np

        if self.input_columns is not None:
            columns = self.input_columns
        else:
            names = [getattr(t, "name", None) for t in getattr(self.model, "inputs", None) or ()]
            if names and all(isinstance(n, str) and n in batch for n in names):
                columns = [str(n) for n in names]
            elif len(batch) == 1:
                columns = list(batch)
            else:
                raise ValueError(
                    f"the batch has columns {sorted(batch)}; say which hold the model's inputs "
                    "with Predictor(..., input_columns=[...])"
                )
        missing = [c for c in columns if c not in batch]
        if missing:
            raise KeyError(f"the batch has no column {missing[0]!r} (it has {sorted(batch)})")
        arrays = [np.stack(batch[c]) if batch[c].dtype == object else batch[c] for c in columns]
        return arrays[0] if len(arrays) == 1 else arrays
