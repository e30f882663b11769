"""The real-OpenStack tier: one stack for the whole session (see stack.py).

Skipped with the reason printed when the machine cannot run it (Debian's mariadb-server
or rabbitmq-server missing, or not root-free ports...), except under CI=true, where a
skip would hide that the tier did not run: there it fails.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

from openstack_real import stack as stack_mod


def _skip_or_fail(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"the real-OpenStack tier cannot run in CI: {reason}", pytrace=False)
    print(f"\nSKIP real-OpenStack tier: {reason}", file=sys.stderr)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def stack():
    missing = stack_mod.missing_tools()
    if missing:
        _skip_or_fail(
            f"{', '.join(missing)} not installed (apt-get install mariadb-server rabbitmq-server)"
        )
    attach = os.environ.get("GGCTL_OPENSTACK_ATTACH")
    if attach:  # a stack `python -m tests.openstack_real.stack DIR` keeps running
        yield stack_mod.Stack.attach(Path(attach))
        return
    root = Path(tempfile.mkdtemp(prefix="ggctl-openstack-"))
    keep = os.environ.get("GGCTL_OPENSTACK_KEEP") == "1"
    try:
        with stack_mod.running(root) as s:
            s.add_user("alice", restricted_cred=True)
            s.add_user("bob")
            s.clouds_yaml()
            yield s
    finally:
        if not keep:
            shutil.rmtree(root, ignore_errors=True)
        else:
            print(f"\nstack kept in {root}", file=sys.stderr)
