"""The desired state of SPEC step 1 as plain dataclasses, built from the settings.

Every name carries the user's suffix and every resource that can carry a description,
metadata or tags carries `marker(suffix)`, so two users of one project never clash and
teardown finds what is ours without a state file.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

OWNER_TAG = "ggctl"
PUBLIC = "public"  # key of the network with a router to the outside (the course's "public" net)
PRIVATE = "private"  # key of the experiment network (port security off, no gateway)
OPEN_PORTS = (22, 32000)  # SSH and the service's NodePort; nothing else is open to the world
FIRST_HOST = 10  # nodes at .10, .11, .12 on the experiment network, as in the course
# The experiment net's top addresses are kept out of Neutron's DHCP pool and handed to the
# cluster's LoadBalancer (MetalLB, roles/metallb) instead, so the two can never collide.
LB_POOL = (240, 250)


def marker(suffix: str) -> str:
    """The description (Neutron) / metadata value (Nova) that marks a resource as ours."""
    return f"{OWNER_TAG}:owner={suffix}"


def owner_tag(suffix: str) -> str:
    """The tag naming the owner (Neutron tags, Nova server tags)."""
    return f"{OWNER_TAG}-owner={suffix}"


def sanitize_suffix(raw: str) -> str:
    """A user name (often an e-mail address) → a suffix fit for every resource name."""
    s = re.sub(r"[^a-z0-9-]+", "-", raw.strip().lower()).strip("-")
    s = re.sub(r"-{2,}", "-", s)[:32].strip("-")
    if not s:
        raise ValueError(f"cannot make a resource-name suffix from {raw!r}")
    return s


@dataclass(frozen=True)
class LeaseSpec:
    """A Blazar `flavor:instance` reservation: `amount` x `flavor` for `hours`."""

    name: str
    flavor: str
    amount: int
    hours: int


@dataclass(frozen=True)
class NetworkSpec:
    """A network and its single IPv4 subnet."""

    key: str
    name: str
    subnet_name: str
    cidr: str
    gateway_ip: str | None
    enable_dhcp: bool
    port_security: bool
    dhcp_pool: tuple[str, str] | None = None  # None: Neutron's default (the whole subnet)


@dataclass(frozen=True)
class RouterSpec:
    """A router with a gateway on the external network and an interface on `network`."""

    name: str
    external_network: str
    network: str  # NetworkSpec.key of the subnet it serves


@dataclass(frozen=True)
class RuleSpec:
    """One ingress rule of the security group."""

    protocol: str
    port: int
    remote_ip_prefix: str = "0.0.0.0/0"


@dataclass(frozen=True)
class SecGroupSpec:
    """A per-user security group; only the public-net ports are in it."""

    name: str
    rules: tuple[RuleSpec, ...]


@dataclass(frozen=True)
class KeypairSpec:
    """The user's public key, registered in Nova."""

    name: str
    public_key: str


@dataclass(frozen=True)
class PortSpec:
    """A port of one node on one network, created before the server so it can be fixed."""

    name: str
    node: str
    network: str  # NetworkSpec.key
    fixed_ip: str | None
    secgroup: bool
    port_security: bool


@dataclass(frozen=True)
class ServerSpec:
    """One VM, booted on the lease's reserved flavor with its pre-made ports."""

    node: str  # node-0 …
    name: str
    image: str
    ports: tuple[str, ...]  # PortSpec names, NIC order
    private_ip: str


@dataclass(frozen=True)
class FloatingIPSpec:
    """A NEW floating IP, ours by its description, on the public-net port of `node`."""

    node: str
    port: str  # PortSpec name
    external_network: str
    description: str


@dataclass(frozen=True)
class Topology:
    """Everything `ggctl reserve` makes for one user."""

    suffix: str
    site: str
    lease: LeaseSpec
    networks: tuple[NetworkSpec, ...]
    router: RouterSpec
    secgroup: SecGroupSpec
    keypair: KeypairSpec
    ports: tuple[PortSpec, ...]
    servers: tuple[ServerSpec, ...]
    floating_ip: FloatingIPSpec
    marker: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "marker", marker(self.suffix))

    def network(self, key: str) -> NetworkSpec:
        return next(n for n in self.networks if n.key == key)

    def port(self, name: str) -> PortSpec:
        return next(p for p in self.ports if p.name == name)

    def names(self) -> dict[str, set[str]]:
        """Every name we would create, per kind (plan uses it to tell duplicates apart)."""
        return {
            "lease": {self.lease.name},
            "keypair": {self.keypair.name},
            "network": {n.name for n in self.networks},
            "subnet": {n.subnet_name for n in self.networks},
            "router": {self.router.name},
            "secgroup": {self.secgroup.name},
            "port": {p.name for p in self.ports},
            "server": {s.name for s in self.servers},
        }


def lb_pool(private_cidr: str) -> str:
    """The LoadBalancer address range on the experiment network, as MetalLB writes it."""
    return f"{host_address(private_cidr, LB_POOL[0])}-{host_address(private_cidr, LB_POOL[1])}"


def host_address(cidr: str, index: int) -> str:
    """The address of host `index` in `cidr` (10 → 192.168.1.10)."""
    return str(ipaddress.ip_network(cidr)[index])


def build_topology(
    suffix: str,
    public_key: str,
    *,
    site: str = "KVM@TACC",
    flavor: str = "m1.large",
    image: str = "CC-Ubuntu24.04",
    hours: int = 6,
    nodes: int = 3,
    external_network: str = "public",
    public_cidr: str = "192.168.10.0/24",
    private_cidr: str = "192.168.1.0/24",
) -> Topology:
    """The course's topology for one user (SPEC step 1), named with `suffix`."""
    networks = (
        NetworkSpec(
            PUBLIC,
            f"ggctl-public-{suffix}",
            f"ggctl-public-subnet-{suffix}",
            public_cidr,
            host_address(public_cidr, 1),
            True,
            True,
        ),
        NetworkSpec(
            PRIVATE,
            f"ggctl-private-{suffix}",
            f"ggctl-private-subnet-{suffix}",
            private_cidr,
            None,
            True,
            False,
            (host_address(private_cidr, 2), host_address(private_cidr, LB_POOL[0] - 1)),
        ),
    )
    ports: list[PortSpec] = []
    servers: list[ServerSpec] = []
    for i in range(nodes):
        node = f"node-{i}"
        private_ip = host_address(private_cidr, FIRST_HOST + i)
        pub = PortSpec(f"{node}-public-{suffix}", node, PUBLIC, None, True, True)
        priv = PortSpec(f"{node}-private-{suffix}", node, PRIVATE, private_ip, False, False)
        ports += [pub, priv]
        servers.append(
            ServerSpec(node, f"{node}-{suffix}", image, (pub.name, priv.name), private_ip)
        )
    return Topology(
        suffix=suffix,
        site=site,
        lease=LeaseSpec(f"ggctl-{suffix}", flavor, nodes, hours),
        networks=networks,
        router=RouterSpec(f"ggctl-router-{suffix}", external_network, PUBLIC),
        secgroup=SecGroupSpec(f"ggctl-{suffix}", tuple(RuleSpec("tcp", p) for p in OPEN_PORTS)),
        keypair=KeypairSpec(f"ggctl-{suffix}", public_key.strip()),
        ports=tuple(ports),
        servers=tuple(servers),
        floating_ip=FloatingIPSpec(
            "node-0", ports[0].name, external_network, f"{marker(suffix)} node=node-0"
        ),
    )


def is_ours(description: str | None, suffix: str) -> bool:
    """True when a description carries exactly this user's marker (not a prefix of another's)."""
    m = marker(suffix)
    return bool(description) and (description == m or description.startswith(m + " "))
