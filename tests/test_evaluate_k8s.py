"""`ggctl evaluate`: the Kubernetes sampler against the fake API (tests/fakes/kubernetes), and
whole runs against the fake cluster plus the real service on loopback (live_server).

What the fake stands in for, and so is verified only against it: the API server's pod,
Deployment and HPA documents, metrics.k8s.io PodMetrics (usage follows an injected load
function), and the cluster's scaling. The service, the load generator, the request log, the
scores and the plots are real.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import free_port
from fakes.kubernetes import ApiError, FakeKubernetes
from fakes.kubernetes.resources import by_kind
from PIL import Image
from rich.console import Console

from ggctl.config import load_settings
from ggctl.evaluate.cluster_run import (
    EvaluateError,
    evaluation_profile,
    normalize_url,
    resolve_target,
    run_evaluation,
)
from ggctl.evaluate.k8s import (
    KubernetesSampler,
    KubernetesSamplerError,
    pod_counts,
    read_details,
    sum_resources,
)
from ggctl.evaluate.monitor import read_samples
from ggctl.evaluate.plots import COMPARE_PLOTS, RUN_PLOTS
from ggctl.evaluate.scoring import percentile, read_request_log
from ggctl.manifests.apply import Cluster, apply_object, deploy
from ggctl.manifests.deploy import run_deploy
from ggctl.manifests.render import render
from ggctl.state import StateDir

GI_KB = 2**30 / 1024  # one Gi in the course's "KB" (bytes / 1024)
IMAGE = "node-0:5000/ml-app:0123456789ab"


def quiet_console() -> Console:
    return Console(file=io.StringIO(), width=200)


def deploy_strategy(fake: FakeKubernetes, strategy: str, namespace: str = "default") -> None:
    c = Cluster.from_kubeconfig(fake.kubeconfig_path)
    try:
        deploy(
            c,
            render(strategy, IMAGE, namespace),
            namespace,
            console=quiet_console(),
            timeout=30,
            poll=0.05,
        )
    finally:
        c.close()


@pytest.fixture
def sampler(fake_k8s):
    s = KubernetesSampler.from_kubeconfig(fake_k8s.kubeconfig_path, "default")
    yield s
    s.close()


# --------------------------------------------------------------------------- pure rules


def pod(phase="Running", terminating=False, containers=()):
    meta = {"name": "p", "labels": {}}
    if terminating:
        meta["deletionTimestamp"] = "2025-01-01T00:00:00Z"
    return {"metadata": meta, "spec": {"containers": list(containers)}, "status": {"phase": phase}}


def container(requests=None, limits=None):
    return {
        "name": "c",
        "resources": {k: v for k, v in (("requests", requests), ("limits", limits)) if v},
    }


def test_only_running_pods_that_are_not_terminating_count():
    assert pod_counts(pod("Running"))
    assert not pod_counts(pod("Pending"))
    assert not pod_counts(pod("Running", terminating=True))
    assert not pod_counts(pod("Succeeded"))
    assert not pod_counts(pod("Failed"))


def test_resources_sum_every_container_with_kubernetes_quantities():
    pods = [
        pod(
            containers=[
                container({"cpu": "500m", "memory": "256Mi"}, {"cpu": "1", "memory": "512Mi"}),
                container({"cpu": "100m", "memory": "64Mi"}, {"cpu": "200m", "memory": "128Mi"}),
            ]
        ),
        pod(containers=[container({"cpu": "1", "memory": "2Gi"}, {"cpu": "2", "memory": "4Gi"})]),
    ]
    cpu_req, mem_req, cpu_lim, mem_lim = sum_resources(pods)
    assert cpu_req == pytest.approx(1.6)
    assert mem_req == pytest.approx(256 * 1024 + 64 * 1024 + 2 * GI_KB)
    assert cpu_lim == pytest.approx(3.2)
    assert mem_lim == pytest.approx(512 * 1024 + 128 * 1024 + 4 * GI_KB)


def test_a_missing_limit_makes_the_sum_unbounded_and_a_limit_defaults_the_request():
    only_limits = pod(containers=[container(None, {"cpu": "2", "memory": "1G"})])
    no_limits = pod(containers=[container({"cpu": "250m", "memory": "100M"})])
    cpu_req, mem_req, cpu_lim, mem_lim = sum_resources([only_limits, no_limits])
    assert cpu_req == pytest.approx(2.25)  # request defaults to the limit, as the API does
    assert mem_req == pytest.approx((10**9 + 10**8) / 1024)
    assert cpu_lim is None and mem_lim is None
    assert sum_resources([]) == (0.0, 0.0, 0.0, 0.0)


# --------------------------------------------------------------------------- sampler + fake


def test_sampler_sums_requests_limits_and_usage_of_the_app_pods(fake_k8s, sampler):
    deploy_strategy(fake_k8s, "lb")  # 5 replicas of cpu 1/2, memory 2Gi/4Gi
    fake_k8s.set_usage(lambda p, t: (0.25, 300 * 2**20))
    # metrics-server reports a pod after two scrapes (15-30 cluster seconds), and a
    # change of usage at its next scrape
    s = fake_k8s.wait_for(
        lambda: (x := sampler.sample()).cpu_use_core == pytest.approx(1.25) and x,
        what="pod metrics",
    )
    assert s.n_replica == 5
    assert s.cpu_req_core == pytest.approx(5.0)
    assert s.mem_req_KB == pytest.approx(5 * 2 * GI_KB)
    assert s.cpu_lim_core == pytest.approx(10.0)
    assert s.mem_lim_KB == pytest.approx(5 * 4 * GI_KB)
    assert s.cpu_use_core == pytest.approx(5 * 0.25)
    assert s.mem_use_KB == pytest.approx(5 * 300 * 1024)
    d = sampler.details[-1]
    assert (d.deployment_desired, d.deployment_ready, d.hpa_desired) == (5, 5, None)
    assert d.pods_with_metrics == 5 and d.metrics_error == ""
    assert sampler.strategies == {"lb"}


def test_a_new_pod_without_metrics_yet_makes_usage_unknown_not_a_partial_sum(fake_k8s, sampler):
    deploy_strategy(fake_k8s, "lb")
    fake_k8s.set_usage(lambda p, t: (0.25, 300 * 2**20))
    fake_k8s.wait_for(
        lambda: sampler.sample().cpu_use_core is not None, what="metrics of the 5 pods"
    )
    fake_k8s.paused = True  # from here the cluster moves only when the test says so
    fake_k8s.objects.set_scale(by_kind("Deployment"), "default", "ml-kube-app", 6, "test")
    for _ in range(200):
        fake_k8s.advance(0.5)
        if (
            len([p for p in fake_k8s.list("Pod", "default") if p["status"]["phase"] == "Running"])
            == 6
        ):
            break
    s = sampler.sample()  # the sixth pod has just started: metrics-server has no data yet
    assert s.n_replica == 6 and s.cpu_req_core == pytest.approx(6.0)
    assert s.cpu_use_core is None and s.mem_use_KB is None
    assert sampler.details[-1].pods_with_metrics == 5
    for _ in range(10):  # two scrapes later it has
        fake_k8s.advance(15)
    s = sampler.sample()
    assert s.cpu_use_core == pytest.approx(6 * 0.25)


def test_replicas_and_usage_follow_the_load_through_the_hpa(fake_k8s, sampler):
    deploy_strategy(fake_k8s, "hpa")
    fake_k8s.set_load(lambda t: 0.5)  # half a core of work on the single pod
    s = fake_k8s.wait_for(
        lambda: ((x := sampler.sample()).cpu_use_core or 0) > 0.4 and x,
        timeout=10,
        what="usage to follow the load",
    )
    assert s.n_replica == 1 and s.cpu_use_core == pytest.approx(0.5, abs=0.01)
    assert s.mem_req_KB == pytest.approx(2 * GI_KB)
    fake_k8s.set_load(lambda t: 3.0)  # 300 % of one pod's request: the HPA goes to 5
    s = fake_k8s.wait_for(
        lambda: (
            (x := sampler.sample()).n_replica == 5
            and sampler.details[-1].hpa_desired == 5
            and (x.cpu_use_core or 0) > 2.9
            and x
        ),
        timeout=20,
        what="scale-up to 5 pods",
    )
    assert s.mem_req_KB == pytest.approx(5 * 2 * GI_KB)
    assert s.cpu_use_core == pytest.approx(3.0, abs=0.05)  # 3 cores shared by 5 pods
    assert sampler.details[-1].hpa_current in (1, 5)


def test_pending_pods_are_not_counted(fake_k8s, sampler):
    fake_k8s.inject("unschedulable", image="ml-app")
    c = Cluster.from_kubeconfig(fake_k8s.kubeconfig_path)
    try:
        for obj in render("k8s", IMAGE, "default"):
            apply_object(c, obj)
    finally:
        c.close()
    fake_k8s.wait_for(lambda: fake_k8s.list("Pod", "default"), what="a pod")
    s = sampler.sample()
    assert s.n_replica == 0 and s.mem_req_KB == 0.0
    assert s.cpu_use_core == 0.0 and s.mem_use_KB == 0.0  # no pod: nothing used
    assert sampler.details[-1].pods_pending == 1


def test_metrics_not_available_yet_is_none_not_a_crash(fake_k8s, sampler, monkeypatch):
    deploy_strategy(fake_k8s, "k8s")
    empty = {
        "kind": "PodMetricsList",
        "apiVersion": "metrics.k8s.io/v1beta1",
        "metadata": {},
        "items": [],
    }
    monkeypatch.setattr(fake_k8s.metrics, "pods", lambda *a, **k: empty)
    s = sampler.sample()
    assert s.n_replica == 1 and s.mem_req_KB == pytest.approx(2 * GI_KB)
    assert s.cpu_use_core is None and s.mem_use_KB is None

    def unavailable(*a, **k):
        raise ApiError(
            503,
            "ServiceUnavailable",
            "the server is currently unable to handle the request (get pods.metrics.k8s.io)",
        )

    monkeypatch.setattr(fake_k8s.metrics, "pods", unavailable)
    s = sampler.sample()
    assert s.cpu_use_core is None and s.mem_use_KB is None and s.n_replica == 1
    assert "503" in sampler.details[-1].metrics_error


def test_unreachable_cluster_and_bad_kubeconfig_are_clear_errors(tmp_path):
    with pytest.raises(KubernetesSamplerError, match="cannot use the kubeconfig"):
        KubernetesSampler.from_kubeconfig(tmp_path / "missing")
    dead = FakeKubernetes()
    dead.start()
    path = dead.kubeconfig(tmp_path / "kc")
    dead.stop()  # its port now refuses connections
    s = KubernetesSampler.from_kubeconfig(path, request_timeout_s=2)
    try:
        with pytest.raises(KubernetesSamplerError, match="cannot reach the Kubernetes API"):
            s.check()
    finally:
        s.close()


# --------------------------------------------------------------------------- target


def settings_for(state: Path, **deploy_flags):
    return load_settings(None, {"state_dir": state, "quiet": True, "deploy": deploy_flags})


def test_url_comes_from_node0s_floating_ip_and_the_node_port(tmp_path):
    state = StateDir(tmp_path / "st")
    state.write(
        "deploy",
        {
            "strategy": "optimized",
            "namespace": "shop",
            "image": "i:1",
            "server": "https://127.0.0.1:16443",
            "kubeconfig": "",
        },
    )
    with pytest.raises(EvaluateError, match="floating IP") as err:
        resolve_target(settings_for(state.root))
    assert "--url" in (err.value.hint or "")
    state.write("provision", {"floating_ip": "129.114.25.10", "nodes": []})
    t = resolve_target(settings_for(state.root))
    assert (t.url, t.strategy, t.namespace) == ("http://129.114.25.10:32000", "optimized", "shop")
    t = resolve_target(settings_for(state.root), url="10.0.0.5:32000/", namespace="x")
    assert (t.url, t.url_source, t.namespace) == ("http://10.0.0.5:32000", "--url", "x")
    assert normalize_url("https://h:1/base/") == "https://h:1/base"
    with pytest.raises(EvaluateError, match="not a service URL"):
        normalize_url("ftp://h")


def test_time_compression_divides_the_challenge(tmp_path):
    p = evaluation_profile("challenge", speed=30, duration=20)
    assert p.speed == 30 and p.total_duration_s == pytest.approx(20)
    assert evaluation_profile("challenge").total_duration_s == pytest.approx(1800)


def ggctl(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GGCTL_", "KUBECONFIG"))}
    env["COLUMNS"] = "200"
    return subprocess.run(
        [sys.executable, "-m", "ggctl", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def test_no_deploy_state_and_no_url_is_a_clear_error(tmp_path):
    r = ggctl("--state-dir", str(tmp_path / "st"), "evaluate")
    assert r.returncode == 1
    assert "nothing to evaluate" in r.stderr and "ggctl deploy" in r.stderr
    assert "Traceback" not in r.stderr


def test_a_service_that_does_not_answer_is_a_clear_error(tmp_path):
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(EvaluateError, match="does not answer /readyz") as err:
        run_evaluation(
            settings_for(tmp_path / "st"), url=url, ready_timeout_s=1, console=quiet_console()
        )
    assert "ConnectionError" in err.value.message
    assert not (tmp_path / "st" / "runs").exists()  # nothing half-written


def test_accuracy_needs_both_data_and_model(tmp_path, live_server):
    with pytest.raises(EvaluateError, match="both --data"):
        run_evaluation(
            settings_for(tmp_path / "st"),
            url=live_server.base_url,
            data=tmp_path,
            console=quiet_console(),
        )


# --------------------------------------------------------------------------- whole runs

SPEED = 10.0
# 60 profile seconds (light, busy, light) compressed to 6 s: a sample every 0.5 s.
PROFILE = {
    "name": "short",
    "stages": [
        {"duration_s": 20, "users": 4, "max_delay_s": 2.0},
        {"duration_s": 20, "users": 8, "max_delay_s": 0.5},
        {"duration_s": 20, "users": 4, "max_delay_s": 2.0},
    ],
}
PROFILE_S = 60.0


@pytest.fixture(scope="module")
def runs(tmp_path_factory, live_server, demo_model):
    """Two evaluations of the real service while the fake cluster runs `hpa` (through the
    CLI), then `k8s` (through the Python API, with accuracy on a tiny Food-11 folder)."""
    tmp = tmp_path_factory.mktemp("evaluate")
    state = tmp / "state"
    profile_file = tmp / "short.yaml"
    profile_file.write_text(json.dumps(PROFILE))
    food = tmp / "food"
    food.mkdir()
    for c in range(11):
        Image.new("RGB", (64, 48), (20 * c, 100, 200 - 15 * c)).save(food / f"{c}_0.jpg")
    with FakeKubernetes(speed=50.0) as fake:
        kubeconfig = fake.kubeconfig(tmp / "kubeconfig")
        settings = settings_for(state, kubeconfig=kubeconfig, image=IMAGE, strategy="hpa")
        run_deploy(settings, console=quiet_console(), poll=0.05)
        fake.set_load(lambda t: 1.5)  # the HPA scales to 4 pods (1.5 cores at 40 % of 1)
        fake.wait_for(
            lambda: fake.get("Deployment", "ml-app-hpa")["status"].get("readyReplicas") == 4,
            timeout=20,
            what="hpa at 4 ready pods",
        )
        cli = ggctl(
            "--state-dir",
            str(state),
            "evaluate",
            "--url",
            live_server.base_url,
            "--profile",
            str(profile_file),
            "--speed",
            str(SPEED),
            "--json",
            str(tmp / "hpa.json"),
            timeout=90,
        )
        assert cli.returncode == 0, cli.stderr + cli.stdout
        settings = settings_for(state, kubeconfig=kubeconfig, image=IMAGE, strategy="k8s")
        run_deploy(settings, console=quiet_console(), poll=0.05)
        api = run_evaluation(
            settings_for(state),
            url=live_server.base_url,
            profile=profile_file,
            speed=SPEED,
            data=food,
            model=demo_model,
            console=quiet_console(),
        )
    dirs = sorted((state / "runs").iterdir())
    hpa_dir = next(d for d in dirs if d.name.endswith("evaluate-hpa"))
    return {"cli": cli, "hpa": hpa_dir, "k8s": api.run_dir, "api": api, "tmp": tmp}


def test_samples_every_5_s_of_profile_time(runs):
    for key in ("hpa", "k8s"):
        samples = read_samples(runs[key] / "samples.csv")
        # The sampler runs from the first request until the load generator has finished, which
        # on a busy machine takes longer than the profile: count against the load's real span,
        # not against the profile's nominal length.
        starts = [r.start for r in read_request_log(runs[key] / "requests.csv")]
        assert len(samples) >= PROFILE_S / 5 - 1, len(samples)
        assert samples[0].time <= min(starts) + 5 / SPEED + 0.5
        assert samples[-1].time >= max(starts) - 5 / SPEED - 0.5
        gaps = [b.time - a.time for a, b in itertools.pairwise(samples)]
        assert statistics.median(gaps) == pytest.approx(5 / SPEED, abs=0.1)
        assert len(read_details(runs[key] / "cluster.csv")) == len(samples)
    hpa = read_samples(runs["hpa"] / "samples.csv")
    assert {s.n_replica for s in hpa} == {4}
    assert all(s.mem_req_KB == pytest.approx(4 * 2 * GI_KB) for s in hpa)
    assert all(s.cpu_use_core is not None and s.cpu_use_core > 1 for s in hpa)
    k8s = read_samples(runs["k8s"] / "samples.csv")
    assert {s.n_replica for s in k8s} == {1}
    assert all(s.mem_req_KB == pytest.approx(2 * GI_KB) for s in k8s)


def test_scores_are_computed_exactly_per_spec(runs):
    for key in ("hpa", "k8s"):
        results = json.loads((runs[key] / "results.json").read_text())
        scores = results["scores"]
        log = read_request_log(runs[key] / "requests.csv")
        ok = [r.latency_ms for r in log if r.ok]
        assert ok and scores["successes"] == len(ok)
        assert scores["failures"] == len(log) - len(ok)
        # transaction rate: successes over the profile's duration as run (6 s)
        assert scores["duration_s"] == pytest.approx(PROFILE_S / SPEED)
        assert scores["transaction_rate"] == pytest.approx(len(ok) / (PROFILE_S / SPEED))
        # response time: the mean over every successful request, weighted by count
        weighted = sum(ok) / len(ok)
        assert scores["mean_response_ms"] == pytest.approx(weighted, rel=1e-12)
        per_stage = [[r.latency_ms for r in log if r.ok and r.stage == i] for i in range(3)]
        mean_of_means = statistics.mean(statistics.mean(s) for s in per_stage)
        if abs(mean_of_means - weighted) > 1e-6 * weighted:  # the two differ: which was used?
            assert scores["mean_response_ms"] != pytest.approx(mean_of_means, rel=1e-9)
        assert scores["p95_ms"] == pytest.approx(percentile(sorted(ok), 95))
        # memory: the means of the samples
        samples = read_samples(runs[key] / "samples.csv")
        assert scores["mean_mem_requested_KB"] == pytest.approx(
            statistics.mean(s.mem_req_KB for s in samples)
        )
        assert scores["mean_mem_used_KB"] == pytest.approx(
            statistics.mean(s.mem_use_KB for s in samples)
        )
        assert scores["samples"] == len(samples)
        assert results["kind"] == "evaluate" and results["strategy"] == key
        assert results["sampler_errors"] == 0
    assert json.loads((runs["tmp"] / "hpa.json").read_text()) == json.loads(
        (runs["hpa"] / "results.json").read_text()
    )


def test_the_cli_prints_the_scores(runs):
    out = runs["cli"].stdout
    for row in (
        "memory requested",
        "memory used",
        "transaction rate",
        "mean response time",
        "p50 / p95 / p99",
        "failures",
    ):
        assert row in out
    assert str(runs["hpa"]) in out.replace("\n", "")


def test_accuracy_of_the_model_file_is_recorded(runs):
    acc = json.loads((runs["k8s"] / "results.json").read_text())["accuracy"]
    assert acc["images"] == 11 and 0 <= acc["correct"] <= 11
    assert acc["accuracy"] == pytest.approx(acc["correct"] / 11)
    assert acc["model_name"] == acc["served_model_name"]  # the same demo model: no warning
    assert runs["api"].warnings == []


def assert_png(path: Path) -> None:
    assert path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", path
    with Image.open(path) as img:
        img.verify()
    with Image.open(path) as img:
        assert img.size[0] > 500 and img.size[1] > 300


def test_each_run_has_its_plots(runs):
    for key in ("hpa", "k8s"):
        for name in RUN_PLOTS:
            assert_png(runs[key] / f"{name}.png")


def test_report_puts_two_runs_side_by_side(runs, tmp_path):
    r = ggctl(
        "--state-dir",
        str(tmp_path / "st"),
        "report",
        str(runs["hpa"]),
        str(runs["k8s"]),
        "--out",
        str(tmp_path / "report"),
    )
    assert r.returncode == 0, r.stderr
    header = next(line for line in r.stdout.splitlines() if "hpa" in line and "k8s" in line)
    assert header.index("hpa") < header.index("k8s")
    assert "mean response time" in r.stdout and "accuracy" in r.stdout
    for name in COMPARE_PLOTS:
        assert_png(tmp_path / "report" / f"{name}.png")
    with (tmp_path / "report" / "report.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [row["run"] for row in rows] == ["hpa", "k8s"]
    hpa = json.loads((runs["hpa"] / "results.json").read_text())["scores"]
    assert float(rows[0]["transaction rate"]) == pytest.approx(hpa["transaction_rate"])


# --------------------------------------------------------------------------- issue 13


def test_requests_are_counted_as_the_scheduler_counts_them(fake_k8s, sampler):
    from kubernetes.utils import parse_quantity

    from ggctl.manifests.strategy import OPT_RESOURCES

    deploy_strategy(fake_k8s, "optimized")  # one pod with OPT_RESOURCES' requests
    pod = fake_k8s.list("Pod", "default")[0]["metadata"]["name"]
    fake_k8s.paused = True  # no kubelet: the deleted pod stays, terminating, as in its grace
    from kubernetes import client

    client.CoreV1Api(sampler.api_client).delete_namespaced_pod(pod, "default")
    s = sampler.sample()
    d = sampler.details[-1]
    assert d.pods_terminating == 1 and d.pods_reserving == 1
    assert s.n_replica == 0  # it serves no more
    # but holds its request on the node
    assert s.mem_req_KB == pytest.approx(float(parse_quantity(OPT_RESOURCES.memory_request)) / 1024)
    assert s.cpu_req_core == pytest.approx(float(parse_quantity(OPT_RESOURCES.cpu_request)))
    assert d.mem_req_running_KB == 0.0 and d.cpu_req_running_core == 0.0


def test_details_written_before_the_new_columns_still_read(tmp_path):
    old = tmp_path / "cluster.csv"
    old.write_text(
        "time,pods_counted,pods_pending,pods_terminating,pods_with_metrics,"
        "deployment_desired,deployment_ready,hpa_desired,hpa_current,metrics_error\n"
        "1.0,1,0,0,1,1,1,,,\n"
    )
    (d,) = read_details(old)
    assert d.pods_counted == 1 and d.pods_reserving == 0


@pytest.mark.parametrize(
    ("code", "fault"),
    [
        (
            404,
            {"reason": "NotFound", "message": "the server could not find the requested resource"},
        ),
        (503, {"text": "service unavailable\n"}),
    ],
)
def test_evaluate_without_a_metrics_api_says_so_and_that_the_hpa_cannot_scale(
    tmp_path, live_server, code, fault
):
    profile = tmp_path / "p.yaml"
    profile.write_text(
        json.dumps({"name": "tiny", "stages": [{"duration_s": 10, "users": 1, "max_delay_s": 1}]})
    )
    with FakeKubernetes(speed=50.0) as fake:
        kubeconfig = fake.kubeconfig(tmp_path / "kubeconfig")
        settings = settings_for(tmp_path / "st", kubeconfig=kubeconfig, image=IMAGE)
        run_deploy(settings, console=quiet_console(), poll=0.05)  # optimized: an HPA
        fake.fail_http(code, path="/apis/metrics.k8s.io/", **fault)
        out = io.StringIO()
        r = run_evaluation(
            load_settings(None, {"state_dir": tmp_path / "st", "quiet": False}),
            url=live_server.base_url,
            profile=profile,
            speed=10.0,
            console=Console(file=out, width=400),
        )
    (warning,) = [w for w in r.warnings if "metrics API" in w]
    assert f"HTTP {code}" in warning and "cannot scale" in warning
    assert "HorizontalPodAutoscaler" in warning and "fixed number of pods" in warning
    assert warning in " ".join(out.getvalue().split())
    results = json.loads(r.files["results"].read_text())
    assert warning in results["warnings"]
    assert results["metrics_api"]["available"] is False
    assert f"HTTP {code}" in results["metrics_api"]["last_error"]
