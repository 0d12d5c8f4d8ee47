"""Run every benchmark; each prints its figures and ratios measured side by side in one run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent
BENCHMARKS = ("bench_registry.py", "bench_loading.py", "bench_locally_connected.py")


def main() -> int:
    failed = []
    for name in BENCHMARKS:
        print(f"\n### {name}", flush=True)
        if subprocess.run([sys.executable, str(HERE / name)], check=False).returncode:
            failed.append(name)
    if failed:
        print(f"\nbenchmarks that crashed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
