"""Spark: score a model file with plugin layers in a ``predict_batch_udf``.

``pyspark.ml.functions.predict_batch_udf`` calls a ``make_predict_fn`` once per Python worker;
plain ``keras.saving.load_model`` there fails with "Could not locate class" for any plugin layer.
``predict_batch_udf`` here passes one that loads with ``layerhub.load_model``::

    from pyspark.sql.types import ArrayType, FloatType
    import layerhub.spark

    predict = layerhub.spark.predict_batch_udf(
        "/shared/model.keras", ArrayType(FloatType()), batch_size=256, input_tensor_shapes=[[8]]
    )
    df.withColumn("predictions", predict("features"))

Every worker needs the model file at that path and the plugins installed (``layerhub
requirements MODEL --with-core`` prints them). pyspark is imported only when the function is
called (``pip install 'layerhub[spark]'``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from layerhub._private.engines import EngineNotInstalledError, require

__all__ = ["EngineNotInstalledError", "Loader", "predict_batch_udf"]


def predict_batch_udf(
    model: str | os.PathLike[str],
    return_type: Any,
    *,
    batch_size: int,
    input_tensor_shapes: Any = None,
    compile: bool = False,
    **kwargs: Any,
) -> Any:
    """``pyspark.ml.functions.predict_batch_udf`` for a model file, loaded by layerhub.

    Args:
        model: the model file's path (or ``hf://...``), readable by every worker.
        return_type: the Spark type of the predictions, as for pyspark's function (for one
            vector output, ``ArrayType(FloatType())``).
        batch_size: rows per ``model.predict`` call.
        input_tensor_shapes: the shape of each input column's rows; needed for array columns
            (``[[8]]`` for one column of 8 floats).
        compile: passed to ``layerhub.load_model``.
        **kwargs: more of pyspark's arguments (``input_names``...).

    Returns:
        The pandas UDF pyspark returns.

    Raises:
        EngineNotInstalledError: pyspark (with pandas and pyarrow) is not installed.
    """
    functions = require("pyspark.ml.functions", "spark", "layerhub.spark.predict_batch_udf")
    return functions.predict_batch_udf(
        Loader(os.fspath(model), compile=compile),
        return_type=return_type,
        batch_size=batch_size,
        input_tensor_shapes=input_tensor_shapes,
        **kwargs,
    )


class Loader:
    """The ``make_predict_fn`` pyspark calls on a worker: ``layerhub.load_model``, then predict.

    A class at module level, so that Spark pickles a reference to it and its two fields, not
    the code: the workers run their own installed layerhub.
    """

    def __init__(self, model: str, *, compile: bool = False) -> None:
        self.model = model
        self.compile = compile

    def __call__(self) -> Callable[..., Any]:
        from layerhub._private.loading import load_model

        loaded = load_model(self.model, compile=self.compile)

        def predict(*inputs: Any) -> Any:
            # pyspark passes one array per input column, already batched.
            feed = inputs[0] if len(inputs) == 1 else list(inputs)
            outputs = loaded.predict(feed, batch_size=len(inputs[0]), verbose=0)
            if isinstance(outputs, (list, tuple)):
                # pyspark takes several outputs as a dict, matched to a StructType's fields.
                names = list(getattr(loaded, "output_names", None) or ())
                if len(names) != len(outputs):
                    names = [f"output_{i}" for i in range(len(outputs))]
                return dict(zip(names, outputs, strict=True))
            return outputs

        return predict
