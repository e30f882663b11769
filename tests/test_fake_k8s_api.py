"""The fake Kubernetes API's wire contract as kube-apiserver 1.35 defines it (issue 15, items
1-5, 11, 13): TLS, dry runs, OpenAPI, Tables, health, protobuf, watch and resourceVersion
semantics, selector errors, version. Driven over HTTPS with `requests` and the official
client against the running fake."""

from __future__ import annotations

import base64
import json

import pytest
import requests
import yaml
from kubernetes import client, config, watch


@pytest.fixture
def http(fake_k8s, tmp_path):
    cluster = yaml.safe_load(fake_k8s.kubeconfig_path.read_text())["clusters"][0]["cluster"]
    s = requests.Session()
    s.trust_env = False  # else $REQUESTS_CA_BUNDLE would override the session's CA
    if "certificate-authority-data" in cluster:  # (test_tls_... requires it)
        ca = tmp_path / "ca.crt"
        ca.write_bytes(base64.b64decode(cluster["certificate-authority-data"]))
        s.verify = str(ca)
    s.headers["Authorization"] = f"Bearer {fake_k8s.token}"
    s.base = fake_k8s.url  # type: ignore[attr-defined]
    yield s
    s.close()


def url(s, path: str) -> str:
    return s.base + path


DEPLOY = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "web", "labels": {"app": "web"}},
    "spec": {
        "replicas": 2,
        "selector": {"matchLabels": {"app": "web"}},
        "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "web", "image": "registry.local/web:1"}]},
        },
    },
}
DEPLOYS = "/apis/apps/v1/namespaces/default/deployments"
CM = "/api/v1/namespaces/default/configmaps"


def test_tls_with_the_ca_in_the_kubeconfig_and_token_required(fake_k8s, http):
    assert fake_k8s.url.startswith("https://127.0.0.1:")
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(url(http, "/version"), timeout=30)  # not signed by a public CA
    assert requests.get(url(http, "/api"), verify=http.verify, timeout=30).status_code == 401
    assert http.get(url(http, "/api"), timeout=30).status_code == 200
    api = config.new_client_from_config(config_file=str(fake_k8s.kubeconfig_path))
    with api:
        assert client.VersionApi(api).get_code().git_version == "v1.35.0"


def test_version_and_validation_are_those_of_1_35(fake_k8s, http):
    info = http.get(url(http, "/version"), timeout=30).json()
    assert (info["major"], info["minor"]) == ("1", "35")
    assert fake_k8s.objects.k8s_version.startswith("1.35")
    assert fake_k8s.get("Node", "node-0", None)["status"]["nodeInfo"]["kubeletVersion"] == (
        "v1.35.0"
    )


@pytest.mark.parametrize(
    ("method", "path", "ctype", "body"),
    [
        ("POST", DEPLOYS, "application/json", DEPLOY),
        (
            "PUT",
            DEPLOYS + "/web",
            "application/json",
            {**DEPLOY, "spec": {**DEPLOY["spec"], "replicas": 5}},
        ),
        ("PATCH", DEPLOYS + "/web", "application/merge-patch+json", {"spec": {"replicas": 5}}),
        (
            "PATCH",
            DEPLOYS + "/web?fieldManager=m&force=true",
            "application/apply-patch+yaml",
            {**DEPLOY, "spec": {**DEPLOY["spec"], "replicas": 5}},
        ),
        (
            "PATCH",
            DEPLOYS + "/web/scale",
            "application/merge-patch+json",
            {"spec": {"replicas": 5}},
        ),
        ("PUT", DEPLOYS + "/web/status", "application/json", {**DEPLOY, "status": {"replicas": 9}}),
        ("DELETE", DEPLOYS + "/web", "application/json", None),
        ("DELETE", DEPLOYS + "?labelSelector=app%3Dweb", "application/json", None),
    ],
)
def test_dry_run_all_changes_nothing_on_every_write(fake_k8s, http, method, path, ctype, body):
    name = "web2" if method == "POST" else "web"
    if method != "POST":
        assert http.post(url(http, DEPLOYS), json=DEPLOY, timeout=30).status_code == 201
    fake_k8s.paused = True
    before = fake_k8s.get("Deployment", "web")
    rv = http.get(url(http, DEPLOYS), timeout=30).json()["metadata"]["resourceVersion"]
    if method == "POST":
        body = {**DEPLOY, "metadata": {"name": name}}
    sep = "&" if "?" in path else "?"
    r = http.request(
        method,
        url(http, f"{path}{sep}dryRun=All"),
        data=json.dumps(body) if body is not None else None,
        headers={"Content-Type": ctype},
        timeout=30,
    )
    assert r.status_code in (200, 201, 202), r.text
    assert fake_k8s.get("Deployment", "web") == before
    assert fake_k8s.get("Deployment", "web2") is None
    assert http.get(url(http, DEPLOYS), timeout=30).json()["metadata"]["resourceVersion"] == rv
    if method in ("PUT", "PATCH") and "status" not in path and "scale" not in path:
        out = r.json()
        assert out["spec"]["replicas"] == 5  # the answer shows the result...
        assert out["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    if method == "POST":
        assert "resourceVersion" not in r.json()["metadata"]


def test_dry_run_in_delete_options_body_and_bad_values(fake_k8s, http):
    http.post(url(http, DEPLOYS), json=DEPLOY, timeout=30)
    r = http.delete(url(http, DEPLOYS + "/web"), json={"dryRun": ["All"]}, timeout=30)
    assert r.status_code == 200
    assert fake_k8s.get("Deployment", "web") is not None
    r = http.post(url(http, DEPLOYS + "?dryRun=Some"), json=DEPLOY, timeout=30)
    assert r.status_code == 400 and r.json()["kind"] == "Status"


def test_protobuf_bodies_get_415_status(http):
    r = http.post(
        url(http, CM),
        data=b"k8s\x00\x0a\x0f",
        headers={"Content-Type": "application/vnd.kubernetes.protobuf"},
        timeout=30,
    )
    assert r.status_code == 415
    assert r.json()["kind"] == "Status" and r.json()["reason"] == "UnsupportedMediaType"


def test_unknown_paths_and_bad_bodies_are_json_statuses(http):
    for r in (
        http.get(url(http, "/apis/nope/v1/things"), timeout=30),
        http.post(url(http, CM), data=b"{not json", timeout=30),
    ):
        assert r.headers["Content-Type"].startswith("application/json")
        assert r.json()["kind"] == "Status" and r.json()["code"] == r.status_code >= 400


def test_health_endpoints_answer_without_credentials(fake_k8s, http):
    for path in ("/healthz", "/livez", "/readyz", "/readyz/ping"):
        r = requests.get(url(http, path), verify=http.verify, timeout=30)
        assert (r.status_code, r.text) == (200, "ok")
    text = requests.get(url(http, "/readyz?verbose"), verify=http.verify, timeout=30).text
    assert text.startswith("[+]ping ok") and text.rstrip().endswith("readyz check passed")


def test_openapi_v2_and_v3_come_from_the_1_35_schemas(http):
    v2 = http.get(url(http, "/openapi/v2"), timeout=60).json()
    assert v2["info"]["version"] == "v1.35.0"
    ports = v2["definitions"]["io.k8s.api.core.v1.Container"]["properties"]["ports"]
    assert ports["x-kubernetes-list-map-keys"] == ["containerPort", "protocol"]
    index = http.get(url(http, "/openapi/v3"), timeout=30).json()["paths"]
    assert {"api/v1", "apis/apps/v1", "apis/autoscaling/v2"} <= set(index)
    doc = http.get(url(http, index["apis/apps/v1"]["serverRelativeURL"]), timeout=30).json()
    patch = doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"]
    assert patch["x-kubernetes-group-version-kind"] == {
        "group": "apps",
        "version": "v1",
        "kind": "Deployment",
    }
    assert {"dryRun", "fieldManager", "fieldValidation", "force"} <= {
        p["name"] for p in patch["parameters"]
    }
    spec = doc["components"]["schemas"]["io.k8s.api.apps.v1.DeploymentSpec"]
    assert spec["properties"]["template"]["$ref"].startswith("#/components/schemas/")
    strategy = doc["components"]["schemas"]["io.k8s.api.apps.v1.RollingUpdateDeployment"]
    ref = strategy["properties"]["maxSurge"]["$ref"].split("/")[-1]
    assert doc["components"]["schemas"][ref] == {"type": "string", "format": "int-or-string"}


TABLE = "application/json;as=Table;g=meta.k8s.io;v=v1,application/json"


def test_tables_with_upstream_columns_and_categories(fake_k8s, http):
    http.post(url(http, DEPLOYS), json=DEPLOY, timeout=30)
    fake_k8s.wait_for(lambda: len(fake_k8s.list("Pod", "default")) == 2, 30, "pods")
    t = http.get(
        url(http, "/api/v1/namespaces/default/pods"), headers={"Accept": TABLE}, timeout=30
    ).json()
    assert t["kind"] == "Table"
    assert [c["name"] for c in t["columnDefinitions"]] == [
        "Name",
        "Ready",
        "Status",
        "Restarts",
        "Age",
        "IP",
        "Node",
        "Nominated Node",
        "Readiness Gates",
    ]
    assert [c["priority"] for c in t["columnDefinitions"]][4:6] == [0, 1]
    assert len(t["rows"]) == 2 and t["rows"][0]["object"]["kind"] == "PartialObjectMetadata"
    t = http.get(url(http, DEPLOYS + "/web"), headers={"Accept": TABLE}, timeout=30).json()
    assert [c["name"] for c in t["columnDefinitions"]][:5] == [
        "Name",
        "Ready",
        "Up-to-date",
        "Available",
        "Age",
    ]
    assert t["rows"][0]["cells"][0] == "web" and t["rows"][0]["cells"][1].endswith("/2")
    assert {c["type"] for c in t["columnDefinitions"]} == {"string"}  # as upstream types them
    for path, first in (
        ("/api/v1/namespaces", ["Name", "Status", "Age"]),
        ("/api/v1/nodes", ["Name", "Status", "Roles", "Age", "Version"]),
        ("/api/v1/namespaces/default/configmaps", ["Name", "Data", "Age"]),
        (
            "/apis/autoscaling/v2/namespaces/default/horizontalpodautoscalers",
            ["Name", "Reference", "Targets", "MinPods", "MaxPods", "Replicas", "Age"],
        ),
        (
            "/api/v1/namespaces/default/services",
            ["Name", "Type", "Cluster-IP", "External-IP", "Port(s)", "Age"],
        ),
        ("/api/v1/namespaces/default/events", ["Last Seen", "Type", "Reason", "Object"]),
    ):
        cols = http.get(url(http, path), headers={"Accept": TABLE}, timeout=30).json()
        assert [c["name"] for c in cols["columnDefinitions"]][: len(first)] == first, path
    core = http.get(url(http, "/api/v1"), timeout=30).json()["resources"]
    assert [r["name"] for r in core if "all" in r.get("categories", [])] == ["pods", "services"]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("labelSelector=a%20b", "unable to parse requirement: found 'b', expected: in, notin"),
        ("labelSelector=a%3Db%3Dc", "found '=', expected: ',' or 'end of string'"),
        ("labelSelector=x%20in%20y", "unable to parse requirement: found 'y' expected: '('"),
        ("fieldSelector=spec.foo%3D1", "field label not supported: spec.foo"),
        ("fieldSelector=nonsense", "invalid selector: 'nonsense'; can't understand 'nonsense'"),
    ],
)
def test_invalid_selectors_are_400(http, query, message):
    r = http.get(url(http, f"/api/v1/namespaces/default/pods?{query}"), timeout=30)
    assert r.status_code == 400
    assert r.json()["reason"] == "BadRequest" and message in r.json()["message"]


def test_valid_field_selectors_still_filter(fake_k8s, http):
    http.post(url(http, DEPLOYS), json=DEPLOY, timeout=30)
    pods = fake_k8s.wait_for(lambda: fake_k8s.list("Pod", "default"), 30, "pods")
    name = pods[0]["metadata"]["name"]
    r = http.get(
        url(http, f"/api/v1/namespaces/default/pods?fieldSelector=metadata.name%3D{name}"),
        timeout=30,
    )
    assert [p["metadata"]["name"] for p in r.json()["items"]] == [name]


def test_list_resource_version_semantics(fake_k8s, http):
    rv = int(http.get(url(http, CM), timeout=30).json()["metadata"]["resourceVersion"])
    r = http.get(
        url(http, f"{CM}?resourceVersion={rv + 1000}&resourceVersionMatch=NotOlderThan"), timeout=30
    )
    assert r.status_code == 504 and "Too large resource version" in r.json()["message"]
    r = http.get(url(http, f"{CM}?resourceVersionMatch=Exact"), timeout=30)
    assert r.status_code == 422
    assert (
        "resourceVersionMatch is forbidden unless resourceVersion is provided"
        in r.json()["message"]
    )
    r = http.get(url(http, f"{CM}?resourceVersion=0&resourceVersionMatch=NotOlderThan"), timeout=30)
    assert r.status_code == 200


def _events(r, n):
    out = []
    for line in r.iter_lines():
        if line:
            out.append(json.loads(line))
            if len(out) == n:
                break
    return out


def test_watch_from_a_resource_version_sees_later_changes_only(fake_k8s, http):
    fake_k8s.paused = True
    http.post(url(http, CM), json={"metadata": {"name": "a"}}, timeout=30)
    rv = http.get(url(http, CM), timeout=30).json()["metadata"]["resourceVersion"]
    http.post(url(http, CM), json={"metadata": {"name": "b", "labels": {"x": "1"}}}, timeout=30)
    http.patch(
        url(http, CM + "/b"),
        json={"metadata": {"labels": {"x": "2"}}},
        headers={"Content-Type": "application/merge-patch+json"},
        timeout=30,
    )
    http.delete(url(http, CM + "/a"), timeout=30)
    with http.get(
        url(http, f"{CM}?watch=1&resourceVersion={rv}&timeoutSeconds=5"), stream=True, timeout=30
    ) as r:
        got = [(e["type"], e["object"]["metadata"]["name"]) for e in _events(r, 3)]
    assert got == [("ADDED", "b"), ("MODIFIED", "b"), ("DELETED", "a")]
    # a label selector: b leaving the selection is a DELETED event for that watch
    with http.get(
        url(http, f"{CM}?watch=1&resourceVersion={rv}&labelSelector=x%3D1&timeoutSeconds=5"),
        stream=True,
        timeout=30,
    ) as r:
        got = [(e["type"], e["object"]["metadata"]["name"]) for e in _events(r, 2)]
    assert got == [("ADDED", "b"), ("DELETED", "b")]


def test_watch_without_resource_version_starts_with_the_current_state_and_ends(fake_k8s, http):
    fake_k8s.paused = True
    http.post(url(http, CM), json={"metadata": {"name": "a"}}, timeout=30)
    with http.get(url(http, f"{CM}?watch=true&timeoutSeconds=1"), stream=True, timeout=30) as r:
        events = [json.loads(line) for line in r.iter_lines() if line]  # ends by itself
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("ADDED", "a")]


def test_watch_too_old_resource_version_is_410_expired(fake_k8s, http):
    from fakes.kubernetes.resources import by_kind
    from fakes.kubernetes.store import EVENT_LOG_SIZE

    fake_k8s.paused = True
    http.post(url(http, CM), json={"metadata": {"name": "a"}}, timeout=30)
    first = fake_k8s.store.rv
    rt = by_kind("ConfigMap")
    with fake_k8s.store.lock:  # more changes than the store remembers
        for i in range(EVENT_LOG_SIZE + 5):
            cm = fake_k8s.store.require(rt, "default", "a")
            fake_k8s.store.replace(rt, {**cm, "data": {"i": str(i)}})
    r = http.get(url(http, f"{CM}?watch=1&resourceVersion={first}"), timeout=30)
    assert r.status_code == 200
    event = json.loads(r.text.splitlines()[0])
    assert event["type"] == "ERROR"
    assert event["object"]["code"] == 410 and event["object"]["reason"] == "Expired"
    assert event["object"]["message"].startswith(f"too old resource version: {first} (")
    recent = fake_k8s.store.rv - 10
    with http.get(
        url(http, f"{CM}?watch=1&resourceVersion={recent}&timeoutSeconds=1"),
        stream=True,
        timeout=30,
    ) as r:
        assert [e["type"] for e in _events(r, 10)] == ["MODIFIED"] * 10


def test_watch_bookmarks_and_initial_events_end(fake_k8s, http):
    fake_k8s.paused = True
    fake_k8s.bookmark_interval = 0.2
    http.post(url(http, CM), json={"metadata": {"name": "a"}}, timeout=30)
    q = (
        "watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan"
        "&allowWatchBookmarks=true&timeoutSeconds=5"
    )
    with http.get(url(http, f"{CM}?{q}"), stream=True, timeout=30) as r:
        events = _events(r, 3)
    assert [e["type"] for e in events] == ["ADDED", "BOOKMARK", "BOOKMARK"]
    assert events[1]["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}
    assert events[1]["object"]["kind"] == "ConfigMap"


def test_the_official_client_watch_follows_a_rollout(fake_k8s):
    api = config.new_client_from_config(config_file=str(fake_k8s.kubeconfig_path))
    with api:
        apps = client.AppsV1Api(api)
        apps.create_namespaced_deployment("default", DEPLOY)
        w = watch.Watch()
        for ev in w.stream(apps.list_namespaced_deployment, "default", timeout_seconds=60):
            if (ev["object"].status.ready_replicas or 0) == 2:
                w.stop()
                break
        else:
            pytest.fail("the watch ended before the rollout finished")
