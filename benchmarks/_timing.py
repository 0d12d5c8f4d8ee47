"""Side-by-side timing helpers shared by the benchmarks."""

from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple


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


def child_result(code: str, arguments: Sequence[str], env: Mapping[str, str]) -> dict[str, Any]:
    """Run ``code`` in a new interpreter; the JSON it printed on a ``RESULT `` line, or
    ``{"error": ...}`` with its exit status and last line of stderr."""
    proc = subprocess.run(
        [sys.executable, "-c", code, *arguments],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        check=False,
    )
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            found: dict[str, Any] = json.loads(line[len("RESULT ") :])
            return found
    tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    return {"error": f"exit {proc.returncode}: {tail[:300]}"}


def interleaved(contenders: Mapping[str, Callable[[], float]], repeats: int) -> dict[str, float]:
    """Median seconds of each contender, run in turns so drift hits all of them alike."""
    return {name: statistics.median(times) for name, times in rounds(contenders, repeats).items()}


def rounds(contenders: Mapping[str, Callable[[], float]], repeats: int) -> dict[str, list[float]]:
    """Seconds of each contender in each round; every round runs every contender once.

    The order of the turns alternates from round to round: whatever one run leaves behind (a
    garbage collection, dirty pages) falls on each contender equally often.
    """
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    order = list(contenders.items())
    for _ in range(repeats):
        for name, run in order:
            samples[name].append(run())
        order.reverse()
    return samples


class PairedRatio(NamedTuple):
    median: float
    low: float
    high: float

    def __str__(self) -> str:
        return f"{self.median:5.3f}x (95% CI {self.low:5.3f} to {self.high:5.3f})"


def paired_ratio(ours: Sequence[float], theirs: Sequence[float]) -> PairedRatio:
    """The median of the round-by-round ratios ``ours[i] / theirs[i]``, with a 95% interval.

    Runs a few milliseconds long on a shared virtual disk drift by more than the difference
    being measured: a slow stretch can fall on one contender's median and not the other's. The
    two runs of one round share their stretch, so their ratio cancels it. The interval is the
    distribution-free one of a median: between the order statistics that a Binomial(n, 1/2)
    count puts 2.5% beyond on either side (needs at least 6 rounds).
    """
    ratios = sorted(a / b for a, b in zip(ours, theirs, strict=True))
    n = len(ratios)
    if n < 6:
        raise ValueError(f"a 95% interval needs at least 6 rounds. Received: rounds={n}")
    # The largest k with P(Binomial(n, 1/2) < k) <= 2.5%: ratios[k-1] and ratios[n-k] bound it.
    below, k = 0.0, 0
    while below + math.comb(n, k) / 2**n <= 0.025:
        below += math.comb(n, k) / 2**n
        k += 1
    return PairedRatio(statistics.median(ratios), ratios[k - 1], ratios[n - k])


def timed(action: Callable[[], object]) -> Callable[[], float]:
    def run() -> float:
        start = time.perf_counter()
        action()
        return time.perf_counter() - start

    return run


def verdict(ratio: float, goal: float, *, at_most: bool = True) -> str:
    met = ratio <= goal if at_most else ratio >= goal
    return f"goal {'<=' if at_most else '>='} {goal:g}: {'met' if met else 'NOT met'}"
