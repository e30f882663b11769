"""fieldValidation on the fake Kubernetes API (issue 15, item 9): unknown fields are a
`Warning` header by default (Warn), a 400 BadRequest "strict decoding error" with Strict,
dropped silently with Ignore; invalid values stay 422 Invalid whatever the mode. Driven by
the kubernetes client and by the real kubectl (which sends fieldValidation=Strict for
--validate=strict, its default)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import textwrap

import pytest
from test_fake_k8s_api import http, url  # noqa: F401  (the TLS session fixture)

CM = "/api/v1/namespaces/default/configmaps"


def cm(name: str, **extra) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": extra}


def test_unknown_fields_warn_strict_ignore(http) -> None:  # noqa: F811
    # (The generated kubernetes client refuses unknown fields before sending them, so the
    # requests go out raw, as kubectl and client-go send them.)
    body = cm("warned") | {"bogus": 1}
    body["metadata"]["colour"] = "red"
    # default: Warn -> created, unknown fields dropped, one Warning header per field
    r = http.post(url(http, CM), json=body, timeout=30)
    assert r.status_code == 201
    assert sorted(r.raw.headers.getlist("Warning")) == [
        '299 - "unknown field \\"bogus\\""',
        '299 - "unknown field \\"metadata.colour\\""',
    ]
    stored = http.get(url(http, CM + "/warned"), timeout=30).json()
    assert "bogus" not in stored and "colour" not in stored["metadata"]

    r = http.post(
        url(http, CM + "?fieldValidation=Strict"), json=cm("s") | {"bogus": 1}, timeout=30
    )
    assert r.status_code == 400 and r.json()["reason"] == "BadRequest"
    assert r.json()["message"] == (
        'ConfigMap in version "v1" cannot be handled as a ConfigMap: strict decoding error: '
        'unknown field "bogus"'
    )
    assert http.get(url(http, CM + "/s"), timeout=30).status_code == 404

    r = http.post(
        url(http, CM + "?fieldValidation=Ignore"), json=cm("i") | {"bogus": 1}, timeout=30
    )
    assert r.status_code == 201 and "Warning" not in r.headers

    # merge patches are checked too; nested paths are named as the strict decoder names them
    r = http.patch(
        url(http, CM + "/warned?fieldValidation=Strict"),
        data=json.dumps({"metadata": {"labelz": {"a": "b"}}}),
        headers={"Content-Type": "application/merge-patch+json"},
        timeout=30,
    )
    assert r.status_code == 400 and 'unknown field "metadata.labelz"' in r.json()["message"]
    dep = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "d"},
        "spec": {
            "selector": {"matchLabels": {"app": "d"}},
            "template": {
                "metadata": {"labels": {"app": "d"}},
                "spec": {"containers": [{"name": "c", "image": "i", "imagePullPolcy": "x"}]},
            },
        },
    }
    r = http.post(
        url(http, "/apis/apps/v1/namespaces/default/deployments?fieldValidation=Strict"),
        json=dep,
        timeout=30,
    )
    assert r.status_code == 400
    assert 'unknown field "spec.template.spec.containers[0].imagePullPolcy"' in r.json()["message"]

    # an invalid value is still 422 Invalid, in every mode; a bad mode is 400
    bad = cm("bad")
    bad["data"] = {"k": 5}
    for mode in ("Strict", "Warn", "Ignore"):
        r = http.post(url(http, f"{CM}?fieldValidation={mode}"), json=bad, timeout=30)
        assert r.status_code == 422 and r.json()["reason"] == "Invalid"
    r = http.post(url(http, f"{CM}?fieldValidation=Loud"), json=cm("x"), timeout=30)
    assert r.status_code == 400


KUBECTL = shutil.which("kubectl")


@pytest.mark.conformance
@pytest.mark.skipif(KUBECTL is None and not os.environ.get("CI"), reason="kubectl not installed")
def test_kubectl_validate_strict_and_warn(fake_k8s, tmp_path) -> None:
    path = tmp_path / "cm.yaml"
    path.write_text(
        textwrap.dedent(
            """\
            apiVersion: v1
            kind: ConfigMap
            metadata: {name: typo, namespace: default}
            data: {a: b}
            bogus: 1
            """
        )
    )
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path / "home")}

    def kubectl(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [KUBECTL or "kubectl", "--kubeconfig", str(fake_k8s.kubeconfig_path), *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )

    strict = kubectl("apply", "--validate=strict", "-f", str(path))  # POST ?fieldValidation=
    assert strict.returncode != 0
    assert 'strict decoding error: unknown field "bogus"' in strict.stderr
    warn = kubectl("apply", "--validate=warn", "-f", str(path))
    assert warn.returncode == 0, warn.stderr
    assert 'unknown field "bogus"' in warn.stderr  # kubectl prints the Warning header
    # server-side apply refuses unknown fields whatever --validate says
    ssa = kubectl("apply", "--server-side", "--validate=false", "-f", str(path))
    assert ssa.returncode != 0
    assert ".bogus: field not declared in schema" in ssa.stderr
