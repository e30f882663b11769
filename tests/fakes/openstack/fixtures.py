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

from collections.abc import Iterator

import pytest

from .server import FakeCloud


@pytest.fixture
def fake_cloud() -> Iterator[FakeCloud]:
    """A fresh fake OpenStack on 127.0.0.1 for one test: ``.url``, ``.world`` (state,
    ``count()``, ``resources()``, ``requests()``, ``settings``), ``.faults``,
    ``.clouds_yaml(path)``, ``.env(user=, auth=)``."""
    with FakeCloud() as cloud:
        yield cloud
