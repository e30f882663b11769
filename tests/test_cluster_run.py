"""The Python side of `ggctl cluster`: the packaged playbooks are found, the command line
that ansible-runner starts (inventory, extra-vars, tags, check mode) is the intended one,
the progress display and failure summary work on REAL ansible-runner events from a real
playbook run against localhost, the kubeconfig lands 0600 pointing at the tunnel, and the
SSH tunnel opens and closes (with a stand-in ssh)."""

from __future__ import annotations

import io
import json
import os
import socket
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from rich.console import Console

from ggctl.cluster import run as cluster
from ggctl.cluster import tunnel
from ggctl.cluster.events import (
    ProgressModel,
    RichProgress,
    failure_lines,
    failure_report,
    summary_tables,
)
from ggctl.cluster.run import ClusterError
from ggctl.cluster.tunnel import SshTarget
from ggctl.ports import free_port, port_free
from ggctl.state import StateDir

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
EXAMPLE_INVENTORY = ROOT / "playbooks" / "inventory.example.yml"

needs_ansible = pytest.mark.skipif(
    not (BIN / "ansible-playbook").exists(), reason="ansible-core/ansible-runner not installed here"
)


# --------------------------------------------------------------------------- plan and command


def test_packaged_playbooks_and_roles_are_found():
    root = cluster.ansible_root()
    for name in cluster.PLAYBOOKS:
        assert cluster.playbook_path(name).is_file()
    assert (root / "roles" / "kube_control_plane" / "tasks" / "main.yml").is_file()
    with pytest.raises(ClusterError):
        cluster.playbook_path("site")


def test_missing_inventory_says_what_to_do(tmp_path):
    with pytest.raises(ClusterError) as exc:
        cluster.make_plan(StateDir(tmp_path))
    assert "ggctl reserve" in exc.value.hint and str(tmp_path / "inventory.yaml") in str(exc.value)


def test_extra_vars_parse_as_yaml():
    assert cluster.parse_extra_vars(["a=1", "b=true", "c=1.36", "d=x y", "e="]) == {
        "a": 1,
        "b": True,
        "c": 1.36,
        "d": "x y",
        "e": "",
    }
    assert cluster.parse_extra_vars(["cluster_kube_version='1.36'"]) == {
        "cluster_kube_version": "1.36"
    }
    with pytest.raises(ClusterError):
        cluster.parse_extra_vars(["novalue"])


@needs_ansible
def test_the_command_ggctl_cluster_runs(tmp_path):
    state = StateDir(tmp_path / "state")
    plan = cluster.make_plan(
        state,
        inventory=EXAMPLE_INVENTORY,
        extra_vars={"cluster_kube_version": "1.36", "registry_mirror_password": "s3cret"},
        tags=["node_prep", "containerd"],
        limit="node-1",
        check=True,
        verbosity=2,
        forks=7,
    )
    data_dir = cluster.prepare_private_data_dir(tmp_path / "run", plan)
    cmd = cluster.ansible_command(plan, data_dir)
    extravars = data_dir / "env" / "extravars"
    assert cmd == [
        "ansible-playbook",
        "--check",
        "--diff",
        "-i",
        str(EXAMPLE_INVENTORY.resolve()),
        "--limit",
        "node-1",
        "-e",
        f"@{extravars}",
        "-vv",
        "--tags",
        "node_prep,containerd",
        "--forks",
        "7",
        str(cluster.playbook_path("cluster")),
    ]
    # Extra-vars (secrets included) travel in a 0600 file, never on the command line.
    assert "s3cret" not in " ".join(cmd)
    assert stat.S_IMODE(extravars.stat().st_mode) == 0o600
    assert json.loads(extravars.read_text()) == {
        "cluster_kube_version": "1.36",
        "registry_mirror_password": "s3cret",
        "cluster_kubeconfig_fetch_dest": str(state.path("cluster", "admin.conf.fetched")),
    }
    env = cluster.runner_kwargs(plan, data_dir)["envvars"]
    # The roles shipped inside the installed package (the repo root when installed editable).
    assert env["ANSIBLE_ROLES_PATH"] == str(cluster.ansible_root() / "roles")
    assert (Path(env["ANSIBLE_ROLES_PATH"]) / "containerd" / "tasks" / "main.yml").is_file()
    assert env["PATH"].split(os.pathsep)[0] == str(BIN)
    assert env["ANSIBLE_PIPELINING"] == "True"


def test_reset_plan_has_no_kubeconfig_fetch(tmp_path):
    plan = cluster.make_plan(
        StateDir(tmp_path),
        playbook="reset",
        inventory=EXAMPLE_INVENTORY,
        extra_vars={"reset_registry": True},
    )
    assert plan.extra_vars == {"reset_registry": True} and plan.cmdline == ""


# --------------------------------------------------------------------------- real events

TINY_PLAYBOOK = """\
- name: Tiny play
  hosts: all
  gather_facts: false
  roles:
    - role: demo_role
  tasks:
    - name: Change something
      ansible.builtin.command: echo hello
      changed_when: true
    - name: Skip me
      ansible.builtin.debug:
        msg: never
      when: false
    - name: Fail on one host
      ansible.builtin.command:
        argv: [sh, -c, 'echo partial output; echo "boom: disk full" >&2; exit 3']
      changed_when: false
      when: inventory_hostname == 'bad' and (fail | default(true) | bool)
    - name: Pretend to fetch the kubeconfig
      ansible.builtin.copy:
        dest: "{{ cluster_kubeconfig_fetch_dest }}"
        mode: "0600"
        content: |
          apiVersion: v1
          kind: Config
          clusters:
            - name: kubernetes
              cluster:
                server: https://192.168.1.10:6443
                certificate-authority-data: AAAA
          users: []
          contexts: []
      when: cluster_kubeconfig_fetch_dest is defined
      run_once: true
"""


@pytest.fixture()
def tiny(tmp_path):
    """A tiny playbook with a role, against two local hosts 'good' and 'bad'."""
    role = tmp_path / "roles" / "demo_role" / "tasks"
    role.mkdir(parents=True)
    (role / "main.yml").write_text(
        textwrap.dedent("""\
        - name: Role task
          ansible.builtin.command: "true"
          changed_when: false
        """)
    )
    (tmp_path / "pb.yml").write_text(TINY_PLAYBOOK)
    py = sys.executable
    (tmp_path / "inv.yml").write_text(
        textwrap.dedent(f"""\
        all:
          hosts:
            good: {{ansible_connection: local, ansible_python_interpreter: {py}}}
            bad: {{ansible_connection: local, ansible_python_interpreter: {py}}}
        """)
    )
    return tmp_path


def _run_tiny(tiny: Path, extravars: dict) -> tuple[ProgressModel, str, str]:
    import ansible_runner

    out = io.StringIO()
    console = Console(file=out, width=140, force_terminal=False, color_system=None)
    model = ProgressModel()
    data = tiny / "pdd"
    data.mkdir(exist_ok=True)
    env = cluster.ansible_env()
    env["ANSIBLE_ROLES_PATH"] = str(tiny / "roles")
    with RichProgress(console, model, verbose=True) as progress:
        r = ansible_runner.run(
            private_data_dir=str(data),
            playbook=str(tiny / "pb.yml"),
            inventory=str(tiny / "inv.yml"),
            extravars=extravars,
            envvars=env,
            quiet=True,
            event_handler=progress,
            suppress_env_files=True,
        )
    return model, out.getvalue(), r.status


@needs_ansible
def test_progress_display_from_real_runner_events(tiny):
    model, shown, status = _run_tiny(tiny, {"fail": True})
    assert status == "failed"
    names = [t.name for t in model.tasks]
    assert names[:4] == ["Role task", "Change something", "Skip me", "Fail on one host"]
    assert model.tasks[0].role == "demo_role" and model.tasks[1].role == ""
    assert model.tasks[1].hosts == {"good": "changed", "bad": "changed"}
    assert model.tasks[2].hosts == {"good": "skipped", "bad": "skipped"}
    assert model.tasks[3].hosts == {"good": "skipped", "bad": "failed"}
    # The failure names host and task and keeps the lines that explain it.
    (failure,) = model.failures
    assert (failure.host, failure.task, failure.kind) == ("bad", "Fail on one host", "failed")
    assert failure.lines[0].startswith("$ sh -c")
    assert "rc=3" in failure.lines and "boom: disk full" in failure.lines
    assert "non-zero return code" not in failure.lines
    report = failure_report(model)
    assert report.startswith("bad: failed in [Fail on one host]") and "invocation" not in report
    # Stats from playbook_on_stats, per-role timing.
    assert model.stats["bad"]["failures"] == 1 and model.stats["good"]["changed"] >= 1
    roles = {r[0]: r for r in model.role_times()}
    assert roles["demo_role"][1] == 1 and roles["(playbook)"][1] >= 3
    assert not model.ok()
    # What the user saw: plays, changed and failed tasks with hosts.
    assert "▶ Tiny play" in shown
    assert "Change something  changed bad, good" in shown
    assert "FAILED bad" in shown
    tables = io.StringIO()
    Console(file=tables, width=140).print(*summary_tables(model))
    assert "demo_role" in tables.getvalue() and "total" in tables.getvalue()


@needs_ansible
def test_run_plan_success_installs_kubeconfig_and_log(tiny, tmp_path, monkeypatch):
    monkeypatch.setattr(cluster, "playbook_path", lambda name: tiny / "pb.yml")
    monkeypatch.setattr(
        cluster,
        "ansible_env",
        lambda: {
            "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
            "ANSIBLE_ROLES_PATH": str(tiny / "roles"),
            "ANSIBLE_NOCOLOR": "True",
        },
    )
    state = StateDir(tmp_path / "state")
    plan = cluster.make_plan(state, inventory=tiny / "inv.yml", extra_vars={"fail": False})
    out = io.StringIO()
    result = cluster.run_plan(plan, state, console=Console(file=out, width=120), tunnel_port=17443)
    assert result.status == "successful" and result.model.ok()
    kubeconfig = state.path("kubeconfig")
    assert result.kubeconfig == kubeconfig
    assert stat.S_IMODE(kubeconfig.stat().st_mode) == 0o600
    config = yaml.safe_load(kubeconfig.read_text())
    assert config["clusters"][0]["cluster"]["server"] == "https://127.0.0.1:17443"
    assert not state.path("cluster", "admin.conf.fetched").exists()
    log = result.log_path.read_text()
    assert "TASK [Change something]" in log and "PLAY RECAP" in log and "\r" not in log
    assert state.read("cluster")["inventory"] == str((tiny / "inv.yml").resolve())
    assert "time per role" in out.getvalue()


@needs_ansible
def test_run_plan_failure_names_host_and_task(tiny, tmp_path, monkeypatch):
    monkeypatch.setattr(cluster, "playbook_path", lambda name: tiny / "pb.yml")
    monkeypatch.setattr(
        cluster,
        "ansible_env",
        lambda: {
            "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
            "ANSIBLE_ROLES_PATH": str(tiny / "roles"),
        },
    )
    state = StateDir(tmp_path / "state")
    plan = cluster.make_plan(state, inventory=tiny / "inv.yml")
    with pytest.raises(ClusterError) as exc:
        cluster.run_plan(plan, state, console=Console(file=io.StringIO()), quiet=True)
    msg = str(exc.value)
    assert "bad: failed in [Fail on one host]" in msg and "boom: disk full" in msg
    assert "full log:" in exc.value.hint and not state.path("kubeconfig").exists()


def test_failure_lines_for_loops_and_unreachable():
    res = {
        "results": [
            {"item": "a", "failed": False},
            {
                "_ansible_item_label": "ip_vs",
                "failed": True,
                "rc": 1,
                "cmd": ["modprobe", "ip_vs"],
                "stderr": "modprobe: FATAL: Module ip_vs not found",
                "msg": "non-zero return code",
            },
        ],
        "msg": "One or more items failed",
    }
    assert failure_lines(res) == [
        "item: ip_vs",
        "  $ modprobe ip_vs",
        "  rc=1",
        "  modprobe: FATAL: Module ip_vs not found",
    ]
    assert failure_lines(
        {"msg": "Failed to connect to the host via ssh: refused", "unreachable": True}
    ) == ["Failed to connect to the host via ssh: refused"]
    assert len(failure_lines({"stderr": "\n".join(f"l{i}" for i in range(100))})) == 15


# --------------------------------------------------------------------------- tunnel


@needs_ansible
def test_control_plane_ssh_from_the_inventory():
    target = tunnel.control_plane_ssh(EXAMPLE_INVENTORY)
    assert (target.host, target.user, target.node_ip) == ("203.0.113.10", "cc", "192.168.1.10")
    cmd = tunnel.tunnel_command(target, 16443)
    assert cmd[:2] == ["ssh", "-N"] and cmd[-1] == "cc@203.0.113.10"
    assert cmd[cmd.index("-L") + 1] == "127.0.0.1:16443:127.0.0.1:6443"
    assert "ExitOnForwardFailure=yes" in cmd and "BatchMode=yes" in cmd


def test_tunnel_command_passes_jump_and_key():
    target = SshTarget(
        host="192.168.1.11",
        user="cc",
        port=2222,
        key="~/.ssh/k",
        common_args=["-o", "ProxyJump=cc@203.0.113.10"],
    )
    cmd = tunnel.tunnel_command(target, 5555)
    assert cmd[cmd.index("-p") + 1] == "2222"
    assert cmd[cmd.index("-i") + 1] == os.path.expanduser("~/.ssh/k")
    assert "ProxyJump=cc@203.0.113.10" in cmd


FAKE_SSH = r"""
import socket, sys
spec = sys.argv[sys.argv.index("-L") + 1]
_, port, _, _ = spec.split(":")
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", int(port))); srv.listen()
while True:
    conn, _ = srv.accept(); conn.sendall(b"tunnel"); conn.close()
"""


def test_api_tunnel_opens_and_closes(tmp_path):
    fake = tmp_path / "ssh"
    fake.write_text(f"#!{sys.executable}\n{FAKE_SSH}")
    fake.chmod(0o755)
    port = free_port()
    target = SshTarget(host="node-0", user="cc")
    with tunnel.api_tunnel(target, port, ssh=str(fake)) as got:
        assert got == port
        with socket.create_connection(("127.0.0.1", port), 2) as s:
            assert s.recv(16) == b"tunnel"
    assert port_free(port)


def test_api_tunnel_reports_ssh_failure(tmp_path):
    fake = tmp_path / "ssh"
    fake.write_text("#!/bin/sh\necho 'Permission denied (publickey).' >&2\nexit 255\n")
    fake.chmod(0o755)
    with (
        pytest.raises(ClusterError, match="Permission denied"),
        tunnel.api_tunnel(SshTarget(host="node-0"), free_port(), ssh=str(fake)),
    ):
        pass


def test_kubectl_uses_the_state_kubeconfig_and_tunnel(tmp_path):
    with pytest.raises(ClusterError, match="no kubeconfig") as exc:
        tunnel.kubeconfig_path(StateDir(tmp_path))
    assert "ggctl cluster" in exc.value.hint
    cmd = tunnel.kubectl_command(tmp_path / "kubeconfig", 16444, ["get", "nodes"])
    assert cmd == [
        "kubectl",
        "--kubeconfig",
        str(tmp_path / "kubeconfig"),
        "--server",
        "https://127.0.0.1:16444",
        "get",
        "nodes",
    ]


# --------------------------------------------------------------------------- CLI


def _ggctl(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GGCTL_")}
    env["XDG_CONFIG_HOME"] = str(tmp_path / "config")
    return subprocess.run(
        [sys.executable, "-m", "ggctl", "--state-dir", str(tmp_path / "s"), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def test_cli_cluster_and_kubectl_without_state(tmp_path):
    r = _ggctl(tmp_path, "cluster", "--help")
    assert r.returncode == 0 and "reset" in r.stdout and "--check" in r.stdout
    r = _ggctl(tmp_path, "cluster", "--check")
    assert r.returncode == 1 and "no inventory" in r.stderr and "ggctl reserve" in r.stderr
    r = _ggctl(tmp_path, "cluster", "reset", "-i", str(tmp_path / "nope.yml"))
    assert r.returncode == 1 and "nope.yml" in r.stderr
    r = _ggctl(tmp_path, "kubectl", "--", "get", "nodes")
    assert r.returncode == 1 and "no inventory" in r.stderr
