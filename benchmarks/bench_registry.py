"""Benchmarks 1 and 3: ``registry.list()`` cold in a new interpreter.

1. against a bare ``importlib.metadata`` scan of the same entry-point groups (goal <= 1.3x) and
   against ``import keras`` (goal >= 20x faster);
3. the same with 500 fake installed plugins (goal <= 1.3x the bare scan) and its growth with the
   number of plugins (goal: linear).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _timing import interleaved, interpreter_seconds, timed, verdict

from layerhub import Registry
from layerhub.testing.fakes import write_fake_distribution

LIST = "from layerhub import registry; registry.list()"
# One scan, both groups: the cheapest way to read the same metadata by hand.
BARE = (
    "import importlib.metadata as m; eps = m.entry_points(); "
    "[(ep.name, ep.value) for g in ('layerhub', 'layerhub.layers') for ep in eps.select(group=g)]"
)
KERAS = "import keras"


def fake_site(root: Path, count: int) -> Path:
    site = root / f"site-{count}"
    if site.exists():
        return site
    site.mkdir()
    for i in range(count):
        plugin = f"layerhub_fake{i:04d}"
        write_fake_distribution(
            site,
            plugin.replace("_", "-"),
            plugin=plugin,
            objects={f"Layer{i}A": f"{plugin}:Layer{i}A", f"Layer{i}B": f"{plugin}:Layer{i}B"},
        )
    return site


def main(repeats: int = 15) -> None:
    print("== 1. registry.list() cold, in a new interpreter (median wall time)")
    times = interleaved(
        {
            "list": lambda: interpreter_seconds(LIST),
            "bare": lambda: interpreter_seconds(BARE),
            "keras": lambda: interpreter_seconds(KERAS),
        },
        repeats,
    )
    ratio = times["list"] / times["bare"]
    speedup = times["keras"] / times["list"]
    print(f"  registry.list()          {times['list'] * 1e3:8.1f} ms")
    print(f"  bare importlib scan      {times['bare'] * 1e3:8.1f} ms")
    print(f"  python -c 'import keras' {times['keras'] * 1e3:8.1f} ms")
    print(f"  list / bare scan  = {ratio:5.2f}x   ({verdict(ratio, 1.3)})")
    print(
        f"  import keras / list = {speedup:5.1f}x faster   ({verdict(speedup, 20, at_most=False)})"
    )

    print("== 3. registry.list() with many fake installed plugins (2 objects each)")
    with tempfile.TemporaryDirectory() as scratch:
        env = {"PYTHONPATH": str(fake_site(Path(scratch), 500))}
        times = interleaved(
            {
                "list": lambda: interpreter_seconds(LIST, env),
                "bare": lambda: interpreter_seconds(BARE, env),
            },
            repeats,
        )
        ratio = times["list"] / times["bare"]
        print(
            f"  500 plugins, cold: list {times['list'] * 1e3:.1f} ms, "
            f"bare {times['bare'] * 1e3:.1f} ms"
        )
        print(f"  list / bare scan = {ratio:4.2f}x   ({verdict(ratio, 1.3)})")
        print("  growth, measured in one process (a fresh Registry per run):")
        counts = (125, 250, 500, 1000)
        seconds = []
        for count in counts:
            site = str(fake_site(Path(scratch), count))
            sys.path.insert(0, site)
            try:
                seconds.append(
                    interleaved({"list": timed(lambda: Registry().list())}, repeats)["list"]
                )
            finally:
                sys.path.remove(site)
            print(f"  {count:5d} plugins: {seconds[-1] * 1e3:7.2f} ms")
        slope, intercept, r_squared = linear_fit(counts, seconds)
        print(
            f"  least-squares line: {intercept * 1e3:.1f} ms + {slope * 1e6:.1f} us per plugin, "
            f"R^2 = {r_squared:.3f} (goal: linear, R^2 >= 0.95: "
            f"{'met' if r_squared >= 0.95 else 'NOT met'})"
        )


def linear_fit(xs: tuple[int, ...], ys: list[float]) -> tuple[float, float, float]:
    """Slope, intercept and R^2 of the least-squares line through the points."""
    n = len(xs)
    mean_x, mean_y = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mean_x) ** 2 for x in xs)
    sxy = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True))
    slope = sxy / sxx
    intercept = mean_y - slope * mean_x
    residual = sum((y - intercept - slope * x) ** 2 for x, y in zip(xs, ys, strict=True))
    total = sum((y - mean_y) ** 2 for y in ys)
    return slope, intercept, 1 - residual / total


if __name__ == "__main__":
    main()
