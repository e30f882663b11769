"""The fake Kubernetes API itself: the wire behaviour ggctl relies on, checked with the real
client (so a change in the fake that would make deploy tests meaningless shows up here)."""

from __future__ import annotations

import json

import pytest
from kubernetes import client, config, dynamic
from kubernetes.client.exceptions import ApiException


@pytest.fixture
def api(fake_k8s):
    c = config.new_client_from_config(config_file=str(fake_k8s.kubeconfig_path))
    yield c
    c.close()


def svc(name: str, port: int, **spec) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": "default", "labels": {"a": "b"}},
        "spec": {
            "type": "NodePort",
            "selector": {"app": name},
            "ports": [{"port": port, "nodePort": 30000 + port}],
            **spec,
        },
    }


def test_apply_conflicts_with_another_manager_unless_forced(api, tmp_path):
    dyn = dynamic.DynamicClient(api, cache_file=str(tmp_path / "c.json"))
    res = dyn.resources.get(api_version="v1", kind="Service")
    res.server_side_apply(body=svc("s", 80), field_manager="alice")
    changed = svc("s", 80, sessionAffinity="ClientIP")
    res.server_side_apply(body=changed, field_manager="bob")  # a new field: no conflict
    changed["spec"]["ports"][0]["nodePort"] = 30081
    with pytest.raises(ApiException) as exc:
        res.server_side_apply(body=changed, field_manager="bob")
    assert exc.value.status == 409
    assert 'conflict with "alice"' in json.loads(exc.value.body)["message"]
    out = res.server_side_apply(body=changed, field_manager="bob", force_conflicts=True)
    assert out.spec.ports[0].nodePort == 30081
    managers = {e.manager for e in out.metadata.managedFields}
    assert managers == {"alice", "bob"}


def test_apply_needs_a_field_manager_and_validates(api, tmp_path):
    dyn = dynamic.DynamicClient(api, cache_file=str(tmp_path / "c.json"))
    res = dyn.resources.get(api_version="v1", kind="Service")
    with pytest.raises(ApiException) as exc:
        res.server_side_apply(body=svc("s", 80))
    assert exc.value.status == 400
    bad = svc("s", 80)
    bad["spec"]["portz"] = []
    with pytest.raises(ApiException) as exc:
        res.server_side_apply(body=bad, field_manager="m")
    # structured-merge-diff refuses a field the schema does not declare (500, as upstream)
    assert exc.value.status == 500 and ".spec.portz: field not declared in schema" in str(
        exc.value.body
    )


def test_typed_client_crud_selectors_paging_and_status_errors(api):
    core = client.CoreV1Api(api)
    for i in range(3):
        core.create_namespaced_service("default", svc(f"s{i}", 80 + i))
    with pytest.raises(ApiException) as exc:
        core.create_namespaced_service("default", svc("s0", 90))
    assert exc.value.status == 409
    page = core.list_namespaced_service("default", label_selector="a in (b,c)", limit=2)
    assert len(page.items) == 2 and page.metadata._continue
    rest = core.list_namespaced_service("default", limit=2, _continue=page.metadata._continue)
    assert [s.metadata.name for s in rest.items] == ["s2"]
    core.delete_namespaced_service("s1", "default")
    with pytest.raises(ApiException) as exc:
        core.read_namespaced_service("s1", "default")
    assert exc.value.status == 404


def test_hpa_is_served_as_v1_and_v2(api, fake_k8s):
    v1 = client.AutoscalingV1Api(api)
    v1.create_namespaced_horizontal_pod_autoscaler(
        "default",
        {
            "apiVersion": "autoscaling/v1",
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "h"},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "d"},
                "minReplicas": 1,
                "maxReplicas": 5,
                "targetCPUUtilizationPercentage": 40,
            },
        },
    )
    v2 = client.AutoscalingV2Api(api).read_namespaced_horizontal_pod_autoscaler("h", "default")
    assert v2.spec.metrics[0].resource.target.average_utilization == 40
    back = v1.read_namespaced_horizontal_pod_autoscaler("h", "default")
    assert back.spec.target_cpu_utilization_percentage == 40


def test_foreground_delete_waits_for_the_pods(api, fake_k8s):
    apps = client.AppsV1Api(api)
    apps.create_namespaced_deployment(
        "default",
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "d"},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "d"}},
                "template": {
                    "metadata": {"labels": {"app": "d"}},
                    "spec": {"containers": [{"name": "c", "image": "i:1"}]},
                },
            },
        },
    )
    fake_k8s.wait_for(lambda: len(fake_k8s.list("Pod", "default")) == 2, what="2 pods")
    apps.delete_namespaced_deployment("d", "default", propagation_policy="Foreground")
    dep = fake_k8s.get("Deployment", "d")
    assert dep is None or "foregroundDeletion" in dep["metadata"]["finalizers"]
    fake_k8s.wait_for(lambda: fake_k8s.get("Deployment", "d") is None, what="deployment gone")
    assert fake_k8s.list("Pod", "default") == [] and fake_k8s.list("ReplicaSet", "default") == []


def test_metrics_follow_the_injected_usage(api, fake_k8s):
    fake_k8s.set_usage(lambda pod, t: (0.25, 300 * 2**20))
    client.AppsV1Api(api).create_namespaced_deployment(
        "default",
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "d"},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "d"}},
                "template": {
                    "metadata": {"labels": {"app": "d"}},
                    "spec": {"containers": [{"name": "c", "image": "i:1"}]},
                },
            },
        },
    )
    objs = client.CustomObjectsApi(api)
    fake_k8s.wait_for(
        lambda: objs.list_namespaced_custom_object("metrics.k8s.io", "v1beta1", "default", "pods")[
            "items"
        ],
        what="pod metrics",
    )
    (item,) = objs.list_namespaced_custom_object("metrics.k8s.io", "v1beta1", "default", "pods")[
        "items"
    ]
    from kubernetes.utils import parse_quantity

    usage = item["containers"][0]["usage"]
    assert parse_quantity(usage["cpu"]) == parse_quantity("250m")
    assert parse_quantity(usage["memory"]) == 300 * 2**20
