"""The per-user security group: TCP 22 and 32000 from anywhere, nothing else inbound."""

from __future__ import annotations

from typing import Any

from ggctl.provision.actual import Found
from ggctl.provision.errors import error_type, find_or_none
from ggctl.provision.topology import RuleSpec, SecGroupSpec, is_ours

# Neutron compares rules the same way (securitygroups_db.py `_rule_to_key`): a null remote
# prefix equals 0.0.0.0/0 (and ::/0), and a protocol number equals its name.
_ANY = {None, "", "0.0.0.0/0", "::/0"}
_PROTO_NAMES = {"6": "tcp", "17": "udp", "1": "icmp"}


def _rule_key(rule: Any) -> tuple[str, int, str] | None:
    if rule.get("direction") != "ingress" or rule.get("port_range_min") is None:
        return None
    proto = str(rule.get("protocol") or "")
    prefix = rule.get("remote_ip_prefix")
    return (
        _PROTO_NAMES.get(proto, proto),
        rule["port_range_min"],
        "0.0.0.0/0" if prefix in _ANY else prefix,
    )


def _secgroup(g: Any) -> Found:
    keys = [k for k in (_rule_key(r) for r in g.security_group_rules or []) if k]
    return Found("secgroup", g.id, g.name, "", {"ingress": keys})


def list_secgroups(conn: Any, suffix: str) -> list[Found]:
    """Our security groups (never the project's shared ones, which other users rely on)."""
    return [_secgroup(g) for g in conn.network.security_groups() if is_ours(g.description, suffix)]


def missing_rules(found: Found, spec: SecGroupSpec) -> list[RuleSpec]:
    """Rules of the spec the group does not have yet."""
    have = {tuple(k) for k in found.attrs.get("ingress", [])}
    return [r for r in spec.rules if (r.protocol, r.port, r.remote_ip_prefix) not in have]


def create_secgroup(conn: Any, spec: SecGroupSpec, marker: str) -> Found:
    """Create the group (Neutron adds allow-all egress rules itself); rules come next."""
    g = conn.network.create_security_group(name=spec.name, description=marker)
    return add_rules(conn, _secgroup(g), spec)


def add_rules(conn: Any, found: Found, spec: SecGroupSpec) -> Found:
    """Add the missing ingress rules."""
    from openstack import exceptions as sdk_exc

    for rule in missing_rules(found, spec):
        try:
            conn.network.create_security_group_rule(
                security_group_id=found.id,
                direction="ingress",
                ethertype="IPv4",
                protocol=rule.protocol,
                port_range_min=rule.port,
                port_range_max=rule.port,
                remote_ip_prefix=rule.remote_ip_prefix,
            )
        except sdk_exc.ConflictException as exc:
            # The rule is there (an earlier answer was lost, or it is spelled another way):
            # what we wanted holds, so this is success, not something to retry.
            if error_type(exc) != "SecurityGroupRuleExists":
                raise
    return _secgroup(conn.network.get_security_group(found.id))


def delete_secgroup(conn: Any, found: Found) -> None:
    conn.network.delete_security_group(found.id, ignore_missing=True)


def secgroup_exists(conn: Any, found: Found) -> bool:
    return find_or_none(conn.network.find_security_group, found.id) is not None
