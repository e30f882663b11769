"""Run the service under gunicorn: `ggctl serve`, and the container's entrypoint.

python -m app.server            (in the container; settings from GGCTL_SERVE__* variables)
"""

from __future__ import annotations

import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gunicorn.app.base import BaseApplication

_SHM = "/dev/shm"  # noqa: S108 - gunicorn heartbeat files, not data

#: The server's process environment where the C library reads it before Python starts: the
#: image sets it (app/Dockerfile ENV), `ggctl serve` and the calibration pass it on.
#: glibc gives every thread that allocates its own malloc arena (up to 8 per core), and
#: each request thread's image buffers leave freed memory behind in its own; two arenas
#: hold the working set after load 5 MiB lower (bench/pod_footprint.py, glibc-arenas).
PROCESS_ENV: dict[str, str] = {"MALLOC_ARENA_MAX": "2"}


@dataclass
class ServeOptions:
    """How gunicorn runs the app. Defaults are the measured best for a 1-2 CPU pod (README)."""

    model: str | None = None
    host: str = "127.0.0.1"
    port: int = 5000
    workers: int = 1
    threads: int = 4
    ort_threads: int = 0  # 0: auto, see app/inference.py thread_layout()
    max_inflight: int = 0  # 0: auto
    max_upload_mb: float = 10.0
    timeout: int = 30
    #: Seconds an idle keep-alive connection stays open; 0: one request per connection, so
    #: that kube-proxy, which balances connections, balances every request over the pods.
    keepalive: int = 5
    access_log: bool = False
    #: gunicorn's master process: "auto" runs none when there is one worker (see `run`),
    #: "1"/"yes" always, "0"/"no" never (then `workers` must be 1).
    master: str = "auto"
    #: ONNX Runtime's CPU memory arena (see app/inference.py session_options).
    ort_arena: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> ServeOptions:
        """Options from GGCTL_SERVE__* variables (the container's configuration)."""
        env = os.environ if environ is None else environ
        opts = cls()
        for name in cls.__dataclass_fields__:
            raw = env.get(f"GGCTL_SERVE__{name.upper()}")
            if raw is None or name == "extra":
                continue
            kind = type(getattr(opts, name)) if getattr(opts, name) is not None else str
            if kind is bool:
                value: Any = raw.lower() in ("1", "true", "yes", "on")
            else:
                value = kind(raw)
            setattr(opts, name, value)
        return opts

    def to_env(self) -> dict[str, str]:
        """These options as the GGCTL_SERVE__* variables `from_env` reads (not `extra`)."""
        out = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if name == "extra" or value is None:
                continue
            if isinstance(value, bool):
                value = int(value)
            out[f"GGCTL_SERVE__{name.upper()}"] = str(value)
        return out

    @property
    def single_process(self) -> bool:
        """Serve from this one process, without gunicorn's master (see `run`)."""
        choice = self.master.strip().lower()
        if choice in ("auto", ""):
            return self.workers == 1
        if choice in ("0", "no", "false", "off"):
            if self.workers != 1:
                raise ValueError(f"no master process needs 1 worker, not {self.workers}")
            return True
        if choice in ("1", "yes", "true", "on"):
            return False
        raise ValueError(f"master must be auto, yes or no, not {self.master!r}")

    def gunicorn_config(self) -> dict[str, Any]:
        return {
            "bind": f"[{self.host}]:{self.port}"
            if ":" in self.host
            else f"{self.host}:{self.port}",
            "workers": self.workers,
            "threads": self.threads,
            "worker_class": "gthread",
            "timeout": self.timeout,
            # Kubernetes sends SIGTERM at scale-down; in-flight requests get this long to finish.
            "graceful_timeout": 25,
            "keepalive": self.keepalive,
            "accesslog": "-" if self.access_log else None,
            "errorlog": "-",
            "loglevel": "info",
            # /tmp may be a slow overlay in containers; the heartbeat file belongs in RAM.
            "worker_tmp_dir": _SHM if os.path.isdir(_SHM) else None,
            "child_exit": _child_exit,
            "proc_name": "ggctl-serve",
            # gunicorn 24+ opens a control socket at one fixed path per user: two servers
            # (tests, bench, several pods' worth on one host) would fight over it.
            "control_socket_disable": True,
            **self.extra,
        }


def _child_exit(_server: Any, worker: Any) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


class _Gunicorn(BaseApplication):
    def __init__(self, opts: ServeOptions):
        self.opts = opts
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.opts.gunicorn_config().items():
            if value is not None and key in self.cfg.settings:
                self.cfg.set(key, value)

    def load(self) -> Any:
        # Imported in the worker after fork: ORT's thread pools must not cross a fork.
        from . import create_app

        return create_app(
            self.opts.model,
            ort_threads=self.opts.ort_threads,
            max_inflight=self.opts.max_inflight,
            max_upload_mb=self.opts.max_upload_mb,
            ort_arena=self.opts.ort_arena,
        )


def run(opts: ServeOptions) -> None:
    """Serve until SIGTERM/SIGINT. Blocks.

    With one worker, gunicorn's master only watches it: it costs a process (measured
    9-10 MiB of the pod's working set, bench/pod_footprint.py) and a fork on the way to
    ready. So one worker is served from this process (`_serve_single`); a crash then ends
    the container, which the kubelet restarts, instead of the master forking a new worker.
    """
    single = opts.single_process
    if opts.workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Several workers: each keeps its own counters, so share them through files.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="ggctl-prom-")
    app = _Gunicorn(opts)
    if single:
        _serve_single(app)
    else:
        app.run()


def _serve_single(app: _Gunicorn) -> None:
    """gunicorn's gthread worker in this process, without the arbiter that would fork it.

    The worker does what it does under a master (the HTTP handling, keep-alive, SIGTERM:
    stop accepting and finish in-flight requests within graceful_timeout; SIGINT/SIGQUIT:
    quit); what only the master did is done here: logging, the listening sockets, the
    worker's heartbeat file closed at exit. One check is switched off: a worker ends when
    its parent changes (its master died), but this process's parent is whatever started
    it, and a server started in the background must outlive the shell that started it, as
    gunicorn's master does.
    """
    from gunicorn import sock

    class Alone(app.cfg.worker_class):  # type: ignore[name-defined,misc]
        def is_parent_alive(self) -> bool:
            return True  # no master whose death this worker must follow

    cfg = app.cfg
    log = cfg.logger_class(cfg)
    listeners = sock.create_sockets(cfg, log)
    for listener in listeners:
        log.info("Listening at: %s (%s, no master process)", listener, os.getpid())
    worker = Alone(1, os.getppid(), listeners, app, cfg.timeout / 2.0, cfg, log)
    worker.pid = os.getpid()
    try:
        worker.init_process()  # returns after a SIGTERM's graceful stop; closes the sockets
    finally:
        worker.tmp.close()


if __name__ == "__main__":
    options = ServeOptions.from_env()
    if len(sys.argv) > 1:
        options.model = sys.argv[1]
    if options.model is None and Path("/app/model.onnx").exists():
        options.model = "/app/model.onnx"
    run(options)
