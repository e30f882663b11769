"""Sockets in the lab's network namespace, served by threads of the test process.

setns(2) moves only the calling thread, so a short-lived thread enters the namespace,
binds a listening socket there and leaves; the socket stays in that namespace while
the server threads that accept on it (and connect upstream) stay in the machine's.
Nothing outlives the test process.
"""

from __future__ import annotations

import ctypes
import os
import socket
import threading
from collections.abc import Callable
from typing import TypeVar

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)
T = TypeVar("T")


def in_netns(netns: str, fn: Callable[[], T]) -> T:
    """Run fn in a thread that has joined /run/netns/NETNS; return its result."""
    out: dict[str, object] = {}

    def run() -> None:
        fd = os.open(f"/run/netns/{netns}", os.O_RDONLY)
        try:
            if _libc.setns(fd, CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                raise OSError(err, os.strerror(err))
            out["value"] = fn()
        except BaseException as exc:  # handed to the caller's thread
            out["error"] = exc
        finally:
            os.close(fd)

    t = threading.Thread(target=run, name=f"setns-{netns}")
    t.start()
    t.join()
    if "error" in out:
        raise out["error"]  # type: ignore[misc]
    return out["value"]  # type: ignore[return-value]


def listen_in(netns: str, host: str) -> socket.socket:
    """A TCP socket listening on host:<kernel-chosen port> inside the namespace."""

    def make() -> socket.socket:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((host, 0))
        s.listen(64)
        return s

    return in_netns(netns, make)
