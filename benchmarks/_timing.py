"""Side-by-side timing helpers shared by the benchmarks."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping


def interpreter_seconds(code: str, env: Mapping[str, str] | None = None) -> float:
    """Wall time of a new interpreter running ``code`` (start-up included)."""
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", code],
        check=True,
        env={**os.environ, **(env or {})},
        # TensorFlow logs to stderr at start-up whatever TF_CPP_MIN_LOG_LEVEL says.
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - start


def interleaved(contenders: Mapping[str, Callable[[], float]], repeats: int) -> dict[str, float]:
    """Median seconds of each contender, run in turns so drift hits all of them alike.

    The order of the turns alternates from round to round: whatever one run leaves behind (a
    garbage collection, dirty pages) falls on each contender equally often.
    """
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    order = list(contenders.items())
    for _ in range(repeats):
        for name, run in order:
            samples[name].append(run())
        order.reverse()
    return {name: statistics.median(times) for name, times in samples.items()}


def timed(action: Callable[[], object]) -> Callable[[], float]:
    def run() -> float:
        start = time.perf_counter()
        action()
        return time.perf_counter() - start

    return run


def verdict(ratio: float, goal: float, *, at_most: bool = True) -> str:
    met = ratio <= goal if at_most else ratio >= goal
    return f"goal {'<=' if at_most else '>='} {goal:g}: {'met' if met else 'NOT met'}"
