"""The load generator: Locust, as a library, driving a `Profile` in a process of its own.

`import locust` monkey-patches sockets, threads and ssl for the whole process (gevent),
so the parent never imports it: `run_load` starts
`python -m ggctl.evaluate.loadgen --host URL --profile FILE --out DIR`, reads its progress
lines from stdout and returns a `LoadResult`. The child writes every request to
`requests.csv` from Locust's request event, so scores come from individual requests,
not from Locust's aggregates.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import queue
import random
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from ggctl.errors import GgctlError
from ggctl.evaluate.profile import Profile
from ggctl.evaluate.scoring import REQUEST_COLUMNS

# Progress and result lines on the child's stdout carry this prefix; anything else
# (a stray print from a library) is ignored.
_MARK = "@ggctl-loadgen "
REQUESTS_CSV = "requests.csv"
PROFILE_JSON = "profile.json"
LOG_FILE = "loadgen.log"
# Locust warns above 100 users/s; 100 still starts the challenge's 20-30 users at once,
# as each siege run of the course did.
SPAWN_RATE = 100.0


class LoadTestError(GgctlError):
    """The load generator could not run the profile to its end."""


@dataclass(frozen=True)
class Progress:
    """A snapshot the child reports about twice a second."""

    elapsed_s: float
    total_s: float
    stage: int
    stages: int
    users: int
    requests: int
    failures: int
    cpu_s: float


@dataclass(frozen=True)
class LoadResult:
    """What a finished load test produced: the request log and the generator's own cost."""

    profile: Profile
    requests_csv: Path
    requests: int
    failures: int
    wall_s: float
    cpu_s: float
    cpu_warning: bool
    interrupted: bool = False
    locust: dict[str, Any] = field(default_factory=dict)

    @property
    def cpu_cores(self) -> float:
        """Mean CPU cores the load generator itself used while the profile ran."""
        return self.cpu_s / self.wall_s if self.wall_s > 0 else 0.0

    def summary(self) -> dict[str, Any]:
        """The generator's own figures, as results.json records them."""
        return {
            "engine": "locust",
            "wall_s": self.wall_s,
            "cpu_s": self.cpu_s,
            "cpu_cores": round(self.cpu_cores, 3),
            "cpu_warning": self.cpu_warning,
            "interrupted": self.interrupted,
            "locust_totals": self.locust,
        }


def run_load(
    url: str,
    profile: Profile,
    out_dir: Path,
    on_progress: Callable[[Progress], None] | None = None,
    *,
    path: str = "/test",
    request_timeout_s: float = 30.0,
    startup_timeout_s: float = 60.0,
    seed: int | None = None,
) -> LoadResult:
    """Run `profile` against `url` + `path` in a Locust child process and wait for it.

    `on_progress` is called from this thread with each `Progress`. On any exception here
    (KeyboardInterrupt included) the child is stopped, then the exception propagates.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    profile_path = out_dir / PROFILE_JSON
    profile_path.write_text(json.dumps(profile.to_dict(), indent=2) + "\n")
    cmd = [
        sys.executable,
        "-m",
        "ggctl.evaluate.loadgen",
        "--host",
        url,
        "--path",
        path,
        "--profile",
        str(profile_path),
        "--out",
        str(out_dir),
        "--timeout",
        str(request_timeout_s),
    ]
    if seed is not None:
        cmd += ["--seed", str(seed)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    log_path = out_dir / LOG_FILE
    # The whole run, with room for interpreter start, Locust's import and in-flight requests.
    deadline = time.monotonic() + startup_timeout_s + profile.total_duration_s + request_timeout_s
    with log_path.open("w") as log_fh:
        # Own session: the terminal's Ctrl-C reaches only us, and we stop the child in order.
        proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=log_fh,
            text=True,
            env=env,
            start_new_session=True,
        )
        lines: queue.Queue[str | None] = queue.Queue()
        reader = threading.Thread(target=_pump, args=(proc.stdout, lines), daemon=True)
        reader.start()
        done: dict[str, Any] | None = None
        try:
            while True:
                try:
                    line = lines.get(timeout=0.25)
                except queue.Empty:
                    if time.monotonic() > deadline:
                        raise LoadTestError(
                            f"the load generator did not finish within "
                            f"{profile.total_duration_s + startup_timeout_s:.0f} s",
                            hint=f"Its log: {log_path}",
                        ) from None
                    continue
                if line is None:
                    break
                msg = _parse(line)
                if msg is None:
                    continue
                if msg.get("event") == "progress" and on_progress is not None:
                    on_progress(_progress(msg, profile))
                elif msg.get("event") == "done":
                    done = msg
            rc = proc.wait(timeout=30)
        except BaseException:
            _stop(proc)
            raise
    if rc != 0 or done is None:
        raise LoadTestError(
            f"the load generator failed (exit status {rc})",
            hint=f"Last lines of {log_path}:\n{_tail(log_path)}",
        )
    return LoadResult(
        profile=profile,
        requests_csv=out_dir / REQUESTS_CSV,
        requests=int(done["requests"]),
        failures=int(done["failures"]),
        wall_s=float(done["wall_s"]),
        cpu_s=float(done["cpu_s"]),
        cpu_warning=bool(done["cpu_warning"]),
        interrupted=bool(done["interrupted"]),
        locust=dict(done.get("locust", {})),
    )


def _pump(stream: IO[str] | None, out: queue.Queue[str | None]) -> None:
    if stream is not None:
        for line in stream:
            out.put(line)
    out.put(None)


def _parse(line: str) -> dict[str, Any] | None:
    if not line.startswith(_MARK):
        return None
    try:
        msg = json.loads(line[len(_MARK) :])
    except json.JSONDecodeError:
        return None
    return msg if isinstance(msg, dict) else None


def _progress(msg: dict[str, Any], profile: Profile) -> Progress:
    return Progress(
        elapsed_s=float(msg["elapsed_s"]),
        total_s=profile.total_duration_s,
        stage=int(msg["stage"]),
        stages=len(profile.stages),
        users=int(msg["users"]),
        requests=int(msg["requests"]),
        failures=int(msg["failures"]),
        cpu_s=float(msg["cpu_s"]),
    )


def _stop(proc: subprocess.Popen[str], grace_s: float = 5.0) -> None:
    """SIGTERM (the child then writes what it has), then SIGKILL after `grace_s`."""
    if proc.poll() is not None:
        return
    try:
        proc.terminate()
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)
    except ProcessLookupError:
        pass


def _tail(path: Path, lines: int = 20) -> str:
    try:
        with path.open(errors="replace") as fh:
            return "".join(deque(fh, maxlen=lines)).rstrip() or "(empty)"
    except OSError:
        return "(no log)"


# ---------------------------------------------------------------------------- child side


def _child(argv: list[str] | None = None) -> int:
    """Run one profile with Locust in this process (patched by gevent from here on)."""
    ap = argparse.ArgumentParser(prog="python -m ggctl.evaluate.loadgen", description=__doc__)
    ap.add_argument("--host", required=True, help="base URL, e.g. http://127.0.0.1:5000")
    ap.add_argument("--path", default="/test", help="path every user GETs")
    ap.add_argument("--profile", required=True, type=Path, help="profile file (JSON or YAML)")
    ap.add_argument("--out", required=True, type=Path, help="directory for requests.csv")
    ap.add_argument("--timeout", type=float, default=30.0, help="per-request timeout, s")
    ap.add_argument("--seed", type=int, default=None, help="seed of the think times")
    ap.add_argument("--progress-interval", type=float, default=0.5)
    args = ap.parse_args(argv)

    from ggctl.evaluate.profile import load_profile_file

    profile = load_profile_file(args.profile)
    args.out.mkdir(parents=True, exist_ok=True)

    import gevent
    import locust  # noqa: F401  (patches the process: keep every Locust import below this)
    from locust import LoadTestShape, task
    from locust.contrib.fasthttp import FastHttpUser
    from locust.env import Environment
    from locust.runners import STATE_STOPPED

    total = profile.total_duration_s
    last_stage = len(profile.stages) - 1
    rng = random.Random(args.seed)  # noqa: S311 (think times, not secrets)

    class Shape(LoadTestShape):
        def tick(self) -> tuple[int, float] | None:
            t = self.get_run_time()
            if t > total + 5:
                return None  # a safety net only: the loop below stops the run on time
            # Locust ticks once a second; looking half a tick ahead switches stages at the
            # tick nearest to the boundary instead of up to a second late.
            i = profile.stage_at(t + 0.5)
            return (profile.stages[last_stage if i is None else i].users, SPAWN_RATE)

    shape = Shape()

    class ServiceUser(FastHttpUser):
        # FastHttpUser (geventhttpclient) costs several times less CPU per request than
        # HttpUser (requests); the generator shares the 2 cores with the service locally.
        host = args.host
        network_timeout = args.timeout
        connection_timeout = args.timeout

        def wait_time(self) -> float:
            return profile.think_time(shape.get_run_time(), rng)

        @task
        def get_target(self) -> None:
            self.client.get(args.path, name=args.path)

    env = Environment(
        user_classes=[ServiceUser],
        shape_class=shape,
        host=args.host,
        # Let every request already sent finish at stage changes and at the end, so the
        # log matches what the server handled; waiting users are stopped at once.
        stop_timeout=args.timeout + 1,
    )
    counts = {"requests": 0, "failures": 0}
    csv_fh = (args.out / REQUESTS_CSV).open("w", newline="")
    writer = csv.writer(csv_fh)
    writer.writerow(REQUEST_COLUMNS)
    holder: dict[str, Any] = {}

    def on_request(
        request_type: str,
        name: str,
        response_time: float,
        response_length: int,
        response: Any = None,
        context: Any = None,
        exception: Any = None,
        start_time: float | None = None,
        url: str | None = None,
        **_: Any,
    ) -> None:
        start = start_time if start_time is not None else time.time() - response_time / 1000
        offset = start - holder["t0"]
        stage = profile.stage_at(offset)
        status = int(getattr(response, "status_code", 0) or 0)
        ok = exception is None
        counts["requests"] += 1
        if not ok:
            counts["failures"] += 1
        error = "" if ok else f"{type(exception).__name__}: {exception}"[:200].replace("\n", " ")
        runner = holder.get("runner")
        writer.writerow(
            [
                f"{start:.6f}",
                f"{offset:.6f}",
                last_stage if stage is None else stage,
                runner.user_count if runner is not None else 0,
                f"{response_time:.3f}",
                status,
                1 if ok else 0,
                error,
            ]
        )

    env.events.request.add_listener(on_request)

    def emit(event: str, **data: Any) -> None:
        sys.stdout.write(_MARK + json.dumps({"event": event, **data}) + "\n")
        sys.stdout.flush()

    stop_asked = {"flag": False}

    def ask_stop() -> None:
        stop_asked["flag"] = True

    gevent.signal_handler(signal.SIGTERM, ask_stop)
    gevent.signal_handler(signal.SIGINT, ask_stop)

    runner = env.create_local_runner()
    holder["runner"] = runner
    holder["t0"] = time.time()
    cpu0 = time.process_time()
    t0 = time.monotonic()
    runner.start_shape()

    def report() -> None:
        while True:
            elapsed = time.monotonic() - t0
            stage = profile.stage_at(elapsed)
            emit(
                "progress",
                elapsed_s=round(elapsed, 3),
                stage=last_stage if stage is None else stage,
                users=runner.user_count,
                requests=counts["requests"],
                failures=counts["failures"],
                cpu_s=round(time.process_time() - cpu0, 3),
            )
            csv_fh.flush()
            gevent.sleep(args.progress_interval)

    reporter = gevent.spawn(report)
    # Poll the state: runner.greenlet.join() was seen to hang after a shape's last tick.
    while runner.state != STATE_STOPPED:
        if stop_asked["flag"] or time.monotonic() - t0 >= total:
            runner.stop()
            break
        gevent.sleep(0.02)
    wall = time.monotonic() - t0
    reporter.kill()
    runner.quit()
    csv_fh.close()
    stats = env.stats.total
    emit(
        "done",
        requests=counts["requests"],
        failures=counts["failures"],
        wall_s=round(wall, 3),
        cpu_s=round(time.process_time() - cpu0, 3),
        cpu_warning=bool(runner.cpu_warning_emitted),
        interrupted=stop_asked["flag"],
        locust={
            "num_requests": stats.num_requests,
            "num_failures": stats.num_failures,
            "avg_response_time_ms": stats.avg_response_time,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(_child())
