"""`ggctl up` / `ggctl down` end to end: the fake OpenStack (reserve, teardown), the fake
Kubernetes API (deploy), stand-in ssh/buildctl/curl (build). The cluster step runs Ansible on
real VMs, so here its marker and kubeconfig are seeded, pointing at the fake cluster: `up`
then skips it exactly as it does after a real `ggctl cluster`."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import sys
from pathlib import Path

import pytest
from build_helpers import install_fake_node
from cloud_helpers import FAST, FULL, clean_os_env, held, make_key, mutations
from conftest import make_linear_model

from ggctl.cli import main
from ggctl.config import load_settings
from ggctl.image.context import APP_DIR, build_context
from ggctl.ports import free_port, port_free
from ggctl.state import StateDir
from ggctl.up import api_access, build_done, cluster_done, deploy_done, kubeconfig_server

FOLLOWERS = ("cluster.json", "kubeconfig", "build.json", "deploy.json", "up.json")


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    out = capsys.readouterr()
    return exit_.value.code, out.out, out.err


def steps(out: str) -> dict[str, str]:
    """step → result, from the table `up` prints."""
    found = {}
    for line in out.splitlines():
        m = re.search(
            r"\b(reserve|cluster|build|deploy)\s*[│|]\s*(ran|skipped|failed|pending)", line
        )
        if m:
            found[m[1]] = m[2]
    return found


def seed_cluster(state: Path, kubeconfig: Path) -> None:
    """What a successful `ggctl cluster` leaves: the marker and the kubeconfig."""
    state.mkdir(parents=True, exist_ok=True)
    shutil.copy(kubeconfig, state / "kubeconfig")
    StateDir(state).write(
        "cluster", {"finished": "20250101T000000Z", "kubeconfig": str(state / "kubeconfig")}
    )


@pytest.fixture
def env(fake_cloud, fake_k8s, monkeypatch, tmp_path):
    clean_os_env(monkeypatch, tmp_path)
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(fake_cloud.clouds_yaml(tmp_path / "c.yaml")))
    for key, value in FAST.items():
        monkeypatch.setenv(f"GGCTL_CLOUD__{key.upper()}", str(value))
    monkeypatch.setenv("GGCTL_DEPLOY__TIMEOUT", "60")
    monkeypatch.setenv("COLUMNS", "200")
    node = install_fake_node(tmp_path / "node", monkeypatch)
    state = tmp_path / "state"
    seed_cluster(state, fake_k8s.kubeconfig_path)
    model = make_linear_model(tmp_path / "food11.onnx", size=32)
    argv = [
        "--state-dir",
        str(state),
        "up",
        "--os-cloud",
        "fake",
        "--key",
        str(make_key(tmp_path)),
        "--strategy",
        "hpa",
        "--model",
        str(model),
    ]
    return argv, state, node, model


def test_up_from_nothing_resumes_after_a_failure_then_skips_everything_and_down_cleans(
    fake_cloud, fake_k8s, env, capsys, monkeypatch
):
    argv, state, node, model = env
    tag = build_context(model).tag
    image = f"node-0:5000/ml-app:{tag}"
    fake_k8s.controllers.lb_pool = ["192.168.1.240"]  # MetalLB, as roles/metallb installs

    # 1. The build fails: reserve is done, deploy never started.
    monkeypatch.setenv("FAKE_BUILDCTL_FAIL", "1")
    code, out, err = run(argv, capsys)
    assert code == 1
    assert "did not complete successfully" in err and "Traceback" not in err
    assert "reserve ran" in err and "cluster skipped" in err and "build failed" in err
    assert "deploy" not in re.sub(r"ggctl deploy", "", err.split("build failed")[1])
    assert held(fake_cloud) == FULL
    assert not (state / "build.json").exists() and not (state / "deploy.json").exists()

    # 2. Rerun: it resumes at build.
    monkeypatch.delenv("FAKE_BUILDCTL_FAIL")
    code, out, err = run(argv, capsys)
    assert code == 0, err
    assert steps(out) == {
        "reserve": "skipped",
        "cluster": "skipped",
        "build": "ran",
        "deploy": "ran",
    }
    provision = json.loads((state / "provision.json").read_text())
    assert f"http://{provision['floating_ip']}:32000/" in out
    assert "load balancer: http://192.168.1.240:6000/" in out
    assert json.loads((state / "build.json").read_text())["image"] == image
    assert node.pushed(tag).is_dir() and len(node.builds()) == 2
    deployed = json.loads((state / "deploy.json").read_text())
    assert (deployed["strategy"], deployed["image"]) == ("hpa", image)
    [deployment] = fake_k8s.list("Deployment", "default")
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == image
    assert {h["metadata"]["name"] for h in fake_k8s.list("HorizontalPodAutoscaler", "default")}

    # 3. Again: every step skipped, nothing asked of the cloud's write API, nothing built.
    before, asked = len(mutations(fake_cloud)), len(node.curls())
    code, out, err = run(argv, capsys)
    assert code == 0, err
    assert steps(out) == dict.fromkeys(("reserve", "cluster", "build", "deploy"), "skipped")
    assert len(mutations(fake_cloud)) == before and len(node.builds()) == 2
    assert len(node.curls()) == asked  # build.json was enough: the registry was not asked
    record = json.loads((state / "up.json").read_text())
    assert record["url"].endswith(":32000/") and record["strategy"] == "hpa"
    assert record["lb_url"] == "http://192.168.1.240:6000/"
    assert "load balancer: http://192.168.1.240:6000/" in out

    # 4. Another strategy: only deploy runs.
    code, out, err = run([*argv[:-4], "--strategy", "k8s", *argv[-2:]], capsys)
    assert code == 0, err
    assert steps(out) == {
        "reserve": "skipped",
        "cluster": "skipped",
        "build": "skipped",
        "deploy": "ran",
    }
    assert fake_k8s.list("HorizontalPodAutoscaler", "default") == []

    # 5. down: nothing left in the cloud, and no record that would make the next up skip.
    code, out, err = run(["--state-dir", str(state), "down", "--os-cloud", "fake", "--yes"], capsys)
    assert code == 0, err
    assert held(fake_cloud) == {}
    for name in (*FOLLOWERS, "provision.json", "ssh_config"):
        assert not (state / name).exists(), name


def test_down_dry_run_changes_nothing(fake_cloud, env, capsys):
    argv, state, _node, _model = env
    code, _out, err = run(
        [
            "--state-dir",
            str(state),
            "reserve",
            "--os-cloud",
            "fake",
            "--key",
            argv[argv.index("--key") + 1],
        ],
        capsys,
    )
    assert code == 0, err
    code, _out, err = run(
        ["--state-dir", str(state), "down", "--os-cloud", "fake", "--dry-run"], capsys
    )
    assert code == 0, err
    assert held(fake_cloud) == FULL and (state / "cluster.json").exists()


def test_up_refuses_a_bad_model_before_reserving(fake_cloud, env, capsys, tmp_path):
    argv, _state, _node, _model = env
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"nope")
    code, _out, err = run([*argv[:-1], str(bad)], capsys)
    assert code == 1 and "not a loadable ONNX model" in err
    assert held(fake_cloud) == {}


# --------------------------------------------------------------------------- done checks


def test_cluster_is_done_only_with_marker_kubeconfig_and_the_same_nodes(tmp_path):
    state = StateDir(tmp_path)
    assert cluster_done(state, ["a", "b"]) == (False, "no kubeconfig yet")
    (tmp_path / "kubeconfig").write_text("apiVersion: v1\n")
    assert not cluster_done(state, ["a", "b"])[0]
    state.write("cluster", {"finished": "20250101T000000Z"})
    assert cluster_done(state, ["a", "b"])[0]  # made by `ggctl cluster`: trusted
    state.write("up", {"cluster_servers": ["a", "b"]})
    assert cluster_done(state, ["a", "b"])[0]
    done, why = cluster_done(state, ["a", "c"])
    assert not done and "replaced" in why


def test_build_and_deploy_done_checks(tmp_path):
    state = StateDir(tmp_path)
    assert not build_done(state, "abc")[0]
    state.write("build", {"image": "node-0:5000/ml-app:abc", "tag": "abc", "context_tag": "abc"})
    assert build_done(state, "abc")[0] and not build_done(state, "def")[0]
    # an explicit --tag build still records the context it was made from
    state.write("build", {"image": "node-0:5000/ml-app:v1", "tag": "v1", "context_tag": "abc"})
    assert build_done(state, "abc")[0]
    assert not deploy_done(state, "hpa", "i:1", "default")[0]
    state.write("deploy", {"strategy": "hpa", "image": "i:1", "namespace": "default"})
    assert deploy_done(state, "hpa", "i:1", "default")[0]
    assert not deploy_done(state, "lb", "i:1", "default")[0]
    assert not deploy_done(state, "hpa", "i:2", "default")[0]
    assert not deploy_done(state, "hpa", "i:1", "other")[0]


def test_kubeconfig_server_follows_the_current_context(tmp_path):
    path = tmp_path / "kc"
    path.write_text(
        "apiVersion: v1\nclusters:\n"
        "- {name: a, cluster: {server: 'https://10.0.0.1:6443'}}\n"
        "- {name: b, cluster: {server: 'https://127.0.0.1:16443'}}\n"
        "contexts:\n- {name: x, context: {cluster: b, user: u}}\ncurrent-context: x\n"
    )
    assert kubeconfig_server(path) == "https://127.0.0.1:16443"
    assert kubeconfig_server(tmp_path / "missing") is None


TUNNEL_SSH = r"""
import os, socket, sys
spec = sys.argv[sys.argv.index("-L") + 1]
with open(os.environ["FAKE_TUNNEL_LOG"], "a") as log:
    log.write(" ".join(sys.argv[1:]) + "\n")
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", int(spec.split(":")[1]))); srv.listen()
while True:
    conn, _ = srv.accept(); conn.sendall(b"api"); conn.close()
"""


@pytest.mark.skipif(
    shutil.which("ansible-inventory", path=str(Path(sys.executable).parent)) is None,
    reason="ansible-core not installed here",
)
def test_deploy_goes_through_a_tunnel_only_for_our_kubeconfig(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "ssh").write_text(f"#!{sys.executable}\n{TUNNEL_SSH}")
    (bin_dir / "ssh").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_TUNNEL_LOG", str(tmp_path / "tunnel.log"))
    port = free_port()
    settings = load_settings(None, {"state_dir": tmp_path, "cluster": {"tunnel_port": port}})
    inventory = APP_DIR.parent / "playbooks" / "inventory.example.yml"
    kubeconfig = tmp_path / "kubeconfig"

    kubeconfig.write_text(
        f"clusters:\n- name: c\n  cluster: {{server: 'https://10.1.1.1:{port}'}}\n"
    )
    with api_access(settings, StateDir(tmp_path), inventory):
        assert port_free(port)  # not ours: no tunnel
    assert not (tmp_path / "tunnel.log").exists()

    kubeconfig.write_text(
        f"clusters:\n- name: c\n  cluster: {{server: 'https://127.0.0.1:{port}'}}\n"
    )
    with (
        api_access(settings, StateDir(tmp_path), inventory),
        socket.create_connection(("127.0.0.1", port), 2) as conn,
    ):
        assert conn.recv(8) == b"api"
    assert port_free(port)  # closed with the block
    assert f"127.0.0.1:{port}:127.0.0.1:6443" in (tmp_path / "tunnel.log").read_text()
