"""Each notebook's run time as a fraction of its 60 s budget, slowest first.

Executes every notebook of the book and the labs with nbclient, as the book
build does, without the cache, one at a time by default so that no notebook
shares the CPU with another (the budget is per notebook on a 2-core CPU).
A notebook over budget is marked ``OVER BUDGET``; the script exits 1 if any
failed.

    .venv/bin/python benchmarks/notebook_times.py [--jobs 1] [notebook ...]
"""

import argparse
import sys
import time
from pathlib import Path

from gradlab.execute import (BUDGET_SECONDS, default_notebooks,
                             execute_notebooks, format_times)

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path)
    parser.add_argument("--jobs", type=int, default=1,
                        help="notebooks at once (default 1: clean timings)")
    args = parser.parse_args()
    paths = args.notebooks or default_notebooks(ROOT)
    start = time.perf_counter()
    runs = execute_notebooks(paths, jobs=args.jobs, cache=None)
    wall = time.perf_counter() - start
    print(format_times(runs, budget=BUDGET_SECONDS))
    slowest = max(runs, key=lambda r: r.seconds)
    print(f"slowest: {slowest.seconds / BUDGET_SECONDS:.2f} of the budget; "
          f"wall time {wall:.1f} s with {args.jobs} job(s)")
    return 1 if any(r.status == "failed" for r in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
