"""Execute the book's notebooks in parallel, into the book's execution cache.

    python -m gradlab.execute                    # book/ and labs/, all cores
    python -m gradlab.execute --jobs 1 book/03_initialization.ipynb
    python -m gradlab.execute --no-cache         # time every notebook afresh

``jupyter-book build`` with ``execute_notebooks: cache`` runs each notebook
whose code changed, one after the other, in the Sphinx process. This module
does the same work first, on ``--jobs`` processes at once, and stores each
result in the same cache (``_build/.jupyter_cache``) exactly as myst-nb
would: the notebook executed by jupyter-cache's ``single_nb_execution``
(nbclient, the notebook's folder as working directory, errors not allowed,
widget state kept), filed under the hash of its code. The build then finds
every notebook in the cache and executes nothing. A notebook that fails is
not cached, so the build runs it again and reports the error with ``-W``.

Each notebook sets one torch thread itself (``gl.configure_cpu()``), so
``--jobs`` equal to the number of cores uses the machine fully.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import datetime
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Execution", "execute_notebooks", "default_notebooks",
           "BUDGET_SECONDS", "format_times", "cell_times"]

# Every notebook must run in under this many seconds on a 2-core CPU.
BUDGET_SECONDS = 60.0
CELL_TIMEOUT = 300  # the same per-cell limit as _config.yml


@dataclass
class Execution:
    """What happened to one notebook.

    Attributes:
        path: the notebook.
        status: ``"executed"``, ``"cached"`` (already in the cache with the
            same code; not run) or ``"failed"``.
        seconds: execution time (for ``"cached"``: the time recorded when
            it was executed).
        error: the traceback of a failure, else ``""``.
        slowest_cell: ``(index, seconds)`` of the code cell that ran
            longest, from the kernel's busy and idle messages; ``None`` when
            not executed here.
        outside_cells: seconds of the execution that no cell accounts for
            (starting the kernel, its first reply, shutting it down, and
            messages in transit): a notebook that waited out a timeout
            shows it here.
        longest_wait: ``(where, seconds)`` of the longest time the kernel
            sat idle: ``"before #k"`` (the kernel's start, for the first
            code cell) or ``"after the last cell"`` (its shutdown).
    """

    path: Path
    status: str
    seconds: float
    error: str = ""
    slowest_cell: tuple[int, float] | None = None
    outside_cells: float = 0.0
    longest_wait: tuple[str, float] | None = None


def default_notebooks(root: Path = Path(".")) -> list[Path]:
    """The book's and the labs' notebooks under ``root``, sorted."""
    return sorted(p for folder in ("book", "labs")
                  for p in (Path(root) / folder).glob("*.ipynb"))


def _execute_one(path: str) -> tuple:
    """Run in a worker process: execute the notebook at ``path`` the way
    myst-nb's cache mode does. Returns (notebook, seconds, error text,
    its code cells' times, start, end), times as in :func:`cell_times`."""
    import nbformat
    from jupyter_cache.executors.utils import single_nb_execution

    _quiet_output_widgets()
    notebook = nbformat.read(path, as_version=4)
    start = time.time()
    # record_timing: nbclient stamps each cell with its kernel messages;
    # the stamps are read and removed, so the cache holds what myst-nb's
    # own execution would store
    result = single_nb_execution(notebook, cwd=str(Path(path).parent),
                                 timeout=CELL_TIMEOUT, allow_errors=False,
                                 meta_override=True, record_timing=True)
    return (result.nb, result.time, result.exc_string or "",
            cell_times(result.nb), start, time.time())


def _quiet_output_widgets() -> None:
    """Stop nbclient's stand-in for ``ipywidgets.Output`` from sending its
    outputs back to the kernel, in this (worker) process.

    It sends them on the shell socket while nbclient awaits the cell's
    reply on that same socket, and now and then that await then misses the
    reply and sleeps until the cell's timeout (jupyter/nbclient#312): one
    chapter took 334 s instead of 31 s, all of it an idle kernel after its
    widget cell. A notebook of 150 cells that print into Output widgets,
    with a 5-s timeout, stalled in 3 of 4 runs, and in none of 12 with the
    sends turned off. The outputs still go into the saved widget state,
    which is what the book shows; nothing here reads an Output widget's
    outputs back in the kernel."""
    from nbclient.output_widget import OutputWidget
    OutputWidget.send = _send_nothing


def _send_nothing(self, *args, **kwargs) -> None:
    """``OutputWidget.send`` in the executor's workers (see above)."""


def cell_times(notebook) -> list[tuple[int, float, float]]:
    """``(index, busy, idle)`` of each code cell that nbclient stamped with
    ``record_timing``: when its kernel said busy and idle, in seconds since
    the epoch. The stamps are removed from the notebook."""
    times = []
    for index, cell in enumerate(notebook.cells):
        stamps = cell.get("metadata", {}).pop("execution", None)
        if not stamps:
            continue
        try:
            busy, idle = (datetime.fromisoformat(
                stamps[key].replace("Z", "+00:00")).timestamp()
                for key in ("iopub.status.busy", "iopub.status.idle"))
        except (KeyError, ValueError):
            continue
        times.append((index, busy, idle))
    return times


def _timing(cells: list, start: float, end: float, seconds: float) -> dict:
    """The :class:`Execution` fields that say where its time went."""
    if not cells:
        return {}
    waits = [(f"before #{cells[0][0]}", cells[0][1] - start)]
    waits += [(f"before #{k}", busy - idle) for (_, _, idle), (k, busy, _)
              in zip(cells, cells[1:])]
    waits.append(("after the last cell", end - cells[-1][2]))
    return {"slowest_cell": max(((k, idle - busy) for k, busy, idle in cells),
                                key=lambda c: c[1]),
            "outside_cells": max(0.0, seconds - sum(
                idle - busy for _, busy, idle in cells)),
            "longest_wait": max(waits, key=lambda w: w[1])}


def execute_notebooks(paths, *, jobs: int | None = None,
                      cache: Path | None = Path("_build/.jupyter_cache"),
                      progress: bool = True) -> list[Execution]:
    """Execute ``paths`` on ``jobs`` processes; cache the successes.

    Args:
        paths: notebook files.
        jobs: processes at once; ``None`` means the number of cores.
        cache: the jupyter-cache folder the book build reads, or ``None``
            to execute every notebook and cache nothing (for timing).
        progress: print one line per finished notebook to stderr.

    Returns:
        one :class:`Execution` per path, in the order of ``paths``.
    """
    paths = [Path(p).resolve() for p in paths]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"no such notebook: {', '.join(missing)}")
    jobs = jobs or os.cpu_count() or 1
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    results: dict[Path, Execution] = {}
    store = _open_cache(cache) if cache is not None else None
    todo = []
    for path in paths:
        record = _cached(store, path) if store is not None else None
        if record is not None:
            seconds = record.data.get("execution_seconds") or 0.0
            results[path] = Execution(path, "cached", seconds)
        else:
            todo.append(path)
    with ProcessPoolExecutor(max_workers=min(jobs, max(len(todo), 1))) as pool:
        futures = {pool.submit(_execute_one, str(p)): p for p in todo}
        for future in as_completed(futures):
            path = futures[future]
            try:
                notebook, seconds, error, cells, start, end = future.result()
            except Exception as exc:  # the kernel could not even start
                notebook, seconds, error, cells, start, end = (
                    None, 0.0, repr(exc), [], 0.0, 0.0)
            status = "failed" if error else "executed"
            if store is not None and not error:
                _store(store, path, notebook, seconds)
            results[path] = Execution(path, status, seconds, error,
                                      **_timing(cells, start, end, seconds))
            if progress:
                print(f"{status:>8} {seconds:6.1f} s  {_short(path)}",
                      file=sys.stderr, flush=True)
    return [results[p] for p in paths]


def _open_cache(folder: Path):
    from jupyter_cache import get_cache
    return get_cache(str(folder))


def _cached(store, path: Path):
    """The cache record of ``path``'s current code, or ``None``."""
    import nbformat
    try:
        return store.match_cache_notebook(nbformat.read(path, as_version=4))
    except KeyError:
        return None


def _store(store, path: Path, notebook, seconds: float) -> None:
    # As myst_nb.core.execute.cache does after a successful execution.
    from jupyter_cache.base import CacheBundleIn
    record = store.add_nb_to_project(str(path))
    try:
        store.cache_notebook_bundle(
            CacheBundleIn(notebook, record.uri,
                          data={"execution_seconds": seconds}),
            check_validity=False, overwrite=True)
    except FileExistsError:
        # Another process cached the same code at the same moment
        # (jupyter-cache makes the folder before writing into it).
        pass


def _short(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def format_times(executions, budget: float = BUDGET_SECONDS) -> str:
    """A table of the executions, slowest first, with each time as a
    fraction of the per-notebook ``budget``; over-budget rows are marked."""
    rows = sorted(executions, key=lambda e: -e.seconds)
    width = max([len(_short(e.path)) for e in rows] + [8])
    lines = [f"{'notebook':<{width}}  {'seconds':>7}  {'budget':>6}  "
             f"{'slowest cell':>14}  {'outside':>7}  status  longest wait",
             f"{'-' * width}  -------  ------  {'-' * 14}  -------  ------"
             f"  ------------"]
    for e in rows:
        flag = "  OVER BUDGET" if e.seconds > budget else ""
        slowest = (f"#{e.slowest_cell[0]} {e.slowest_cell[1]:.1f} s"
                   if e.slowest_cell else "-")
        outside = f"{e.outside_cells:.1f}" if e.slowest_cell else "-"
        wait = (f"{e.longest_wait[1]:.1f} s {e.longest_wait[0]}"
                if e.longest_wait else "-")
        lines.append(f"{_short(e.path):<{width}}  {e.seconds:7.1f}  "
                     f"{e.seconds / budget:6.0%}  {slowest:>14}  "
                     f"{outside:>7}  {e.status}  {wait}{flag}")
    total = sum(e.seconds for e in rows)
    lines.append(f"{'total':<{width}}  {total:7.1f}")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m gradlab.execute",
        description="Execute notebooks in parallel into the book's cache.")
    parser.add_argument("notebooks", nargs="*", type=Path,
                        help="notebooks (default: book/*.ipynb labs/*.ipynb)")
    parser.add_argument("--jobs", "-j", type=int, default=None,
                        help="processes at once (default: number of cores)")
    parser.add_argument("--cache", type=Path,
                        default=Path("_build/.jupyter_cache"),
                        help="jupyter-cache folder the book build reads")
    parser.add_argument("--no-cache", action="store_true",
                        help="execute every notebook, cache nothing")
    args = parser.parse_args(argv)
    paths = args.notebooks or default_notebooks()
    start = time.perf_counter()
    executions = execute_notebooks(
        paths, jobs=args.jobs, cache=None if args.no_cache else args.cache)
    wall = time.perf_counter() - start
    print(format_times(executions))
    print(f"wall time {wall:.1f} s on {args.jobs or os.cpu_count()} "
          f"process(es)")
    failed = [e for e in executions if e.status == "failed"]
    for e in failed:
        print(f"\n{_short(e.path)} failed:\n{e.error[-3000:]}",
              file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
