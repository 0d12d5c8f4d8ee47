"""Spark's ``predict_batch_udf`` on ``local[2]`` scores a plugin model through layerhub.

The plugin reaches Spark's Python workers only (``PYTHONPATH`` set while the JVM starts; this
process has none). The workers are not reused (``spark.python.worker.reuse=false``), so the
negative control, pyspark's own ``predict_batch_udf`` with plain ``keras.saving.load_model``,
meets a worker in which nothing has imported the plugin, whatever ran before it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("pyspark.ml.functions")

from pyspark.sql import SparkSession
from pyspark.sql.types import ArrayType, FloatType

import layerhub.spark

PARTITIONS = 2


@pytest.fixture(scope="module")
def spark(plugin_site: Path, tools: Any) -> Any:
    # The JVM, and every Python worker it starts, copies this environment now.
    saved = dict(os.environ)
    os.environ.update(
        tools.child_env(plugin_site, PYSPARK_PYTHON=sys.executable, SPARK_LOCAL_IP="127.0.0.1")
    )
    try:
        session = (
            SparkSession.builder.master(f"local[{PARTITIONS}]")
            .appName("layerhub-engines")
            .config("spark.ui.enabled", "false")
            .config("spark.python.worker.reuse", "false")
            .config("spark.sql.shuffle.partitions", str(PARTITIONS))
            .getOrCreate()
        )
    finally:
        os.environ.clear()
        os.environ.update(saved)
    try:
        yield session
    finally:
        session.stop()


@pytest.fixture(scope="module")
def frame(spark: Any, scale_model: Any) -> Any:
    rows = [(i, row.tolist()) for i, row in enumerate(scale_model.x)]
    return spark.sparkContext.parallelize(rows, PARTITIONS).toDF("id long, features array<float>")


def _scored(frame: Any, udf: Any) -> np.ndarray:
    rows = frame.withColumn("predictions", udf("features")).orderBy("id").collect()
    assert [r["id"] for r in rows] == list(range(len(rows)))
    return np.array([r["predictions"] for r in rows], dtype=np.float32)


def test_plain_keras_loader_fails_on_the_workers(frame: Any, scale_model: Any) -> None:
    from pyspark.errors import PythonException
    from pyspark.ml.functions import predict_batch_udf

    path = str(scale_model.path)

    def plain_keras() -> Any:
        import importlib.metadata

        import keras

        # The plugin is installed on the worker; plain Keras does not know to import it.
        assert importlib.metadata.version("layerhub-scale")
        model = keras.saving.load_model(path)
        return lambda x: model.predict(x, verbose=0)

    udf = predict_batch_udf(
        plain_keras, return_type=ArrayType(FloatType()), batch_size=16, input_tensor_shapes=[[8]]
    )
    with pytest.raises(PythonException, match="Could not locate class 'Scale'"):
        _scored(frame, udf)


def test_predict_batch_udf_matches_one_process(frame: Any, scale_model: Any) -> None:
    udf = layerhub.spark.predict_batch_udf(
        scale_model.path, ArrayType(FloatType()), batch_size=16, input_tensor_shapes=[[8]]
    )
    np.testing.assert_allclose(_scored(frame, udf), scale_model.y, rtol=1e-6, atol=1e-6)


def test_without_pyspark_the_error_names_the_extra(
    scale_model: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pyspark.ml.functions", None)
    with pytest.raises(layerhub.spark.EngineNotInstalledError, match=r"layerhub\[spark\]"):
        layerhub.spark.predict_batch_udf(scale_model.path, ArrayType(FloatType()), batch_size=8)
