"""How long `newsletter build` takes in a cold process: five runs, each figure and the median.

Run by hand from the project folder with the venv active:  python benchmarks/build.py [--as-of DATE]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--as-of", default="2024-07-16")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    timings = []
    load_before = " ".join(f"{x:.2f}" for x in os.getloadavg())
    with tempfile.TemporaryDirectory() as tmp:
        command = [
            sys.executable,
            "-m",
            "newsletter",
            "build",
            "--config",
            str(REPO / "config.yaml"),
            "--as-of",
            args.as_of,
            "--out",
            tmp,
        ]
        for run in range(1, args.runs + 1):
            started = time.perf_counter()
            subprocess.run(command, check=True, capture_output=True)
            timings.append(time.perf_counter() - started)
            print(f"run {run}: {timings[-1]:.2f} s")
        sizes = {p.name: p.stat().st_size for p in sorted(Path(tmp).iterdir())}
    print(
        f"newsletter build --as-of {args.as_of}, cold process: median {statistics.median(timings):.2f} s "
        f"(min {min(timings):.2f}, max {max(timings):.2f}, {args.runs} runs; "
        f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} after, {load_before} before)"
    )
    for name, size in sizes.items():
        print(f"  {name}: {size / 1024:.1f} KB")


if __name__ == "__main__":
    main()
