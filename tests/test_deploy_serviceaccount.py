"""Pods the namespace refuses for want of their ServiceAccount (issue 13, item 22): the fake
refuses them with ServiceAccount admission's message (plugin/pkg/admission/serviceaccount,
admission.go: `error looking up service account NS/SA: serviceaccount "SA" not found`,
wrapped by admission.NewForbidden), and `ggctl deploy` reports the ReplicaFailure at once,
with a hint about the account rather than quotas. Real `kubernetes` client, no patched code."""

from __future__ import annotations

import pytest
from deploy_helpers import cluster_on, run
from fakes.kubernetes import FakeKubernetes

from ggctl.manifests.apply import RolloutFailed


@pytest.fixture
def cluster(fake_k8s: FakeKubernetes):
    yield from cluster_on(fake_k8s)


def test_the_fake_makes_and_requires_the_default_service_account(fake_k8s):
    fake_k8s.tick()
    accounts = {
        (sa["metadata"]["namespace"], sa["metadata"]["name"])
        for sa in fake_k8s.list("ServiceAccount")
    }
    assert ("default", "default") in accounts and ("kube-system", "default") in accounts


def test_a_missing_service_account_is_reported_at_once(fake_k8s, cluster):
    """kube-controller-manager without its serviceaccount controller, and the namespace's
    "default" account gone: every pod creation is refused."""
    fake_k8s.controllers.serviceaccount_controller = False
    from kubernetes import client

    client.CoreV1Api(cluster.api_client).delete_namespaced_service_account("default", "default")
    with pytest.raises(RolloutFailed) as err:
        run(cluster, "optimized", timeout=600)
    assert err.value.reason == "FailedCreate"
    message = err.value.message
    assert "timed out" not in message
    assert (
        'pods "ml-app-' in message
        and '-" is forbidden: error looking up service account ' in message
    )
    assert 'default/default: serviceaccount "default" not found' in message
    assert "serviceaccount controller" in (err.value.hint or "")
    assert "quota" not in (err.value.hint or "")
    events = [e for e in fake_k8s.list("Event", "default") if e.get("reason") == "FailedCreate"]
    assert events and "error looking up service account" in events[0]["message"]


def test_once_the_account_is_back_the_deploy_succeeds(fake_k8s, cluster):
    """The refusal is not sticky: with the account made again, the next deploy works."""
    fake_k8s.controllers.serviceaccount_controller = False
    from kubernetes import client

    client.CoreV1Api(cluster.api_client).delete_namespaced_service_account("default", "default")
    with pytest.raises(RolloutFailed):
        run(cluster, "k8s", timeout=600)
    fake_k8s.controllers.serviceaccount_controller = True
    run(cluster, "k8s")
    assert fake_k8s.get("Deployment", "ml-kube-app")["status"]["readyReplicas"] == 1
