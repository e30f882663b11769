"""`ggctl cluster` on three real Debian 12 hosts (systemd, sshd, apt, containerd), reached
through node-0 as through Chameleon's floating IP.

The plays that need a real kubeadm/kubelet (control plane, CNI, join, add-ons) cannot run
here; every run stops at that boundary with BOUNDARY (the stand-in kubeadm is never
asked to init or join).
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time

import pytest

from ggctl.inventory.ansible import INVENTORY_FILE
from lab.conftest import LabEnv, kill_strays, load_events, open_lab

pytestmark = pytest.mark.lab

# The plays beyond the boundary (kubeadm init/join, CNI, add-ons, the Ready wait).
BOUNDARY = (
    "--skip-tags",
    "kube_control_plane,kube_cni,kube_join,metrics_server,metallb,kube_ready",
)
NODES = ("node-0", "node-1", "node-2")


@pytest.fixture(scope="module")
def first_run(lab_env: LabEnv):
    run = lab_env.cluster(*BOUNDARY)
    assert run.rc == 0, run.output[-6000:]
    return run


def test_ssh_goes_through_node0(lab_env: LabEnv) -> None:
    p = lab_env.ggctl("ssh", "node-1", "--", "hostname; echo $SSH_CONNECTION")
    assert p.returncode == 0, p.stderr
    name, connection = p.stdout.strip().splitlines()
    assert name == "node-1"
    # node-1's sshd saw the connection come from node-0's cluster address: the jump.
    assert connection.split()[0] == lab_env.lab.hosts[0].ip


# The API tunnel as `ggctl kubectl` and `ggctl deploy` open it, run where the lab's ssh
# settings are (HOME, state dir): it must reach what listens on node-0's loopback only.
TUNNEL_PROBE = """
import sys, urllib.request
from pathlib import Path
from ggctl.cluster.tunnel import api_tunnel, control_plane_ssh
from ggctl.ports import free_port
with api_tunnel(control_plane_ssh(Path(sys.argv[1])), free_port(), timeout=60) as port:
    url = f"http://127.0.0.1:{port}/ggctl-tunnel"
    print(urllib.request.urlopen(url, timeout=60).read().decode())
"""


def test_api_tunnel_reaches_node0_loopback(lab_env: LabEnv) -> None:
    # A stand-in for kube-apiserver on node-0's loopback (6443 is never opened to the
    # network); it answers one file, then the test stops it.
    serve = (
        "mkdir -p /tmp/tunnel && cd /tmp/tunnel && echo through-node-0 > ggctl-tunnel && "
        "{ setsid python3 -m http.server 6443 --bind 127.0.0.1 >/dev/null 2>&1 </dev/null & "
        "echo $! > pid; } && "
        "python3 -c 'import socket, time\n"
        "for _ in range(100):\n"
        '    try: socket.create_connection(("127.0.0.1", 6443), 1).close(); break\n'
        "    except OSError: time.sleep(0.2)\n"
        "else: raise SystemExit(1)'"
    )
    p = lab_env.ggctl("ssh", "node-0", "--", serve, timeout=120)
    assert p.returncode == 0, p.stderr
    try:
        probe = subprocess.run(
            [sys.executable, "-c", TUNNEL_PROBE, str(lab_env.state / INVENTORY_FILE)],
            env=lab_env.env,
            capture_output=True,
            text=True,
            timeout=300,  # a hang detector only
        )
        assert probe.returncode == 0, probe.stderr
        assert probe.stdout.strip() == "through-node-0"
    finally:
        lab_env.ggctl("ssh", "node-0", "--", "kill $(cat /tmp/tunnel/pid)", timeout=120)


def test_first_run_prepares_every_node(lab_env: LabEnv, first_run) -> None:
    assert not first_run.failed()
    for node in NODES:
        # The real containerd under systemd, answering on its socket with its config loaded.
        out = lab_env.sh(node, "sudo ctr version").stdout
        assert "Server:" in out and "Version:" in out, out
        dump = lab_env.sh(node, "sudo containerd config dump").stdout
        assert "SystemdCgroup = true" in dump
        assert 'config_path = "/etc/containerd/certs.d"' in dump
        # Kubernetes packages from the local signed repository: the pinned patch, held.
        query = "dpkg-query -W -f '${Package} ${Version}\\n' kubelet kubeadm kubectl"
        versions = set(lab_env.sh(node, query).stdout.split("\n")) - {""}
        assert versions == {f"{p} 1.35.9-1.1" for p in ("kubelet", "kubeadm", "kubectl")}
        held = lab_env.sh(node, "apt-mark showhold").stdout.split()
        assert {"kubelet", "kubeadm", "kubectl"} <= set(held)
        assert lab_env.sh(node, "systemctl is-enabled kubelet").stdout.strip() == "enabled"
    # The private registry (Debian's docker-registry) on node-0, by name from node-1.
    assert lab_env.sh("node-1", "curl -fsS http://node-0:5000/v2/").stdout.strip() == "{}"
    # The image builder's service, from the stand-in release tarball.
    assert lab_env.sh("node-0", "systemctl is-active buildkit").stdout.strip() == "active"
    lab_env.sh("node-0", "sudo buildctl debug workers")


def test_second_run_changes_nothing(lab_env: LabEnv, first_run) -> None:
    run = lab_env.cluster(*BOUNDARY)
    assert run.rc == 0, run.output[-6000:]
    assert run.changed() == []


def test_reset_then_cluster_again(lab_env: LabEnv, first_run) -> None:
    reset = lab_env.cluster("reset")
    assert reset.rc == 0, reset.output[-6000:]
    again = lab_env.cluster(*BOUNDARY)
    assert again.rc == 0, again.output[-6000:]
    assert again.changed() == []


# ---------------------------------------------------------------- clear failures
# Each names the host and the step. They run on the failing host only (--limit), to keep
# the tier's time down; the apt knobs are turned down (-e) so that a
# failure that waits for the lock and retries on Chameleon fails within seconds here.
FAST_APT = (
    "-e",
    "cluster_apt_lock_timeout=5",
    "-e",
    "cluster_apt_retries=1",
    "-e",
    "cluster_apt_retry_delay=1",
)


def _assert_names(run, host: str, step: str, why: str) -> None:
    assert run.rc != 0
    text = " ".join(run.output.split())
    assert f"{host}:" in text and step in text and why in text, run.output[-4000:]


def test_host_down_is_named(lab_env: LabEnv, first_run) -> None:
    node2 = lab_env.lab.hosts[2]
    lab_env.lab.set_link(node2, up=False)
    try:
        run = lab_env.cluster(*BOUNDARY, "--limit", "node-2")
    finally:
        lab_env.lab.set_link(node2, up=True)
    _assert_names(run, "node-2", "Gathering Facts", "unreachable")
    assert ("node-2", "Gathering Facts") in run.failed()


def test_wrong_key_is_named(lab_env: LabEnv, tmp_path) -> None:
    from lab.conftest import write_lab_inventory

    wrong = tmp_path / "id_wrong"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(wrong)], check=True)
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    write_lab_inventory(lab_env.lab, state, wrong)
    shutil.copytree(lab_env.state / "group_vars", state / "group_vars")
    run = lab_env.cluster(*BOUNDARY, state=state)
    _assert_names(run, "node-0", "Gathering Facts", "Permission denied")


def test_full_disk_is_named(lab_env: LabEnv, first_run) -> None:
    lab_env.sh("node-2", "sudo apt-get -qq purge -y socat")
    lab_env.sh("node-2", "sudo mount -t tmpfs -o size=64k lab-full /var/cache/apt/archives")
    try:
        run = lab_env.cluster(*BOUNDARY, *FAST_APT, "--limit", "node-2")
    finally:
        lab_env.sh("node-2", "sudo umount /var/cache/apt/archives")
    _assert_names(run, "node-2", "Install the packages every node needs", "free space")
    # Once the disk has room, the same command finishes the job.
    again = lab_env.cluster(*BOUNDARY, "--limit", "node-2")
    assert again.rc == 0, again.output[-4000:]


def test_apt_lock_is_named(lab_env: LabEnv, first_run) -> None:
    lab_env.sh("node-1", "sudo apt-get -qq purge -y socat")
    holder = subprocess.Popen(
        [sys.executable, "-m", "ggctl", "ssh", "node-1", "--", LOCK_HOLDER],
        env=lab_env.env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        pid = holder.stdout.readline().split()[-1]
        run = lab_env.cluster(*BOUNDARY, *FAST_APT, "--limit", "node-1")
    finally:
        lab_env.sh("node-1", f"sudo kill {pid}", check=False)
        holder.wait(timeout=60)
    _assert_names(run, "node-1", "Install the packages every node needs", "lock")
    again = lab_env.cluster(*BOUNDARY, "--limit", "node-1")
    assert again.rc == 0, again.output[-4000:]


# What unattended-upgrades does on a fresh VM: hold dpkg's frontend lock (fcntl, as apt).
LOCK_HOLDER = (
    "sudo python3 -c \"import fcntl, os, time; f = open('/var/lib/dpkg/lock-frontend', 'w'); "
    "fcntl.lockf(f, fcntl.LOCK_EX); print('locked', os.getpid(), flush=True); time.sleep(300)\""
)


# ---------------------------------------------------------------- resume
# The end state, as the roles leave it: packages and holds, services, the files written.
FINGERPRINT = r"""
dpkg-query -W -f '${Package} ${Version} ${db:Status-Abbrev}\n' | sort
echo holds: $(apt-mark showhold | sort)
# The stand-in kubelet's activity is left out: a real one crash-loops until kubeadm.
echo kubelet $(systemctl is-enabled kubelet 2>/dev/null)
for u in containerd docker-registry ggctl-registry@private buildkit; do
  echo $u $(systemctl is-enabled $u 2>/dev/null) $(systemctl is-active $u 2>/dev/null)
done
# A service started before its configuration was last written runs a stale one (a
# restart handler lost with a killed run).
stale() {
  unit=$1; shift
  t=$(systemctl show -P ExecMainStartTimestamp "$unit")
  s=$(date -d "$t" +%s 2>/dev/null || echo 0)
  for f in "$@"; do
    [ -e "$f" ] && [ "$(stat -c %Y "$f")" -gt "$s" ] && echo "STALE: $unit before $f"
  done
}
stale containerd /etc/containerd/config.toml
stale ggctl-registry@private /etc/ggctl-registry/private.yml \
  /etc/systemd/system/ggctl-registry@.service
stale buildkit /etc/buildkit/buildkitd.toml /etc/systemd/system/buildkit.service
# Each lab serves its repository on its own port, and lab-net.service is the lab's own unit
# (its addresses differ per lab): hash the roles' files with ports normalised, without it.
sudo find /etc/containerd /etc/ggctl-registry /etc/buildkit /etc/sysctl.d /etc/modules-load.d \
  /etc/default/kubelet /etc/apt/sources.list.d /etc/apt/keyrings /etc/crictl.yaml /etc/hosts \
  /etc/gai.conf /etc/systemd/system /usr/local/bin /usr/local/sbin /opt/buildkit \
  -type f ! -name lab-net.service 2>/dev/null | sort | while read -r f; do
  echo "$(sudo sed -E 's#:[0-9]+/#:PORT/#g' "$f" | sha256sum | cut -d' ' -f1)  $f"
done
"""


def fingerprint(env: LabEnv) -> dict[str, str]:
    return {
        node: env.sh(node, FINGERPRINT).stdout.replace(f":{env.files_port}/", ":PORT/")
        for node in NODES
    }


def _run_killed_at(env: LabEnv, task_number: int) -> int:
    """Start `ggctl cluster`, SIGKILL its whole process group when task N starts."""
    before = set(env.run_dirs())
    proc = subprocess.Popen(
        [sys.executable, "-m", "ggctl", "cluster", *BOUNDARY],
        env=env.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    started = 0
    try:
        for _ in range(36000):  # 0.05 s steps: a hang detector of 30 min
            if proc.poll() is not None:
                break
            new = sorted(set(env.run_dirs()) - before)
            if new:
                started = sum(
                    1 for e in load_events(new[-1]) if e.get("event") == "playbook_on_task_start"
                )
                if started >= task_number:
                    os.killpg(proc.pid, signal.SIGKILL)
                    break
            time.sleep(0.05)
    finally:
        if proc.poll() is None:  # the loop ended by an error or the hang detector: stop it too
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
        kill_strays(env.work)
    return started


# One seed by default keeps the tier inside CI's time; each seed is one lab killed twice,
# at two random tasks, before the run that must finish. GGCTL_LAB_SEEDS=1,2,3 tries more.
SEEDS = [int(s) for s in os.environ.get("GGCTL_LAB_SEEDS", "1").split(",") if s]


@pytest.mark.parametrize("seed", SEEDS)
def test_killed_run_resumes_to_the_same_end_state(
    lab_assets, lab_env: LabEnv, first_run, seed: int
) -> None:
    reference = fingerprint(lab_env)
    tasks = sum(1 for e in first_run.events if e.get("event") == "playbook_on_task_start")
    rng = random.Random(seed)
    kills = [rng.randint(2, tasks) for _ in range(2)]
    with open_lab(lab_assets, f"resume-{seed}") as env:
        for kill_at in kills:  # a run killed, its rerun killed too: resume from resume
            started = _run_killed_at(env, kill_at)
            assert started >= kill_at, f"the run ended before task {kill_at} ({started} started)"
        run = env.cluster(*BOUNDARY)
        assert run.rc == 0, f"killed at tasks {kills} (seed {seed}):\n{run.output[-6000:]}"
        assert fingerprint(env) == reference
