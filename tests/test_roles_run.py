"""The roles' decision logic executed for real by ansible-playbook against localhost
(connection=local), with stand-in `kubeadm` and `kubectl` first on PATH: they record their
arguments and model the node state kubeadm leaves (admin.conf, the kubelet config, an API
server that answers or not, the objects of the later init phases). Nothing here runs
a real control plane: the lab tier and Chameleon do that.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest
from test_cluster_ansible import BIN, _run

pytestmark = pytest.mark.skipif(
    not (BIN / "ansible-playbook").exists(), reason="ansible-core is not installed here"
)

TOKEN = "abcdef.0123456789abcdef"
CA_HASH = "sha256:" + "0f" * 32

KUBEADM = r"""#!/bin/sh
# stand-in kubeadm: logs its arguments, models the node state kubeadm would leave
echo "kubeadm $*" >> "$FAKE_K8S/calls"
case "$1" in
  init)
    if [ -f "$FAKE_K8S/init-fails" ]; then
      echo "error execution phase upload-config: timed out" >&2; exit 1
    fi
    mkdir -p "$FAKE_ROOT/etc/kubernetes" "$FAKE_ROOT/var/lib/kubelet"
    echo admin > "$FAKE_ROOT/etc/kubernetes/admin.conf"
    echo kubelet > "$FAKE_ROOT/var/lib/kubelet/config.yaml"
    touch "$FAKE_K8S/api-up"
    for o in kubeadm-config cluster-info coredns kube-proxy; do touch "$FAKE_K8S/obj-$o"; done
    ;;
  reset)
    rm -rf "$FAKE_ROOT/etc/kubernetes" "$FAKE_ROOT/var/lib/kubelet"
    rm -f "$FAKE_K8S/api-up" "$FAKE_K8S"/obj-*
    ;;
  token)
    echo "kubeadm join 192.168.1.10:6443 --token __TOKEN__ --discovery-token-ca-cert-hash __HASH__"
    ;;
  join)
    echo "[preflight] Running pre-flight checks with token __TOKEN__"
    echo "error execution phase preflight: couldn't validate the identity of the API" \
      "Server: Get \"https://192.168.1.10:6443/api/v1/namespaces/kube-public/configmaps/" \
      "cluster-info?timeout=10s\": dial tcp 192.168.1.10:6443: connect: no route to host" \
      "(token __TOKEN__, __HASH__)" >&2
    exit 1
    ;;
esac
""".replace("__TOKEN__", TOKEN).replace("__HASH__", CA_HASH)

KUBECTL = r"""#!/bin/sh
# stand-in kubectl: `--kubeconfig F get --raw PATH` against the modelled API server
echo "kubectl $*" >> "$FAKE_K8S/calls"
if [ ! -f "$FAKE_K8S/api-up" ]; then
  echo "The connection to the server 192.168.1.10:6443 was refused" >&2; exit 1
fi
path=$5
[ "$path" = /readyz ] && { echo ok; exit 0; }
[ -f "$FAKE_K8S/obj-$(basename "$path")" ] && { echo '{}'; exit 0; }
echo "Error from server (NotFound): the server could not find the requested resource" >&2
exit 1
"""

INVENTORY = textwrap.dedent(f"""\
    all:
      vars:
        ansible_connection: local
        ansible_python_interpreter: {sys.executable}
      children:
        kube_control_plane: {{hosts: {{node-0: {{node_ip: 192.168.1.10}}}}}}
        kube_node:
          hosts:
            node-0:
            node-1: {{node_ip: 192.168.1.11}}
    """)


@pytest.fixture
def node(tmp_path):
    """A temp "node": its root, the stand-ins' state and PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("kubeadm", KUBEADM), ("kubectl", KUBECTL)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    (tmp_path / "k8s").mkdir()
    (tmp_path / "root").mkdir()
    (tmp_path / "inv.yml").write_text(INVENTORY)
    return tmp_path


def _calls(node: Path) -> list[str]:
    path = node / "k8s" / "calls"
    lines = path.read_text().splitlines() if path.exists() else []
    path.unlink(missing_ok=True)
    return [c for c in lines if c.startswith("kubeadm")]


def _play(node: Path, body: str, limit: str = "all"):
    play = node / "play.yml"
    play.write_text(textwrap.dedent(body))
    return _run(
        [str(BIN / "ansible-playbook"), "-i", str(node / "inv.yml"), "-l", limit, str(play)],
        cwd=node,
        timeout=240,
        PATH=f"{node / 'bin'}{os.pathsep}{BIN}{os.pathsep}{os.environ['PATH']}",
        FAKE_K8S=str(node / "k8s"),
        FAKE_ROOT=str(node / "root"),
    )


# --------------------------------------------------------------------------- item 2: init

INIT_PLAY = """\
- name: kubeadm init, resumable
  hosts: node-0
  gather_facts: false
  tasks:
    - name: Run the role's init step
      ansible.builtin.include_role:
        name: kube_control_plane
        tasks_from: init
      vars:
        kube_control_plane_root: "{root}"
        kube_control_plane_resume_probe_seconds: 5
        kube_control_plane_api_wait_seconds: 5
        kube_control_plane_download_delay: 1
"""


def _leave(node: Path, files: list[str], api_up: bool, objects: list[str]) -> None:
    """What an earlier, interrupted init left on the node."""
    for f in files:
        path = node / "root" / f.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("left by an interrupted init\n")
    if api_up:
        (node / "k8s" / "api-up").touch()
    for o in objects:
        (node / "k8s" / f"obj-{o}").touch()


ADMIN, KUBELET = "/etc/kubernetes/admin.conf", "/var/lib/kubelet/config.yaml"
ALL_OBJECTS = ["kubeadm-config", "cluster-info", "coredns", "kube-proxy"]


@pytest.mark.parametrize(
    ("files", "api_up", "objects", "expect", "why"),
    [
        ([], False, [], ["images pull", "init"], None),
        # interrupted after upload-config: no bootstrap token, no add-ons
        ([ADMIN, KUBELET], True, ["kubeadm-config"], ["images pull", "init"], "cluster-info"),
        # interrupted right after the kubeconfig phase: nothing ever ran
        ([ADMIN], False, [], ["reset", "images pull", "init"], "reset first"),
        # interrupted while the control plane came up
        ([ADMIN, KUBELET], False, [], ["images pull", "init"], "does not answer"),
        # done: nothing to do
        ([ADMIN, KUBELET], True, ALL_OBJECTS, [], None),
    ],
    ids=["fresh", "no-addons", "before-kubelet", "api-down", "complete"],
)
def test_kubeadm_init_finishes_what_an_interrupted_init_left(
    node, files, api_up, objects, expect, why
):
    _leave(node, files, api_up, objects)
    r = _play(node, INIT_PLAY.format(root=node / "root"))
    assert r.returncode == 0, r.stdout[-4000:]
    calls = _calls(node)
    steps = [c.split(" --")[0].removeprefix("kubeadm ").removeprefix("config ") for c in calls]
    assert steps == expect, calls
    init = [c for c in calls if c.startswith("kubeadm init")]
    if init:
        assert "--ignore-preflight-errors=FileAvailable--etc-kubernetes-manifests" in init[0]
        assert "DirAvailable--var-lib-etcd" in init[0] and "Swap" not in init[0]
    if why:
        assert why in r.stdout, r.stdout[-3000:]
    # Whatever was left, the node ends complete and a rerun leaves kubeadm alone.
    r = _play(node, INIT_PLAY.format(root=node / "root"))
    assert r.returncode == 0 and _calls(node) == [], r.stdout[-3000:]
    assert "changed=0" in r.stdout


def test_kubeadm_init_retries_and_then_fails_with_kubeadms_error(node):
    (node / "k8s" / "init-fails").touch()
    r = _play(node, INIT_PLAY.format(root=node / "root"))
    assert r.returncode != 0
    assert [c.split(" --")[0] for c in _calls(node)].count("kubeadm init") == 3
    assert "error execution phase upload-config: timed out" in r.stdout


# --------------------------------------------------------------------------- item 10: join

JOIN_PLAY = """\
- name: Join the workers
  hosts: node-1
  gather_facts: false
  roles:
    - role: kube_join
"""


def test_a_failed_join_says_why_without_the_token(node):
    r = _play(node, JOIN_PLAY, limit="node-1")
    out = r.stdout + r.stderr
    assert r.returncode != 0, out[-3000:]
    assert "kubeadm join failed on node-1" in out
    assert "connect: no route to host" in out  # kubeadm's own reason
    assert "0123456789abcdef" not in out and "0f0f0f0f" not in out, out
    assert "<redacted>" in out
    calls = _calls(node)
    assert calls[0].startswith("kubeadm token create") and calls[1].startswith("kubeadm join")


# --------------------------------------------------------------------------- item 9: reset

RESET_PLAY = """\
- name: Clean the network state of a node
  hosts: node-0
  gather_facts: true
  gather_subset: [min, network]
  tasks:
    - name: Run the role's network step
      ansible.builtin.include_role:
        name: kube_reset
        tasks_from: network
      vars:
        kube_reset_cni_dirs: ["{cni}"]
"""

# What kube-proxy (iptables and nftables modes) and Flannel leave behind.
LEFTOVERS = """\
set -e
ip link add flannel.1 type veth peer name ggctl-peer
ip link add cni0 type bridge
for ipt in iptables ip6tables; do
  $ipt -t nat -N KUBE-SERVICES
  $ipt -t nat -A PREROUTING -j KUBE-SERVICES
  $ipt -t nat -N KUBE-POSTROUTING
  $ipt -N KUBE-FORWARD
  $ipt -A FORWARD -j KUBE-FORWARD
  $ipt -t mangle -N KUBE-KUBELET-CANARY
done
iptables -t nat -N FLANNEL-POSTRTG
nft add table ip kube-proxy
nft add table ip6 kube-proxy
"""

NET_TOOLS = ("ip", "iptables", "ip6tables", "iptables-save", "ip6tables-save", "nft")


@pytest.mark.skipif(
    os.geteuid() != 0 or not all(shutil.which(t) for t in NET_TOOLS),
    reason="needs root and iproute2, iptables and nftables (a private network namespace)",
)
def test_reset_removes_every_rule_kube_proxy_and_flannel_leave(node):
    netns = f"ggctl-reset-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", netns], check=True, timeout=30)
    try:
        inside = ["ip", "netns", "exec", netns]
        subprocess.run([*inside, "sh", "-c", LEFTOVERS], check=True, timeout=60)
        cni = node / "cni" / "net.d"
        cni.mkdir(parents=True)
        (cni / "10-flannel.conflist").write_text("{}")
        play = node / "reset.yml"
        play.write_text(RESET_PLAY.format(cni=cni))
        cmd = [*inside, str(BIN / "ansible-playbook"), "-i", str(node / "inv.yml")]
        cmd += ["-l", "node-0", str(play)]
        r = _run(cmd, cwd=node, timeout=240)
        assert r.returncode == 0, r.stdout[-4000:]

        def dump(*argv: str) -> str:
            return subprocess.run(
                [*inside, *argv], capture_output=True, text=True, timeout=30, check=True
            ).stdout

        for save in ("iptables-save", "ip6tables-save"):
            text = dump(save)
            assert "KUBE-" not in text and "FLANNEL" not in text, text
        assert "kube-proxy" not in dump("nft", "list", "tables")
        links = dump("ip", "-o", "link")
        assert "flannel.1" not in links and "cni0" not in links
        assert not cni.exists()
        # A second reset finds nothing left to do.
        r = _run(cmd, cwd=node, timeout=240)
        assert r.returncode == 0 and "changed=0" in r.stdout, r.stdout[-3000:]
    finally:
        subprocess.run(["ip", "netns", "delete", netns], timeout=30, check=False)
