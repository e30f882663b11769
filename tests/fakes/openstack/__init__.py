"""A faithful fake of the OpenStack APIs that python-chi and openstacksdk use at
Chameleon KVM@TACC (Keystone v3, Nova, Neutron, Glance, Blazar), served over HTTP on
127.0.0.1 from one in-memory world, with fault injection.

    from fakes.openstack import FakeCloud          # under pytest (tests/ is on sys.path)
    with FakeCloud() as cloud:
        env = cloud.env()                           # OS_* variables (password auth)
        cloud.clouds_yaml(tmp_path / "clouds.yaml") # cloud "fake", application credential
        cloud.faults.fail("POST", r"/compute/v2.1/servers$", status=503)
        cloud.world.count()                         # {kind: n} of what exists

The pytest fixture ``fake_cloud`` lives in :mod:`.fixtures`; ``python -m
tests.fakes.openstack`` serves one by hand.
"""

from .faults import Faults
from .server import OTHER_PROJECT, PROJECT, FakeCloud
from .state import World

__all__ = ["OTHER_PROJECT", "PROJECT", "FakeCloud", "Faults", "World"]
