"""`ggctl deploy` against the fake Kubernetes API (tests/fakes/kubernetes), through the real,
unpatched `kubernetes` client and a kubeconfig: switching, idempotency, failures, the CLI."""

from __future__ import annotations

import io
import itertools
from pathlib import Path

import pytest
import yaml
from deploy_helpers import IMAGE, cluster_on, run
from fakes.kubernetes import FakeKubernetes
from rich.console import Console

from ggctl.manifests.apply import Cluster, DeployError, RolloutFailed, deploy, list_ours
from ggctl.manifests.render import render
from ggctl.manifests.strategy import OURS_SELECTOR, STRATEGY_LABEL, STRATEGY_NAMES

KINDS = ("Service", "Deployment", "HorizontalPodAutoscaler", "PodDisruptionBudget")


@pytest.fixture
def cluster(fake_k8s: FakeKubernetes):
    yield from cluster_on(fake_k8s)


def ours(fake: FakeKubernetes, namespace: str = "default") -> set[tuple[str, str, str]]:
    return {
        (o["kind"], o["metadata"]["name"], o["metadata"]["labels"][STRATEGY_LABEL])
        for kind in KINDS
        for o in fake.list(kind, namespace, OURS_SELECTOR)
    }


def expected(strategy: str) -> set[tuple[str, str, str]]:
    return {(o["kind"], o["metadata"]["name"], strategy) for o in render(strategy, IMAGE)}


def pods_by_app(fake: FakeKubernetes) -> set[str]:
    return {p["metadata"]["labels"].get("app") for p in fake.list("Pod", "default")}


# k8s→lb, lb→hpa, ... : a walk through every ordered pair of strategies exactly once
def _every_switch() -> list[str]:
    walk = [
        "k8s",
        "lb",
        "hpa",
        "optimized",
        "k8s",
        "hpa",
        "lb",
        "optimized",
        "hpa",
        "k8s",
        "optimized",
        "lb",
        "k8s",
    ]
    pairs = set(itertools.pairwise(walk))
    assert pairs == set(itertools.permutations(STRATEGY_NAMES, 2))
    return walk


def test_switching_in_every_order_leaves_exactly_the_last_strategy(fake_k8s, cluster):
    previous = None
    for strategy in _every_switch():
        result = run(cluster, strategy)
        assert ours(fake_k8s) == expected(strategy), f"{previous} → {strategy}"
        # one Service holds the node port; no pod of the previous strategy is left
        services = fake_k8s.list("Service", "default")
        assert [s["spec"]["ports"][0]["nodePort"] for s in services] == [32000]
        dep = next(o for o in render(strategy, IMAGE) if o["kind"] == "Deployment")
        app = dep["spec"]["selector"]["matchLabels"]["app"]
        assert pods_by_app(fake_k8s) == {app}, f"{previous} → {strategy}"
        deleted = {(c.kind, c.name) for c in result.changes if c.action == "deleted"}
        assert all(c.strategy == previous for c in result.changes if c.action == "deleted")
        assert not deleted & {(k, n) for k, n, _s in expected(strategy)}
        previous = strategy


@pytest.mark.parametrize("strategy", STRATEGY_NAMES)
def test_deploy_twice_changes_nothing(fake_k8s, cluster, strategy):
    first = run(cluster, strategy)
    assert {c.action for c in first.changes} == {"created"}
    fake_k8s.paused = True  # no controller writes: any change now is the second apply's
    before = {
        (o["kind"], o["metadata"]["name"]): (
            o["metadata"]["resourceVersion"],
            o["metadata"].get("generation"),
        )
        for kind in KINDS
        for o in fake_k8s.list(kind, "default")
    }
    n_requests = len(fake_k8s.requests)
    second = run(cluster, strategy)
    after = {
        (o["kind"], o["metadata"]["name"]): (
            o["metadata"]["resourceVersion"],
            o["metadata"].get("generation"),
        )
        for kind in KINDS
        for o in fake_k8s.list(kind, "default")
    }
    assert after == before
    assert {c.action for c in second.changes} == {"unchanged"}
    assert not second.changed
    # the wire contract: server-side apply, one field manager, forced
    patches = [r for r in fake_k8s.requests[n_requests:] if r[0] == "PATCH"]
    assert len(patches) == len(render(strategy, IMAGE))
    for _method, _path, query, ctype, _body in patches:
        assert ctype == "application/apply-patch+yaml"
        assert "fieldManager=ggctl" in query and "force=true" in query
    managers = {
        e["manager"]
        for kind in KINDS
        for o in fake_k8s.list(kind, "default")
        for e in o["metadata"]["managedFields"]
    }
    assert managers == {"ggctl"}


def test_a_new_image_rolls_out_and_only_the_deployment_changes(fake_k8s, cluster):
    run(cluster, "optimized")
    result = run(cluster, "optimized", image="node-0:5000/ml-app:fedcba987654")
    actions = {(c.kind, c.action) for c in result.changes}
    assert ("Deployment", "configured") in actions
    assert ("Service", "unchanged") in actions
    images = {
        p["spec"]["containers"][0]["image"]
        for p in fake_k8s.list("Pod", "default")
        if not p["metadata"].get("deletionTimestamp")
    }
    fake_k8s.wait_for(
        lambda: (
            {p["spec"]["containers"][0]["image"] for p in fake_k8s.list("Pod", "default")}
            == {"node-0:5000/ml-app:fedcba987654"}
        ),
        what="old pods gone",
    )
    assert "node-0:5000/ml-app:fedcba987654" in images


def test_removed_field_is_removed_from_the_live_object(fake_k8s, cluster):
    """Server-side apply, not a merge: a field ggctl stops sending disappears."""
    objs = render("lb", IMAGE)
    dep = next(o for o in objs if o["kind"] == "Deployment")
    dep["spec"]["template"]["spec"]["containers"][0]["env"].append({"name": "EXTRA", "value": "1"})
    deploy(cluster, objs, "default", timeout=30, poll=0.05, console=Console(file=io.StringIO()))
    env = fake_k8s.get("Deployment", "ml-kube-app")["spec"]["template"]["spec"]["containers"][0][
        "env"
    ]
    assert {"name": "EXTRA", "value": "1"} in env
    run(cluster, "lb")
    env = fake_k8s.get("Deployment", "ml-kube-app")["spec"]["template"]["spec"]["containers"][0][
        "env"
    ]
    assert all(e["name"] != "EXTRA" for e in env)


@pytest.mark.parametrize(
    ("fault", "reason", "says"),
    [
        ("image-pull", "ImagePullBackOff", 'Back-off pulling image "node-0:5000/ml-app:missing"'),
        ("crash-loop", "CrashLoopBackOff", "ModelLoadError: no such file /app/model.onnx"),
        ("unschedulable", "Unschedulable", "Insufficient cpu"),
    ],
)
def test_failed_rollout_names_the_pod_and_its_reason(fake_k8s, cluster, fault, reason, says):
    fake_k8s.inject(
        fault,
        image=":missing",
        log="Traceback (most recent call last):\nModelLoadError: no such file /app/model.onnx\n",
    )
    with pytest.raises(RolloutFailed) as exc:
        run(cluster, "optimized", image="node-0:5000/ml-app:missing", unschedulable_grace=0.2)
    err = exc.value
    pod = next(p["metadata"]["name"] for p in fake_k8s.list("Pod", "default"))
    assert err.reason == reason
    assert err.pod == pod
    assert f"pod {pod}: {reason}" in err.message
    assert says in err.message
    assert err.events and "events of pod" in err.message
    assert err.hint


def test_pods_that_do_not_fit_the_nodes_are_unschedulable(tmp_path):
    """lb asks 5 x 1 CPU; three 1-CPU nodes hold three pods."""
    with FakeKubernetes(speed=50, node_cpu="1") as fake:
        c = Cluster.from_kubeconfig(fake.kubeconfig(tmp_path / "kc"))
        try:
            with pytest.raises(RolloutFailed) as exc:
                run(c, "lb", unschedulable_grace=0.3)
        finally:
            c.close()
    assert exc.value.reason == "Unschedulable"
    assert "0/3 nodes are available: 3 Insufficient cpu" in exc.value.message
    assert "FailedScheduling" in exc.value.message


def test_rollout_timeout_when_pods_never_become_ready(fake_k8s, cluster):
    fake_k8s.inject("never-ready")
    # Apply, then wait for the fake to have failed a readiness probe, so the short rollout
    # timeout below meets a pod that exists however slowly a busy machine runs the fake.
    run(cluster, "k8s", wait=False)
    fake_k8s.wait_for(
        lambda: any(
            e.get("reason") == "Unhealthy" for e in fake_k8s.list("Event", namespace="default")
        ),
        timeout=300,  # a hang detector
        what="a failed readiness probe",
    )
    with pytest.raises(RolloutFailed) as exc:
        run(cluster, "k8s", timeout=1.0)
    assert "timed out" in exc.value.message
    assert "Readiness probe failed" in exc.value.message


def test_a_foreign_service_on_the_node_port_is_a_clear_error(fake_k8s, cluster):
    from kubernetes import client

    core = client.CoreV1Api(cluster.api_client)
    core.create_namespaced_service(
        "default",
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "someone-else"},
            "spec": {
                "type": "NodePort",
                "selector": {"app": "x"},
                "ports": [{"port": 80, "nodePort": 32000}],
            },
        },
    )
    with pytest.raises(DeployError) as exc:
        run(cluster, "k8s")
    assert "provided port is already allocated" in exc.value.message
    assert "32000" in (exc.value.hint or "")
    assert fake_k8s.get("Service", "someone-else") is not None  # not ours: never deleted


def test_other_namespaces_and_foreign_objects_are_left_alone(fake_k8s, cluster):
    run(cluster, "k8s", namespace="gourmet")  # created on the fly
    assert fake_k8s.get("Namespace", "gourmet", None) is not None
    from kubernetes import client

    client.AppsV1Api(cluster.api_client)
    fake_k8s_objects = ours(fake_k8s, "gourmet")
    assert fake_k8s_objects == expected("k8s")
    assert list_ours(cluster, "default") == []


def test_hpa_scales_with_load_and_metrics_follow(fake_k8s, cluster):
    run(cluster, "hpa")
    fake_k8s.set_load(lambda t: 3.0)  # 3 cores of work: 300 % of one pod's 1-CPU request
    fake_k8s.wait_for(
        lambda: fake_k8s.get("Deployment", "ml-app-hpa")["spec"]["replicas"] == 5,
        timeout=20,
        what="scale-up to 5",
    )
    fake_k8s.wait_for(
        lambda: (
            (
                fake_k8s.get("HorizontalPodAutoscaler", "ml-app-hpa")
                .get("status", {})
                .get("currentReplicas")
            )
            == 5
        ),
        timeout=20,
        what="HPA status",
    )
    from kubernetes import client

    metrics = client.CustomObjectsApi(cluster.api_client).list_namespaced_custom_object(
        "metrics.k8s.io", "v1beta1", "default", "pods"
    )
    assert metrics["items"] and all(
        i["containers"][0]["usage"]["cpu"].endswith("n") for i in metrics["items"]
    )
    fake_k8s.set_load(lambda t: 0.0)
    fake_k8s.wait_for(
        lambda: fake_k8s.get("Deployment", "ml-app-hpa")["spec"]["replicas"] == 1,
        timeout=30,
        what="scale-down to 1",
    )


# --------------------------------------------------------------------------- CLI


def cli(*args: str, capsys) -> tuple[int, str, str]:
    from ggctl.cli import main

    with pytest.raises(SystemExit) as exc:
        main(list(args))
    out, err = capsys.readouterr()
    return int(exc.value.code or 0), out, err


def test_cli_dry_run_yaml_needs_no_cluster(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "does-not-exist"))
    monkeypatch.setenv("HOME", str(tmp_path))
    code, out, _err = cli(
        "--state-dir",
        str(tmp_path / "state"),
        "deploy",
        "--strategy",
        "hpa",
        "--image",
        IMAGE,
        "--dry-run",
        "-o",
        "yaml",
        capsys=capsys,
    )
    assert code == 0
    docs = list(yaml.safe_load_all(out))
    assert docs == render("hpa", IMAGE)


def test_cli_deploys_to_the_fake_and_reports_failures(fake_k8s, tmp_path, capsys):
    state = str(tmp_path / "state")
    kc = str(fake_k8s.kubeconfig_path)
    code, out, err = cli(
        "--state-dir",
        state,
        "deploy",
        "--strategy",
        "k8s",
        "--kubeconfig",
        kc,
        "--image",
        IMAGE,
        capsys=capsys,
    )
    assert code == 0, err
    assert "Deployment ml-kube-app" in out and "created" in out
    assert (Path(state) / "deploy.json").exists()
    fake_k8s.inject("image-pull", image=":nope")
    code, out, err = cli(
        "--state-dir",
        state,
        "deploy",
        "--strategy",
        "optimized",
        "--kubeconfig",
        kc,
        "--image",
        "node-0:5000/ml-app:nope",
        "--timeout",
        "20",
        capsys=capsys,
    )
    assert code == 1
    assert "ImagePullBackOff" in err and "hint:" in err


def test_cli_unreachable_cluster_is_one_line(tmp_path, capsys):
    from fakes.kubernetes import FakeKubernetes as Fake

    fake = Fake().start()
    kc = fake.kubeconfig(tmp_path / "kc")
    fake.stop()  # nothing listens there any more
    code, _out, err = cli(
        "--state-dir",
        str(tmp_path / "s"),
        "deploy",
        "--kubeconfig",
        str(kc),
        "--image",
        IMAGE,
        capsys=capsys,
    )
    assert code == 1
    assert "cannot reach the Kubernetes API" in err
    assert "Traceback" not in err
