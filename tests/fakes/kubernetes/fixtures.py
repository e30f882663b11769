"""pytest fixtures for the fake Kubernetes API (registered in tests/conftest.py).

fake_k8s   a running FakeKubernetes (cluster time 50x wall time, HPA sync every 15
           cluster seconds), with .url, .kubeconfig(path), .store, .inject(...),
           .set_load(...); `fake_k8s.kubeconfig_path` is already written to tmp_path.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .server import FakeKubernetes


@pytest.fixture
def fake_k8s(tmp_path: Path) -> Iterator[FakeKubernetes]:
    with FakeKubernetes(speed=50.0) as fake:
        fake.kubeconfig_path = fake.kubeconfig(tmp_path / "kubeconfig")  # type: ignore[attr-defined]
        yield fake
