"""ssh through node-0 for real: two OpenSSH servers in a network namespace this test makes,
"node-0" (the floating IP, 127.0.0.1) and "node-1" (a private address, 127.0.0.2), each
with its own host key, hostname and a login user `cc` that accepts only a key with a
non-default name. The client side has a stale ~/.ssh/known_hosts entry for both addresses,
as after a reused floating IP. `ggctl ssh node-1 -- hostname`, Ansible (with the inventory
`ggctl reserve` writes) and the API tunnel must all work, through node-0.

Runs as root where sshd, ip and unshare exist; otherwise skipped with the reason.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from ggctl.cluster.run import ansible_env
from ggctl.inventory.ansible import INVENTORY_FILE, write_inventory
from ggctl.inventory.sshconfig import (
    KNOWN_HOSTS_FILE,
    SSH_CONFIG_FILE,
    host_key_alias,
    write_ssh_config,
)

BIN = Path(sys.executable).parent
SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
CC_UID = 4242
NODES = {"node-0": "127.0.0.1", "node-1": "127.0.0.2"}

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0
    or not os.access(SSHD, os.X_OK)
    or not shutil.which("ip")
    or not shutil.which("ssh-keygen"),
    reason="needs root, OpenSSH's sshd and ssh-keygen, and iproute2 (network namespaces)",
)


def _keygen(path: Path) -> str:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", path.name, "-f", str(path)],
        check=True,
        timeout=60,
    )
    return path.with_suffix(".pub").read_text().strip()


class SshLab:
    """Two sshd in one private network namespace; commands run inside it as the client."""

    def __init__(self) -> None:
        # Not pytest's tmp_path: that is 0700 root, and sshd reads the authorized keys as cc.
        self.dir = Path(tempfile.mkdtemp(prefix="ggctl-sshlab-"))
        self.dir.chmod(0o755)
        self.netns = f"ggctl-ssh-{uuid.uuid4().hex[:8]}"
        self.procs: list[subprocess.Popen] = []
        self.logs: dict[str, Path] = {}
        self.inside = ["ip", "netns", "exec", self.netns]

    def start(self) -> None:
        subprocess.run(["ip", "netns", "add", self.netns], check=True, timeout=30)
        subprocess.run(["ip", "-n", self.netns, "link", "set", "lo", "up"], check=True, timeout=30)
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation dir
        d = self.dir
        # The user's key has a name ssh never tries by itself.
        self.key = d / "ggctl-test-key"
        pub = _keygen(self.key)
        home = d / "home"
        home.mkdir()
        (d / "authorized_keys").write_text(pub + "\n")
        os.chown(home, CC_UID, CC_UID)
        # The login user exists only in the sshd's own mount namespace.
        (d / "passwd").write_text(
            Path("/etc/passwd").read_text() + f"cc:x:{CC_UID}:{CC_UID}:cc:{home}:/bin/sh\n"
        )
        (d / "group").write_text(Path("/etc/group").read_text() + f"cc:x:{CC_UID}:\n")
        stale = []
        for node, address in NODES.items():
            _keygen(d / f"{node}-host")
            stale.append(f"{address} {_keygen(d / f'{node}-old-host')}")
            config = d / f"{node}-sshd_config"
            config.write_text(
                textwrap.dedent(f"""\
                ListenAddress {address}:22
                HostKey {d / f"{node}-host"}
                PidFile none
                UsePAM no
                PasswordAuthentication no
                KbdInteractiveAuthentication no
                PubkeyAuthentication yes
                AuthorizedKeysFile {d / "authorized_keys"}
                StrictModes no
                AllowUsers cc
                PermitRootLogin no
                AllowTcpForwarding yes
                LogLevel DEBUG1
                """)
            )
            log = self.logs[node] = d / f"{node}.log"
            script = (
                f"mount --bind {d / 'passwd'} /etc/passwd && "
                f"mount --bind {d / 'group'} /etc/group && "
                f'hostname {node} && exec {SSHD} -D -e -f "$0"'
            )
            with log.open("w") as fh:
                self.procs.append(
                    subprocess.Popen(
                        [
                            *self.inside,
                            "unshare",
                            "--mount",
                            "--uts",
                            "sh",
                            "-c",
                            script,
                            str(config),
                        ],
                        stdout=fh,
                        stderr=subprocess.STDOUT,
                        stdin=subprocess.DEVNULL,
                    )
                )
        # What a reused floating IP leaves behind: old keys for these addresses.
        (d / "stale_known_hosts").write_text("\n".join(stale) + "\n")
        for node, log in self.logs.items():
            for _ in range(300):  # bounded: about 30 s
                if "Server listening on" in log.read_text():
                    break
                assert all(p.poll() is None for p in self.procs), log.read_text()
                time.sleep(0.1)
            else:
                raise AssertionError(f"sshd of {node} did not start:\n{log.read_text()}")

    def run(self, argv: list[str], env: dict[str, str] | None = None, timeout: int = 120):
        """argv as the client: inside the namespace, with a fresh ~/.ssh holding only the
        stale known_hosts (the user's real ~/.ssh is never read or written)."""
        ssh_dir = Path.home() / ".ssh"
        prep = (
            f"mkdir -p -m 0700 {ssh_dir} && mount -t tmpfs -o mode=0700 tmpfs {ssh_dir} && "
            f'cp {self.dir / "stale_known_hosts"} {ssh_dir}/known_hosts && exec "$@"'
        )
        return subprocess.run(
            ["ip", "netns", "exec", self.netns, "sh", "-c", prep, "sh", *argv],
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, **(env or {})},
        )

    def stop(self) -> None:
        # Everything left in the namespace was started by this test (sshd children,
        # Ansible's ControlPersist masters).
        pids = subprocess.run(
            ["ip", "netns", "pids", self.netns], capture_output=True, text=True, timeout=30
        ).stdout.split()
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), 15)
        for proc in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        subprocess.run(["ip", "netns", "delete", self.netns], timeout=30, check=False)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    lab = SshLab()
    try:
        lab.start()
        state_dir = lab.dir / "state"
        state = {
            "floating_ip": NODES["node-0"],
            "private_key": str(lab.key),
            "nodes": [
                {"node": node, "name": f"{node}-alice", "private_ip": ip, "id": f"srv-{node}"}
                for node, ip in NODES.items()
            ],
        }
        write_inventory(state, state_dir / INVENTORY_FILE)
        write_ssh_config(state, state_dir / SSH_CONFIG_FILE)
        lab.state_dir = state_dir
        lab.record = state
        yield lab
    finally:
        lab.stop()


def _jumped(lab: SshLab, target: str, port: int) -> bool:
    """node-0's sshd opened a forwarded connection to target:port for a client."""
    return f"target {target} port {port}" in lab.logs["node-0"].read_text()


def ggctl_ssh(lab: SshLab) -> list[str]:
    return [str(BIN / "ggctl"), "--state-dir", str(lab.state_dir), "ssh"]


def test_ggctl_ssh_reaches_node1_through_node0(lab):
    r = lab.run([*ggctl_ssh(lab), "node-1", "--", "hostname"])
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "node-1"
    assert _jumped(lab, NODES["node-1"], 22)
    r = lab.run([*ggctl_ssh(lab), "node-0", "--", "hostname"])
    assert (r.returncode, r.stdout.strip()) == (0, "node-0"), r.stderr


def test_ansible_reaches_every_node_with_the_reserved_inventory(lab):
    env = {
        **ansible_env(),
        "ANSIBLE_LOCAL_TEMP": str(lab.dir / "ansible-tmp"),
        "ANSIBLE_SSH_CONTROL_PATH_DIR": str(lab.dir / "ansible-cp"),
    }
    inventory = str(lab.state_dir / INVENTORY_FILE)
    r = lab.run(
        [str(BIN / "ansible"), "-i", inventory, "all", "-m", "raw", "-a", "hostname", "--one-line"],
        env=env,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    lines = {line.split(" | ")[0]: line for line in r.stdout.splitlines() if " | " in line}
    assert set(lines) == {"node-0", "node-1"}, r.stdout
    for node, line in lines.items():
        assert "| CHANGED | rc=0 |" in line and f"(stdout) {node}\\r\\n" in line, line


def test_ansible_refuses_a_node_whose_host_key_changed(lab, tmp_path):
    """The same servers, but node-0's remembered key is another one (a man in the middle, or
    a rebuilt server under the same id): Ansible must refuse, as ssh itself does."""
    state = json.loads(json.dumps(lab.record))  # the same record, in a state of its own
    write_inventory(state, tmp_path / INVENTORY_FILE)
    write_ssh_config(state, tmp_path / SSH_CONFIG_FILE)
    alias = host_key_alias(state["nodes"][0])
    other = _keygen(tmp_path / "someone-else")
    (tmp_path / KNOWN_HOSTS_FILE).write_text(f"{alias} {other}\n")
    env = {
        **ansible_env(),
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-tmp"),
        "ANSIBLE_SSH_CONTROL_PATH_DIR": str(tmp_path / "ansible-cp"),
    }
    r = lab.run(
        [
            str(BIN / "ansible"),
            "-i",
            str(tmp_path / INVENTORY_FILE),
            "node-0",
            "-m",
            "raw",
            "-a",
            "hostname",
            "--one-line",
        ],
        env=env,
    )
    assert r.returncode != 0, r.stdout
    assert "UNREACHABLE" in r.stdout, r.stdout + r.stderr
    assert "Host key verification failed" in r.stdout + r.stderr, r.stdout + r.stderr


def test_api_tunnel_goes_to_node0(lab):
    script = textwrap.dedent("""\
        import socket, sys, threading
        from pathlib import Path
        from ggctl.ports import free_port
        from ggctl.cluster.tunnel import api_tunnel, control_plane_ssh

        # node-0's "API server" on its loopback: every connection gets one line.
        srv = socket.socket()
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("127.0.0.1", 6443))
        srv.listen()

        def serve():
            while True:
                conn, _ = srv.accept()
                conn.sendall(b"api-server\\n")
                conn.close()

        threading.Thread(target=serve, daemon=True).start()
        local = free_port()
        with api_tunnel(control_plane_ssh(Path(sys.argv[1])), local, timeout=60) as port:
            assert port != 6443
            with socket.create_connection(("127.0.0.1", port), 30) as s:
                print(s.makefile().readline().strip())
        """)
    r = lab.run([sys.executable, "-c", script, str(lab.state_dir / INVENTORY_FILE)])
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip() == "api-server"
    assert _jumped(lab, "127.0.0.1", 6443)
