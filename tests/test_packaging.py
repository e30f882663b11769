"""The wheel: one `ggctl` package, data inside it, no generic names bare in site-packages."""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    (whl,) = out.glob("ggctl-*.whl")
    return whl


def test_only_ggctl_at_the_top(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"ggctl"}


def test_data_ships_inside_the_package(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for required in (
        "ggctl/cli.py",
        "ggctl/app/__init__.py",
        "ggctl/app/templates/index.html",
        "ggctl/app/static/test_image.jpg",
        "ggctl/app/static/app.js",
        "ggctl/provision/__init__.py",
        "ggctl/inventory/__init__.py",
        "ggctl/manifests/__init__.py",
        "ggctl/playbooks/README.md",
        "ggctl/roles/README.md",
    ):
        assert required in names, required
    assert not any(n.startswith("ggctl/tests/") or n.startswith("ggctl/bench/") for n in names)


def test_installed_wheel_runs_and_finds_its_files(wheel, tmp_path):
    target = tmp_path / "site"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "-q",
            "--target",
            str(target),
            str(wheel),
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert not (target / "app").exists() and not (target / "provision").exists()
    probe = (
        "import ggctl, ggctl.cli, importlib.resources as r;"
        "print(ggctl.__file__);"
        "print((r.files('ggctl') / 'app' / 'static' / 'test_image.jpg').is_file())"
    )
    r = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        timeout=300,
        env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"},
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    file_line, found = r.stdout.split()
    assert file_line.startswith(str(target))
    assert found == "True"
