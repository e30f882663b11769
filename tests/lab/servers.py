"""The lab network's two HTTP services, both threads of the test process:

- AptProxy: a GET-only forward proxy that lets the hosts fetch from this machine's
  Debian mirror and nothing else (403 for any other host, 405 for any other method).
- StaticServer: the local files (the signed Kubernetes apt repository, the stand-in
  BuildKit tarball) over plain HTTP, as pkgs.k8s.io and GitHub would serve them.
"""

from __future__ import annotations

import http.client
import socket
import threading
from functools import partial
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailers",
    "transfer-encoding",
    "upgrade",
    "proxy-connection",
}


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, sock: socket.socket, handler) -> None:  # type: ignore[no-untyped-def]
        super().__init__(sock.getsockname(), handler, bind_and_activate=False)
        self.socket.close()
        self.socket = sock

    def start(self) -> _Server:
        threading.Thread(target=self.serve_forever, name="lab-http", daemon=True).start()
        return self

    @property
    def port(self) -> int:
        return self.socket.getsockname()[1]

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


class _ProxyHandler(BaseHTTPRequestHandler):
    allowed_host = ""
    requests: list[str] = []  # noqa: RUF012 (one list per server class, set in AptProxy)

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.scheme != "http" or url.hostname != self.allowed_host:
            self.requests.append(f"DENY {self.path}")
            self.send_error(403, "the lab proxy only reaches the Debian mirror")
            return
        self.requests.append(self.path)
        conn = http.client.HTTPConnection(url.hostname, url.port or 80, timeout=120)
        try:
            path = url.path + (f"?{url.query}" if url.query else "")
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            conn.request("GET", path, headers=headers)
            resp = conn.getresponse()
            self.send_response(resp.status, resp.reason)
            for k, v in resp.getheaders():
                if k.lower() not in HOP_BY_HOP:
                    self.send_header(k, v)
            self.send_header("Connection", "close")
            self.end_headers()
            while chunk := resp.read(65536):
                self.wfile.write(chunk)
        except OSError as exc:
            self.requests.append(f"ERROR {exc}")
        finally:
            conn.close()
            self.close_connection = True

    def _deny(self) -> None:
        self.send_error(405, "the lab proxy allows GET only")

    do_POST = do_PUT = do_DELETE = do_CONNECT = do_HEAD = do_PATCH = _deny


def apt_proxy(sock: socket.socket, mirror: str) -> tuple[_Server, list[str]]:
    """Start the GET-only proxy for one mirror on a listening socket; (server, log)."""
    host = urlsplit(mirror).hostname or ""
    log: list[str] = []
    handler = type("LabProxy", (_ProxyHandler,), {"allowed_host": host, "requests": log})
    return _Server(sock, handler).start(), log


class _QuietFiles(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def static_server(sock: socket.socket, root: Path) -> _Server:
    return _Server(sock, partial(_QuietFiles, directory=str(root))).start()
