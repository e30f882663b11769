"""`ggctl deploy` against the fake API as a real API server answers (issue 13, items 16-26):
a fix after a failure, pods the namespace refuses, pulls that heal, objects still being
deleted, the prune's wait, and hints. The real `kubernetes` client, no patched ggctl code."""

from __future__ import annotations

import pytest
from deploy_helpers import IMAGE, cluster_on, run
from fakes.kubernetes import FakeKubernetes, Timings

from ggctl.manifests.apply import Cluster, DeployError, RolloutFailed
from ggctl.manifests.strategy import OPT_RESOURCES


@pytest.fixture
def cluster(fake_k8s: FakeKubernetes):
    yield from cluster_on(fake_k8s)


def replicasets(fake: FakeKubernetes, namespace: str = "default") -> list[str]:
    return sorted(rs["metadata"]["name"] for rs in fake.list("ReplicaSet", namespace))


# 16 -------------------------------------------------------------------------------------


def test_switching_k8s_and_lb_keeps_the_pods(fake_k8s, cluster):
    run(cluster, "k8s")
    first = replicasets(fake_k8s)
    pod = fake_k8s.list("Pod", "default")[0]["metadata"]["uid"]
    run(cluster, "lb")
    assert pod in {p["metadata"]["uid"] for p in fake_k8s.list("Pod", "default")}  # kept
    run(cluster, "k8s")
    assert replicasets(fake_k8s) == first  # no new ReplicaSet: no pod restarted
    dep = fake_k8s.get("Deployment", "ml-kube-app")
    assert dep["metadata"]["labels"]["ggctl.io/strategy"] == "k8s"
    assert "ggctl.io/strategy" not in dep["spec"]["template"]["metadata"]["labels"]


# 21 -------------------------------------------------------------------------------------


@pytest.mark.parametrize("fault", ["crash-loop", "image-pull"])
def test_the_deploy_that_fixes_a_failed_one_succeeds(fake_k8s, cluster, fault):
    fake_k8s.inject(fault, image=":broken")
    grace = {"pull_grace": 0.5} if fault == "image-pull" else {}
    with pytest.raises(RolloutFailed):
        run(cluster, "optimized", "node-0:5000/ml-app:broken", **grace)
    result = run(cluster, "optimized", IMAGE, **grace)  # the old pods are still there
    assert any(c.action == "configured" for c in result.changes)
    dep = fake_k8s.get("Deployment", "ml-app")
    assert dep["status"]["readyReplicas"] == 1


# 18 -------------------------------------------------------------------------------------


def test_a_pull_that_heals_does_not_fail_the_deploy(fake_k8s, cluster):
    # 20 cluster s of ErrImagePull / ImagePullBackOff (0.4 s wall), then the pull works
    fake_k8s.inject("image-pull", image=":flaky", heal_after_s=20)
    run(cluster, "k8s", "node-0:5000/ml-app:flaky", pull_grace=60)
    assert fake_k8s.get("Deployment", "ml-kube-app")["status"]["readyReplicas"] == 1


def test_a_pull_that_keeps_failing_fails_after_the_grace_with_events(fake_k8s, cluster):
    fake_k8s.inject("image-pull", image=":nope")
    with pytest.raises(RolloutFailed) as err:
        run(cluster, "k8s", "node-0:5000/ml-app:nope", pull_grace=1.0)
    assert err.value.reason in ("ImagePullBackOff", "ErrImagePull")
    assert "timed out" not in err.value.message
    assert any("Failed to pull image" in e or "Back-off pulling" in e for e in err.value.events)
    assert "registry" in (err.value.hint or "")


# 22 -------------------------------------------------------------------------------------


def test_pods_refused_by_a_quota_are_reported_at_once(fake_k8s, cluster):
    from kubernetes import client

    client.CoreV1Api(cluster.api_client).create_namespaced_resource_quota(
        "default",
        {"metadata": {"name": "small"}, "spec": {"hard": {"requests.memory": "100Mi"}}},
    )
    with pytest.raises(RolloutFailed) as err:
        run(cluster, "optimized", timeout=600)
    assert err.value.reason == "FailedCreate"
    assert "exceeded quota: small" in err.value.message
    assert f"requests.memory={OPT_RESOURCES.memory_request}" in err.value.message
    assert "quota" in (err.value.hint or "")


# 24 -------------------------------------------------------------------------------------


@pytest.fixture
def slow_fake(tmp_path):
    # 5x: a 30 s grace period takes 6 s; the app ignores SIGTERM, so a pod lingers for its
    # whole grace period (until the kubelet's SIGKILL)
    with FakeKubernetes(speed=5.0, timings=Timings(sigterm_exit_s=1000)) as fake:
        fake.kubeconfig_path = fake.kubeconfig(tmp_path / "kubeconfig")
        yield fake


def test_a_deployment_still_being_deleted_is_waited_for_then_created(slow_fake):
    c = Cluster.from_kubeconfig(slow_fake.kubeconfig_path)
    try:
        run(c, "k8s", timeout=60)
        c.resource("apps/v1", "Deployment").delete(
            name="ml-kube-app", namespace="default", propagation_policy="Foreground"
        )
        assert slow_fake.get("Deployment", "ml-kube-app")["metadata"]["deletionTimestamp"]
        result = run(c, "k8s", timeout=60)
    finally:
        c.close()
    assert ("Deployment", "created") in {(ch.kind, ch.action) for ch in result.changes}
    assert "waiting for Deployment ml-kube-app to go" in run.output
    dep = slow_fake.get("Deployment", "ml-kube-app")
    assert dep and not dep["metadata"].get("deletionTimestamp")
    assert dep["status"].get("readyReplicas") == 1


# 25 -------------------------------------------------------------------------------------


def test_the_prune_says_what_it_waits_for_and_its_time_is_reported(slow_fake):
    c = Cluster.from_kubeconfig(slow_fake.kubeconfig_path)
    try:
        run(c, "k8s", timeout=60)
        result = run(c, "optimized", timeout=60)
    finally:
        c.close()
    assert "waiting for Deployment ml-kube-app to go (1 pod(s) terminating, grace period " in (
        run.output
    )
    assert "up to 30 s" in run.output
    assert result.prune_s >= 30 / 5 * 0.9  # the old pod's 30 s grace at 5x


def test_a_prune_longer_than_the_timeout_blames_the_grace_period(slow_fake):
    c = Cluster.from_kubeconfig(slow_fake.kubeconfig_path)
    try:
        run(c, "k8s", timeout=60)
        with pytest.raises(DeployError) as err:
            run(c, "optimized", timeout=2)
    finally:
        c.close()
    assert "grace period" in err.value.hint and "--timeout" in err.value.hint
    assert "node" not in err.value.hint


# 26 -------------------------------------------------------------------------------------


def test_the_node_port_held_by_ggctls_own_service_elsewhere(fake_k8s, cluster):
    run(cluster, "k8s", namespace="default")
    with pytest.raises(DeployError) as err:
        run(cluster, "k8s", namespace="other")
    assert "ggctl's own Service ml-kube-service in namespace default" in err.value.hint
    assert "not created by ggctl" not in err.value.hint
    # Not left behind: deleted, though a namespace stays Terminating until its controller
    # has emptied it, as on a real API server.
    ns = fake_k8s.get("Namespace", "other", None)
    assert ns is None or ns["metadata"].get("deletionTimestamp"), ns


def test_no_nodes_at_all_is_not_blamed_on_requests(fake_k8s, cluster):
    fake_k8s.inject(
        "unschedulable",
        message="0/3 nodes are available: 3 node(s) had untolerated taint "
        "{node.kubernetes.io/not-ready: }. preemption: 0/3 nodes are available: "
        "3 Preemption is not helpful for scheduling.",
    )
    with pytest.raises(RolloutFailed) as err:
        run(cluster, "k8s", unschedulable_grace=0.3)
    assert err.value.reason == "Unschedulable"
    assert "get nodes" in err.value.hint and "smaller requests" not in err.value.hint


def test_a_crash_loop_without_logs_does_not_point_to_logs_above(fake_k8s, cluster):
    fake_k8s.inject("crash-loop", image=":broken")
    fake_k8s.fail_http(500, message="Get logs: dial tcp 10.0.0.1:10250: i/o timeout", path="/log")
    with pytest.raises(RolloutFailed) as err:
        run(cluster, "k8s", "node-0:5000/ml-app:broken")
    assert err.value.reason == "CrashLoopBackOff"
    assert "last log lines" not in err.value.message
    assert "above" not in err.value.hint


# errors for people ----------------------------------------------------------------------


def test_a_hung_api_server_is_a_timeout_message(fake_k8s, cluster):
    cluster.timeout = 1.0
    fake_k8s.fail_http(code=0, delay_s=3, path="/namespaces/default", method="GET")
    with pytest.raises(DeployError) as err:
        run(cluster, "k8s")
    assert "cannot reach the Kubernetes API" in err.value.message
    assert "timed out" in err.value.message.lower()
