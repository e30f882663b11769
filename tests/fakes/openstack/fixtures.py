"""pytest plugin: the ``fake_cloud`` fixture (registered from tests/conftest.py with
``pytest_plugins = ["fakes.openstack.fixtures"]``).

    def test_x(fake_cloud, tmp_path, monkeypatch):
        path = fake_cloud.clouds_yaml(tmp_path / "clouds.yaml")
        monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(path))
        monkeypatch.setenv("OS_CLOUD", "fake")
        ...
        assert fake_cloud.world.count() == {}
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import openstack
import pytest

from .server import FakeCloud


@pytest.fixture
def fake_cloud() -> Iterator[FakeCloud]:
    """A fresh fake OpenStack on 127.0.0.1 for one test: ``.url``, ``.world`` (state,
    ``count()``, ``resources()``, ``requests()``, ``settings``), ``.faults``,
    ``.clouds_yaml(path)``, ``.env(user=, auth=)``."""
    with FakeCloud() as cloud:
        yield cloud


@pytest.fixture
def no_ambient_openstack_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's own OS_* variables must never leak into (or out to) the fake: use it
    with ``pytestmark = pytest.mark.usefixtures("no_ambient_openstack_env")``."""
    for key in list(os.environ):
        if key.startswith("OS_"):
            monkeypatch.delenv(key)


@pytest.fixture
def conn(fake_cloud: FakeCloud, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """openstacksdk connected to ``fake_cloud`` from a clouds.yaml (application credential),
    as a user would connect."""
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(fake_cloud.clouds_yaml(tmp_path / "c.yaml")))
    connection = openstack.connect(cloud="fake")
    yield connection
    connection.close()
