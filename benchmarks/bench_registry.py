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
        costs = []
        for count in (125, 250, 500, 1000):
            site = str(fake_site(Path(scratch), count))
            sys.path.insert(0, site)
            try:
                seconds = interleaved({"list": timed(lambda: Registry().list())}, repeats)["list"]
            finally:
                sys.path.remove(site)
            costs.append(seconds / count)
            print(
                f"  {count:5d} plugins: {seconds * 1e3:7.2f} ms "
                f"= {costs[-1] * 1e6:5.1f} us per plugin"
            )
        spread = max(costs) / min(costs)
        print(
            f"  cost per plugin varies {spread:.2f}x from 125 to 1000 plugins (linear: close to 1)"
        )


if __name__ == "__main__":
    main()
