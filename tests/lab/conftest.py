"""Fixtures of the lab tier (marker `lab`, tox env `lab`, root only).

One lab per test session: the cached Debian image, the network namespace, the apt
proxy and the local Kubernetes repository, three booted hosts, and the inventory and
ssh_config that `ggctl reserve` writes, pointed at node-0's lab address as its
floating IP. Everything is undone at the end, also on failure, Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from ggctl.inventory.ansible import INVENTORY_FILE, write_inventory
from ggctl.inventory.sshconfig import write_ssh_config
from lab import aptrepo, rootfs
from lab.hosts import Lab
from lab.netns import listen_in
from lab.servers import apt_proxy, static_server

TOOLS = ("systemd-nspawn", "debootstrap", "apt-ftparchive", "dpkg-deb", "gpg", "ssh", "ip")


def _unavailable() -> str | None:
    if sys.platform != "linux":
        return "the lab needs Linux"
    if os.geteuid() != 0:
        return "the lab needs root (network namespaces, overlayfs, systemd-nspawn)"
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        return f"the lab needs {', '.join(missing)} (.ci/run installs them)"
    return None


@dataclass
class LabRun:
    """One finished `ggctl cluster` (or other ggctl command) run."""

    rc: int
    output: str
    events: list[dict]

    def changed(self) -> list[tuple[str, str]]:
        """(host, task) of every task result that reported changed."""
        return [
            (e["event_data"].get("host", "?"), e["event_data"].get("task", "?"))
            for e in self.events
            if e.get("event") == "runner_on_ok" and e["event_data"].get("res", {}).get("changed")
        ]

    def failed(self) -> list[tuple[str, str]]:
        return [
            (e["event_data"].get("host", "?"), e["event_data"].get("task", "?"))
            for e in self.events
            if e.get("event") in ("runner_on_failed", "runner_on_unreachable")
            and not e["event_data"].get("ignore_errors")
        ]


class LabEnv:
    proxy_log: list[str]
    files_port: int

    def __init__(self, lab: Lab, work: Path, state: Path, key: Path) -> None:
        self.lab = lab
        self.work = work
        self.state = state
        self.key = key
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("GGCTL_", "ANSIBLE_"))},
            "HOME": str(work / "home"),
            "GGCTL_STATE_DIR": str(state),
            "GGCTL_CONFIG": "",
            "XDG_CONFIG_HOME": str(work / "home/.config"),
            "PYTHONWARNINGS": "default",
        }
        (work / "home").mkdir(exist_ok=True)

    def ggctl(
        self, *args: str, timeout: float = 1800, state: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        env = dict(self.env)
        if state is not None:
            # Another user: own state and own HOME (so no ssh ControlPersist master of
            # this lab's runs is reused).
            env["GGCTL_STATE_DIR"] = str(state)
            env["HOME"] = str(state.parent / "home")
            Path(env["HOME"]).mkdir(exist_ok=True)
        return subprocess.run(
            [sys.executable, "-m", "ggctl", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,  # a hang detector only
        )

    def cluster(self, *args: str, state: Path | None = None) -> LabRun:
        before = set(self.run_dirs(state))
        p = self.ggctl("cluster", *args, state=state)
        new = sorted(set(self.run_dirs(state)) - before)
        events = load_events(new[-1]) if new else []
        return LabRun(p.returncode, p.stdout + p.stderr, events)

    def run_dirs(self, state: Path | None = None) -> list[Path]:
        return sorted((state or self.state).glob("runs/*-cluster-*"))

    def sh(self, node: str, command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """A command on a node through `ggctl ssh` (so through node-0)."""
        p = self.ggctl("ssh", node, "--", command, timeout=300)
        if check and p.returncode != 0:
            raise AssertionError(f"{node}: {command!r} -> {p.returncode}: {p.stdout}{p.stderr}")
        return p


def load_events(run_dir: Path) -> list[dict]:
    """The ansible-runner events of a run, also while it runs: the callback writes each event
    as <uuid>-partial.json, which runner reads, rewrites as <counter>-<uuid>.json and deletes,
    so a partial file listed here may be gone (or half written) by the time it is read."""
    events = []
    for path in run_dir.glob("runner/artifacts/*/job_events/*.json"):
        if path.name.endswith("-partial.json"):
            continue
        try:
            events.append(json.loads(path.read_text()))
        except (FileNotFoundError, json.JSONDecodeError):
            continue  # being written right now: the next look sees it whole
    events.sort(key=lambda e: e.get("counter", 0))
    return events


_active: list[Lab] = []


def _close_all(*_: object) -> None:
    while _active:
        _active.pop().close()


def _on_sigterm(signum: int, frame: object) -> None:
    # As Ctrl-C: pytest unwinds, the finalizers close the labs.
    raise KeyboardInterrupt(f"signal {signum}")


@dataclass
class Assets:
    """What every lab of the session shares: image, mirror, repository tree, test key."""

    image: Path
    mirror: str
    tree: Path
    buildkit_rel: str
    buildkit_sha256: str
    key: Path
    work: Path


@pytest.fixture(scope="session")
def lab_assets() -> Iterator[Assets]:
    reason = _unavailable()
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"lab tier cannot run in CI: {reason}")
        pytest.skip(reason)
    mirror = rootfs.apt_mirror()
    image = rootfs.rootfs(mirror)
    # Not under pytest's basetemp: other pytest runs on the machine prune old basetemps,
    # and must never walk into the hosts' mounted root filesystems.
    work = Path(tempfile.mkdtemp(prefix="ggctl-lab-", dir="/var/tmp"))
    tree = aptrepo.make_repo(work / "repo")
    rel, tarball = aptrepo.buildkit_tarball(tree)
    key = work / "id_lab"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    atexit.register(_close_all)
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        yield Assets(
            image, mirror, tree, rel, hashlib.sha256(tarball.read_bytes()).hexdigest(), key, work
        )
    finally:
        signal.signal(signal.SIGTERM, previous)
        _close_all()
        shutil.rmtree(work, ignore_errors=True)


@contextlib.contextmanager
def open_lab(assets: Assets, name: str) -> Iterator[LabEnv]:
    """Boot a lab of three fresh hosts with its own network, proxy and file server."""
    work = assets.work / name
    work.mkdir()
    lab = Lab(work / "hosts", assets.image)
    _active.append(lab)
    servers = []
    try:
        lab.make_network()
        proxy, proxy_log = apt_proxy(listen_in(lab.netns, "192.168.1.1"), assets.mirror)
        servers.append(proxy)
        files = static_server(listen_in(lab.netns, "192.168.1.1"), assets.tree)
        servers.append(files)
        lab.start(assets.key.with_suffix(".pub").read_text(), _apt_conf(proxy.port))
        state = work / "state"
        state.mkdir(mode=0o700)
        write_lab_inventory(lab, state, assets.key)
        write_lab_vars(state, f"http://192.168.1.1:{files.port}", assets)
        env = LabEnv(lab, work, state, assets.key)
        env.proxy_log = proxy_log
        env.files_port = files.port
        yield env
    finally:
        for server in servers:
            server.stop()
        kill_strays(work)
        if lab in _active:
            _active.remove(lab)
        lab.close()


@pytest.fixture(scope="session")
def lab_env(lab_assets: Assets) -> Iterator[LabEnv]:
    with open_lab(lab_assets, "main") as env:
        yield env


def write_lab_vars(state: Path, url: str, assets: Assets) -> None:
    """The lab's stand-ins, beside the inventory (group_vars of k8s_cluster: above the
    playbook's group_vars/all, below -e), so that no role knows it is a lab."""
    (state / "group_vars").mkdir(exist_ok=True)
    (state / "group_vars/k8s_cluster.yml").write_text(
        "# The lab's stand-ins for what the hosts cannot reach here (lab inventory only).\n"
        + yaml.safe_dump(
            {
                "kube_packages_repo_url": f"{url}/core:/stable:/v{aptrepo.MINOR}/deb/",
                "kube_packages_patch": aptrepo.PINNED_PATCH,
                "image_builder_url": f"{url}/{assets.buildkit_rel}",
                "image_builder_checksum": assets.buildkit_sha256,
                # registry 2.8 in proxy mode panics when Docker Hub is unreachable
                # (issue 13 item 6, on the roles branch); the lab has no Docker Hub.
                "cluster_dockerhub_mirror": False,
                # chrony cannot run without CAP_SYS_TIME, which the lab must not give
                # (it would set this machine's clock).
                "node_prep_time_sync": False,
            },
            sort_keys=False,
        )
    )


def kill_strays(work: Path) -> None:
    """Kill what our runs left behind: ssh ControlPersist masters (they detach into their
    own session, so a killed run's process group does not include them). Found by the
    lab's own paths in their command line, by pid."""
    needle = str(work).encode()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            if needle in (proc / "cmdline").read_bytes():
                os.kill(int(proc.name), signal.SIGKILL)
        except (OSError, ProcessLookupError):
            continue


def write_lab_inventory(lab: Lab, state: Path, key: Path) -> None:
    """What `ggctl reserve` writes, from a provisioning record of the lab's hosts."""
    record = {
        "floating_ip": lab.floating_ip,
        "private_key": str(key),
        "nodes": [{"node": h.name, "private_ip": h.ip} for h in lab.hosts],
    }
    write_inventory(record, state / INVENTORY_FILE)
    write_ssh_config(record, state / "ssh_config")


def _apt_conf(proxy_port: int) -> str:
    """apt on the hosts: the proxy for the mirror, direct for the lab's own repository,
    and this machine's own checks of Release dates (its mirror may be a snapshot)."""
    lines = [
        f'Acquire::http::Proxy "http://192.168.1.1:{proxy_port}";',
        'Acquire::http::Proxy::192.168.1.1 "DIRECT";',
    ]
    dump = subprocess.run(["apt-config", "dump"], capture_output=True, text=True).stdout
    for line in dump.splitlines():
        if line.startswith(("Acquire::Check-Valid-Until ", "Acquire::Check-Date ")):
            lines.append(line)
    return "\n".join(lines) + "\n"
