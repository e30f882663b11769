"""`ggctl cluster`: run the packaged playbooks with ansible-runner and show what happens.

    locate            the playbooks/ and roles/ shipped inside the ggctl package
    ClusterPlan       what one run does: playbook, inventory, extra-vars, tags, check mode
    runner_kwargs     the ansible_runner.run() arguments for a plan (env, cmdline, paths)
    ansible_command   the exact ansible-playbook command line ansible-runner will start
    ProgressModel     pure bookkeeping of ansible-runner events: tasks, hosts, per-role time,
                      failures (host + task + the lines that matter)
    RichProgress      the live display on top of ProgressModel
    run_plan          run it; full log in the run directory; kubeconfig into the state dir

The event display lives in events.py, the API tunnel in tunnel.py (this package).

Nothing here talks to a cloud: the inventory is the only input, so any three Ubuntu hosts
work (`ggctl cluster --inventory FILE`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.resources import files
from pathlib import Path
from typing import Any

import yaml

from ggctl.cluster.events import ProgressModel, RichProgress, failure_report, summary_tables
from ggctl.errors import GgctlError
from ggctl.inventory.ansible import INVENTORY_FILE
from ggctl.state import StateDir

PLAYBOOKS = ("cluster", "reset", "registry")
FETCHED_KUBECONFIG = "cluster/admin.conf.fetched"
KUBECONFIG = "kubeconfig"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


class ClusterError(GgctlError):
    """The playbook failed or could not start; the message names hosts and tasks."""


# --------------------------------------------------------------------------- locating


def ansible_root() -> Path:
    """The directory that holds playbooks/ and roles/ (the installed ggctl package)."""
    root = files("ggctl")
    if not isinstance(root, Path):  # a zipped install: Ansible needs real files
        raise ClusterError(
            "ggctl is installed in a form Ansible cannot read (zip); "
            "reinstall it from the wheel with pip"
        )
    if not (root / "playbooks" / "cluster.yml").is_file():
        raise ClusterError(f"the playbooks are missing from {root}; reinstall ggctl")
    return root


def playbook_path(name: str) -> Path:
    if name not in PLAYBOOKS:
        raise ClusterError(f"unknown playbook {name!r} (one of {', '.join(PLAYBOOKS)})")
    return ansible_root() / "playbooks" / f"{name}.yml"


def tool(name: str) -> str:
    """An Ansible executable: next to this Python first (a venv), else on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise ClusterError(
            f"{name} not found",
            hint="install ansible-core and ansible-runner next to ggctl "
            "(pip install 'ansible-core>=2.16,<2.20' ansible-runner)",
        )
    return found


# --------------------------------------------------------------------------- the plan


@dataclass
class ClusterPlan:
    """One ansible-playbook run."""

    playbook: str
    inventory: Path
    extra_vars: dict[str, Any] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    skip_tags: list[str] = field(default_factory=list)
    limit: str | None = None
    check: bool = False
    diff: bool = False
    verbosity: int = 0
    forks: int = 10

    @property
    def cmdline(self) -> str:
        flags = []
        if self.check:
            flags.append("--check")
        if self.diff:
            flags.append("--diff")
        return " ".join(flags)


def default_inventory(state: StateDir) -> Path:
    return state.path(INVENTORY_FILE)


def resolve_inventory(
    state: StateDir, explicit: Path | None, configured: Path | None = None
) -> Path:
    """--inventory, else [cluster] inventory, else the one `ggctl reserve` wrote."""
    path = explicit or configured or default_inventory(state)
    path = path.expanduser()
    if not path.is_file():
        where = "given" if (explicit or configured) else "written by `ggctl reserve`"
        raise ClusterError(
            f"no inventory at {path} ({where})",
            hint="run `ggctl reserve` first, or pass --inventory FILE with groups "
            "kube_control_plane, kube_node, registry and node_ip per host "
            "(see playbooks/inventory.example.yml)",
        )
    return path.resolve()


def inventory_json(inventory: Path) -> dict[str, Any]:
    """The inventory as Ansible itself reads it (`ansible-inventory --list`)."""
    return _ansible_inventory(inventory)[0]


def _ansible_inventory(inventory: Path) -> tuple[dict[str, Any], str]:
    """`ansible-inventory --list`: the inventory and Ansible's warnings about it."""
    import subprocess

    r = subprocess.run(
        [tool("ansible-inventory"), "-i", str(inventory), "--list"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "ANSIBLE_NOCOLOR": "True"},
    )
    if r.returncode != 0:
        raise ClusterError(f"ansible-inventory cannot read {inventory}:\n{r.stderr.strip()}")
    return json.loads(r.stdout), r.stderr.strip()


def check_inventory(inventory: Path) -> None:
    """Refuse an inventory in which Ansible finds no control plane. ansible-playbook does
    not: an unparsable file or one without ggctl's groups leaves it only the implicit
    localhost, every play matches no host, and the run "succeeds" having done nothing."""
    data, said = _ansible_inventory(inventory)
    if (data.get("kube_control_plane") or {}).get("hosts"):
        return
    raise ClusterError(
        f"Ansible finds no host in group kube_control_plane in {inventory}"
        + (f":\n{said}" if said else ""),
        hint="the inventory needs groups kube_control_plane, kube_node and registry, and "
        "node_ip per host (see playbooks/inventory.example.yml); `ggctl reserve` writes "
        "one; then rerun `ggctl cluster`",
    )


def parse_extra_vars(pairs: Sequence[str]) -> dict[str, Any]:
    """`-e KEY=VALUE` pairs; VALUE is read as YAML (numbers, booleans, lists)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip().isidentifier():
            raise ClusterError(f"-e takes KEY=VALUE, not {pair!r}")
        try:
            out[key.strip()] = yaml.safe_load(value) if value else ""
        except yaml.YAMLError:
            out[key.strip()] = value
    return out


def make_plan(
    state: StateDir,
    *,
    playbook: str = "cluster",
    inventory: Path | None = None,
    configured_inventory: Path | None = None,
    extra_vars: dict[str, Any] | None = None,
    tags: Sequence[str] = (),
    skip_tags: Sequence[str] = (),
    limit: str | None = None,
    check: bool = False,
    verbosity: int = 0,
    forks: int = 10,
) -> ClusterPlan:
    """The run that `ggctl cluster` would make, with ggctl's own extra-vars added."""
    playbook_path(playbook)
    inv = resolve_inventory(state, inventory, configured_inventory)
    ev: dict[str, Any] = dict(extra_vars or {})
    if playbook == "cluster":
        ev.setdefault("cluster_kubeconfig_fetch_dest", str(state.path(FETCHED_KUBECONFIG)))
    return ClusterPlan(
        playbook=playbook,
        inventory=inv,
        extra_vars=ev,
        tags=[t for t in tags if t],
        skip_tags=[t for t in skip_tags if t],
        limit=limit or None,
        check=check,
        diff=check,
        verbosity=verbosity,
        forks=forks,
    )


def ansible_env() -> dict[str, str]:
    """Settings for ansible-playbook: ggctl's roles, speed, no prompts, plain text."""
    root = ansible_root()
    venv_bin = str(Path(sys.executable).parent)
    return {
        "PATH": venv_bin + os.pathsep + os.environ.get("PATH", "/usr/bin:/bin"),
        "ANSIBLE_ROLES_PATH": str(root / "roles"),
        "ANSIBLE_CONFIG": str(root / "playbooks" / "ansible.cfg"),
        "ANSIBLE_PIPELINING": "True",
        "ANSIBLE_GATHERING": "smart",
        "ANSIBLE_HOST_KEY_CHECKING": "False",
        "ANSIBLE_SSH_ARGS": "-o ControlMaster=auto -o ControlPersist=120s "
        "-o ServerAliveInterval=30",
        "ANSIBLE_RETRY_FILES_ENABLED": "False",
        "ANSIBLE_NOCOLOR": "True",
        "ANSIBLE_FORCE_COLOR": "False",
        "ANSIBLE_DEPRECATION_WARNINGS": "False",
    }


def prepare_private_data_dir(run_dir: Path, plan: ClusterPlan) -> Path:
    """ansible-runner's input directory; extra-vars go in a 0600 file, never on argv."""
    data = run_dir / "runner"
    (data / "env").mkdir(parents=True, exist_ok=True, mode=0o700)
    if plan.extra_vars:
        path = data / "env" / "extravars"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(plan.extra_vars, fh, indent=2, sort_keys=True, default=str)
    return data


def runner_kwargs(plan: ClusterPlan, private_data_dir: Path) -> dict[str, Any]:
    """Keyword arguments for ansible_runner.run()/init_runner() for this plan."""
    env = ansible_env()
    kw: dict[str, Any] = {
        "private_data_dir": str(private_data_dir),
        "project_dir": str(ansible_root() / "playbooks"),
        "playbook": str(playbook_path(plan.playbook)),
        "inventory": str(plan.inventory),
        "envvars": env,
        "forks": plan.forks,
        "quiet": True,
        "rotate_artifacts": 5,
        "suppress_env_files": True,
    }
    if plan.cmdline:
        kw["cmdline"] = plan.cmdline
    if plan.tags:
        kw["tags"] = ",".join(plan.tags)
    if plan.skip_tags:
        kw["skip_tags"] = ",".join(plan.skip_tags)
    if plan.limit:
        kw["limit"] = plan.limit
    if plan.verbosity:
        kw["verbosity"] = plan.verbosity
    return kw


def ansible_command(plan: ClusterPlan, private_data_dir: Path) -> list[str]:
    """The ansible-playbook command line ansible-runner starts for this plan (runs nothing)."""
    from ansible_runner.interface import init_runner

    runner = init_runner(**runner_kwargs(plan, private_data_dir))
    return list(runner.config.command)


# --------------------------------------------------------------------------- running


@dataclass
class ClusterResult:
    status: str
    rc: int
    model: ProgressModel
    run_dir: Path
    log_path: Path
    kubeconfig: Path | None = None


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


def run_plan(
    plan: ClusterPlan,
    state: StateDir,
    *,
    console: Any,
    verbose: bool = False,
    quiet: bool = False,
    tunnel_port: int = 16443,
) -> ClusterResult:
    """Run the plan; raise ClusterError naming the failed hosts and tasks."""
    import ansible_runner

    run_dir = state.run_dir(f"cluster-{plan.playbook}", _stamp())
    state.path(FETCHED_KUBECONFIG).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    data_dir = prepare_private_data_dir(run_dir, plan)
    log_path = run_dir / "ansible.log"
    log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    model = ProgressModel()
    with (
        os.fdopen(log_fd, "a") as log,
        RichProgress(console, model, verbose=verbose, quiet=quiet) as progress,
    ):

        def on_event(event: dict[str, Any]) -> bool:
            text = event.get("stdout")
            if text:
                log.write(ANSI.sub("", text.replace("\r\n", "\n")) + "\n")
                log.flush()
            return progress(event)

        runner = ansible_runner.run(event_handler=on_event, **runner_kwargs(plan, data_dir))
    result = ClusterResult(
        status=runner.status,
        rc=runner.rc if runner.rc is not None else -1,
        model=model,
        run_dir=run_dir,
        log_path=log_path,
    )
    if not quiet:
        for table in summary_tables(model):
            console.print(table)
    if runner.status != "successful" or not model.ok():
        report = failure_report(model) or _log_tail(log_path)
        raise ClusterError(
            f"ansible-playbook {plan.playbook}.yml {runner.status} (rc={result.rc}) after "
            f"{model.elapsed():.0f} s:\n{report}",
            hint=failure_hint(model, log_path, plan.playbook),
        )
    if plan.playbook == "cluster" and not plan.check:
        result.kubeconfig = install_kubeconfig(state, tunnel_port)
        state.write(
            "cluster",
            {
                "inventory": str(plan.inventory),
                "finished": _stamp(),
                "kubeconfig": str(result.kubeconfig) if result.kubeconfig else None,
                "extra_vars": {k: v for k, v in plan.extra_vars.items() if "password" not in k},
                "log": str(log_path),
            },
        )
    return result


# ssh's own words for why it could not log in (OpenSSH sshconnect.c, sshconnect2.c).
_HOST_KEY = re.compile(r"Host key verification failed|REMOTE HOST IDENTIFICATION HAS CHANGED")
_KEY_REFUSED = re.compile(r"Permission denied \(publickey")


def ssh_failure_hint(said: str, hosts: str, node: str = "node-0") -> str:
    """What to do about ssh's own words for why it could not log in to `hosts`."""
    if _HOST_KEY.search(said):
        return (
            f"{hosts} showed another host key than the one remembered for it: if the server "
            "was rebuilt or replaced, remove the old key (`ssh-keygen -R HOST -f KNOWN_HOSTS`, "
            "the known_hosts its ssh options name); if not, do not connect: someone else "
            "may answer at that address"
        )
    if _KEY_REFUSED.search(said):
        return (
            f"ssh reached {hosts} but its key was refused: check `ggctl ssh {node} -- true` "
            "and that the inventory's key is the one `ggctl reserve` installed (--key)"
        )
    return (
        f"ssh could not reach {hosts}: check that the servers are ACTIVE "
        f"(`ggctl status`) and that `ggctl ssh {node} -- true` works"
    )


def failure_hint(model: ProgressModel, log_path: Path, playbook: str = "cluster") -> str:
    """What to do next. Unreachable hosts need something else than a failed task: the
    cause is ssh (the server, the key, the host key), and rerunning alone will not help."""
    rerun = f"then rerun `ggctl cluster{'' if playbook == 'cluster' else ' ' + playbook}`"
    tail = f"{rerun} (finished steps are skipped); full log: {log_path}"
    unreachable = [f for f in model.failures if f.kind == "unreachable"]
    if not unreachable:
        return f"fix the cause shown above, {tail}"
    hosts = ", ".join(sorted({f.host for f in unreachable}))
    said = "\n".join(line for f in unreachable for line in f.lines)
    return f"{ssh_failure_hint(said, hosts, unreachable[0].host)}; {tail}"


def _log_tail(path: Path, n: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


def install_kubeconfig(state: StateDir, tunnel_port: int) -> Path | None:
    """Rewrite the fetched admin.conf to reach the API through the tunnel; 0600."""
    fetched = state.path(FETCHED_KUBECONFIG)
    if not fetched.is_file():
        return None
    config = yaml.safe_load(fetched.read_text())
    for cluster in config.get("clusters", []):
        cluster.setdefault("cluster", {})["server"] = f"https://127.0.0.1:{tunnel_port}"
    target = state.path(KUBECONFIG)
    tmp = target.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        yaml.safe_dump(config, fh, sort_keys=False)
    os.chmod(tmp, 0o600)
    os.replace(tmp, target)
    fetched.unlink()
    return target


# --------------------------------------------------------------------------- entry points


def run_from_settings(
    settings: Any,
    *,
    playbook: str = "cluster",
    inventory: Path | None = None,
    check: bool = False,
    tags: Sequence[str] = (),
    skip_tags: Sequence[str] = (),
    limit: str | None = None,
    extra: Sequence[str] = (),
    console: Any,
) -> ClusterResult:
    """What `ggctl cluster [reset|registry]` does with the effective settings."""
    state = StateDir(settings.state_dir)
    state.ensure()
    cfg = settings.cluster
    plan = make_plan(
        state,
        playbook=playbook,
        inventory=inventory,
        configured_inventory=cfg.inventory,
        extra_vars={**mirror_vars(cfg), **cfg.extra_vars, **parse_extra_vars(extra)},
        tags=_split(tags),
        skip_tags=_split(skip_tags),
        limit=limit,
        check=check,
        verbosity=max(0, settings.verbose - 1),
        forks=cfg.forks,
    )
    check_inventory(plan.inventory)
    if not settings.quiet:
        mode = " in check mode (nothing changes)" if check else ""
        console.print(
            f"[bold]ggctl cluster[/]: {plan.playbook}.yml on {plan.inventory}{mode}",
            highlight=False,
        )
    return run_plan(
        plan,
        state,
        console=console,
        verbose=settings.verbose > 0,
        quiet=settings.quiet,
        tunnel_port=cfg.tunnel_port,
    )


def mirror_vars(cfg: Any) -> dict[str, Any]:
    """[cluster] dockerhub_mirror → the playbooks' cluster_dockerhub_mirror_url."""
    url = getattr(cfg, "dockerhub_mirror", "")
    return {"cluster_dockerhub_mirror_url": url.rstrip("/")} if url else {}


def _split(values: Sequence[str]) -> list[str]:
    return [t.strip() for v in values for t in v.split(",") if t.strip()]
