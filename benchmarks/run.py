"""Run every benchmark; each prints its figures and ratios measured side by side in one run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent
BENCHMARKS = (
    "bench_registry.py",
    "bench_loading.py",
    "bench_locally_connected.py",
    "bench_fm.py",
    "bench_pam.py",
    "bench_saving.py",
    "bench_migration.py",
    "bench_engines.py",
)
# `run.py --full` passes --full to the benchmarks that have a reduced default set.
FULL_SET = {"bench_pam.py", "bench_saving.py"}


def main() -> int:
    failed = []
    for name in BENCHMARKS:
        print(f"\n### {name}", flush=True)
        extra = ["--full"] if "--full" in sys.argv[1:] and name in FULL_SET else []
        if subprocess.run([sys.executable, str(HERE / name), *extra], check=False).returncode:
            failed.append(name)
    if failed:
        print(f"\nbenchmarks that crashed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
