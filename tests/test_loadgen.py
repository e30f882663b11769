"""The Locust engine, in its own process, against a counting server on 127.0.0.1.

Profiles here last a few seconds; every run is bounded by run_load's own deadline and
by pytest-timeout.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest
from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from ggctl.evaluate.loadgen import LoadTestError, Progress, run_load
from ggctl.evaluate.profile import Profile, Stage
from ggctl.evaluate.scoring import read_request_log

pytestmark = pytest.mark.timeout(90)


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, *args: object, **kwargs: object) -> None:
        pass


@dataclass
class CountingServer:
    """A threaded werkzeug server whose /test counts what it answered."""

    fail_every: int = 0
    latency_s: float = 0.002
    count: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""

    def app(self, environ, start_response):
        request = Request(environ)
        if request.path != "/test":
            return Response("no", status=404)(environ, start_response)
        with self.lock:
            self.count += 1
            n = self.count
        time.sleep(self.latency_s)
        status = 500 if self.fail_every and n % self.fail_every == 0 else 200
        with self.lock:
            self.statuses[status] += 1
        body = json.dumps({"class": "Bread", "confidence": 0.5})
        return Response(body, status=status, mimetype="application/json")(environ, start_response)


@contextlib.contextmanager
def counting_server(**kw) -> Iterator[CountingServer]:
    state = CountingServer(**kw)
    srv = make_server("127.0.0.1", 0, state.app, threaded=True, request_handler=_QuietHandler)
    state.url = f"http://127.0.0.1:{srv.server_port}"
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        srv.shutdown()
        thread.join(5)


def loadgen_children() -> list[psutil.Process]:
    found = []
    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if "ggctl.evaluate.loadgen" in " ".join(child.cmdline()):
                found.append(child)
    return found


def test_every_request_is_logged_and_matches_the_server(tmp_path: Path):
    # A slow stage then a busy one: the think time must switch at the stage boundary.
    profile = Profile("short", (Stage(1.5, 3, 0.4), Stage(1.5, 6, 0.01), Stage(1.0, 2, 0.2)))
    progress: list[Progress] = []
    with counting_server() as server:
        result = run_load(server.url, profile, tmp_path, on_progress=progress.append, seed=1)
        served = server.count

    log = read_request_log(result.requests_csv)
    assert len(log) == result.requests == served > 0
    assert result.failures == 0 and all(r.ok and r.status == 200 for r in log)
    # Locust's own aggregate agrees with the per-request log.
    assert result.locust["num_requests"] == served
    # (the log keeps latencies to the microsecond, so the means agree to that)
    assert result.locust["avg_response_time_ms"] == pytest.approx(
        sum(r.latency_ms for r in log) / len(log), abs=1e-3
    )

    per_stage = Counter(r.stage for r in log)
    assert set(per_stage) == {0, 1, 2}
    rate = [per_stage[i] / s.duration_s for i, s in enumerate(profile.stages)]
    assert rate[1] > 4 * rate[0], rate
    assert max(r.users for r in log if r.stage == 1) == 6
    assert max(r.users for r in log if r.stage == 0) <= 6
    assert all(0 <= r.offset_s <= profile.total_duration_s + 1 for r in log)
    assert all(0 < r.latency_ms < 5000 for r in log)

    # the engine ran the whole profile (no upper bound: a busy machine is only slower)
    assert result.wall_s >= profile.total_duration_s - 0.5
    assert result.cpu_s > 0 and not result.interrupted
    assert progress and progress[-1].requests <= served
    assert [p.elapsed_s for p in progress] == sorted(p.elapsed_s for p in progress)
    assert {p.stage for p in progress} >= {0, 1, 2}
    assert json.loads((tmp_path / "profile.json").read_text())["stages"][1]["users"] == 6
    assert not loadgen_children()


def test_http_errors_are_failures_with_their_status(tmp_path: Path):
    profile = Profile("errors", (Stage(2.0, 4, 0.02),))
    with counting_server(fail_every=3) as server:
        result = run_load(server.url, profile, tmp_path)
        statuses = dict(server.statuses)

    log = read_request_log(result.requests_csv)
    assert result.failures == statuses[500] > 0
    assert result.requests - result.failures == statuses[200]
    failed = [r for r in log if not r.ok]
    assert len(failed) == statuses[500]
    assert all(r.status == 500 and r.error for r in failed)


def test_connection_refused_is_recorded_not_fatal(tmp_path: Path):
    with counting_server() as server:
        url = server.url  # closed when the block ends: nothing listens there afterwards
    profile = Profile("refused", (Stage(1.5, 2, 0.1),))
    result = run_load(url, profile, tmp_path, request_timeout_s=2)
    log = read_request_log(result.requests_csv)
    assert result.requests == len(log) > 0
    assert result.failures == result.requests
    assert all(r.status == 0 and not r.ok and r.error for r in log)


def test_interrupt_stops_the_child(tmp_path: Path):
    profile = Profile("long", (Stage(60, 2, 0.05),))

    def interrupt(p: Progress) -> None:
        if p.elapsed_s > 0.5:
            raise KeyboardInterrupt

    with counting_server() as server, pytest.raises(KeyboardInterrupt):
        run_load(server.url, profile, tmp_path, on_progress=interrupt)
    assert not loadgen_children()
    # The child wrote what it had before it went, and stopped long before the profile's end.
    log = read_request_log(tmp_path / "requests.csv")
    assert log and max(r.offset_s for r in log) < profile.total_duration_s / 2


def test_child_failure_is_reported_with_its_log(tmp_path: Path, monkeypatch):
    import ggctl.evaluate.loadgen as loadgen

    # A module that does not exist makes the child die at once, as a broken install would.
    real_popen = loadgen.subprocess.Popen

    def broken_popen(cmd, **kw):
        cmd = [c if c != "ggctl.evaluate.loadgen" else "ggctl.evaluate.no_such_module" for c in cmd]
        return real_popen(cmd, **kw)

    monkeypatch.setattr(loadgen.subprocess, "Popen", broken_popen)
    with pytest.raises(LoadTestError, match="failed") as err:
        run_load("http://127.0.0.1:9", Profile("x", (Stage(1, 1, 0),)), tmp_path)
    assert "no_such_module" in (err.value.hint or "")


def _served_test_requests(server) -> float:
    """GET /test answered so far, by the service's own Prometheus counter."""
    text = server.get("/metrics").text
    total = 0.0
    for line in text.splitlines():
        if line.startswith("ggctl_http_requests_total{") and 'route="/test"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_against_the_real_service(tmp_path: Path, live_server):
    """The engine against gunicorn + the demo model: the service counted what we logged."""
    before = _served_test_requests(live_server)
    profile = Profile("live", (Stage(1.5, 4, 0.1), Stage(1.5, 8, 0.02)))
    result = run_load(live_server.base_url, profile, tmp_path)
    served = _served_test_requests(live_server) - before

    log = read_request_log(result.requests_csv)
    assert len(log) == result.requests == served > 10
    assert result.failures == 0, Counter(r.error for r in log if not r.ok)
    assert all(r.status == 200 and r.latency_ms > 0 for r in log)
