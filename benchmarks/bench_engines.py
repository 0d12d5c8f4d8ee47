"""Scoring on workers: layerhub's Ray Data and Spark entry points against hand-written ones.

The model: Dense(512) > Scale > Dense(512) > Scale > Dense(8) on 64 float32 features (Scale is
layerhub-scale's plugin layer), saved with ``layerhub.save_model``; 40,000 rows. The plugins are
installed in this interpreter's environment, which the workers run too (the bench environment).

- Ray Data (2 CPUs): ``map_batches`` over 8 blocks of 5,000 rows on ``ActorPoolStrategy(size=2)``
  with ``num_cpus=0.5`` (two whole-CPU actors and Ray Data's own tasks deadlock on 2 CPUs).
  ``layerhub.ray.Predictor`` against a class that imports ``layerhub_scale`` and calls
  ``keras.saving.load_model`` itself, predicting the same way. Ray Data starts a new actor pool
  for every job, so no round can reuse started actors: each actor times its own constructor
  (``import keras``, then the model load) and stamps every batch with its start, end and CPU
  time. Steady rows/s: the sum over the two actors of rows / (last batch end - first batch
  start). End-to-end rows/s: rows / the job's wall time, actor start-up included.
- Spark (``local[2]``, Python workers reused): ``layerhub.spark.predict_batch_udf`` against
  pyspark's ``predict_batch_udf`` whose ``make_predict_fn`` imports ``layerhub_scale`` and calls
  ``keras.saving.load_model``; batch 5,000, results to Spark's ``noop`` sink. pyspark keeps each
  UDF's model in the worker, so only the first job of a new UDF loads it: the load cost is that
  first job minus the median later one (two new UDFs each; the workers have imported Keras and
  the plugin already), steady rows/s come from the later jobs. CPU time: the Python workers'
  (from /proc, before and after each job).

Each engine's contenders run in paired rounds, their order alternating; every ratio is
layerhub / hand, the median of the round-by-round ratios with its 95% interval. Goal: >= 0.98
for steady rows/s. Rows per CPU-second are printed too: other processes on a shared machine
stretch wall time far more than CPU time. Skips an engine whose package (or Java) is missing.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from _timing import paired_ratio, rounds, verdict

ROWS = 40_000
FEATURES = 64
WIDTH = 512
OUTPUTS = 8
BLOCK = 5_000
RAY_ROUNDS = 6
SPARK_ROUNDS = 6
GOAL = 0.98
STAMPS = ["t0", "t1", "cpu", "pid", "import_s", "load_s"]
HEADER = [
    "| engine | contender | load in worker | start-up | steady rows/s | rows per CPU-s "
    "| end-to-end rows/s |",
    "|---|---|---|---|---|---|---|",
]


def version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "missing"


def save_model(path: Path) -> None:
    import keras
    from layerhub_scale import Scale

    import layerhub

    inputs = keras.Input((FEATURES,))
    hidden = Scale()(keras.layers.Dense(WIDTH, activation="relu")(inputs))
    hidden = Scale()(keras.layers.Dense(WIDTH, activation="relu")(hidden))
    layerhub.save_model(keras.Model(inputs, keras.layers.Dense(OUTPUTS)(hidden)), path)


def stamped(out: dict[str, Any], start: float, cpu: float, times: tuple[float, float]) -> Any:
    """``out`` with the batch's start and end (wall clock: shared by the actors), CPU, load."""
    import numpy as np

    rows = len(out["predictions"])
    # The batch's CPU seconds spread over its rows, so that a column sum is the job's total.
    cpu = (time.process_time() - cpu) / rows
    for name, value in zip(STAMPS, (start, time.time(), cpu, os.getpid(), *times), strict=True):
        out[name] = np.full(rows, value)
    return out


def summary(runs: dict[str, list[dict[str, float]]], engine: str) -> list[str]:
    """The table's rows for ``engine``, then its paired ratios."""

    def median(name: str, key: str) -> float:
        return statistics.median(r[key] for r in runs[name])

    lines = []
    for name in runs:
        if engine == "Ray Data":
            load = f"{median(name, 'import_s'):.2f} s import + {median(name, 'load_s'):.3f} s"
            startup = f"{median(name, 'startup'):.2f} s"
        else:
            load = f"{median(name, 'load_s'):.3f} s, {median(name, 'load_cpu'):.3f} CPU-s"
            startup = "-"
        lines.append(
            f"| {engine} | {name} | {load} | {startup} | {median(name, 'steady'):,.0f} "
            f"| {median(name, 'per_cpu'):,.0f} | {median(name, 'end_to_end'):,.0f} |"
        )
    for key, what in (("steady", "steady rows/s"), ("per_cpu", "rows per CPU-s")) + (
        (("end_to_end", "end-to-end rows/s"),) if engine == "Ray Data" else ()
    ):
        ratio = paired_ratio([r[key] for r in runs["layerhub"]], [r[key] for r in runs["hand"]])
        goal = f"   ({verdict(ratio.median, GOAL, at_most=False)})" if key == "steady" else ""
        lines.append(f"{engine} {what}, layerhub / hand: {ratio}{goal}")
    return lines


def bench_ray(path: Path, data: Any) -> list[str]:
    import numpy as np
    import ray
    from ray.data import ActorPoolStrategy, DataContext

    import layerhub.ray

    # Both classes are defined here, so Ray pickles them by value; the TF import is the same
    # for both and is timed apart from the load being compared.
    class Layerhub(layerhub.ray.Predictor):
        def __init__(self, model: str) -> None:
            start = time.perf_counter()
            import keras  # noqa: F401

            imported = time.perf_counter()
            super().__init__(model)
            self.times = (imported - start, time.perf_counter() - imported)

        def __call__(self, batch: Any) -> Any:
            start, cpu = time.time(), time.process_time()
            return stamped(super().__call__(batch), start, cpu, self.times)

    class Hand:
        def __init__(self, model: str) -> None:
            start = time.perf_counter()
            import keras

            imported = time.perf_counter()
            import layerhub_scale  # noqa: F401  (registers Scale with Keras)

            self.model = keras.saving.load_model(model, compile=False)
            self.times = (imported - start, time.perf_counter() - imported)

        def __call__(self, batch: Any) -> Any:
            start, cpu = time.time(), time.process_time()
            out = dict(batch)
            rows = len(batch["data"])
            out["predictions"] = self.model.predict(batch["data"], batch_size=rows, verbose=0)
            return stamped(out, start, cpu, self.times)

    temp_dir = tempfile.mkdtemp(prefix="lh-bench-ray-", dir="/tmp")  # short: Unix sockets
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
        _temp_dir=temp_dir,
    )
    try:
        DataContext.get_current().enable_progress_bars = False
        logging.getLogger("ray.data").setLevel(logging.WARNING)
        source = ray.data.from_numpy(np.array_split(data, ROWS // BLOCK)).materialize()
        runs: dict[str, list[dict[str, float]]] = {"layerhub": [], "hand": []}

        def job(name: str, cls: type) -> float:
            start = time.time()
            stamps = (
                source.map_batches(
                    cls,
                    fn_constructor_kwargs={"model": str(path)},
                    compute=ActorPoolStrategy(size=2),
                    num_cpus=0.5,
                    batch_size=BLOCK,
                )
                .select_columns(STAMPS)
                .to_pandas()
            )
            seconds = time.time() - start
            assert len(stamps) == ROWS
            actors = stamps.groupby("pid")
            span = actors["t1"].max() - actors["t0"].min()
            runs[name].append(
                {
                    "steady": float((actors.size() / span).sum()),
                    "per_cpu": ROWS / float(stamps["cpu"].sum()),
                    "end_to_end": ROWS / seconds,
                    "startup": float(stamps["t0"].min() - start),
                    "import_s": float(actors["import_s"].first().median()),
                    "load_s": float(actors["load_s"].first().median()),
                }
            )
            return seconds

        rounds(
            {"layerhub": lambda: job("layerhub", Layerhub), "hand": lambda: job("hand", Hand)},
            RAY_ROUNDS,
        )
    finally:
        ray.shutdown()
        shutil.rmtree(temp_dir, ignore_errors=True)
    return summary(runs, "Ray Data")


def descendants_cpu(marker: bytes) -> float:
    """CPU seconds so far of this process's descendants whose command line holds ``marker``."""
    parents, cpu, tick = {}, {}, os.sysconf("SC_CLK_TCK")
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
            command = Path(entry.path, "cmdline").read_bytes()
        except OSError:  # gone meanwhile
            continue
        # After the parenthesised name: state, ppid, ... utime and stime are the 12th and 13th.
        fields = stat.rsplit(")", 1)[1].split()
        pid = int(entry.name)
        parents[pid] = int(fields[1])
        if marker in command:
            cpu[pid] = (int(fields[11]) + int(fields[12])) / tick

    def ours(pid: int) -> bool:
        while pid > 1:
            pid = parents.get(pid, 0)
            if pid == os.getpid():
                return True
        return False

    return sum(seconds for pid, seconds in cpu.items() if ours(pid))


def bench_spark(path: Path) -> list[str]:
    from pyspark.ml.functions import predict_batch_udf
    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F
    from pyspark.sql.types import ArrayType, FloatType

    import layerhub.spark

    model = str(path)

    def hand_loader() -> Any:
        import keras
        import layerhub_scale  # noqa: F401  (registers Scale with Keras)

        loaded = keras.saving.load_model(model, compile=False)
        return lambda x: loaded.predict(x, batch_size=len(x), verbose=0)

    def keras_only() -> Any:
        import keras  # noqa: F401
        import layerhub_scale  # noqa: F401
        import numpy as np

        return lambda x: np.zeros((len(x), OUTPUTS), dtype=np.float32)

    def udf(name: str) -> Any:
        shape = {"batch_size": BLOCK, "input_tensor_shapes": [[FEATURES]]}
        if name == "layerhub":
            return layerhub.spark.predict_batch_udf(model, ArrayType(FloatType()), **shape)
        loader = hand_loader if name == "hand" else keras_only
        return predict_batch_udf(loader, return_type=ArrayType(FloatType()), **shape)

    # The JVM, and every Python worker it starts, copies this environment now: without
    # PYSPARK_PYTHON the workers would run the system Python.
    os.environ.update(PYSPARK_PYTHON=sys.executable, SPARK_LOCAL_IP="127.0.0.1")
    spark = (
        SparkSession.builder.master("local[2]")
        .appName("layerhub-bench-engines")
        .config("spark.ui.enabled", "false")
        .config("spark.python.worker.reuse", "true")
        .config("spark.ui.showConsoleProgress", "false")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    try:
        columns = [F.rand(seed=i).cast("float") for i in range(FEATURES)]
        frame = spark.range(ROWS, numPartitions=2).select(F.array(*columns).alias("features"))
        frame = frame.cache()
        frame.count()

        def job(predict: Any) -> tuple[float, float]:
            """Wall and worker CPU seconds of scoring every row."""
            wall, cpu = time.perf_counter(), descendants_cpu(b"pyspark.daemon")
            # The noop sink consumes every row of the column, so nothing prunes the UDF away.
            frame.select(predict("features")).write.format("noop").mode("overwrite").save()
            return time.perf_counter() - wall, descendants_cpu(b"pyspark.daemon") - cpu

        # Both workers import Keras and the plugin before anything is timed; the second run of
        # that UDF, which scores nothing, is what Spark itself costs per job.
        zeros = udf("keras_only")
        job(zeros)
        spark_only = job(zeros)
        first: dict[str, list[tuple[float, float]]] = {"layerhub": [], "hand": []}
        udfs: dict[str, Any] = {}
        for name in ("layerhub", "hand", "hand", "layerhub"):
            udfs[name] = udf(name)
            first[name].append(job(udfs[name]))
        warm: dict[str, list[tuple[float, float]]] = {"layerhub": [], "hand": []}

        def contender(name: str) -> Callable[[], float]:
            def run() -> float:
                warm[name].append(job(udfs[name]))
                return warm[name][-1][0]

            return run

        rounds({name: contender(name) for name in warm}, SPARK_ROUNDS)
    finally:
        spark.stop()

    runs = {
        name: [
            {
                "steady": ROWS / wall,
                "per_cpu": ROWS / cpu,
                "end_to_end": ROWS / statistics.median(w for w, _ in first[name]),
                "load_s": statistics.median(w for w, _ in first[name]) - wall,
                "load_cpu": statistics.median(c for _, c in first[name]) - cpu,
            }
            for wall, cpu in warm[name]
        ]
        for name in warm
    }
    lines = summary(runs, "Spark")
    steady = statistics.median(w for w, _ in warm["hand"])
    steady_cpu = statistics.median(c for _, c in warm["hand"])
    lines.append(
        f"Spark's own share of a steady job (a UDF returning zeros): {spark_only[0]:.2f} s of "
        f"{steady:.2f} s, {spark_only[1]:.2f} of {steady_cpu:.2f} worker CPU-s"
    )
    return lines


def main() -> int:
    begun = time.perf_counter()
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    engines = {"ray": version("ray"), "pyspark": version("pyspark")}
    print(
        f"python {platform.python_version()}, keras {version('keras')} "
        f"({os.environ['KERAS_BACKEND']}), layerhub {version('layerhub')}, "
        + ", ".join(f"{k} {v}" for k, v in engines.items())
        + f"; {os.cpu_count()} CPUs"
    )
    print(
        f"model: Dense({WIDTH}) > Scale > Dense({WIDTH}) > Scale > Dense({OUTPUTS}), "
        f"{FEATURES} features; {ROWS:,} rows in batches of {BLOCK:,}; 2 workers; "
        f"rounds: Ray {RAY_ROUNDS}, Spark {SPARK_ROUNDS}"
    )
    if version("layerhub-scale") == "missing":
        print("skipped: layerhub-scale is not installed")
        return 0
    import numpy as np

    lines = []
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "model.keras"
        save_model(path)
        data = np.random.default_rng(0).random((ROWS, FEATURES), dtype=np.float32)
        if engines["ray"] == "missing":
            lines.append("Ray Data: skipped (ray is not installed)")
        else:
            lines += bench_ray(path, data)
        if engines["pyspark"] == "missing":
            lines.append("Spark: skipped (pyspark is not installed)")
        elif not (shutil.which("java") or os.environ.get("JAVA_HOME")):
            lines.append("Spark: skipped (no Java)")
        else:
            lines += bench_spark(path)
    table = [line for line in lines if line.startswith("|")]
    print("\n".join(["", *HEADER, *table, "", *(n for n in lines if n not in table)]))
    print(
        "Load in worker: Ray, the actor constructor's import keras and load (wall); Spark, the "
        "first job of a new UDF minus a later one (wall, and the workers' CPU).\n"
        "Start-up: Ray, job submitted to first batch started. End-to-end: Ray, a whole job "
        "(its actors start for it); Spark, the first job of a new UDF."
    )
    print(f"total {time.perf_counter() - begun:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
