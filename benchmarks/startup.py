"""Start-up time of the command line; prints a Markdown table.

A workflow starts one ``serialoct`` process per step and slice, so start-up
is paid hundreds of times per brain. Target: ``--help`` of the top level and
of a step under 0.5 s.

Usage::

    python benchmarks/startup.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

COMMANDS = (
    ["--help"],
    ["step", "create_mosaic_grid", "--help"],
    ["params", "reconst_3d"],
    ["preproc", "--help"],
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print("| command | median s | max s |")
    print("|---|---|---|")
    for words in COMMANDS:
        times = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            subprocess.run([sys.executable, "-m", "serialoct", *words], check=True, capture_output=True)
            times.append(time.perf_counter() - started)
        print(f"| `serialoct {' '.join(words)}` | {statistics.median(times):.3f} | {max(times):.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
