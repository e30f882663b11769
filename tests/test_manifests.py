"""Every strategy renders to valid Kubernetes objects, and the course's three say exactly what
the course's manifests say (teaching-on-testbeds/k8s-ml, SPEC.md step 4)."""

from __future__ import annotations

import importlib.resources
import typing

import kubernetes_validate
import pytest
import yaml

from ggctl.config import DeploySettings
from ggctl.manifests.render import render, to_json, to_yaml
from ggctl.manifests.strategy import (
    GUNICORN_GRACEFUL_TIMEOUT_S,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    POD_SELECTOR,
    STRATEGY_LABEL,
    STRATEGY_NAMES,
    get_strategy,
)

IMAGE = "node-0:5000/ml-app:0123456789ab"
# The course's cluster (Kubespray release-2.22) and the minors a current cluster runs.
VERSIONS = ["1.26.0", "1.33.0", "1.34.0"]


def objects(strategy: str, namespace: str = "default") -> dict[str, dict]:
    return {o["kind"]: o for o in render(strategy, IMAGE, namespace)}


def container(strategy: str) -> dict:
    (c,) = objects(strategy)["Deployment"]["spec"]["template"]["spec"]["containers"]
    return c


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("strategy", STRATEGY_NAMES)
def test_every_strategy_validates_against_the_official_schema(strategy: str, version: str):
    for obj in render(strategy, IMAGE):
        # strict: an unknown field is an error; SchemaNotFoundError (a removed API) fails too
        kubernetes_validate.validate(obj, version, strict=True)


@pytest.mark.parametrize("strategy", STRATEGY_NAMES)
def test_every_object_is_labelled_ours_with_its_strategy(strategy: str):
    objs = render(strategy, IMAGE, "gg")
    assert len({(o["kind"], o["metadata"]["name"]) for o in objs}) == len(objs)
    for obj in objs:
        labels = obj["metadata"]["labels"]
        assert labels[MANAGED_BY_LABEL] == MANAGED_BY
        assert labels[STRATEGY_LABEL] == strategy
        assert obj["metadata"]["namespace"] == "gg"
    dep = objects(strategy)["Deployment"]
    pod_labels = dep["spec"]["template"]["metadata"]["labels"]
    # the selector (immutable) matches the pods, and never mentions the strategy
    assert dep["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert STRATEGY_LABEL not in dep["spec"]["selector"]["matchLabels"]
    key, value = POD_SELECTOR.split("=")
    assert pod_labels[key] == value
    svc = objects(strategy)["Service"]
    assert svc["spec"]["selector"] == dep["spec"]["selector"]["matchLabels"]


# SPEC.md step 4 and course.md §3, as a table: Service type, replicas, HPA (min, max, %).
COURSE = {
    "k8s": ("NodePort", 1, None, "ml-kube-app", "ml-kube-service", "ml-kube-app"),
    "lb": ("LoadBalancer", 5, None, "ml-kube-app", "ml-kube-service", "ml-kube-app"),
    "hpa": ("LoadBalancer", None, (1, 5, 40), "ml-app-hpa", "ml-service-lb", "ml-app"),
}


@pytest.mark.parametrize("strategy", sorted(COURSE))
def test_course_strategies_have_the_course_numbers(strategy: str):
    svc_type, replicas, hpa, deployment, service, container_name = COURSE[strategy]
    objs = objects(strategy)
    assert set(objs) == {"Service", "Deployment"} | ({"HorizontalPodAutoscaler"} if hpa else set())
    svc, dep = objs["Service"], objs["Deployment"]
    assert svc["metadata"]["name"] == service
    assert svc["spec"]["type"] == svc_type
    assert svc["spec"]["ports"] == [
        {"port": 6000, "targetPort": 5000, "nodePort": 32000, "protocol": "TCP"}
    ]
    assert dep["metadata"]["name"] == deployment
    if replicas is None:  # an HPA owns the count; Kubernetes starts it at 1, as the course
        assert "replicas" not in dep["spec"]
        assert get_strategy(strategy).initial_replicas == 1
    else:
        assert dep["spec"]["replicas"] == replicas
    c = container(strategy)
    assert c["name"] == container_name
    assert c["imagePullPolicy"] == "Always"
    assert c["ports"] == [{"containerPort": 5000}]
    assert c["resources"] == {
        "requests": {"cpu": "1", "memory": "2Gi"},
        "limits": {"cpu": "2", "memory": "4Gi"},
    }
    assert c["readinessProbe"] == {
        "httpGet": {"path": "/test", "port": 5000},
        "initialDelaySeconds": 5,
        "periodSeconds": 5,
        "successThreshold": 3,
    }
    assert "livenessProbe" not in c and "startupProbe" not in c and "lifecycle" not in c
    if hpa:
        h = objs["HorizontalPodAutoscaler"]
        assert h["apiVersion"] == "autoscaling/v1"
        assert h["metadata"]["name"] == "ml-app-hpa"
        assert (
            h["spec"]["minReplicas"],
            h["spec"]["maxReplicas"],
            h["spec"]["targetCPUUtilizationPercentage"],
        ) == hpa
        assert h["spec"]["scaleTargetRef"] == {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": deployment,
        }


def test_optimized_is_cheap_to_probe_autoscaled_and_shuts_down_gracefully():
    objs = objects("optimized")
    assert set(objs) == {"Service", "Deployment", "HorizontalPodAutoscaler", "PodDisruptionBudget"}
    c = container("optimized")
    probes = [c[p]["httpGet"]["path"] for p in ("readinessProbe", "livenessProbe", "startupProbe")]
    assert "/test" not in probes and set(probes) == {"/readyz", "/healthz"}
    spec = objs["Deployment"]["spec"]
    assert "replicas" not in spec
    grace = spec["template"]["spec"]["terminationGracePeriodSeconds"]
    sleep = int(c["lifecycle"]["preStop"]["exec"]["command"][1])
    assert grace > sleep + GUNICORN_GRACEFUL_TIMEOUT_S
    env = {e["name"]: e["value"] for e in c["env"]}
    cores = int(c["resources"]["limits"]["cpu"])
    assert env["GGCTL_SERVE__MAX_INFLIGHT"] == str(cores)
    assert env["GGCTL_SERVE__ORT_THREADS"] == "1"
    assert int(env["GGCTL_SERVE__THREADS"]) >= cores
    assert env["GGCTL_SERVE__HOST"] == "0.0.0.0"
    assert env["GGCTL_SERVE__KEEPALIVE"] == "0"  # every request balanced over the pods
    hpa = objs["HorizontalPodAutoscaler"]
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["behavior"]["scaleUp"]["stabilizationWindowSeconds"] == 0
    assert hpa["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] >= 60
    pdb = objs["PodDisruptionBudget"]
    assert pdb["spec"]["maxUnavailable"] == 1
    assert pdb["spec"]["selector"] == spec["selector"]
    # smaller than the course's pods on both counts
    assert c["resources"] != container("hpa")["resources"]


def test_every_strategy_claims_node_port_32000():
    for name in STRATEGY_NAMES:
        assert objects(name)["Service"]["spec"]["ports"][0]["nodePort"] == 32000


def test_yaml_and_json_output_round_trip():
    objs = render("hpa", IMAGE)
    assert list(yaml.safe_load_all(to_yaml(objs))) == objs
    import json

    assert json.loads(to_json(objs))["items"] == objs
    assert IMAGE in to_yaml(objs)


def test_strategy_names_match_the_settings():
    allowed = typing.get_args(DeploySettings.model_fields["strategy"].annotation)
    assert set(allowed) == set(STRATEGY_NAMES)
    assert DeploySettings().strategy in STRATEGY_NAMES


def test_templates_ship_inside_the_package():
    files = importlib.resources.files("ggctl.manifests") / "templates"
    names = {p.name for p in files.iterdir()}
    assert {"deployment.yaml.j2", "service.yaml.j2", "hpa.yaml.j2", "pdb.yaml.j2"} <= names


def test_unknown_strategy_is_a_clear_error():
    from ggctl.errors import GgctlError

    with pytest.raises(GgctlError, match="unknown strategy 'blue'") as exc:
        get_strategy("blue")
    assert "k8s, lb, hpa, optimized" in (exc.value.hint or "")
