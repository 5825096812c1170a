"""The wheel is the product: built from this checkout, installed into a fresh virtual
environment, it runs from an empty directory with nothing of the checkout in reach.

The fresh environment takes the third-party packages from the build environment's
site-packages (a path line, not the checkout) so the test needs no network; brokerflow itself
comes only from the wheel.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from brokerflow.app.sample.crm import write_sample_export
from tests.support.paths import REPO


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``bin/`` of a fresh venv with the wheel installed."""
    root = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                    "-q", "-w", str(root / "dist"), str(REPO)], check=True,
                   capture_output=True, timeout=600)
    wheel = next((root / "dist").glob("brokerflow-*.whl"))
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    site = next((venv / "lib").glob("python3*/site-packages"))
    (site / "build-env-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps",
                    str(wheel)], check=True, capture_output=True, timeout=300)
    return venv / "bin"


def _run(bin_dir: Path, cwd: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(cwd), "LANG": "C.UTF-8"}
    return subprocess.run([str(bin_dir / "brokerflow"), *argv], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_the_installed_wheel_holds_one_namespace_and_its_data(installed: Path) -> None:
    python = str(installed / "python")
    found = subprocess.run(
        [python, "-c", "import brokerflow, importlib.util as u; print(brokerflow.__file__); "
         "print([m for m in ('flows', 'archive', 'approvals', 'kernel', 'app', 'payroll') "
         "if u.find_spec(m)])"],
        capture_output=True, text=True, check=True, cwd="/", env={"PATH": "/usr/bin"})
    location, generic = found.stdout.splitlines()
    assert str(installed.parent) in location and str(REPO) not in location
    assert generic == "[]"  # nothing generic lands in site-packages
    package = Path(location).parent
    for data in ("templates/FIL.html", "templates/web/search.html", "policy/default.toml",
                 "app/prefect.yaml", "app/sample/roster.csv",
                 "kernel/migrations/versions/0001_first_release.py",
                 "kernel/migrations/versions/0010_opening_imports.py",
                 "templates/opening_import.html", "templates/CNF.html"):
        assert (package / data).is_file(), data


def test_render_and_payroll_compute_work_from_an_empty_directory(installed: Path,
                                                                 tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "f.json").write_text(json.dumps({
        "branch": "SZ01", "subject": "2027年度人员招聘计划", "serial": "SZ01-FIL-2026-000001",
        "body": {"kind": "人员招聘", "text": "拟招聘客户经理十名。"}}, ensure_ascii=False),
        encoding="utf-8")
    rendered = _run(installed, empty, "render", "FIL", "--data", "f.json", "--out", "f.pdf")
    assert rendered.returncode == 0, rendered.stderr
    assert (empty / "f.pdf").read_bytes().startswith(b"%PDF-")
    write_sample_export(empty / "crm", month="2026-10")
    computed = _run(installed, empty, "payroll", "compute", "--month", "2026-10", "--data",
                    "crm", "--format", "json")  # no --policy: the packaged default policy
    assert computed.returncode == 0, computed.stderr
    result = json.loads(computed.stdout)
    assert result["month"] == "2026-10" and len(result["lines"]) == 36
    assert sorted(os.listdir(empty)) == ["crm", "f.json", "f.pdf"]  # wrote only what it was told
    made = _run(installed, empty, "templates", "forms")  # the go-live templates (SPEC §10)
    assert made.returncode == 0, made.stderr
    forms = sorted(p.name for p in (empty / "forms").iterdir())
    assert len(forms) == 12 and "attributions.xlsx" in forms and "roster.csv" in forms
