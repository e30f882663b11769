"""A fake Kubernetes API server for tests: the real, unpatched `kubernetes` client talks to it
over HTTPS on 127.0.0.1 (a generated CA) through an ordinary kubeconfig.

    from fakes.kubernetes import FakeKubernetes          # under pytest
    with FakeKubernetes(speed=50) as k8s:
        k8s.kubeconfig(tmp_path / "kubeconfig")
        k8s.inject("crash-loop", image=":broken")
        k8s.set_load(lambda t: 2.0 if t > 60 else 0.1)

Modules: resources (what is served), discovery, store (objects, selectors, events),
fields (managedFields and server-side apply), objects (REST verbs, defaults, validation),
controllers (scheduler, kubelet, Deployment/ReplicaSet/GC/HPA), metrics (metrics.k8s.io),
server (HTTP + the FakeKubernetes handle), fixtures (pytest), __main__ (standalone),
selectors, tables (kubectl's Table output), openapi (/openapi/v2, v3), tls, apierror.
README.md: which upstream (1.35) behaviour each part follows.
"""

from .controllers import FAULTS, Fault, Timings
from .server import FakeKubernetes
from .store import ApiError

__all__ = ["FAULTS", "ApiError", "FakeKubernetes", "Fault", "Timings"]
