"""How the service sizes its threads: the pod's CPU quota, then the measured layout rule."""

import pytest

from ggctl.app.cpus import cgroup_cpu_limit
from ggctl.app.inference import thread_layout


@pytest.mark.parametrize(
    ("cpus", "expected"),
    [(1, (1, 1)), (2, (2, 1)), (3, (2, 1)), (4, (2, 2)), (8, (2, 4))],
)
def test_auto_layout(cpus, expected):
    assert thread_layout(0, 0, cpus) == expected


def test_explicit_values_win():
    assert thread_layout(1, 0, 2) == (1, 2)
    assert thread_layout(1, 3, 2) == (1, 3)
    assert thread_layout(4, 0, 2) == (4, 1)


def test_cgroup_v2_quota(tmp_path):
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert cgroup_cpu_limit(tmp_path) == 1.5


def test_cgroup_v2_unlimited(tmp_path):
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert cgroup_cpu_limit(tmp_path) is None


def test_cgroup_v1_quota(tmp_path):
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("200000\n")
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert cgroup_cpu_limit(tmp_path) == 2.0


def test_no_cgroup_files(tmp_path):
    assert cgroup_cpu_limit(tmp_path) is None
