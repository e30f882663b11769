"""A pod's memory as metrics-server reports it: the working set of a cgroup holding the
container's processes, measured here in a transient cgroup of our own.

metrics-server reports the kubelet's (cAdvisor's) `working_set_bytes` of the container's
cgroup: its memory usage minus its inactive file pages, never below zero. cgroup v2:
`memory.current` − `inactive_file` of `memory.stat`; cgroup v1: `memory.usage_in_bytes`
− `total_inactive_file`. Every page is charged once to the cgroup that first touched it,
so copy-on-write pages a forked worker shares with its master count once, and so do the
libraries' file pages the processes map — if they were read first inside the cgroup. A
library another process on this machine has already read stays charged to that process's
cgroup: `evict_page_cache` drops such files from the page cache (where nothing maps them)
before the measured process starts, as a fresh container on a node would find them.

Making a cgroup needs root and a writable cgroup file system with the memory
controller; `MemoryCgroup.create` returns None where it cannot, and callers fall back to
the summed PSS of the process tree (see predict/calibrate.py working_set_mib).
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
MIB = 1024 * 1024
#: `sh -c` that moves itself into the cgroup whose cgroup.procs is $0, then execs "$@":
#: the service's first instruction already runs inside, as a container's does.
_ENTER = 'echo $$ > "$0" && exec "$@"'


def _stat(path: Path) -> dict[str, int]:
    out: dict[str, int] = {}
    for line in path.read_text().splitlines():
        key, _, value = line.partition(" ")
        with contextlib.suppress(ValueError):
            out[key] = int(value)
    return out


def working_set_bytes(cgroup: Path) -> int:
    """cAdvisor's working set of the cgroup directory `cgroup` (v2 or v1 memory files)."""
    cgroup = Path(cgroup)
    if (cgroup / "memory.current").is_file():  # v2
        usage = int((cgroup / "memory.current").read_text())
        inactive = _stat(cgroup / "memory.stat").get("inactive_file", 0)
    else:  # v1
        usage = int((cgroup / "memory.usage_in_bytes").read_text())
        inactive = _stat(cgroup / "memory.stat").get("total_inactive_file", 0)
    return max(0, usage - inactive)


#: memory.stat keys (v2, v1) of the breakdown `breakdown_bytes` reports.
_BREAKDOWN = {
    "anon": ("anon", "total_rss"),
    "file": ("file", "total_cache"),
    "file_mapped": ("file_mapped", "total_mapped_file"),
    "active_file": ("active_file", "total_active_file"),
    "inactive_file": ("inactive_file", "total_inactive_file"),
}


def breakdown_bytes(cgroup: Path) -> dict[str, int]:
    """Anonymous and file pages of the cgroup, the file pages split as the kernel keeps
    them (only inactive ones leave the working set)."""
    cgroup = Path(cgroup)
    stat = _stat(cgroup / "memory.stat")
    v2 = (cgroup / "memory.current").is_file()
    return {k: stat.get(keys[0] if v2 else keys[1], 0) for k, keys in _BREAKDOWN.items()}


def peak_bytes(cgroup: Path) -> int | None:
    """The cgroup's highest usage so far (file pages included), where the kernel keeps it."""
    for name in ("memory.peak", "memory.max_usage_in_bytes"):
        with contextlib.suppress(OSError, ValueError):
            return int((Path(cgroup) / name).read_text())
    return None


def _v2_parent(root: Path) -> Path | None:
    """A cgroup v2 directory whose children get the memory controller, or None."""
    for base in (root, root / "unified"):
        ctl = base / "cgroup.controllers"
        if not ctl.is_file() or "memory" not in ctl.read_text().split():
            continue
        sub = base / "cgroup.subtree_control"
        if "memory" not in sub.read_text().split():
            try:  # fails where base has processes of its own (the no-internal-process rule)
                sub.write_text("+memory")
            except OSError:
                continue
        return base
    return None


@dataclass
class MemoryCgroup:
    """A transient memory cgroup for one measured process tree; `remove()` when done."""

    path: Path
    version: int

    @classmethod
    def create(cls, name: str, root: Path = CGROUP_ROOT) -> MemoryCgroup | None:
        """A new cgroup `name`-<pid>-<n> under the v2 or v1 memory hierarchy, or None where
        this process may not make one (not root, no memory controller, read-only)."""
        unique = f"{name}-{os.getpid()}-{time.monotonic_ns()}"
        candidates: list[tuple[Path, int]] = []
        with contextlib.suppress(OSError):
            v2 = _v2_parent(root)
            if v2 is not None:
                candidates.append((v2, 2))
        if (root / "memory" / "memory.usage_in_bytes").is_file():
            candidates.append((root / "memory", 1))
        for parent, version in candidates:
            path = parent / unique
            try:
                path.mkdir()
            except OSError:
                continue
            return cls(path, version)
        return None

    @property
    def procs_file(self) -> Path:
        return self.path / "cgroup.procs"

    def wrap(self, cmd: list[str]) -> list[str]:
        """`cmd`, started inside this cgroup (through `sh`, which execs it)."""
        return ["sh", "-c", _ENTER, str(self.procs_file), *cmd]

    def pids(self) -> list[int]:
        with contextlib.suppress(OSError):
            return [int(p) for p in self.procs_file.read_text().split()]
        return []

    def working_set_mib(self) -> float:
        return working_set_bytes(self.path) / MIB

    def breakdown_mib(self) -> dict[str, float]:
        return {k: round(v / MIB, 1) for k, v in breakdown_bytes(self.path).items()}

    def peak_mib(self) -> float | None:
        peak = peak_bytes(self.path)
        return None if peak is None else peak / MIB

    def remove(self, timeout_s: float = 10.0) -> None:
        """Remove the cgroup once its processes (stopped by the caller) are gone."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                self.path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                if time.monotonic() > deadline:
                    return  # left for the caller to report; never kill what we did not start
                time.sleep(0.05)


def evict_page_cache(paths: list[Path]) -> int:
    """Drop the page cache of every file under `paths` where nothing maps it (POSIX_FADV_
    DONTNEED), so that the next process to read them is charged for them; returns the
    number of files. Pages another running process maps stay, charged where they are."""
    count = 0
    for top in paths:
        top = Path(top)
        files = [top] if top.is_file() else (p for p in top.rglob("*") if p.is_file())
        for f in files:
            try:
                fd = os.open(f, os.O_RDONLY)
            except OSError:
                continue
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                count += 1
            except OSError:
                pass
            finally:
                os.close(fd)
    return count
