"""Wall time of grading a batch of submissions with --jobs 1 and --jobs 2.

Grades the same batch (at least 20 submissions: the test fixtures, the
instructor's solution and the released student version, repeated) twice,
once per setting, in the sandbox, and prints each batch's wall time and the
speed-up of --jobs 2 over --jobs 1, measured in this run.

    .venv/bin/python benchmarks/grading.py [--size 20]
"""

import argparse
import tempfile
import time
from pathlib import Path

from gradlab.coursework import Limits, grade, release, summary_table

ROOT = Path(__file__).resolve().parents[1]
LAB = ROOT / "labs" / "lab01_causes.ipynb"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        pool = [LAB, *release(LAB, tmp / "student"), *sorted(
            (ROOT / "tests" / "fixtures" / "submissions").glob("*.ipynb"))]
        batch = []
        for i in range(args.size):  # distinct names, one feedback file each
            copy = tmp / "batch" / f"{i:02d}_{pool[i % len(pool)].name}"
            copy.parent.mkdir(exist_ok=True)
            copy.write_bytes(pool[i % len(pool)].read_bytes())
            batch.append(copy)
        walls = {}
        for jobs in (1, 2):
            start = time.perf_counter()
            grades = grade(LAB, batch, tmp / f"grades{jobs}.csv", jobs=jobs,
                           cell_timeout=60, notebook_timeout=300,
                           progress=False, seed=0)
            walls[jobs] = time.perf_counter() - start
            print(f"--jobs {jobs}: {len(batch)} submissions in "
                  f"{walls[jobs]:.1f} s")
        print(summary_table(grades))
        print(f"sandbox limits: {Limits().describe()}")
        print(f"speed-up of --jobs 2 over --jobs 1: "
              f"{walls[1] / walls[2]:.2f}x")


if __name__ == "__main__":
    main()
