"""The roles' decision logic executed for real by ansible-playbook against localhost
(connection=local), with stand-in `kubeadm` and `kubectl` first on PATH: they record their
arguments and model the node state kubeadm leaves (admin.conf, the kubelet config, an API
server that answers or not, the objects of the later init phases). Nothing here runs
a real control plane: the lab tier and Chameleon do that.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import shutil
import subprocess
import sys
import tarfile
import textwrap
import threading
import uuid
from pathlib import Path

import pytest
from test_cluster_ansible import BIN, ROOT, _run

from ggctl.ports import free_port

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


# --------------------------------------------------------------------------- item 6: registry

REGISTRY_CONFIG = """\
version: 0.1
log: {{level: info}}
storage:
  filesystem: {{rootdirectory: {root}}}
http: {{addr: "127.0.0.1:{port}"}}
"""

REGISTRY_WAIT_PLAY = """\
- name: Wait for the registries as the role does after starting them
  hosts: node-0
  gather_facts: false
  tasks:
    - name: Run the role's wait step
      ansible.builtin.include_role:
        name: registry
        tasks_from: wait
      vars:
        registry_port: {private}
        registry_mirror_port: {mirror}
        registry_mirror_enabled: true
        registry_wait_seconds: 60
        registry_mirror_wait_seconds: 4
"""


@pytest.mark.skipif(not shutil.which("docker-registry"), reason="Debian's docker-registry absent")
def test_a_docker_hub_cache_that_cannot_start_never_blocks_the_private_registry(node):
    """Real registry 2.8 binaries: the private one, and the cache in proxy mode with its
    remote unreachable (a closed loopback port standing in for Docker Hub)."""
    private, mirror, dead = free_port(), free_port(), free_port()
    (node / "private.yml").write_text(
        REGISTRY_CONFIG.format(root=node / "private-data", port=private)
    )
    (node / "mirror.yml").write_text(
        REGISTRY_CONFIG.format(root=node / "mirror-data", port=mirror)
        + f"proxy:\n  remoteurl: http://127.0.0.1:{dead}\n"
    )
    procs = []
    try:
        for name in ("private", "mirror"):
            log = (node / f"{name}.log").open("w")
            procs.append(
                subprocess.Popen(
                    ["docker-registry", "serve", str(node / f"{name}.yml")],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
        # What the role works around: the cache dies at start without its remote.
        assert procs[1].wait(60) != 0
        assert "panic" in (node / "mirror.log").read_text()
        r = _play(node, REGISTRY_WAIT_PLAY.format(private=private, mirror=mirror))
        assert r.returncode == 0, r.stdout[-4000:]
        assert f"WARNING: the Docker Hub cache on node-0:{mirror}" in r.stdout
        assert "pulled from Docker Hub directly" in r.stdout
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(30)


# --------------------------------------------------------------------------- item 4: downloads

DOWNLOAD_PLAY = """\
- name: Download the BuildKit release as the role does
  hosts: node-0
  gather_facts: false
  tasks:
    - name: Run the role's download step
      ansible.builtin.include_role:
        name: image_builder
        tasks_from: download
      vars:
        image_builder_url: "http://127.0.0.1:{port}/buildkit.tar.gz"
        image_builder_install_dir: "{dest}"
        image_builder_checksum: "{checksum}"
        image_builder_download_delay: 1
"""


class _Flaky(http.server.BaseHTTPRequestHandler):
    """Serves one file; the first `failures` GETs get a 503, as a busy CDN might."""

    body = b""
    failures = 0
    requests = 0

    def do_GET(self):
        type(self).requests += 1
        if type(self).requests <= type(self).failures:
            self.send_error(503, "Service Unavailable")
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args):
        pass


def test_downloads_are_retried_and_checked_against_their_checksum(node):
    tarball = node / "buildkit.tar.gz"
    payload = node / "payload" / "bin"
    payload.mkdir(parents=True)
    (payload / "buildkitd").write_text("#!/bin/sh\n")
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(payload, arcname="bin")
    _Flaky.body = tarball.read_bytes()
    _Flaky.failures, _Flaky.requests = 2, 0
    good = hashlib.sha256(_Flaky.body).hexdigest()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), _Flaky)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.server_address[1]
        r = _play(node, DOWNLOAD_PLAY.format(port=port, dest=node / "ok", checksum=good))
        assert r.returncode == 0, r.stdout[-4000:]
        assert _Flaky.requests == 3  # two 503s, then the file
        assert list((node / "ok").glob("*/bin/buildkitd"))
        # A download that does not match its checksum is never unpacked.
        _Flaky.failures, _Flaky.requests = 0, 0
        bad = "0" * 64
        r = _play(node, DOWNLOAD_PLAY.format(port=port, dest=node / "bad", checksum=bad))
        assert r.returncode != 0
        assert "checksum" in r.stdout.lower() and good in r.stdout, r.stdout[-3000:]
        assert not list((node / "bad").glob("*/bin/buildkitd"))
    finally:
        server.shutdown()


# --------------------------------------------------------------------------- item 7: --check

CLUSTER_INVENTORY = textwrap.dedent(f"""\
    all:
      vars:
        ansible_connection: local
        ansible_python_interpreter: {sys.executable}
      children:
        k8s_cluster:
          children:
            kube_control_plane: {{hosts: {{node-0: {{node_ip: 192.168.1.10}}}}}}
            kube_node: {{hosts: {{node-0: {{}}}}}}
        registry: {{hosts: {{node-0: {{}}}}}}
    """)


def test_check_mode_on_fresh_nodes_refuses_with_what_to_do(node):
    (node / "cluster-inv.yml").write_text(CLUSTER_INVENTORY)
    present = node / "containerd"
    present.write_text("")

    def check(needs: list[str]):
        playbook = str(ROOT / "playbooks" / "cluster.yml")
        extra = json.dumps({"cluster_check_mode_needs": needs})
        cmd = [str(BIN / "ansible-playbook"), "-i", str(node / "cluster-inv.yml"), "--check"]
        return _run([*cmd, playbook, "--tags", "ggctl-nothing-else", "-e", extra], cwd=node)

    r = check([str(present), str(node / "kubeadm")])
    out = r.stdout + r.stderr
    assert r.returncode != 0, out[-3000:]
    assert "--check cannot predict a run on node-0" in out
    assert f"{node / 'kubeadm'} not installed yet" in out and "Run `ggctl cluster`" in out
    assert "Prepare every node" not in out  # refused before anything else ran
    # A prepared node passes the guard.
    r = check([str(present)])
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]


CLASS_MIRROR_PLAY = """\
- name: Render the registry side with the class's Docker Hub mirror
  hosts: node-0
  gather_facts: false
  roles:
    - role: containerd
      vars:
        containerd_root: "{out}"
        containerd_apply: false
        containerd_default_config_file: "{default}"
    - role: registry
      vars: {{registry_root: "{out}", registry_apply: false}}
    - role: image_builder
      vars: {{image_builder_root: "{out}", image_builder_apply: false}}
"""


def test_a_class_wide_docker_hub_mirror_replaces_the_cache(node, tmp_path):
    from test_cluster_ansible import CONTAINERD_20_DEFAULT

    from ggctl.cluster.run import mirror_vars
    from ggctl.config import Settings

    settings = Settings(cluster={"dockerhub_mirror": "http://10.0.0.5:5000/"})
    extra = mirror_vars(settings.cluster)
    assert extra == {"cluster_dockerhub_mirror_url": "http://10.0.0.5:5000"}
    with pytest.raises(ValueError):
        Settings(cluster={"dockerhub_mirror": "10.0.0.5:5000"})  # a URL, with its scheme
    (node / "default.toml").write_text(CONTAINERD_20_DEFAULT)
    out = node / "out"
    play = node / "mirror.yml"
    play.write_text(CLASS_MIRROR_PLAY.format(out=out, default=node / "default.toml"))
    (node / "mirror-inv.yml").write_text(INVENTORY + "        registry: {hosts: {node-0: {}}}\n")
    group_vars = ROOT / "playbooks" / "group_vars" / "all" / "ggctl.yml"
    cmd = [str(BIN / "ansible-playbook"), "-i", str(node / "mirror-inv.yml"), str(play)]
    r = _run([*cmd, "-e", f"@{group_vars}", "-e", json.dumps(extra)], cwd=node)
    assert r.returncode == 0, r.stdout[-4000:]
    hub = (out / "etc" / "containerd" / "certs.d" / "docker.io" / "hosts.toml").read_text()
    assert '[host."http://10.0.0.5:5000"]' in hub and "node-0:5001" not in hub
    # No cache of our own: no configuration, no storage, no restart drop-in for it.
    assert not (out / "etc" / "ggctl-registry" / "dockerhub.yml").exists()
    assert (out / "etc" / "ggctl-registry" / "private.yml").exists()
    assert not (out / "etc" / "systemd" / "system" / "ggctl-registry@dockerhub.service.d").exists()
    buildkit = (out / "etc" / "buildkit" / "buildkitd.toml").read_text()
    assert 'mirrors = ["10.0.0.5:5000"]' in buildkit
