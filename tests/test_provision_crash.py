"""A crash at every mutating step of reserve, then teardown → nothing left, and a new
reserve completes. The steps are learnt from a clean run, so new steps are covered too."""

from __future__ import annotations

import re

import pytest
from cloud_helpers import FULL, clean_os_env, held, mutations, quiet, settings, use_env
from fakes.openstack.server import FakeCloud

from ggctl.provision.reserve import reserve
from ggctl.provision.teardown import teardown


def _steps() -> list[tuple[str, str]]:
    """(method, path regex) of each mutating call of a clean reserve, ids made generic."""
    with FakeCloud() as fake, pytest.MonkeyPatch.context() as mp:
        import tempfile
        from pathlib import Path

        tmp = Path(tempfile.mkdtemp())
        clean_os_env(mp, tmp)
        use_env(mp, fake, "alice")
        reserve(settings(tmp, "alice"), dry_run=False, console=quiet())
        calls = mutations(fake)
    steps = []
    for call in calls:
        method, path = call.split(" ", 1)
        parts = [
            "[^/]+" if re.fullmatch(r"[0-9a-f-]{32,36}", p) else re.escape(p)
            for p in path.split("/")
        ]
        steps.append((method, "/".join(parts) + "$"))
    return steps


STEPS = _steps()
COUNTS: dict[tuple[str, str], int] = {}
CASES = []
for method, path in STEPS:
    COUNTS[(method, path)] = COUNTS.get((method, path), 0) + 1
    CASES.append((method, path, COUNTS[(method, path)]))


# Every step is refused once (500, no retries: the "crash"); each kind of call also once
# done-but-reply-lost (the connection drops after the cloud acted), the nastier case.
MATRIX = [(*case, False) for case in CASES] + [(*case, True) for case in CASES if case[2] == 1]


@pytest.mark.parametrize(
    "method,path,nth,lost_reply",
    MATRIX,
    ids=[
        f"{i:02d}-{m}-{p[:40]}-{'reply-lost' if lost else 'refused'}"
        for i, (m, p, _, lost) in enumerate(MATRIX)
    ],
)
def test_crash_at_each_step_then_teardown_then_reserve(
    fake_cloud, monkeypatch, tmp_path, method, path, nth, lost_reply
):
    clean_os_env(monkeypatch, tmp_path)
    use_env(monkeypatch, fake_cloud, "alice")
    s = settings(tmp_path, "alice", retries=0)
    if lost_reply:
        rule = fake_cloud.faults.fail(method, path, nth=nth, drop=True, after=True)
    else:
        rule = fake_cloud.faults.fail(method, path, nth=nth, status=500)
    with pytest.raises(Exception):  # noqa: B017 - any failure is the "crash"
        reserve(s, dry_run=False, console=quiet())
    assert rule.fired == 1
    fake_cloud.faults.clear()

    td = teardown(s, dry_run=False, console=quiet())
    assert td.leaks == {}
    assert held(fake_cloud) == {}

    reserve(s, dry_run=False, console=quiet())
    assert held(fake_cloud) == FULL
