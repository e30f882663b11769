"""Answers the fake gives instead of the real one, to test how clients take API failures.

    fake.fail_http(403, "Forbidden", 'deployments.apps "ml-app" is forbidden: ...',
                   method="PATCH", path="/deployments/")
    fake.fail_http(503, text="service unavailable\n", path="/apis/metrics.k8s.io/")
    fake.fail_http(delay_s=5, path="/pods")                      # a hang: client timeouts

Bodies are what kube-apiserver sends (staging/src/k8s.io/apimachinery/pkg/api/errors and
apiserver/pkg/endpoints/handlers/responsewriters/status.go, v1.33): a JSON `Status` with
kind, apiVersion, status "Failure", message, reason and code. An aggregated API whose
backend is down is answered by kube-aggregator's proxy with a plain-text body instead
(kube-aggregator/pkg/apiserver/handler_proxy.go: `proxyError(w, req, "service unavailable",
http.StatusServiceUnavailable)`, an http.Error), which `text=` reproduces.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from werkzeug.wrappers import Request, Response

from .store import ApiError


@dataclass
class HttpFault:
    code: int = 500
    reason: str = "InternalError"
    message: str = "Internal error occurred"
    #: a plain-text body instead of a Status (kube-aggregator's answers)
    text: str | None = None
    method: str | None = None
    #: substring of the request path; None: every path
    path: str | None = None
    #: how many requests get it; None: all of them
    times: int | None = None
    #: wait this long (wall seconds) before answering: longer than a client timeout, a hang
    delay_s: float = 0.0

    def matches(self, req: Request) -> bool:
        return (self.method is None or req.method == self.method) and (
            self.path is None or self.path in req.path
        )


class HttpFaults:
    def __init__(self) -> None:
        self.faults: list[HttpFault] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()

    def add(self, fault: HttpFault) -> HttpFault:
        with self._lock:
            self.faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self.faults.clear()

    def stop(self) -> None:
        self._stop.set()

    def answer(self, req: Request) -> Response | None:
        """The injected answer to `req` (raises ApiError for a Status), or None."""
        with self._lock:
            fault = next((f for f in reversed(self.faults) if f.matches(req)), None)
            if fault is None:
                return None
            if fault.times is not None:
                fault.times -= 1
                if fault.times <= 0:
                    self.faults.remove(fault)
        if fault.delay_s:
            self._stop.wait(fault.delay_s)
            if fault.code == 0:
                return None  # only slow: then the real answer
        if fault.text is not None:
            return Response(fault.text, status=fault.code, mimetype="text/plain")
        raise ApiError(fault.code, fault.reason, fault.message)
