"""The Ansible side of `ggctl cluster`, checked without VMs: ansible-lint (production
profile, offline), syntax checks, argument specs, every role's defaults documented, and
the roles that can run against localhost rendering their files into a temp dir, twice
(the second run must change nothing)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
ROLES = sorted(p.name for p in (ROOT / "roles").iterdir() if (p / "tasks").is_dir())
PLAYBOOKS = ["cluster", "reset", "registry"]
EXAMPLE_INVENTORY = ROOT / "playbooks" / "inventory.example.yml"

pytestmark = pytest.mark.skipif(
    not (BIN / "ansible-playbook").exists(),
    reason="ansible-core is not installed next to this Python",
)


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_ROLES_PATH=str(ROOT / "roles"),
        ANSIBLE_RETRY_FILES_ENABLED="0",
        ANSIBLE_LOCAL_TEMP=str(Path(os.environ.get("TMPDIR", "/tmp")) / "ggctl-ansible"),
    )
    env.update(extra)
    return env


def _run(cmd: list[str], cwd: Path = ROOT, timeout: int = 900, **env: str):
    return subprocess.run(
        cmd, cwd=cwd, env=_env(**env), capture_output=True, text=True, timeout=timeout
    )


# --------------------------------------------------------------------------- static


@pytest.mark.skipif(not (BIN / "ansible-lint").exists(), reason="ansible-lint not installed")
def test_ansible_lint_production_profile_is_clean_offline():
    cmd = [
        str(BIN / "ansible-lint"),
        "--offline",
        "--profile",
        "production",
        "--nocolor",
        "playbooks",
        "roles",
    ]
    # Prove it needs no network: run it in a namespace without one where we may.
    if shutil.which("unshare") and os.geteuid() == 0:
        cmd = ["unshare", "-n", *cmd]
    r = _run(cmd)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    assert "Profile 'production' was required, and it passed" in r.stdout + r.stderr


@pytest.mark.parametrize("playbook", PLAYBOOKS)
def test_syntax_check(playbook):
    r = _run(
        [
            str(BIN / "ansible-playbook"),
            "-i",
            str(EXAMPLE_INVENTORY),
            "--syntax-check",
            str(ROOT / "playbooks" / f"{playbook}.yml"),
        ]
    )
    assert r.returncode == 0, r.stdout + r.stderr


def test_example_inventory_has_the_contract_shape():
    r = _run([str(BIN / "ansible-inventory"), "-i", str(EXAMPLE_INVENTORY), "--list"])
    assert r.returncode == 0, r.stderr
    data = yaml.safe_load(r.stdout)
    assert data["kube_control_plane"]["hosts"] == ["node-0"]
    assert data["kube_node"]["hosts"] == ["node-0", "node-1", "node-2"]
    assert data["registry"]["hosts"] == ["node-0"] and data["etcd"]["hosts"] == ["node-0"]
    assert set(data["k8s_cluster"]["children"]) == {"kube_control_plane", "kube_node"}
    hv = data["_meta"]["hostvars"]
    assert {h: v["node_ip"] for h, v in hv.items()} == {
        "node-0": "192.168.1.10",
        "node-1": "192.168.1.11",
        "node-2": "192.168.1.12",
    }
    assert all(v["ansible_user"] == "cc" for v in hv.values())


@pytest.mark.parametrize("role", ROLES)
def test_role_layout_and_every_default_documented(role):
    base = ROOT / "roles" / role
    for part in ("defaults/main.yml", "meta/main.yml", "meta/argument_specs.yml", "tasks/main.yml"):
        assert (base / part).is_file(), part
    defaults = yaml.safe_load((base / "defaults" / "main.yml").read_text()) or {}
    spec = yaml.safe_load((base / "meta" / "argument_specs.yml").read_text())
    options = spec["argument_specs"]["main"]["options"]
    assert set(defaults) == set(options), set(defaults) ^ set(options)
    assert all(name.startswith(role + "_") for name in defaults)
    assert all(opt.get("description") for opt in options.values())
    # Every variable is explained by a comment in defaults/main.yml or the role's header.
    meta = yaml.safe_load((base / "meta" / "main.yml").read_text())
    assert meta["galaxy_info"]["role_name"] == role and meta["dependencies"] == []
    main = yaml.safe_load((base / "tasks" / "main.yml").read_text())
    assert all(t.get("name") for t in main) and len(main) <= 8


def test_versions_are_variables_not_literals_in_tasks():
    for task_file in (ROOT / "roles").glob("*/tasks/*.yml"):
        text = task_file.read_text()
        assert not re.search(r"(?<![\d.])v?\d+\.\d+\.\d+(?![\d.])", text), task_file
        assert "https://" not in text, task_file  # download URLs live in defaults


# --------------------------------------------------------------------------- argument specs


def _write_play(tmp: Path, body: str) -> Path:
    play = tmp / "play.yml"
    play.write_text(textwrap.dedent(body))
    return play


LOCAL_INVENTORY = textwrap.dedent(f"""\
    all:
      children:
        k8s_cluster:
          children:
            kube_control_plane:
            kube_node:
        kube_control_plane:
          hosts:
            node-0:
        kube_node:
          hosts:
            node-0:
            node-1:
            node-2:
        registry:
          hosts:
            node-0:
      hosts:
        node-0:
          ansible_connection: local
          ansible_python_interpreter: {sys.executable}
          ansible_host: 203.0.113.10
          node_ip: 192.168.1.10
        node-1:
          node_ip: 192.168.1.11
        node-2:
          node_ip: 192.168.1.12
""")


@pytest.mark.parametrize(
    ("role", "var", "value", "expect"),
    [
        ("node_prep", "node_prep_network_mtu", "'big'", "node_prep_network_mtu"),
        ("kube_cni", "kube_cni_plugin", "calico", "kube_cni_plugin"),
        (
            "kube_control_plane",
            "kube_control_plane_kube_proxy_mode",
            "userspace",
            "kube_control_plane_kube_proxy_mode",
        ),
    ],
)
def test_argument_specs_reject_bad_values(tmp_path, role, var, value, expect):
    (tmp_path / "inv.yml").write_text(LOCAL_INVENTORY)
    play = _write_play(
        tmp_path,
        f"""\
        - name: Wrong value
          hosts: node-0
          gather_facts: false
          roles:
            - role: {role}
              vars:
                {var}: {value}
        """,
    )
    r = _run(
        [str(BIN / "ansible-playbook"), "-i", str(tmp_path / "inv.yml"), str(play)], cwd=tmp_path
    )
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    assert "Validating arguments against arg spec" in out and expect in out, out[-3000:]


# --------------------------------------------------------------------------- rendering

CONTAINERD_17_DEFAULT = """\
disabled_plugins = []
version = 2

[plugins]
  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = "registry.k8s.io/pause:3.8"
    [plugins."io.containerd.grpc.v1.cri".containerd]
      default_runtime_name = "runc"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"
        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
          BinaryName = ""
          SystemdCgroup = false
    [plugins."io.containerd.grpc.v1.cri".registry]
      config_path = ""
"""

CONTAINERD_20_DEFAULT = """\
version = 3
root = '/var/lib/containerd'

[plugins]
  [plugins.'io.containerd.cri.v1.images']
    snapshotter = 'overlayfs'
    [plugins.'io.containerd.cri.v1.images'.pinned_images]
      sandbox = 'registry.k8s.io/pause:3.10'
    [plugins.'io.containerd.cri.v1.images'.registry]
      config_path = '/etc/containerd/certs.d:/etc/docker/certs.d'
  [plugins.'io.containerd.cri.v1.runtime']
    [plugins.'io.containerd.cri.v1.runtime'.containerd]
      default_runtime_name = 'runc'
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
        runtime_type = 'io.containerd.runc.v2'
        [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
          SystemdCgroup = false
"""

RENDER_PLAY = """\
- name: Render the node files into a temp root
  hosts: node-0
  gather_facts: true
  gather_subset: [min, network]
  roles:
    - role: node_prep
      vars: {node_prep_root: "{{ out }}", node_prep_apply: false}
    - role: containerd
      vars:
        containerd_root: "{{ out }}"
        containerd_apply: false
        containerd_default_config_file: "{{ default_config }}"
    - role: kube_control_plane
      vars: {kube_control_plane_root: "{{ out }}", kube_control_plane_apply: false}
    - role: registry
      vars: {registry_root: "{{ out }}", registry_apply: false}
    - role: image_builder
      vars: {image_builder_root: "{{ out }}", image_builder_apply: false}
"""


CONTAINERD_ONLY_PLAY = RENDER_PLAY.split("    - role: kube_control_plane")[0].replace(
    """    - role: node_prep
      vars: {node_prep_root: "{{ out }}", node_prep_apply: false}
""",
    "",
)


def _render(
    tmp: Path, default_config: str, play_text: str = RENDER_PLAY, runs: int = 2
) -> tuple[Path, list[str]]:
    (tmp / "inv.yml").write_text(LOCAL_INVENTORY)
    (tmp / "default.toml").write_text(default_config)
    play = _write_play(tmp, play_text)
    out = tmp / "root"
    recaps = []
    for _ in range(runs):
        r = _run(
            [
                str(BIN / "ansible-playbook"),
                "-i",
                str(tmp / "inv.yml"),
                str(play),
                "-e",
                f"out={out}",
                "-e",
                f"default_config={tmp / 'default.toml'}",
                # the playbooks' cluster-wide variables, as ggctl runs them
                "-e",
                f"@{ROOT / 'playbooks' / 'group_vars' / 'all' / 'ggctl.yml'}",
            ],
            cwd=tmp,
        )
        assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
        recaps.append(re.search(r"node-0\s+: (.*)", r.stdout).group(1))
    return out / "etc", recaps


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    return _render(tmp_path_factory.mktemp("render17"), CONTAINERD_17_DEFAULT)


def test_second_render_changes_nothing(rendered):
    _, (first, second) = rendered
    assert "changed=0" not in first
    assert "changed=0" in second and "failed=0" in second, second


def test_hosts_sysctl_modules(rendered):
    etc, _ = rendered
    hosts = (etc / "hosts").read_text()
    for line in ("192.168.1.10 node-0", "192.168.1.11 node-1", "192.168.1.12 node-2"):
        assert line in hosts
    sysctl = (etc / "sysctl.d" / "99-ggctl-kubernetes.conf").read_text()
    assert "net.ipv4.ip_forward = 1" in sysctl
    assert "net.bridge.bridge-nf-call-iptables = 1" in sysctl
    modules = (etc / "modules-load.d" / "ggctl-k8s.conf").read_text().split()
    assert "overlay" in modules and "br_netfilter" in modules and "ip_vs" not in modules
    assert "precedence ::ffff:0:0/96  100" in (etc / "gai.conf").read_text()
    mtu = (etc / ".." / "usr" / "local" / "sbin" / "ggctl-mtu").read_text()
    assert "max=1450" in mtu and "192.168.1.10/32" in mtu
    subprocess.run(
        ["sh", "-n", str(etc / ".." / "usr" / "local" / "sbin" / "ggctl-mtu")], check=True
    )


def _cri(config: dict, v2_key: str, v3_key: str) -> dict:
    plugins = config["plugins"]
    return plugins.get(v2_key) or plugins[v3_key]


def test_containerd_17_config_patched(rendered):
    etc, _ = rendered
    config = tomllib.loads((etc / "containerd" / "config.toml").read_text())
    cri = config["plugins"]["io.containerd.grpc.v1.cri"]
    assert cri["containerd"]["runtimes"]["runc"]["options"]["SystemdCgroup"] is True
    assert cri["sandbox_image"] == "registry.k8s.io/pause:3.10.1"
    assert cri["registry"]["config_path"] == "/etc/containerd/certs.d"


def test_containerd_20_config_patched(tmp_path):
    etc, _ = _render(tmp_path, CONTAINERD_20_DEFAULT, CONTAINERD_ONLY_PLAY, runs=1)
    config = tomllib.loads((etc / "containerd" / "config.toml").read_text())
    images = config["plugins"]["io.containerd.cri.v1.images"]
    runtime = config["plugins"]["io.containerd.cri.v1.runtime"]
    assert runtime["containerd"]["runtimes"]["runc"]["options"]["SystemdCgroup"] is True
    assert images["pinned_images"]["sandbox"] == "registry.k8s.io/pause:3.10.1"
    assert images["registry"]["config_path"] == "/etc/containerd/certs.d"


def test_registry_trust_and_dockerhub_mirror(rendered):
    etc, _ = rendered
    private = tomllib.loads(
        (etc / "containerd" / "certs.d" / "node-0:5000" / "hosts.toml").read_text()
    )
    assert private["server"] == "http://node-0:5000"
    assert private["host"]["http://node-0:5000"]["capabilities"] == ["pull", "resolve", "push"]
    hub = tomllib.loads((etc / "containerd" / "certs.d" / "docker.io" / "hosts.toml").read_text())
    assert hub["server"] == "https://registry-1.docker.io"
    assert hub["host"]["http://node-0:5001"]["capabilities"] == ["pull", "resolve"]


def test_kubeadm_config(rendered):
    etc, _ = rendered
    docs = {
        d["kind"]: d
        for d in yaml.safe_load_all((etc / "kubernetes" / "ggctl-kubeadm.yaml").read_text())
    }
    init = docs["InitConfiguration"]
    assert init["apiVersion"] == "kubeadm.k8s.io/v1beta4"
    assert init["localAPIEndpoint"]["advertiseAddress"] == "192.168.1.10"
    assert init["nodeRegistration"]["name"] == "node-0"
    assert init["nodeRegistration"]["taints"] == []  # node-0 is also a worker
    assert {"name": "node-ip", "value": "192.168.1.10"} in init["nodeRegistration"][
        "kubeletExtraArgs"
    ]
    cluster = docs["ClusterConfiguration"]
    assert cluster["networking"]["podSubnet"] == "10.244.0.0/16"
    sans = cluster["apiServer"]["certSANs"]
    assert "127.0.0.1" in sans and "203.0.113.10" in sans and "node-0" in sans
    assert docs["KubeletConfiguration"]["resolvConf"] == "/run/systemd/resolve/resolv.conf"
    assert docs["KubeletConfiguration"]["cgroupDriver"] == "systemd"
    assert docs["KubeProxyConfiguration"]["mode"] == "iptables"


def test_registry_and_builder_services(rendered):
    etc, _ = rendered
    private = yaml.safe_load((etc / "ggctl-registry" / "private.yml").read_text())
    assert private["http"]["addr"] == ":5000" and "proxy" not in private
    hub = yaml.safe_load((etc / "ggctl-registry" / "dockerhub.yml").read_text())
    assert hub["http"]["addr"] == ":5001"
    assert hub["proxy"]["remoteurl"] == "https://registry-1.docker.io"
    unit = (etc / "systemd" / "system" / "ggctl-registry@.service").read_text()
    assert "ExecStart=/usr/bin/docker-registry serve /etc/ggctl-registry/%i.yml" in unit
    buildkit = tomllib.loads((etc / "buildkit" / "buildkitd.toml").read_text())
    assert buildkit["worker"]["containerd"]["enabled"] is True
    assert buildkit["registry"]["node-0:5000"]["http"] is True
    assert buildkit["registry"]["docker.io"]["mirrors"] == ["node-0:5001"]
