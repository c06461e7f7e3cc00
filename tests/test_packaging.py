"""``pip install .`` (not only the editable install) gives a working package:
the wheel holds every subpackage and its data file, and the public API
imports from it alone."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_wheel_holds_every_subpackage_and_imports(tmp_path):
    # build from a copy: setuptools reuses (and writes) build/ and
    # *.egg-info/ beside pyproject.toml, which would hide a missing package
    src = tmp_path / "src"
    shutil.copytree(ROOT / "gradlab", src / "gradlab",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet",
                    "--no-deps", "--no-build-isolation", "--wheel-dir",
                    str(tmp_path), str(src)], check=True, cwd=tmp_path,
                   capture_output=True)
    wheel, = tmp_path.glob("gradlab-*.whl")
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    packages = {str(p.parent.relative_to(ROOT))
                for p in (ROOT / "gradlab").rglob("__init__.py")}
    shipped = {str(p.parent.relative_to(site))
               for p in site.rglob("__init__.py")}
    assert packages <= shipped, f"missing from the wheel: {packages - shipped}"
    # import from the wheel's files, not the checkout (PYTHONPATH comes
    # before the editable install's finder)
    code = ("import gradlab as gl, gradlab.monitor, sys; "
            "print(gl.__file__); gl.GradientMonitor; gl.diagnose; "
            "gl.data.digits(); print('sklearn' in sys.modules)")
    run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path,
                         env={"PYTHONPATH": str(site), "PATH": ""},
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    where, sklearn_imported = run.stdout.split()
    assert where.startswith(str(site))
    assert sklearn_imported == "False"  # the stored split was shipped
