"""Three Debian 12 hosts booted with systemd-nspawn on a private network, reached only
through node-0, as on Chameleon (floating IP on node-0, the others behind it).

    machine ── 172.30.N.1/30 ═ p2p veth ═ eth0 172.30.N.2  node-0 ─┐
                                                                    │ eth1 192.168.1.10
    namespace ggl<ID>:  bridge 192.168.1.1/24 ──────────────────────┼── node-1 .11, node-2 .12
        (the apt proxy and the static file server listen here)

Each host: an overlayfs over the cached image, `systemd-nspawn -b` (systemd as PID 1,
real sshd, networkd), its own cgroup, user `cc` with the test's key and passwordless
sudo. The bridge namespace has no route out and forwards nothing: the hosts reach only
each other and the test's own two servers on 192.168.1.1.

Lab.close() undoes everything and is safe to call twice, from a finalizer, atexit or a
signal handler.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from lab.netns import in_netns

SUBNET = "192.168.1"
_LAB_NUMBERS = itertools.count()
NODES = ("node-0", "node-1", "node-2")
CGROUP_ROOTS = (Path("/sys/fs/cgroup/systemd"), Path("/sys/fs/cgroup/unified"))
# Global (not per network namespace) values that node_prep's sysctl file sets: the
# hosts write them into the machine's kernel, so the lab puts them back.
GLOBAL_SYSCTLS = ("fs.inotify.max_user_instances", "fs.inotify.max_user_watches")


def sh(*argv: str, check: bool = True, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, check=check, capture_output=True, text=True, **kw)  # type: ignore[call-overload]


@dataclass
class Host:
    name: str
    ip: str
    base: Path
    proc: subprocess.Popen[bytes] | None = None
    cgroups: list[Path] = field(default_factory=list)

    @property
    def root(self) -> Path:
        return self.base / "root"

    @property
    def index(self) -> int:
        return int(self.name.split("-")[1])


class Lab:
    def __init__(self, work: Path, image: Path, lab_id: str | None = None) -> None:
        # Unique on the machine (pid) and within the session (counter): names of the
        # namespace, links and cgroups derive from it.
        self.id = lab_id or f"{os.getpid() % 10000}{next(_LAB_NUMBERS)}"
        self.work = work
        self.image = image
        self.netns = f"ggl{self.id}"
        n = int(self.id) % 250 + 1
        self.p2p_host_ip = f"172.30.{n}.1"
        self.floating_ip = f"172.30.{n}.2"
        self.p2p_link = f"gl{self.id}p"
        self.hosts = [Host(name, f"{SUBNET}.{10 + i}", work / name) for i, name in enumerate(NODES)]
        self.sysctls = {
            k: Path("/proc/sys", k.replace(".", "/")).read_text() for k in GLOBAL_SYSCTLS
        }
        self.closed = False
        self.log = work / "lab.log"

    # ------------------------------------------------------------------ network
    def veth(self, host: Host) -> str:
        return f"gl{self.id}n{host.index}"

    def make_network(self) -> None:
        sh("ip", "netns", "add", self.netns)
        ns = ("ip", "-n", self.netns)
        sh(*ns, "link", "set", "lo", "up")
        sh(*ns, "link", "add", "br0", "type", "bridge")
        sh(*ns, "addr", "add", f"{SUBNET}.1/24", "dev", "br0")
        sh(*ns, "link", "set", "br0", "up")

    # ------------------------------------------------------------------ hosts
    def prepare_host(self, host: Host, public_key: str, apt_conf: str) -> None:
        for d in ("upper", "work", "root"):
            (host.base / d).mkdir(parents=True, exist_ok=True)
        sh(
            "mount", "-t", "overlay", "overlay", "-o",
            f"lowerdir={self.image},upperdir={host.base / 'upper'},workdir={host.base / 'work'}",
            str(host.root),
        )  # fmt: skip
        r = host.root
        (r / "etc/hostname").write_text(host.name + "\n")
        (r / "etc/hosts").write_text(f"127.0.0.1 localhost\n127.0.1.1 {host.name}\n")
        # Addresses set by a boot unit, not networkd: with a writable /sys (needed for
        # sysctl) networkd waits for a udev that containers do not run.
        cmds = [f"/sbin/ip addr add {host.ip}/24 dev eth1", "/sbin/ip link set eth1 up"]
        if host.index == 0:
            cmds += [
                f"/sbin/ip addr add {self.floating_ip}/30 dev eth0",
                "/sbin/ip link set eth0 up",
            ]
        unit = r / "etc/systemd/system/lab-net.service"
        unit.write_text(
            "[Unit]\nDescription=lab addresses\nBefore=network.target ssh.service\n"
            "DefaultDependencies=no\n\n[Service]\nType=oneshot\nRemainAfterExit=yes\n"
            + "".join(f"ExecStart={c}\n" for c in cmds)
            + "\n[Install]\nWantedBy=multi-user.target\n"
        )
        wants = r / "etc/systemd/system/multi-user.target.wants"
        wants.mkdir(parents=True, exist_ok=True)
        (wants / "lab-net.service").symlink_to("/etc/systemd/system/lab-net.service")
        ssh_dir = r / "home/cc/.ssh"
        ssh_dir.mkdir(mode=0o700, exist_ok=True)
        (ssh_dir / "authorized_keys").write_text(public_key)
        uid = int(sh("chroot", str(r), "id", "-u", "cc").stdout)
        for p in (ssh_dir, ssh_dir / "authorized_keys"):
            os.chown(p, uid, uid)
        # Own host keys per host (the image's would be shared by all three).
        for key in (r / "etc/ssh").glob("ssh_host_*"):
            key.unlink()
        sh("ssh-keygen", "-A", "-f", str(r))
        (r / "etc/apt/apt.conf.d/90lab-proxy").write_text(apt_conf)

    def boot(self, host: Host) -> None:
        cgroups = [
            root / "ggctl-lab" / f"{self.netns}-{host.name}"
            for root in CGROUP_ROOTS
            if root.is_dir()
        ]
        for cg in cgroups:
            cg.mkdir(parents=True, exist_ok=True)
        host.cgroups = cgroups
        argv = [
            "systemd-nspawn", "--boot", "--quiet", "--register=no", "--keep-unit",
            f"--directory={host.root}", f"--machine={self.netns}-{host.name}",
            f"--hostname={host.name}", f"--network-veth-extra={self.veth(host)}:eth1",
        ]  # fmt: skip
        if host.index == 0:
            argv.append(f"--network-veth-extra={self.p2p_link}:eth0")

        def into_cgroups() -> None:
            os.setsid()
            for cg in cgroups:
                (cg / "cgroup.procs").write_text(str(os.getpid()))

        log = open(host.base / "console.log", "wb")  # noqa: SIM115 (kept by the child)
        host.proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=into_cgroups,
            env={**os.environ, "SYSTEMD_NSPAWN_API_VFS_WRITABLE": "1"},
        )
        log.close()

    def attach(self, host: Host, deadline_steps: int = 200) -> None:
        """Move the host's outer veth into the bridge namespace (it appears once nspawn runs)."""
        link = self.veth(host)
        for _ in range(deadline_steps):
            if sh("ip", "link", "show", link, check=False).returncode == 0:
                break
            if host.proc and host.proc.poll() is not None:
                raise RuntimeError(f"{host.name}: systemd-nspawn exited: {self.console(host)}")
            time.sleep(0.1)
        sh("ip", "link", "set", link, "netns", self.netns)
        sh("ip", "-n", self.netns, "link", "set", link, "master", "br0", "up")
        if host.index == 0:
            sh("ip", "addr", "add", f"{self.p2p_host_ip}/30", "dev", self.p2p_link)
            sh("ip", "link", "set", self.p2p_link, "up")

    def console(self, host: Host) -> str:
        path = host.base / "console.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""

    def wait_ssh(self, host: Host, attempts: int = 300) -> None:
        """Until sshd answers on the host's lab address (from inside the bridge namespace)."""

        def probe() -> bool:
            with socket.socket() as s:
                s.settimeout(1)
                try:
                    s.connect((host.ip, 22))
                    return s.recv(4).startswith(b"SSH")
                except OSError:
                    return False

        for _ in range(attempts):
            if in_netns(self.netns, probe):
                return
            if host.proc and host.proc.poll() is not None:
                raise RuntimeError(f"{host.name} stopped while booting: {self.console(host)}")
            time.sleep(0.5)
        raise RuntimeError(f"{host.name}: no sshd after {attempts} probes: {self.console(host)}")

    def start(self, public_key: str, apt_conf: str) -> None:
        """Boot the hosts (after make_network and the servers on the bridge)."""
        for host in self.hosts:
            self.prepare_host(host, public_key, apt_conf)
            self.boot(host)
        for host in self.hosts:
            self.attach(host)
        for host in self.hosts:
            self.wait_ssh(host)

    def set_link(self, host: Host, up: bool) -> None:
        """Cut or restore a host's cluster link: to the others it is a host that is down."""
        sh("ip", "-n", self.netns, "link", "set", self.veth(host), "up" if up else "down")

    # ------------------------------------------------------------------ cleanup
    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        errors: list[str] = []
        for host in self.hosts:
            if host.proc and host.proc.poll() is None:
                # nspawn turns SIGTERM into a clean poweroff of a booted container.
                host.proc.send_signal(signal.SIGTERM)
        for host in self.hosts:
            if host.proc is None:
                continue
            try:
                host.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(host.proc.pid, signal.SIGKILL)
                host.proc.wait(timeout=30)
        for host in self.hosts:
            for cg in host.cgroups:
                _kill_cgroup(cg)
            if host.root.is_mount():
                r = sh("umount", str(host.root), check=False)
                if r.returncode:
                    sh("umount", "--lazy", str(host.root), check=False)
            shutil.rmtree(host.base, ignore_errors=True)
        sh("ip", "link", "delete", self.p2p_link, check=False)
        r = sh("ip", "netns", "delete", self.netns, check=False)
        if r.returncode and "No such file" not in r.stderr:
            errors.append(r.stderr)
        for key, value in self.sysctls.items():
            Path("/proc/sys", key.replace(".", "/")).write_text(value)
        for root in CGROUP_ROOTS:
            with contextlib.suppress(OSError):
                (root / "ggctl-lab").rmdir()
        if errors:
            raise RuntimeError("lab cleanup: " + "; ".join(errors))


def _kill_cgroup(cg: Path) -> None:
    """Kill what is left in a cgroup tree, then remove it depth-first."""
    if not cg.is_dir():
        return
    for _ in range(50):
        pids = [p for f in cg.rglob("cgroup.procs") for p in f.read_text().split()]
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGKILL)
        time.sleep(0.1)
    for d in sorted((p for p in cg.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        with contextlib.suppress(OSError):
            d.rmdir()
    with contextlib.suppress(OSError):
        cg.rmdir()
