"""The Kubernetes API of ggctl's cluster, reached through an SSH tunnel via node-0.

Port 6443 is never opened to the internet: `ggctl kubectl`, `deploy`, `evaluate` and `up`
open a local forward to node-0's API server for as long as they need it, and close it.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ggctl.cluster.run import (
    KUBECONFIG,
    ClusterError,
    default_inventory,
    inventory_json,
    resolve_inventory,
    ssh_failure_hint,
)
from ggctl.ports import free_port, port_free
from ggctl.state import StateDir

API_PORT = 6443


@dataclass
class SshTarget:
    host: str
    user: str | None = None
    port: int | None = None
    key: str | None = None
    common_args: list[str] = field(default_factory=list)
    node_ip: str | None = None


def control_plane_ssh(inventory: Path) -> SshTarget:
    """How to reach the first kube_control_plane host, from its inventory variables."""
    data = inventory_json(inventory)
    hosts = (data.get("kube_control_plane") or {}).get("hosts") or []
    if not hosts:
        raise ClusterError(f"{inventory} has no host in group kube_control_plane")
    name = hosts[0]
    hv = (data.get("_meta") or {}).get("hostvars", {}).get(name, {})
    args = " ".join(
        str(hv[k]) for k in ("ansible_ssh_common_args", "ansible_ssh_extra_args") if hv.get(k)
    )
    port = hv.get("ansible_port") or hv.get("ansible_ssh_port")
    return SshTarget(
        host=str(hv.get("ansible_host", name)),
        user=hv.get("ansible_user") or hv.get("ansible_ssh_user"),
        port=int(port) if port else None,
        key=hv.get("ansible_ssh_private_key_file") or hv.get("ansible_private_key_file"),
        common_args=shlex.split(args),
        node_ip=hv.get("node_ip"),
    )


def tunnel_command(target: SshTarget, local_port: int, remote_port: int = API_PORT) -> list[str]:
    """ssh that forwards 127.0.0.1:local_port to the API server's loopback on node-0."""
    cmd = [
        "ssh",
        "-N",
        "-o",
        "ExitOnForwardFailure=yes",
        "-o",
        "BatchMode=yes",
        "-o",
        "ServerAliveInterval=15",
        "-o",
        "ConnectTimeout=15",
        "-L",
        f"127.0.0.1:{local_port}:127.0.0.1:{remote_port}",
    ]
    if target.port:
        cmd += ["-p", str(target.port)]
    if target.key:
        cmd += ["-i", os.path.expanduser(target.key)]
    cmd += target.common_args
    cmd.append(f"{target.user}@{target.host}" if target.user else target.host)
    return cmd


@contextlib.contextmanager
def api_tunnel(
    target: SshTarget, port: int, timeout: float = 20.0, ssh: str = "ssh"
) -> Iterator[int]:
    """Open the tunnel on `port` (another free one if taken); close it on exit."""
    if not port_free(port):
        port = free_port()
    cmd = tunnel_command(target, port)
    cmd[0] = ssh
    proc = subprocess.Popen(
        cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                err = proc.stderr.read().strip() if proc.stderr else ""
                raise ClusterError(
                    f"the SSH tunnel to the API server via {target.host} closed: "
                    f"{err or 'no message'}",
                    hint=ssh_failure_hint(err, target.host) + "; then run the command again",
                )
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
                break
            if time.monotonic() > deadline:
                raise ClusterError(
                    f"the SSH tunnel to {target.host} did not open in {timeout:.0f} s",
                    hint=ssh_failure_hint("", target.host) + "; then run the command again",
                )
            time.sleep(0.1)
        yield port
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


# --------------------------------------------------------------------------- API access


def kubeconfig_server(path: Path) -> str | None:
    """The server of the kubeconfig's current context (else its first cluster)."""
    try:
        config = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError):
        return None
    if not isinstance(config, dict):  # not a kubeconfig: the client library will say so
        return None

    def named(key: str, inner: str) -> dict[Any, Any]:
        entries = config.get(key) if isinstance(config.get(key), list) else []
        return {e.get("name"): e.get(inner) or {} for e in entries if isinstance(e, dict)}

    clusters, contexts = named("clusters", "cluster"), named("contexts", "context")
    current = contexts.get(config.get("current-context")) or {}
    chosen = clusters.get(current.get("cluster")) or next(iter(clusters.values()), {})
    return chosen.get("server")


@contextlib.contextmanager
def api_access(settings: Any, state: StateDir, inventory: Path | None = None) -> Iterator[None]:
    """The SSH tunnel to the API server via node-0, while the block runs, when the kubeconfig
    is ours (https://127.0.0.1:<tunnel port>) and nothing already listens on that port.

    Any other kubeconfig (a kind or k3s cluster, a real endpoint) is used as it is.
    """
    if inventory is None:
        inventory = settings.cluster.inventory or default_inventory(state)
    kubeconfig = settings.deploy.kubeconfig or state.path("kubeconfig")
    port = settings.cluster.tunnel_port
    ours = kubeconfig_server(Path(kubeconfig)) == f"https://127.0.0.1:{port}"
    if not ours or not port_free(port) or inventory is None or not inventory.is_file():
        yield
        return
    with api_tunnel(control_plane_ssh(inventory), port):
        yield


def kubeconfig_path(state: StateDir) -> Path:
    path = state.path(KUBECONFIG)
    if not path.is_file():
        raise ClusterError(
            f"no kubeconfig at {path}",
            hint="run `ggctl cluster` first: it fetches one when it finishes",
        )
    return path


def kubectl_command(
    kubeconfig: Path, port: int, args: Sequence[str], kubectl: str = "kubectl"
) -> list[str]:
    return [
        kubectl,
        "--kubeconfig",
        str(kubeconfig),
        "--server",
        f"https://127.0.0.1:{port}",
        *args,
    ]


def run_kubectl(state: StateDir, inventory: Path, args: Sequence[str], tunnel_port: int) -> int:
    """`kubectl ARGS` against the cluster through a tunnel that lives as long as the command."""
    kubeconfig = kubeconfig_path(state)
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        raise ClusterError(
            "kubectl is not installed here",
            hint="install kubectl (https://kubernetes.io/docs/tasks/tools/), "
            "or use it on node-0: ggctl ssh node-0 -- kubectl ...",
        )
    target = control_plane_ssh(inventory)
    with api_tunnel(target, tunnel_port) as port:
        return subprocess.run(kubectl_command(kubeconfig, port, args, kubectl)).returncode


def kubectl_from_settings(settings: Any, args: Sequence[str]) -> int:
    state = StateDir(settings.state_dir)
    inventory = resolve_inventory(state, None, settings.cluster.inventory)
    return run_kubectl(state, inventory, args, settings.cluster.tunnel_port)
