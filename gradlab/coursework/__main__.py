"""``python -m gradlab.coursework``: release labs, grade submissions."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from . import __doc__ as DOC
from .grading import SandboxUnavailable, grade, summary_table
from .release import release
from .sandbox import Limits


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gradlab.coursework",
                                     description=DOC.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    rel = sub.add_parser("release", help="write student versions")
    rel.add_argument("source", type=Path, help="a lab notebook or folder")
    rel.add_argument("--out", type=Path, required=True)
    gr = sub.add_parser("grade", help="grade submissions in a sandbox")
    gr.add_argument("source", type=Path, help="the instructor's notebook")
    gr.add_argument("submissions", type=Path, nargs="+")
    gr.add_argument("--out", type=Path, required=True,
                    help="CSV to write; feedback goes to <stem>_feedback/")
    gr.add_argument("--cell-timeout", type=int, default=60)
    gr.add_argument("--notebook-timeout", type=int, default=300)
    gr.add_argument("--jobs", type=int, default=None,
                    help="submissions graded at once (default: cores)")
    gr.add_argument("--no-sandbox", action="store_true",
                    help="run student code with your own rights (only "
                         "where bwrap cannot run; the CSV records it)")
    book = sub.add_parser("student-book", help="build the book with the "
                          "released labs (no solutions anywhere)")
    book.add_argument("--root", type=Path, default=Path("."),
                      help="the book's repository (default: here)")
    book.add_argument("--out", type=Path, default=Path("_build/student"))
    args = parser.parse_args(argv)
    if args.command == "student-book":
        return _student_book(args.root, args.out)
    if args.command == "release":
        for path in release(args.source, args.out):
            print(path)
        return 0
    start = time.perf_counter()
    try:
        grades = grade(args.source, args.submissions, args.out,
                       cell_timeout=args.cell_timeout,
                       notebook_timeout=args.notebook_timeout,
                       jobs=args.jobs, sandbox=not args.no_sandbox)
    except SandboxUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(summary_table(grades))
    print(f"graded {len(grades)} submissions in "
          f"{time.perf_counter() - start:.1f} s (--jobs "
          f"{args.jobs or 'cores'}); sandbox limits: {Limits().describe()}")
    return 0


def _student_book(root: Path, out: Path) -> int:
    from .student_book import build_student_book, leaked_solutions
    run = build_student_book(root, out)
    if run.returncode != 0:
        print(run.stdout[-6000:] + run.stderr[-3000:], file=sys.stderr)
        return run.returncode
    html = out / "_build" / "html"
    public = [p for p in (out / "src" / "book").glob("*") if p.is_file()]
    leaks = leaked_solutions(sorted((root / "labs").glob("*.ipynb")), html,
                             public)
    if leaks:
        print("solution text in the student edition:\n" + "\n".join(leaks),
              file=sys.stderr)
        return 1
    print(f"student edition: {html / 'index.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
