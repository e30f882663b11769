"""What the deploy tests share: a Cluster on the fake's kubeconfig, and one deploy call whose
printed progress stays readable afterwards as `run.output`."""

from __future__ import annotations

import io

from fakes.kubernetes import FakeKubernetes
from rich.console import Console

from ggctl.manifests.apply import Cluster, deploy
from ggctl.manifests.render import render

IMAGE = "node-0:5000/ml-app:0123456789ab"


def cluster_on(fake: FakeKubernetes):
    """A Cluster on the fake's kubeconfig, closed after the test (use with `yield from`)."""
    c = Cluster.from_kubeconfig(fake.kubeconfig_path)
    yield c
    c.close()


def run(cluster: Cluster, strategy: str, image: str = IMAGE, namespace: str = "default", **kw):
    out = io.StringIO()
    kw.setdefault("timeout", 30)
    kw.setdefault("poll", 0.05)
    try:
        return deploy(
            cluster,
            render(strategy, image, namespace),
            namespace,
            # wide enough that no message the tests look for is wrapped
            console=Console(file=out, width=300),
            **kw,
        )
    finally:
        run.output = out.getvalue()  # type: ignore[attr-defined]
