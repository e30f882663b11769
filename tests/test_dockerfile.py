"""app/Dockerfile without a Docker engine: its structure, its requirements, and the image's
layout rebuilt in a temporary folder (app/ copied as the package `app`, as the COPY lines do)
running the real entrypoint `python -m app.server`."""

from __future__ import annotations

import ast
import contextlib
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from conftest import HOST, free_port, stop_process, wait_ready
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "app"
DOCKERFILE = APP / "Dockerfile"
SERVING = {"flask", "gunicorn", "onnxruntime", "numpy", "pillow", "prometheus-client"}
# Imported by app/ but installed by flask.
VIA_FLASK = {"werkzeug", "jinja2"}
IMPORT_TO_DIST = {
    "PIL": "pillow",
    "onnxruntime": "onnxruntime",
    "prometheus_client": "prometheus-client",
    "flask": "flask",
    "gunicorn": "gunicorn",
    "numpy": "numpy",
    "werkzeug": "werkzeug",
    "jinja2": "jinja2",
}


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per Dockerfile instruction, continuations joined."""
    out: list[tuple[str, str]] = []
    logical = ""
    for line in text.splitlines():
        if not logical and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.lstrip().startswith("#"):
            continue
        logical += line.rstrip()
        if logical.endswith("\\"):
            logical = logical[:-1] + " "
            continue
        word, _, rest = logical.strip().partition(" ")
        out.append((word.upper(), rest.strip()))
        logical = ""
    return out


def stages(text: str) -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for ins in instructions(text):
        if ins[0] == "FROM":
            result.append([])
        if result:
            result[-1].append(ins)
    return result


def env_of(stage: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for word, args in stage:
        if word == "ENV":
            for item in shlex.split(args):
                key, _, value = item.partition("=")
                env[key] = value
    return env


def read_requirements(path: Path) -> dict[str, Requirement]:
    reqs = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            r = Requirement(line)
            reqs[canonicalize_name(r.name)] = r
    return reqs


@pytest.fixture(scope="module")
def dockerfile() -> str:
    return DOCKERFILE.read_text()


def test_multi_stage_slim(dockerfile: str) -> None:
    st = stages(dockerfile)
    assert len(st) >= 2, "a builder stage and a runtime stage"
    froms = [s[0][1] for s in st]
    assert all("python:${PYTHON_VERSION}-slim" in f or "-slim" in f for f in froms), froms
    args = dict(a.split("=", 1) for w, a in instructions(dockerfile) if w == "ARG" and "=" in a)
    assert args.get("PYTHON_VERSION") == "3.11"
    runtime = st[-1]
    assert any(w == "COPY" and "--from=builder" in a for w, a in runtime), "venv from builder"
    # No compilers, no pip install in the runtime stage: the builder made the venv.
    assert not any(w == "RUN" and "pip install" in a for w, a in runtime)
    assert any(w == "RUN" and "requirements.txt" in a for w, a in st[0])


def test_runtime_user_is_not_root(dockerfile: str) -> None:
    runtime = stages(dockerfile)[-1]
    users = [a for w, a in runtime if w == "USER"]
    assert users, "the runtime stage must switch to a non-root USER"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0"), users
    # Numeric, so that Kubernetes' runAsNonRoot can verify it without /etc/passwd.
    assert user.isdigit() and int(user) > 0
    # USER comes after every RUN (nothing runs as root after the switch, nothing needed to).
    last_user = max(i for i, (w, _) in enumerate(runtime) if w == "USER")
    entry = [i for i, (w, _) in enumerate(runtime) if w == "ENTRYPOINT"]
    assert entry and entry[0] > last_user


def test_entrypoint_env_and_healthcheck(dockerfile: str) -> None:
    runtime = stages(dockerfile)[-1]
    (entry,) = [a for w, a in runtime if w == "ENTRYPOINT"]
    assert ast.literal_eval(entry) == ["python", "-m", "app.server"]
    env = env_of(runtime)
    assert env["GGCTL_SERVE__HOST"] == "0.0.0.0"
    assert env["GGCTL_SERVE__PORT"] == "5000"
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["ORT_DISABLE_TELEMETRY"] == "1"
    from ggctl.app.server import PROCESS_ENV

    assert PROCESS_ENV and PROCESS_ENV.items() <= env.items()  # the server's C library's
    assert env["PATH"].startswith("/opt/venv/bin:")
    assert env["GGCTL_SERVE__MODEL"] == "/app/${MODEL}"
    assert [a for w, a in runtime if w == "EXPOSE"] == ["5000"]
    (health,) = [a for w, a in runtime if w == "HEALTHCHECK"]
    assert "/healthz" in health and "GGCTL_SERVE__PORT" in health
    assert [a for w, a in runtime if w == "WORKDIR"][-1] == "/srv"
    # The size estimate is written down.
    assert re.search(r"Expected size: ~\d+ MB", dockerfile)


def test_dockerignore_keeps_the_package() -> None:
    ignored = [
        ln.strip()
        for ln in (APP / ".dockerignore").read_text().splitlines()
        if ln.strip() and not ln.startswith("#")
    ]
    for needed in ("*.py", "templates", "static", "requirements.txt", "*.onnx", "model.onnx"):
        assert needed not in ignored
    assert "**/__pycache__" in ignored


def test_requirements_are_the_serving_set_with_pyproject_ranges() -> None:
    reqs = read_requirements(APP / "requirements.txt")
    assert set(reqs) == SERVING
    assert not {"tensorflow", "torch", "tf2onnx", "onnx", "ggctl", "locust"} & set(reqs)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pinned = {
        canonicalize_name(Requirement(d).name): Requirement(d) for d in project["dependencies"]
    }
    for name, req in reqs.items():
        assert req.specifier, f"{name} has no version range"
        assert str(req.specifier) == str(pinned[name].specifier), (
            f"{name}: requirements.txt {req.specifier} vs pyproject {pinned[name].specifier}"
        )


def test_requirements_cover_what_app_imports() -> None:
    stdlib = set(sys.stdlib_module_names)
    imported: set[str] = set()
    for path in APP.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
    third_party = imported - stdlib - {"__future__"}
    assert "ggctl" not in third_party, "app/ must not import ggctl"
    unknown = third_party - IMPORT_TO_DIST.keys()
    assert not unknown, f"app/ imports {unknown}: add them to requirements.txt and this map"
    dists = {IMPORT_TO_DIST[m] for m in third_party}
    assert dists - VIA_FLASK <= SERVING


# --------------------------------------------------------------------------- the image layout


@pytest.fixture(scope="module")
def image_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """/srv as the Dockerfile's COPY lines fill it: *.py, templates/, static/ as `app`."""
    srv = tmp_path_factory.mktemp("srv")
    pkg = srv / "app"
    pkg.mkdir()
    for path in APP.glob("*.py"):
        shutil.copy2(path, pkg / path.name)
    for folder in ("templates", "static"):
        shutil.copytree(APP / folder, pkg / folder, ignore=shutil.ignore_patterns("__pycache__"))
    return srv


def _container_env(srv: Path, home: Path, model: Path, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GGCTL_", "PYTHON", "XDG_"))}
    env.update(
        PYTHONPATH=str(srv),
        PYTHONDONTWRITEBYTECODE="1",
        PYTHONUNBUFFERED="1",
        HOME=str(home),
        ORT_DISABLE_TELEMETRY="1",
        GGCTL_SERVE__HOST=HOST,  # the image says 0.0.0.0; tests stay on loopback
        GGCTL_SERVE__PORT=str(port),
        GGCTL_SERVE__MODEL=str(model),
    )
    return env


def test_app_does_not_import_ggctl(image_root: Path) -> None:
    code = (
        "import sys; sys.modules['ggctl'] = None\n"  # any `import ggctl` now fails
        "import app, app.server, app.inference, app.preprocess, app.metrics\n"
        "assert app.__file__.startswith(sys.argv[1]), app.__file__\n"
        "print(sorted(m for m in sys.modules if m.startswith('ggctl')))"
    )
    r = subprocess.run(
        [sys.executable, "-c", code, str(image_root)],
        cwd=image_root,
        # As in the image: no bytecode written into the shared /srv copy.
        env={**os.environ, "PYTHONPATH": str(image_root), "PYTHONDONTWRITEBYTECODE": "1"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "['ggctl']"  # only the blocker we planted


@contextlib.contextmanager
def _serve(python: str, srv: Path, home: Path, model: Path) -> Iterator[str]:
    port = free_port()
    log = home.parent / f"entrypoint-{port}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [python, "-m", "app.server"],
            cwd=srv,
            env=_container_env(srv, home, model, port),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://{HOST}:{port}"
    try:
        wait_ready(base, proc, lambda: log.read_text(errors="replace"))
        yield base
    finally:
        stop_process(proc)
    text = log.read_text(errors="replace")
    assert "Traceback" not in text and "was sent SIG" not in text, text


def _check_service(base: str, home: Path) -> None:
    r = requests.get(base + "/test", timeout=30)
    assert r.status_code == 200, r.text
    assert {"class", "index", "confidence", "inference_ms", "top"} <= r.json().keys()
    assert requests.get(base + "/healthz", timeout=10).json() == {"status": "ok"}
    assert "ggctl_model_info" in requests.get(base + "/metrics", timeout=10).text
    # Nothing lands in $HOME: no gunicorn control socket (~/.gunicorn/gunicorn.ctl, disabled
    # in app/server.py) and no onnxruntime telemetry cache (~/.cache/Microsoft/...).
    assert [str(p) for p in home.rglob("*")] == []


def test_entrypoint_serves(image_root: Path, demo_model: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    with _serve(sys.executable, image_root, home, demo_model) as base:
        _check_service(base, home)
        page = requests.get(base + "/", timeout=10)
        assert page.status_code == 200 and 'name="file"' in page.text
        assert requests.get(base + "/static/style.css", timeout=10).status_code == 200
    # Nothing written into the package folder (PYTHONDONTWRITEBYTECODE, no uploads to disk).
    assert not list(image_root.rglob("__pycache__"))


@pytest.mark.slow
def test_requirements_install_into_a_fresh_venv(
    image_root: Path, demo_model: Path, tmp_path: Path
) -> None:
    """The builder stage: a pip-less venv filled from requirements.txt with binary wheels
    (network: PyPI), then the entrypoint on that venv alone."""
    venv = tmp_path / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120
    )
    python = str(venv / "bin" / "python")
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            python,
            "install",
            "--only-binary=:all:",
            "--disable-pip-version-check",
            "-q",
            "-r",
            str(APP / "requirements.txt"),
        ],
        capture_output=True,
        text=True,
        timeout=540,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    listed = subprocess.run(
        [sys.executable, "-m", "pip", "--python", python, "list", "--format=freeze"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    names = {canonicalize_name(ln.split("==")[0]) for ln in listed.stdout.split()}
    assert names >= SERVING
    assert not {"tensorflow", "torch", "onnx", "ggctl"} & names
    size_mb = sum(p.stat().st_size for p in venv.rglob("*") if p.is_file()) / 2**20
    assert size_mb < 260, f"the venv is {size_mb:.0f} MB; update the Dockerfile's estimate"
    home = tmp_path / "home"
    home.mkdir()
    with _serve(python, image_root, home, demo_model) as base:
        _check_service(base, home)
