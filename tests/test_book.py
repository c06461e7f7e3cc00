"""The book builds with every warning an error, and works in a browser.

First ``python -m gradlab.execute`` runs every notebook whose code changed on
all cores into the build's execution cache, as ``make book`` does; the build
then reads the cache and executes nothing. ``-W -n --keep-going``: a failing
cell (``nb_execution_raise_on_error``), a missing glue key, a broken
cross-reference or citation fails the build.

Then every page of ``_build/html`` is opened in headless Chromium over a
local server, with every request to another host refused (a reader with no
CDN access), and the test fails on a non-200 page, a failed same-origin
request, an image that did not load, a ``Traceback`` in any cell output, an
equation MathJax did not typeset or a widget the widget manager did not
render. A screenshot of chapter 01 is saved to ``_build/`` for review.

Last, the student edition (``python -m gradlab.coursework student-book``)
is built from the released labs; no line of any solution may appear in its
HTML, sources or downloads, and its pages pass the same browser check.
"""

import fcntl
import functools
import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import types
from pathlib import Path

import pytest

import _times
from gradlab.coursework.student_book import (build_student_book,
                                             leaked_solutions)
from gradlab.execute import default_notebooks, execute_notebooks

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "_build" / "html"
SCREENSHOT = ROOT / "_build" / "screenshot_01_causes.png"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# The tests share one build (see _once); the group keeps them together,
# and on one worker with the sandbox tests (test_grading_sandbox), which
# run two notebooks at a time as well, so that 2 cores never run both.
# (A chapter's execution that took 328 s instead of 28 s was not that
# contention but nbclient waiting out a cell's timeout after a widget
# cell; gradlab.execute now avoids it, see _quiet_output_widgets.)
pytestmark = [pytest.mark.book, pytest.mark.xdist_group("two_processes")]
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def _once(request, name, make):
    """Run ``make() -> dict`` once per test run, shared by every
    pytest-xdist worker that asks (the first builds, the others wait for
    it and read its result), so two workers never build at once."""
    worker = getattr(request.config, "workerinput", None)
    if worker is None:  # no xdist: this process is the whole run
        return types.SimpleNamespace(**make())
    shared = request.getfixturevalue("tmp_path_factory").getbasetemp().parent
    result = shared / f"{name}.json"
    with open(shared / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not result.exists():
            result.write_text(json.dumps(make()))
    return types.SimpleNamespace(**json.loads(result.read_text()))


def _build_book() -> dict:
    if not (ROOT / "_vendor" / ".done").exists():
        pytest.fail("_vendor/ is missing: run `make vendor` (make test does)")
    start = time.perf_counter()
    jobs = os.cpu_count() or 1
    executions = execute_notebooks(default_notebooks(ROOT), jobs=jobs,
                                   cache=ROOT / "_build" / ".jupyter_cache",
                                   progress=False)
    executed = time.perf_counter()
    jb = Path(sys.executable).with_name("jupyter-book")
    # --all: re-read every page (notebook execution still comes from the
    # cache), so a config change cannot leave a page stale.
    run = subprocess.run([str(jb), "build", str(ROOT), "--all", "-W", "-n",
                          "--keep-going"], cwd=ROOT, capture_output=True,
                         text=True, timeout=1500)
    end = time.perf_counter()
    _times.record("book", kind="book", seconds=end - start, jobs=jobs,
                  execute_seconds=executed - start,
                  sphinx_seconds=end - executed,
                  notebooks={str(e.path.relative_to(ROOT)):
                             (e.seconds, e.status) for e in executions},
                  cells={str(e.path.relative_to(ROOT)):
                         (*e.slowest_cell, e.outside_cells, *e.longest_wait)
                         for e in executions if e.slowest_cell})
    return {"returncode": run.returncode, "stdout": run.stdout[-20000:],
            "stderr": run.stderr[-20000:]}


@pytest.fixture(scope="session")
def build(request):
    return _once(request, "book-build", _build_book)


def test_book_builds_without_warnings(build):
    log = build.stdout[-8000:] + build.stderr[-4000:]
    assert build.returncode == 0, log
    assert (HTML / "index.html").exists(), log
    chapter = (HTML / "book" / "01_causes.html").read_text()
    assert chapter.count("<img") >= 5, "chapter 01 lost its figures"
    for lab in sorted((ROOT / "labs").glob("*.ipynb")):
        solutions = lab.read_text().count('"solution"')
        page = (HTML / "labs" / lab.with_suffix(".html").name).read_text()
        collapsed = page.count('<details class="admonition hide above-input">')
        assert collapsed == solutions > 0, f"{lab.name}: solutions not hidden"


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="session")
def server(build):
    if build.returncode != 0:
        pytest.fail("the book did not build; see the build test")
    httpd, url = _serve(HTML)
    yield url
    httpd.shutdown()


# Run in the page once it has loaded: the problems a reader would see.
PAGE_PROBLEMS = """async () => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
    await MathJax.startup.promise;
  }
  const problems = [];
  for (const img of document.images) {
    if (!img.complete || img.naturalWidth === 0) {
      problems.push(`image did not load: ${img.src}`);
    }
  }
  for (const out of document.querySelectorAll('.cell_output')) {
    if (out.innerText.includes('Traceback')) {
      problems.push('a cell output shows a Traceback');
    }
  }
  const maths = document.querySelectorAll('.math');
  const raw = [...maths].filter(m => !m.querySelector('mjx-container'));
  if (raw.length) {
    problems.push(`${raw.length} of ${maths.length} equations not typeset`);
  }
  return {problems, equations: maths.length};
}"""

WIDGETS = """() => {
  const views = document.querySelectorAll(
    'script[type="application/vnd.jupyter.widget-view+json"]');
  const rendered = [...views].filter(v => {
    const box = v.previousElementSibling || v.parentElement;
    return box && box.querySelector('.jupyter-widgets, .widget-box');
  });
  return {views: views.length, rendered: rendered.length};
}"""


def _require_chromium():
    if not Path(CHROMIUM).exists():
        message = ("Debian's chromium is not installed (`make test` installs "
                   "it with apt-get)")
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def _serve(html):
    handler = functools.partial(_QuietHandler, directory=str(html))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f"http://127.0.0.1:{httpd.server_address[1]}/"


def _check_pages(html, server, screenshot=None):
    """Open every page of ``html`` in Chromium, offline; return
    ``(failures, totals, refused external requests)``."""
    from playwright.sync_api import sync_playwright

    pages = sorted(p.relative_to(html).as_posix() for p in html.rglob("*.html")
                   if "_static" not in p.parts and "_sources" not in p.parts)
    assert "book/01_causes.html" in pages
    failures, external, totals = [], set(), {"equations": 0, "widgets": 0,
                                             "pages": len(pages)}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM,
                                     args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 900})

        def offline(route):
            if route.request.url.startswith(server):
                route.continue_()
            else:  # the reader has no network: only the local server answers
                external.add(route.request.url.split("?")[0])
                route.abort()

        context.route("**/*", offline)
        for name in pages:
            page = context.new_page()
            bad = []
            page.on("requestfailed", lambda r, bad=bad: bad.append(
                f"request failed: {r.url}") if r.url.startswith(server)
                else None)
            page.on("response", lambda r, bad=bad: bad.append(
                f"HTTP {r.status}: {r.url}") if r.url.startswith(server)
                and r.status >= 400 else None)
            response = page.goto(server + name, wait_until="load")
            if response is None or response.status != 200:
                bad.append(f"page answered {response and response.status}")
            if name == "index.html":  # Jupyter Book's redirect to the intro
                page.wait_for_url("**/book/intro.html", timeout=10000)
                page.wait_for_load_state("load")
            if page.query_selector(
                    'script[type="application/vnd.jupyter.widget-view+json"]'):
                try:
                    page.wait_for_function(
                        f"({WIDGETS})().views === ({WIDGETS})().rendered",
                        timeout=20000)
                except Exception:
                    pass  # reported below with the counts
                widgets = page.evaluate(WIDGETS)
                totals["widgets"] += widgets["rendered"]
                if widgets["rendered"] != widgets["views"]:
                    bad.append(f"{widgets['views'] - widgets['rendered']} of "
                               f"{widgets['views']} widgets not rendered")
            result = page.evaluate(PAGE_PROBLEMS)
            bad += result["problems"]
            totals["equations"] += result["equations"]
            if screenshot and name == "book/01_causes.html":
                page.screenshot(path=str(screenshot), full_page=True)
            failures += [f"{name}: {b}" for b in bad]
            page.close()
        browser.close()
    return failures, totals, external


def test_every_page_works_offline_in_chromium(server):
    _require_chromium()
    failures, totals, external = _check_pages(HTML, server, SCREENSHOT)
    print(f"{totals['pages']} pages, {totals['equations']} equations and "
          f"{totals['widgets']} widgets rendered; refused external requests: "
          f"{sorted(external) or 'none'}")
    assert not failures, "\n".join(failures)
    assert totals["equations"] > 10 and totals["widgets"] >= 1
    assert SCREENSHOT.exists()


@pytest.fixture(scope="session")
def student_book(request, build):
    """The student edition, built after the public one (it reuses the
    chapters' execution cache)."""
    if build.returncode != 0:
        pytest.fail("the book did not build; see the build test")
    out = ROOT / "_build" / "student"

    def make():
        run = build_student_book(ROOT, out)
        return {"returncode": run.returncode, "stdout": run.stdout[-20000:],
                "stderr": run.stderr[-20000:]}
    return out, _once(request, "student-book", make)


def test_student_edition_has_no_solution_text(student_book):
    out, run = student_book
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-3000:]
    html = out / "_build" / "html"
    labs = sorted((ROOT / "labs").glob("*.ipynb"))
    public = [p for p in (out / "src" / "book").glob("*") if p.is_file()]
    assert leaked_solutions(labs, html, public) == []
    for lab in labs:
        page = (html / "labs" / lab.with_suffix(".html").name).read_text()
        assert "YOUR CODE HERE" in page and "student edition" in page
    # The check can fail: the public edition does show the solutions.
    assert leaked_solutions(labs, HTML, public)


def test_student_edition_works_offline_in_chromium(student_book):
    _require_chromium()
    out, run = student_book
    if run.returncode != 0:
        pytest.fail("the student edition did not build")
    httpd, url = _serve(out / "_build" / "html")
    try:
        failures, totals, _ = _check_pages(out / "_build" / "html", url)
    finally:
        httpd.shutdown()
    assert not failures, "\n".join(failures)
    assert totals["equations"] > 10 and totals["widgets"] >= 1
