"""Run a command on a student's submission inside a bubblewrap sandbox.

What the sandboxed process sees and may do:

- **files**: read-only binds of the system (``/usr``, ``/etc``), the Python
  installation and virtual environment, and the ``gradlab`` package; one
  writable directory, ``/sandbox``, holding only this submission's copy;
  a fresh, empty ``/tmp`` and ``$HOME`` (tmpfs, gone afterwards). The
  instructor's notebooks, the other submissions and the grade file are not
  mounted, so they do not exist inside.
- **processes**: a new PID namespace (``/proc`` shows only the sandbox; the
  grader's command line is invisible) whose every process is killed when
  its first process ends, when the time limit kills it, or when the grader
  dies (``--die-with-parent``). No capabilities.
- **network**: a new, empty network namespace: no connection leaves it.
- **limits** (:class:`Limits`): address space, CPU seconds, file size, open
  files, and the number of processes (a ``pids`` cgroup when the grader may
  create one, else ``RLIMIT_NPROC``); wall time, enforced by the grader.

The sandbox needs ``bwrap`` (Debian's ``bubblewrap``) and user namespaces
(Linux). :func:`sandbox_available` says whether they work here.
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Limits", "Run", "sandbox_available", "run_sandboxed",
           "run_unsandboxed", "INSIDE"]

INSIDE = "/sandbox"          # the work directory, as the sandbox sees it
HOME = "/home/student"
GiB = 1024 ** 3


@dataclass(frozen=True)
class Limits:
    """Resource limits of one sandboxed run."""

    memory_bytes: int = 6 * GiB      # RLIMIT_AS: address space per process
    cpu_seconds: int = 600           # RLIMIT_CPU: per process
    file_bytes: int = 64 * 1024**2   # RLIMIT_FSIZE: largest file written
    open_files: int = 512            # RLIMIT_NOFILE
    processes: int = 256             # pids cgroup (threads count too)

    def describe(self) -> str:
        return (f"memory {self.memory_bytes / GiB:.0f} GiB, CPU "
                f"{self.cpu_seconds} s, files {self.file_bytes // 1024**2} "
                f"MiB, {self.open_files} open files, {self.processes} "
                f"processes")


@dataclass
class Run:
    """The outcome of one sandboxed command."""

    returncode: int | None   # None: killed at the wall-time limit
    output: str              # stdout and stderr, the last 20,000 chars
    timed_out: bool


def sandbox_available() -> tuple[bool, str]:
    """``(True, "")`` when the sandbox works here: bwrap runs, with the
    binds and limits of a real run, a Python that imports gradlab; else
    ``(False, why)``."""
    if shutil.which("bwrap") is None:
        return False, ("bwrap is not installed (Debian/Ubuntu: apt-get "
                       "install bubblewrap)")
    import tempfile
    with tempfile.TemporaryDirectory(prefix="gradlab-probe-") as work:
        try:
            probe = run_sandboxed([sys.executable, "-c", "import gradlab"],
                                  Path(work), timeout=120)
        except OSError as exc:
            return False, f"bwrap could not run: {exc}"
    if probe.returncode != 0:
        return False, (f"a sandboxed Python could not import gradlab: "
                       f"{probe.output.strip()[-300:]}")
    return True, ""


def _read_only_binds() -> list[Path]:
    """What the sandbox needs to run Python with torch and gradlab."""
    import gradlab
    paths = {Path("/usr"), Path("/etc"), Path(sys.base_prefix).resolve(),
             Path(sys.prefix), Path(gradlab.__file__).resolve().parent}
    # The interpreter may live outside both prefixes (a symlinked venv).
    paths.add(Path(os.path.realpath(sys.executable)).parent.parent)
    # Keep only the outermost of nested paths.
    paths = sorted(p for p in paths if p.exists())
    return [p for p in paths
            if not any(q != p and q in p.parents for q in paths)]


def bwrap_command(argv: list[str], work: Path, env: dict) -> list[str]:
    """The bwrap command line that runs ``argv`` in ``work``."""
    command = ["bwrap", "--unshare-all", "--die-with-parent",
               "--new-session", "--cap-drop", "ALL"]
    if os.geteuid() == 0:
        # Root outside: still an ordinary user id inside.
        command += ["--unshare-user", "--uid", "1000", "--gid", "1000"]
    # The fresh /tmp and home first: a bind below /tmp (a checkout in
    # /tmp, say) must land on top of the tmpfs, not be hidden by it.
    command += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp",
                "--tmpfs", HOME]
    for path in _read_only_binds():
        command += ["--ro-bind", str(path), str(path)]
    for name in ("bin", "lib", "lib64", "sbin"):  # merged-/usr symlinks
        target = Path("/") / name
        if target.is_symlink():
            command += ["--symlink", os.readlink(target), str(target)]
        elif target.exists():
            command += ["--ro-bind", str(target), str(target)]
    command += ["--bind", str(work), INSIDE, "--chdir", INSIDE,
                "--clearenv"]
    for key, value in env.items():
        command += ["--setenv", key, value]
    return command + ["--"] + argv


def _base_env() -> dict:
    return {"HOME": HOME, "PATH": f"{Path(sys.executable).parent}:/usr/bin:"
            f"/bin", "LANG": "C.UTF-8", "MPLBACKEND": "Agg",
            "MPLCONFIGDIR": "/tmp/matplotlib", "PYTHONDONTWRITEBYTECODE": "1",
            "GRADLAB_DEVICE": "cpu", "OMP_NUM_THREADS": "1",
            "JUPYTER_PLATFORM_DIRS": "1"}


class _PidsCgroup:
    """A cgroup that caps the number of processes (v1 ``pids`` hierarchy,
    or v2 with the ``pids`` controller), when this user may create one;
    otherwise ``path`` is ``None`` and nothing is capped here."""

    def __init__(self, limit: int):
        self.path = None
        for root in _pids_roots():
            # named after the grader's process, so each grader finds its own
            path = root / f"gradlab-{os.getpid()}-{uuid.uuid4().hex[:12]}"
            try:
                path.mkdir()
                (path / "pids.max").write_text(str(limit))
            except OSError:
                try:
                    path.rmdir()
                except OSError:
                    pass
                continue
            self.path = path
            return

    def enter(self) -> None:
        """Move the calling process into the cgroup (in the child)."""
        if self.path is not None:
            (self.path / "cgroup.procs").write_text(str(os.getpid()))

    def kill_and_remove(self, wait: float = 30.0) -> None:
        """Kill every process left in the cgroup, wait until they are gone
        (a process that holds gigabytes takes a while to exit), remove it."""
        if self.path is None:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            pids = (self.path / "cgroup.procs").read_text().split()
            for pid in pids:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except ProcessLookupError:
                    pass
            if not pids:
                try:
                    self.path.rmdir()
                    return
                except OSError:  # still emptying
                    pass
            time.sleep(0.1)


def _pids_roots():
    v1 = Path("/sys/fs/cgroup/pids")
    if (v1 / "cgroup.procs").exists():
        yield v1
    for v2 in (Path("/sys/fs/cgroup"), Path("/sys/fs/cgroup/unified")):
        try:
            enabled = (v2 / "cgroup.subtree_control").read_text().split()
        except OSError:
            continue
        if "pids" in enabled:
            yield v2


def _limit_resources(limits: Limits, cgroup: _PidsCgroup):
    def apply():  # runs in the child, before exec
        cgroup.enter()
        for name, value in (("RLIMIT_AS", limits.memory_bytes),
                            ("RLIMIT_CPU", limits.cpu_seconds),
                            ("RLIMIT_FSIZE", limits.file_bytes),
                            ("RLIMIT_NOFILE", limits.open_files),
                            ("RLIMIT_CORE", 0)):
            resource.setrlimit(getattr(resource, name), (value, value))
        if cgroup.path is None:  # only binding for a non-root user
            resource.setrlimit(resource.RLIMIT_NPROC,
                               (limits.processes, limits.processes))
    return apply


def run_sandboxed(argv: list[str], work: Path, *, timeout: float,
                  limits: Limits = Limits(), env: dict | None = None) -> Run:
    """Run ``argv`` in the sandbox with ``work`` as its only writable
    directory (seen as ``/sandbox``); kill everything after ``timeout``
    seconds of wall time."""
    cgroup = _PidsCgroup(limits.processes)
    command = bwrap_command(argv, Path(work), {**_base_env(), **(env or {})})
    try:
        return _run(command, timeout, preexec=_limit_resources(limits,
                                                               cgroup))
    finally:
        cgroup.kill_and_remove()


def run_unsandboxed(argv: list[str], work: Path, *, timeout: float,
                    env: dict | None = None) -> Run:
    """Run ``argv`` in ``work`` with the grader's own rights (only with
    ``--no-sandbox``); the same environment and wall-time limit."""
    home = Path(work).parent / "home"
    home.mkdir(exist_ok=True)
    full_env = {**os.environ, **_base_env(), "HOME": str(home),
                "MPLCONFIGDIR": str(home / "matplotlib"), **(env or {})}
    return _run(argv, timeout, cwd=work, env=full_env)


def _run(command, timeout, *, preexec=None, cwd=None, env=None) -> Run:
    process = subprocess.Popen(command, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True,
                               errors="replace", start_new_session=True,
                               preexec_fn=preexec, cwd=cwd, env=env)
    try:
        output, _ = process.communicate(timeout=timeout)
        return Run(process.returncode, output[-20000:], False)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        output, _ = process.communicate()
        return Run(None, output[-20000:], True)
