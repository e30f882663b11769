"""`ggctl demo`: the challenge's evaluation, locally, on loopback, in about two minutes.

Starts `ggctl serve` with the demo model (or the user's), waits until it is ready, runs
the time-compressed challenge profile with the Locust engine of `ggctl.evaluate` while
sampling the server's process tree, then scores the run and keeps every file in the
state dir's run directory. The engine, profile and scoring are the ones `ggctl evaluate`
uses against a cluster; this module only wires them to a local server.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ggctl.config import Settings
from ggctl.errors import GgctlError
from ggctl.evaluate.loadgen import LoadResult
from ggctl.evaluate.measure import measured_load
from ggctl.evaluate.monitor import ProcessSampler
from ggctl.evaluate.profile import Profile, ProfileError, load_profile
from ggctl.evaluate.report import RESULTS_JSON, STAGES_CSV, write_results, write_stages_csv
from ggctl.evaluate.runs import SAMPLES_CSV
from ggctl.evaluate.scoring import Scores
from ggctl.ports import LOOPBACK, free_port
from ggctl.state import StateDir

SERVER_LOG = "server.log"


class DemoError(GgctlError):
    """The demo could not run: the service did not start, or the load test failed."""


@dataclass
class DemoResult:
    """A finished demo: where its files are and what it measured."""

    run_dir: Path
    url: str
    model: Path
    profile: Profile
    scores: Scores
    load: LoadResult
    wall_s: float
    files: dict[str, Path] = field(default_factory=dict)


def demo_profile(settings: Settings) -> Profile:
    """The profile the demo runs: named or from a file, capped, compressed, then cut."""
    demo = settings.demo
    profile = load_profile(demo.profile)
    if demo.max_users:
        profile = profile.capped(demo.max_users)
    profile = profile.scaled(demo.speed)
    if demo.duration:
        profile = profile.truncated(demo.duration)
    return profile


def _die_with_parent() -> None:
    # Linux only: if ggctl itself is killed (SIGKILL, crash) the server must not outlive it.
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)


def _tail(path: Path, lines: int = 25) -> str:
    try:
        with path.open(errors="replace") as fh:
            return "".join(deque(fh, maxlen=lines)).rstrip() or "(empty)"
    except OSError:
        return "(no log)"


class LocalServer:
    """`ggctl serve` as a child process in its own process group, logging to a file."""

    def __init__(self, settings: Settings, model: Path, port: int, log_path: Path):
        serve = settings.serve
        self.url = f"http://{LOOPBACK}:{port}"
        self.log_path = log_path
        self.cmd = [
            sys.executable,
            "-m",
            "ggctl",
            "serve",
            "--model",
            str(model),
            "--host",
            LOOPBACK,
            "--port",
            str(port),
            "--workers",
            str(serve.workers),
            "--threads",
            str(serve.threads),
            "--ort-threads",
            str(serve.ort_threads),
            "--max-inflight",
            str(serve.max_inflight),
            "--max-upload-mb",
            str(serve.max_upload_mb),
        ]
        # Settings without a flag reach the child through its environment, which outranks
        # any config file it would read.
        self.env = {**os.environ, "GGCTL_SERVE__TIMEOUT": str(serve.timeout)}
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        """The gunicorn master's pid."""
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> LocalServer:
        """Start the server; returns at once (see `wait_ready`)."""
        with self.log_path.open("wb") as log:
            # Own session: Ctrl-C reaches only ggctl, which then stops the server in order.
            self.proc = subprocess.Popen(
                self.cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
                preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
            )
        return self

    def wait_ready(self, timeout_s: float) -> float:
        """Poll GET /readyz until 200; returns the seconds it took. Raises DemoError with the
        server's log tail if it exits or is not ready within `timeout_s`."""
        import requests

        assert self.proc is not None
        start = time.monotonic()
        while True:
            rc = self.proc.poll()
            if rc is not None:
                raise DemoError(
                    f"the service exited (status {rc}) before it was ready",
                    hint=f"Last lines of {self.log_path}:\n{_tail(self.log_path)}",
                )
            with contextlib.suppress(requests.RequestException):
                if requests.get(self.url + "/readyz", timeout=2).status_code == 200:
                    return time.monotonic() - start
            if time.monotonic() - start > timeout_s:
                raise DemoError(
                    f"the service was not ready within {timeout_s:.0f} s at {self.url}/readyz",
                    hint=f"Last lines of {self.log_path}:\n{_tail(self.log_path)}",
                )
            time.sleep(0.2)

    def stop(self, grace_s: float = 10.0) -> None:
        """SIGTERM the whole group (gunicorn master and workers), SIGKILL if still there."""
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)

    def wait(self) -> int:
        """Block until the server exits."""
        assert self.proc is not None
        return self.proc.wait()


def run_demo(
    settings: Settings,
    *,
    keep_serving: bool = False,
    json_path: Path | None = None,
    console: Any = None,
    on_result: Callable[[DemoResult], None] | None = None,
    ready_timeout_s: float = 120.0,
    stamp: str | None = None,
) -> DemoResult:
    """Run the demo end to end and return its result.

    `on_result` is called once the scores exist (before `keep_serving` waits for Ctrl-C),
    so the caller can print them while the service stays up.
    """
    from rich.console import Console

    console = console or Console(stderr=True)
    quiet = settings.quiet
    started = time.monotonic()
    try:
        profile = demo_profile(settings)
    except ValueError as exc:
        raise ProfileError(str(exc)) from None
    stamp = stamp or time.strftime("%Y%m%d-%H%M%S")
    run_dir = StateDir(settings.state_dir).run_dir("demo", stamp)

    model = settings.serve.model
    if model is None:
        from ggctl.local.serving import default_model

        if not quiet:
            console.print(
                "[dim]preparing the built-in demo model (untrained: its answers "
                "are meaningless, its cost is MobileNetV2's)…[/]"
            )
        model = default_model(settings)
    model = Path(model).expanduser()
    if not model.is_file():
        raise DemoError(
            f"model {model} does not exist",
            hint="Give an ONNX file with --model, or leave it out for the demo model.",
        )

    server = LocalServer(settings, model, free_port(), run_dir / SERVER_LOG)
    try:
        server.start()
        ready_s = server.wait_ready(ready_timeout_s)
        if not quiet:
            console.print(
                f"service ready at {server.url} in {ready_s:.1f} s · profile "
                f"[bold]{profile.name}[/] x{profile.speed:g}: {len(profile.stages)} stages, "
                f"{profile.total_duration_s:.0f} s, up to {profile.max_users} users"
            )
        m = measured_load(
            server.url,
            profile,
            ProcessSampler(server.pid),
            run_dir,
            sample_interval_s=settings.demo.sample_interval,
            console=console,
            quiet=quiet,
            request_timeout_s=float(settings.serve.timeout),
        )
        load, scores = m.load, m.scores

        files = {
            "requests": load.requests_csv,
            "samples": run_dir / SAMPLES_CSV,
            "stages": write_stages_csv(run_dir / STAGES_CSV, scores, profile),
            "server_log": run_dir / SERVER_LOG,
        }
        wall_s = time.monotonic() - started
        extra = {
            "kind": "demo",
            "url": server.url,
            "model": str(model),
            "serve": {**settings.serve.model_dump(mode="json"), "model": str(model)},
            "ready_s": round(ready_s, 3),
            "sample_period_s": m.sample_period_s,
            "sampler_errors": m.sampler_errors,
            "loadgen": load.summary(),
            "machine": {"cpus": os.cpu_count()},
            "wall_s": round(wall_s, 3),
        }
        files["results"] = write_results(run_dir / RESULTS_JSON, scores, profile, **extra)
        if json_path is not None:
            json_path = Path(json_path).expanduser()
            json_path.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(files["results"], json_path)
            files["json"] = json_path
        result = DemoResult(run_dir, server.url, model, profile, scores, load, wall_s, files)
        if on_result is not None:
            on_result(result)
        if keep_serving:
            if not quiet:
                console.print(f"[bold]still serving[/] at {server.url}/ — Ctrl-C stops it")
            with contextlib.suppress(KeyboardInterrupt):
                server.wait()
        return result
    finally:
        server.stop()
