"""Errors for people (issue 13): every failure of the outside world reaches the user as one
message with the server's own text and a next step, never a traceback; `-v` shows the
traceback and <state dir>/errors.log keeps it. Outside text is printed as text, never read
as rich markup. Driven through `ggctl.cli.main` against the fake API (injected answers)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from fakes.kubernetes import FakeKubernetes
from rich.console import Console

from ggctl.cluster.events import ProgressModel, failure_report
from ggctl.cluster.run import ClusterError
from ggctl.errors import report

IMAGE = "node-0:5000/ml-app:0123456789ab"


def cli(capsys, *args: str) -> tuple[int, str, str]:
    from ggctl.cli import main

    with pytest.raises(SystemExit) as exc:
        main(list(args))
    out, err = capsys.readouterr()
    # rich wraps at the terminal's width, at a space: undo it to compare texts
    return int(exc.value.code or 0), out, " ".join(err.split())


def deploy_args(state: Path, fake: FakeKubernetes, *extra: str) -> list[str]:
    return [
        "--state-dir",
        str(state),
        *extra,
        "deploy",
        "--kubeconfig",
        str(fake.kubeconfig_path),
        "--image",
        IMAGE,
        "--strategy",
        "k8s",
        "--timeout",
        "30",
    ]


# 23 -------------------------------------------------------------------------------------


def test_cluster_texts_are_printed_as_they_are(fake_k8s, tmp_path, capsys):
    fake_k8s.inject(
        "crash-loop",
        image=":broken",
        log="[2025-01-01 00:00:00] GET [/healthz] 500\nKeyError: [ml-app]\n",
    )
    code, _out, err = cli(
        capsys,
        "--state-dir",
        str(tmp_path / "s"),
        "deploy",
        "--kubeconfig",
        str(fake_k8s.kubeconfig_path),
        "--image",
        "node-0:5000/ml-app:broken",
        "--strategy",
        "k8s",
    )
    assert code == 1
    assert "GET [/healthz] 500" in err and "KeyError: [ml-app]" in err
    assert "Traceback" not in err


def test_an_unready_pod_names_its_container(fake_k8s, tmp_path, capsys):
    fake_k8s.inject("never-ready", image="ml-app")
    args = deploy_args(tmp_path / "s", fake_k8s)
    args[args.index("--timeout") + 1] = "2"
    code, _out, err = cli(capsys, *args)
    assert code == 1
    assert "containers with unready status: [ml-kube-app]" in err


def test_an_ansible_failure_names_its_role_and_task():
    model = ProgressModel()
    model.feed({"event": "playbook_on_task_start", "event_data": {"task": "install", "role": "x"}})
    model.feed(
        {
            "event": "runner_on_failed",
            "event_data": {
                "host": "node-1",
                "task": "Install kubelet, kubeadm, kubectl",
                "role": "kube_packages",
                "res": {"msg": "No package matching 'kubelet' is available [/etc/apt]"},
            },
        }
    )
    out = io.StringIO()
    code = report(ClusterError(failure_report(model)), Console(file=out, width=300))
    assert code == 1
    text = out.getvalue()
    assert "node-1: failed in [kube_packages : Install kubelet, kubeadm, kubectl]" in text
    assert "is available [/etc/apt]" in text


# errors for people ----------------------------------------------------------------------

FORBIDDEN = (
    'namespaces "default" is forbidden: User "system:serviceaccount:default:ci" cannot get '
    'resource "namespaces" in API group "" in the namespace "default"'
)
CASES = [
    (401, "Unauthorized", "Unauthorized", "credentials"),
    (403, "Forbidden", FORBIDDEN, "RBAC"),
    (404, "NotFound", "the server could not find the requested resource", "namespace"),
    (409, "Conflict", 'Operation cannot be fulfilled on namespaces "default"', "again"),
    (422, "Invalid", 'Namespace "default" is invalid: metadata.name: Invalid value', "invalid"),
    (500, "InternalError", "Internal error occurred: etcdserver: request timed out", "readyz"),
    (503, "ServiceUnavailable", "the server is currently unable to handle the request", "readyz"),
]


@pytest.mark.parametrize(("code", "reason", "message", "hint"), CASES)
def test_every_api_answer_is_one_message_with_the_servers_text(
    fake_k8s, tmp_path, capsys, code, reason, message, hint
):
    fake_k8s.fail_http(code, reason, message, path="/api/v1/namespaces/default", method="GET")
    state = tmp_path / "s"
    rc, _out, err = cli(capsys, *deploy_args(state, fake_k8s))
    assert rc == 1
    assert "Traceback" not in err
    assert f"HTTP {code}" in err and message in err
    assert "hint:" in err and hint in err
    log = (state / "errors.log").read_text()
    assert "Traceback" in log and "ApiException" in log
    rc, _out, err = cli(capsys, *deploy_args(state, fake_k8s, "-v"))
    assert rc == 1 and "Traceback" in err and message in err


def test_a_refused_connection_is_one_message(tmp_path, capsys):
    dead = FakeKubernetes().start()
    dead.kubeconfig_path = dead.kubeconfig(tmp_path / "kc")  # type: ignore[attr-defined]
    dead.stop()
    rc, _out, err = cli(capsys, *deploy_args(tmp_path / "s", dead))
    assert rc == 1 and "Traceback" not in err
    assert "cannot reach the Kubernetes API" in err and "Connection refused" in err


def test_a_failure_during_the_rollout_is_one_message(fake_k8s, tmp_path, capsys):
    # the Deployment applies, then every read of its ReplicaSets fails
    fake_k8s.fail_http(
        500, message="Internal error occurred: etcd leader changed", path="/replicasets"
    )
    rc, _out, err = cli(capsys, *deploy_args(tmp_path / "s", fake_k8s))
    assert rc == 1 and "Traceback" not in err
    assert "waiting for the rollout of Deployment ml-kube-app" in err
    assert "etcd leader changed" in err


@pytest.mark.parametrize(("code", "reason", "message", "hint"), CASES[:2] + CASES[-2:])
def test_evaluate_reports_api_answers_in_one_message(
    fake_k8s, live_server, tmp_path, capsys, code, reason, message, hint
):
    fake_k8s.fail_http(code, reason, message, path="/pods", method="GET")
    state = tmp_path / "s"
    rc, _out, err = cli(
        capsys,
        "--state-dir",
        str(state),
        "evaluate",
        "--url",
        live_server.base_url,
        "--kubeconfig",
        str(fake_k8s.kubeconfig_path),
        "--profile",
        "smoke",
    )
    assert rc == 1 and "Traceback" not in err
    assert "cannot sample the pods in namespace 'default'" in err
    assert f"HTTP {code}" in err and message in err and hint in err
    assert "Traceback" in (state / "errors.log").read_text()


def test_evaluate_against_a_hung_api_server_is_one_message(tmp_path, live_server, capsys):
    with FakeKubernetes() as fake:
        kc = fake.kubeconfig(tmp_path / "kc")
        fake.fail_http(code=0, delay_s=30, path="/pods")
        from ggctl.evaluate.k8s import KubernetesSampler, KubernetesSamplerError

        sampler = KubernetesSampler.from_kubeconfig(kc, request_timeout_s=1)
        try:
            with pytest.raises(KubernetesSamplerError) as err:
                sampler.check()
        finally:
            sampler.close()
    assert "cannot reach the Kubernetes API" in err.value.message
    assert "timed out" in err.value.message.lower()


def _real_failures(tmp_path):
    """Exceptions as the libraries really raise them (no stand-ins)."""
    import socket
    import subprocess

    import requests

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    try:
        requests.get(f"http://127.0.0.1:{port}/v2/", timeout=5)
    except requests.RequestException as exc:
        yield exc, f"GET http://127.0.0.1:{port}/v2/ failed", "Connection refused"
    try:
        subprocess.run(
            ["sh", "-c", "echo 'ERROR: failed to push [node-0:5000/ml-app]' >&2; exit 3"],
            check=True,
            capture_output=True,
            text=True,
        )
    except subprocess.CalledProcessError as exc:
        yield exc, "exited with status 3", "failed to push [node-0:5000/ml-app]"
    try:
        subprocess.run([str(tmp_path / "no-such-buildctl")], check=True)
    except FileNotFoundError as exc:
        yield exc, "no-such-buildctl", "No such file"


def test_failures_of_the_tools_behind_cluster_and_build_are_one_message(tmp_path):
    found = list(_real_failures(tmp_path))
    assert len(found) == 3
    for exc, what, text in found:
        out = io.StringIO()
        code = report(exc, Console(file=out, width=500), state_dir=tmp_path / "s", argv=["build"])
        printed = " ".join(out.getvalue().split())
        assert code == 1 and "Traceback" not in printed, printed
        assert what in printed and text in printed and "hint:" in printed
        assert "errors.log" in printed
    assert (tmp_path / "s" / "errors.log").read_text().count(" ggctl build\n") == 3


def test_a_bug_in_ggctl_is_not_dressed_up(tmp_path):
    out = io.StringIO()
    assert report(KeyError("x"), Console(file=out), state_dir=tmp_path) is None
    assert out.getvalue() == ""  # main() re-raises it with its traceback
    assert "KeyError" in (tmp_path / "errors.log").read_text()
