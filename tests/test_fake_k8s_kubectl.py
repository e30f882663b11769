"""Conformance tier: the machine's real `kubectl` against the fake Kubernetes API, as a user
would run it (kubeconfig written by the fake: TLS with its CA, bearer token). Each check is
something kubectl could not do against the fake before issue 15 (401 over plain HTTP, no
OpenAPI, no Tables, no watch, dry runs that wrote)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.conformance

KUBECTL = shutil.which("kubectl")
if KUBECTL is None:
    if os.environ.get("CI"):
        raise RuntimeError("kubectl is on every CI machine; it is missing here")
    pytest.skip("kubectl is not installed (it is on CI machines)", allow_module_level=True)

DEPLOYMENT = textwrap.dedent(
    """\
    apiVersion: apps/v1
    kind: Deployment
    metadata: {name: web, namespace: default}
    spec:
      replicas: REPLICAS
      selector: {matchLabels: {app: web}}
      template:
        metadata: {labels: {app: web}}
        spec:
          containers:
          - name: web
            image: registry.local/web:1
            ports: [{containerPort: 80}]
            resources: {requests: {cpu: 100m, memory: 64Mi}, limits: {cpu: 200m}}
    """
)


@pytest.fixture
def kubectl(fake_k8s, tmp_path):
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path / "home"),
        "KUBECONFIG": str(fake_k8s.kubeconfig_path),
    }

    def run(*args: str, check: bool = True, stdin: str | None = None, timeout: float = 120):
        proc = subprocess.run(
            [KUBECTL, "--cache-dir", str(tmp_path / "cache"), "--request-timeout=60s", *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)}: {proc.returncode}\n{proc.stderr}")
        return proc

    return run


def manifest(tmp_path, replicas: int) -> str:
    path = tmp_path / f"web-{replicas}.yaml"
    path.write_text(DEPLOYMENT.replace("REPLICAS", str(replicas)))
    return str(path)


def test_get_works_out_of_the_box_over_tls(kubectl, fake_k8s):
    assert fake_k8s.url.startswith("https://")
    out = kubectl("get", "nodes", "-o", "wide").stdout
    header = out.splitlines()[0].split()
    assert header[:5] == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    assert "INTERNAL-IP" in header and "CONTAINER-RUNTIME" in header
    assert "node-0" in out and "v1.35" in out
    assert "Server Version: v1.35" in kubectl("version").stdout


def test_apply_server_side_rollout_wait_get_wide_and_all(kubectl, tmp_path):
    out = kubectl("apply", "--server-side", "-f", manifest(tmp_path, 2)).stdout
    assert "serverside-applied" in out
    kubectl("rollout", "status", "deployment/web", "--timeout=90s")
    proc = kubectl("wait", "--for=condition=Available", "deployment/web", "--timeout=60s")
    assert "condition met" in proc.stdout
    assert "reflector" not in proc.stderr and "watch" not in proc.stderr.lower()
    wide = kubectl("get", "pods", "-o", "wide").stdout.splitlines()
    assert wide[0].split()[:7] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE"]
    assert len(wide) == 3 and all("Running" in row and "1/1" in row for row in wide[1:])
    everything = kubectl("get", "all").stdout
    for kind in ("pod/web-", "deployment.apps/web", "replicaset.apps/web-"):
        assert kind in everything
    deploy = kubectl("get", "deployment", "web").stdout.splitlines()
    assert deploy[0].split() == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert deploy[1].split()[1] == "2/2"
    doc = json.loads(kubectl("get", "deployment", "web", "-o", "json").stdout)
    assert doc["kind"] == "Deployment" and doc["spec"]["replicas"] == 2
    assert "replicas: 2" in kubectl("get", "deployment", "web", "-o", "yaml").stdout


def test_pod_disruption_budget_status_and_table(kubectl, tmp_path):
    """optimized's PodDisruptionBudget as kubectl shows it: the disruption controller's status
    (expected pods from the Deployment's scale) and the printer's columns."""
    pdb = tmp_path / "pdb.yaml"
    pdb.write_text(
        "apiVersion: policy/v1\nkind: PodDisruptionBudget\n"
        "metadata: {name: web, namespace: default}\n"
        "spec: {maxUnavailable: 1, selector: {matchLabels: {app: web}}}\n"
    )
    kubectl("apply", "--server-side", "-f", manifest(tmp_path, 3), "-f", str(pdb))
    kubectl("rollout", "status", "deployment/web", "--timeout=90s")
    kubectl("wait", "--for=jsonpath={.status.currentHealthy}=3", "pdb/web", "--timeout=60s")
    rows = [r.split() for r in kubectl("get", "pdb", "web").stdout.splitlines()]
    assert rows[0] == [
        "NAME",
        "MIN",
        "AVAILABLE",
        "MAX",
        "UNAVAILABLE",
        "ALLOWED",
        "DISRUPTIONS",
        "AGE",
    ]
    assert rows[1][:4] == ["web", "N/A", "1", "1"]
    status = json.loads(kubectl("get", "pdb", "web", "-o", "json").stdout)["status"]
    assert {k: status[k] for k in ("expectedPods", "desiredHealthy", "disruptionsAllowed")} == {
        "expectedPods": 3,
        "desiredHealthy": 2,
        "disruptionsAllowed": 1,
    }
    (cond,) = status["conditions"]
    assert (cond["type"], cond["status"], cond["reason"]) == (
        "DisruptionAllowed",
        "True",
        "SufficientPods",
    )


def test_diff_and_delete_dry_run_change_nothing(kubectl, fake_k8s, tmp_path):
    kubectl("apply", "--server-side", "-f", manifest(tmp_path, 2))
    kubectl("rollout", "status", "deployment/web", "--timeout=90s")
    proc = kubectl("diff", "--server-side", "-f", manifest(tmp_path, 5), check=False)
    assert proc.returncode == 1, proc.stderr  # 1: differences found
    assert "+  replicas: 5" in proc.stdout and "-  replicas: 2" in proc.stdout
    assert fake_k8s.get("Deployment", "web")["spec"]["replicas"] == 2
    fake_k8s.tick(20)
    assert len(fake_k8s.list("Pod", "default")) == 2
    out = kubectl("delete", "deployment", "web", "--dry-run=server").stdout
    assert "(server dry run)" in out
    assert fake_k8s.get("Deployment", "web") is not None
    kubectl("delete", "deployment", "web")
    assert fake_k8s.get("Deployment", "web") is None


def test_client_side_apply_and_explain_use_the_openapi(kubectl, tmp_path):
    kubectl("apply", "-f", manifest(tmp_path, 1))
    kubectl("apply", "-f", manifest(tmp_path, 3))
    assert kubectl("get", "deploy", "web", "-o", "jsonpath={.spec.replicas}").stdout == "3"
    out = kubectl("explain", "deployment.spec").stdout
    assert "KIND:       Deployment" in out and "VERSION:    v1" in out
    assert "minReadySeconds" in out and "<DeploymentSpec>" in out
    out = kubectl("explain", "pods.spec.containers.ports").stdout
    assert "containerPort" in out


def test_get_watch_streams_changes_until_the_timeout(kubectl, fake_k8s, tmp_path):
    kubectl("apply", "--server-side", "-f", manifest(tmp_path, 1))
    # --request-timeout ends the watch: a bounded run, no reflector fallback
    proc = kubectl("get", "deployments", "-w", "--request-timeout=3s", "-o", "name", check=False)
    assert "deployment.apps/web" in proc.stdout
    assert "the server does not allow" not in proc.stderr


def test_top_pods_reads_metrics(kubectl, fake_k8s, tmp_path):
    fake_k8s.set_load(lambda t: 0.1)
    kubectl("apply", "--server-side", "-f", manifest(tmp_path, 1))
    kubectl("rollout", "status", "deployment/web", "--timeout=90s")
    fake_k8s.wait_for(lambda: "web-" in kubectl("top", "pods", check=False).stdout, 60, "metrics")
    out = kubectl("top", "pods").stdout.splitlines()
    assert out[0].split()[:2] == ["NAME", "CPU(cores)"]


def test_selector_errors_and_protobuf_bodies_are_statuses(kubectl):
    proc = kubectl("get", "pods", "-l", "a b", check=False)
    assert proc.returncode == 1
    assert "(BadRequest)" in proc.stderr and "unable to parse requirement" in proc.stderr
    proc = kubectl("get", "pods", "--field-selector", "spec.foo=1", check=False)
    assert "field label not supported: spec.foo" in proc.stderr
    proc = kubectl("create", "namespace", "shop", check=False)
    assert "(UnsupportedMediaType)" in proc.stderr


def test_health_endpoints(kubectl):
    assert kubectl("get", "--raw", "/readyz").stdout == "ok"
    verbose = kubectl("get", "--raw", "/livez?verbose").stdout
    assert "[+]ping ok" in verbose and "livez check passed" in verbose
    assert kubectl("get", "--raw", "/healthz").stdout == "ok"


@pytest.mark.parametrize("mode", [[], ["--plain-http"]], ids=["tls", "plain-http"])
def test_the_standalone_fake_works_with_kubectl_out_of_the_box(tmp_path, mode):
    """`python -m tests.fakes.kubernetes` as its docstring says to run it, then kubectl with
    nothing but the kubeconfig it wrote (TLS with its CA and a token, or plain HTTP)."""
    root = Path(__file__).resolve().parent.parent
    kubeconfig = tmp_path / "kubeconfig"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.kubernetes", "--kubeconfig", str(kubeconfig), *mode],
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        banner = proc.stdout.readline()  # printed once it serves (a hang detector below)
        assert "kubeconfig" in banner, proc.stderr.read() if proc.poll() is not None else banner
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(tmp_path),
            "KUBECONFIG": str(kubeconfig),
        }
        out = {}
        for args in (["get", "nodes"], ["version", "-o", "json"], ["get", "--raw", "/readyz"]):
            p = subprocess.run(
                [KUBECTL, "--request-timeout=30s", *args],
                env=env,
                capture_output=True,
                text=True,
                timeout=120,  # a hang detector only
            )
            assert p.returncode == 0, (args, p.stderr)
            out[args[1]] = p.stdout
        assert "node-0" in out["nodes"]
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
