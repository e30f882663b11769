"""Shared fixtures: a real (untrained) demo model, in-memory images, tiny probe models, and the
real service under gunicorn in a subprocess on 127.0.0.1.

Everything is built in the test run; nothing is downloaded.

    demo_model        session: the MobileNetV2-shaped demo model (224x224, 11 classes)
    live_server       session: one `ggctl serve` of the demo model, shared by many tests
    start_server      session: a context-manager factory for servers with other models/flags
    image_bytes(...)  an encoded photo in any Pillow format, made in memory
    free_port()       a TCP port that is free on 127.0.0.1 right now
    make_probe_model  a tiny ONNX model whose "scores" are plain statistics of its input
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx
import pytest
import requests
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

from ggctl.model.synthetic import encode, photo  # numpy and Pillow only
from ggctl.ports import free_port

if TYPE_CHECKING:
    from ggctl.app.modelmeta import ModelMeta

# onnxruntime >= 1.2x on Linux ships Microsoft's 1DS telemetry: importing it writes
# $TMPDIR/.ses, a session writes $HOME/.cache/Microsoft/DeveloperTools/.onnxruntime/, and it
# uploads over HTTPS. Tests talk to 127.0.0.1 only: turn it off before anything imports
# onnxruntime (nothing above does; servers started below inherit it).
os.environ["ORT_DISABLE_TELEMETRY"] = "1"

pytest_plugins = ["fakes.openstack.fixtures", "fakes.kubernetes.fixtures"]

HOST = "127.0.0.1"
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0


# --------------------------------------------------------------------------- images


def make_photo(size: tuple[int, int] = (320, 240), seed: int = 0) -> Image.Image:
    """A photo-like RGB image of `size` (w, h), in memory."""
    return photo(size, seed=seed)


def image_bytes(
    fmt: str = "JPEG",
    size: tuple[int, int] = (320, 240),
    seed: int = 0,
    mode: str = "RGB",
    **save_kw: Any,
) -> bytes:
    """A photo-like image converted to `mode` and encoded as `fmt` (JPEG, PNG, WEBP, ...)."""
    img = make_photo(size, seed)
    if mode != "RGB":
        img = img.convert(mode)
    if not save_kw and mode == "RGB":
        return encode(img, fmt)
    buf = io.BytesIO()
    img.save(buf, fmt, **save_kw)
    return buf.getvalue()


def solid_image(
    color: tuple[int, ...], size: tuple[int, int] = (64, 64), mode: str = "RGB", fmt: str = "PNG"
) -> bytes:
    """A one-colour image, encoded; handy with the probe models."""
    buf = io.BytesIO()
    Image.new(mode, size, color).save(buf, fmt)
    return buf.getvalue()


@pytest.fixture(scope="session")
def jpeg_bytes() -> bytes:
    """A 640x480 photo-like JPEG."""
    return image_bytes("JPEG", (640, 480), seed=1)


# --------------------------------------------------------------------------- models


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def demo_model(model_dir: Path) -> Path:
    """The built-in demo model (untrained MobileNetV2 at 224x224), built once per session."""
    from ggctl.model.mobilenet import ensure_demo_model

    return ensure_demo_model(model_dir)


PROBE_CLASSES = ("red", "green", "blue", "top", "bottom")


def save_graph(graph, path: Path, meta: ModelMeta | None = None) -> None:
    """Write a test graph as a checked ONNX model, with ggctl metadata when given."""
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    if meta is not None:
        from ggctl.model.metadata import set_metadata

        set_metadata(model, meta)
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))


def make_probe_model(
    path: Path,
    *,
    layout: str = "NCHW",
    size: int = 32,
    meta: ModelMeta | None = None,
    sidecar: dict[str, Any] | None = None,
) -> Path:
    """Write a tiny ONNX model that reports what the service fed it.

    Its 5 outputs are, for the preprocessed input x: the mean of each channel (R, G, B in the
    model's channel order) and the mean over channels of the top and bottom half of the
    rows. Declared as `output: probabilities`, the service passes them through untouched,
    so a response's `top` shows the exact tensor statistics (layout, normalisation, channel
    order, EXIF rotation). `meta` is embedded in the ONNX file; `sidecar` is written as
    `<path>.json`; with neither the file carries no metadata at all.
    """
    half = size // 2
    if layout == "NCHW":
        shape: list[Any] = ["N", 3, size, size]
        chan_axes, row_axis = [2, 3], 2
    else:
        shape = ["N", size, size, 3]
        chan_axes, row_axis = [1, 2], 1
    inits = [
        numpy_helper.from_array(np.array([0], np.int64), "top_start"),
        numpy_helper.from_array(np.array([half], np.int64), "top_end"),
        numpy_helper.from_array(np.array([half], np.int64), "bottom_start"),
        numpy_helper.from_array(np.array([size], np.int64), "bottom_end"),
        numpy_helper.from_array(np.array([row_axis], np.int64), "row_axis"),
    ]
    nodes = [
        helper.make_node("ReduceMean", ["x"], ["chan"], axes=chan_axes, keepdims=0),
        helper.make_node("Slice", ["x", "top_start", "top_end", "row_axis"], ["x_top"]),
        helper.make_node("Slice", ["x", "bottom_start", "bottom_end", "row_axis"], ["x_bottom"]),
        helper.make_node("ReduceMean", ["x_top"], ["top"], axes=[1, 2, 3], keepdims=1),
        helper.make_node("ReduceMean", ["x_bottom"], ["bottom"], axes=[1, 2, 3], keepdims=1),
        helper.make_node("Reshape", ["top", "shape_n1"], ["top2"]),
        helper.make_node("Reshape", ["bottom", "shape_n1"], ["bottom2"]),
        helper.make_node("Concat", ["chan", "top2", "bottom2"], ["scores"], axis=1),
    ]
    inits.append(numpy_helper.from_array(np.array([-1, 1], np.int64), "shape_n1"))
    graph = helper.make_graph(
        nodes,
        "probe",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", len(PROBE_CLASSES)])],
        initializer=inits,
    )
    save_graph(graph, path, meta)
    if sidecar is not None:
        path.with_name(path.name + ".json").write_text(json.dumps(sidecar))
    return path


def make_linear_model(
    path: Path,
    *,
    num_classes: int = 11,
    size: int = 224,
    layout: str = "NHWC",
    softmax: bool = True,
    seed: int = 0,
    meta: ModelMeta | None = None,
) -> Path:
    """A tiny classifier: channel means → dense → (softmax). No metadata unless `meta`."""
    rng = np.random.default_rng(seed)
    if layout == "NHWC":
        shape: list[Any] = ["N", size, size, 3]
        axes = [1, 2]
    else:
        shape = ["N", 3, size, size]
        axes = [2, 3]
    w = rng.normal(0, 3, (3, num_classes)).astype(np.float32)
    nodes = [
        helper.make_node("ReduceMean", ["input"], ["feat"], axes=axes, keepdims=0),
        helper.make_node("MatMul", ["feat", "w"], ["logits"]),
    ]
    out = "logits"
    if softmax:
        nodes.append(helper.make_node("Softmax", ["logits"], ["probabilities"], axis=-1))
        out = "probabilities"
    graph = helper.make_graph(
        nodes,
        "linear",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, ["N", num_classes])],
        initializer=[numpy_helper.from_array(w, "w")],
    )
    save_graph(graph, path, meta)
    return path


# --------------------------------------------------------------------------- servers


# Installed in the server process before ggctl is imported: records every file the process
# (and its forked gunicorn workers) opens for writing, through Python's audit hooks.
_AUDIT_HOOK = textwrap.dedent("""
    import os, sys
    _fd = os.open(os.environ["GGCTL_TEST_AUDIT_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    _WRITE = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
    def _hook(event, args):
        path = mode = None
        if event == "open":
            path, mode, flags = args
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                isinstance(flags, int) and flags & _WRITE)
        elif event in ("tempfile.mkstemp", "tempfile.mkdtemp", "os.mkdir", "os.rename",
                       "os.remove", "shutil.copyfile"):
            path, writing = args[0], True
        else:
            return
        if writing and path is not None and not isinstance(path, int):
            os.write(_fd, ("%d %s %s\\n" % (os.getpid(), event, os.fsdecode(path))).encode())
    sys.addaudithook(_hook)
""")


@dataclass
class LiveServer:
    """A running `ggctl serve` subprocess."""

    base_url: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    workdir: Path
    audit_log: Path | None = None
    session: requests.Session = field(default_factory=requests.Session)

    def url(self, path: str) -> str:
        return self.base_url + path

    def get(self, path: str, **kw: Any) -> requests.Response:
        kw.setdefault("timeout", 30)
        return self.session.get(self.url(path), **kw)

    def post(self, path: str, **kw: Any) -> requests.Response:
        kw.setdefault("timeout", 30)
        return self.session.post(self.url(path), **kw)

    def request(self, method: str, path: str, **kw: Any) -> requests.Response:
        kw.setdefault("timeout", 30)
        return self.session.request(method, self.url(path), **kw)

    def predict(
        self, data: bytes, filename: str = "photo.jpg", content_type: str = "image/jpeg", **kw: Any
    ) -> requests.Response:
        return self.post("/predict", files={"file": (filename, data, content_type)}, **kw)

    def log(self) -> str:
        """What the server wrote to stdout/stderr so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def alive(self) -> bool:
        return self.proc.poll() is None

    def written_files(self) -> list[str]:
        """Files the server opened for writing so far (needs audit_writes=True)."""
        if self.audit_log is None:
            raise RuntimeError("start the server with audit_writes=True")
        if not self.audit_log.exists():
            return []
        return self.audit_log.read_text().splitlines()


def _server_env(workdir: Path, extra: dict[str, str] | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GGCTL_")}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    # No user config file, and a control socket of its own (gunicorn >= 25 otherwise puts
    # one at ~/.gunicorn/gunicorn.ctl, which concurrent servers would fight over).
    (workdir / "config").mkdir(exist_ok=True)
    (workdir / "run").mkdir(exist_ok=True)
    env["XDG_CONFIG_HOME"] = str(workdir / "config")
    env["XDG_RUNTIME_DIR"] = str(workdir / "run")
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def stop_process(proc: subprocess.Popen[bytes], timeout: float = STOP_TIMEOUT_S) -> None:
    """SIGTERM the process (gunicorn stops its workers); SIGKILL its process group (the
    master and its workers, started in a session of their own) if it lingers."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def wait_ready(
    base_url: str,
    proc: subprocess.Popen[bytes],
    log: Callable[[], str],
    timeout: float = READY_TIMEOUT_S,
    path: str = "/readyz",
) -> None:
    """Poll `path` until it answers 200; fail with the server's output if it never does."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"server exited with {proc.returncode} before ready:\n{log()}")
        try:
            r = requests.get(base_url + path, timeout=2)
            if r.status_code == 200:
                return
            last = f"HTTP {r.status_code}: {r.text[:200]}"
        except requests.RequestException as exc:
            last = repr(exc)
        time.sleep(0.1)
    pytest.fail(f"server not ready at {base_url}{path} after {timeout:.0f} s ({last}):\n{log()}")


def start_entrypoint(
    model: Path, extra: dict[str, str] | None = None
) -> tuple[subprocess.Popen[bytes], int]:
    """The container's entrypoint (`python -m ggctl.app.server MODEL`) on a free loopback
    port with GGCTL_SERVE__* from `extra` only, once /readyz answers 200; stop it with
    `stop_process`."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GGCTL_")}
    env.update(GGCTL_SERVE__HOST=HOST, GGCTL_SERVE__PORT=str(port), ORT_DISABLE_TELEMETRY="1")
    env.update(extra or {})
    proc = subprocess.Popen(
        [sys.executable, "-m", "ggctl.app.server", str(model)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_ready(f"http://{HOST}:{port}", proc, lambda: "(output not kept)")
    except BaseException:
        stop_process(proc)
        raise
    return proc, port


@contextlib.contextmanager
def run_server(
    model: Path | str,
    workdir: Path,
    *,
    args: Sequence[str] = (),
    env: dict[str, str] | None = None,
    audit_writes: bool = False,
    timeout: float = READY_TIMEOUT_S,
) -> Iterator[LiveServer]:
    """`python -m ggctl --state-dir W serve --model M --port P [args]` until the block ends."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    cli = [
        "--state-dir",
        str(workdir / "state"),
        "serve",
        "--model",
        str(model),
        "--host",
        HOST,
        "--port",
        str(port),
        *args,
    ]
    environ = _server_env(workdir, env)
    audit_log = None
    if audit_writes:
        audit_log = workdir / "writes.log"
        environ["GGCTL_TEST_AUDIT_LOG"] = str(audit_log)
        # `ggctl serve` execs the server: a sitecustomize installs the hook in every
        # interpreter started with this environment, the exec'd one included.
        hook_dir = workdir / "audit-hook"
        hook_dir.mkdir(exist_ok=True)
        (hook_dir / "sitecustomize.py").write_text(_AUDIT_HOOK)
        environ["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(hook_dir), environ.get("PYTHONPATH", "")) if p
        )
    cmd = [sys.executable, "-m", "ggctl", *cli]
    log_path = workdir / "server.log"
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen(
            cmd,
            cwd=workdir,
            env=environ,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = LiveServer(f"http://{HOST}:{port}", proc, log_path, workdir, audit_log)
    try:
        wait_ready(server.base_url, proc, server.log, timeout)
        yield server
    finally:
        server.session.close()
        stop_process(proc)


@pytest.fixture(scope="session")
def start_server(tmp_path_factory: pytest.TempPathFactory):
    """Factory: `with start_server(model, args=[...]) as srv:` runs a server for the block."""

    def start(model: Path | str, **kw: Any) -> contextlib.AbstractContextManager[LiveServer]:
        return run_server(model, tmp_path_factory.mktemp("server"), **kw)

    return start


@pytest.fixture(scope="session")
def live_server(demo_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The demo model served by real gunicorn on 127.0.0.1, for the whole session."""
    with run_server(demo_model, tmp_path_factory.mktemp("live-server")) as server:
        yield server
    # A clean run never logs a traceback (a request crashed) nor a worker killed at exit.
    assert "Traceback" not in server.log(), server.log()
    assert "was sent SIG" not in server.log(), server.log()
