"""`ggctl cluster`: run the packaged playbooks with ansible-runner and show what happens.

    locate            the playbooks/ and roles/ shipped inside the ggctl package
    ClusterPlan       what one run does: playbook, inventory, extra-vars, tags, check mode
    runner_kwargs     the ansible_runner.run() arguments for a plan (env, cmdline, paths)
    ansible_command   the exact ansible-playbook command line ansible-runner will start
    ProgressModel     pure bookkeeping of ansible-runner events: tasks, hosts, per-role time,
                      failures (host + task + the lines that matter)
    RichProgress      the live display on top of ProgressModel
    run_plan          run it; full log in the run directory; kubeconfig into the state dir
    control_plane_ssh / api_tunnel / run_kubectl
                      an SSH tunnel via node-0 to the API server, opened and closed by ggctl

Nothing here talks to a cloud: the inventory is the only input, so any three Ubuntu hosts
work (`ggctl cluster --inventory FILE`).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.resources import files
from pathlib import Path
from typing import Any, ClassVar

import yaml

from ggctl.errors import GgctlError
from ggctl.inventory.ansible import INVENTORY_FILE
from ggctl.ports import free_port, port_free
from ggctl.state import StateDir

PLAYBOOKS = ("cluster", "reset", "registry")
API_PORT = 6443
FETCHED_KUBECONFIG = "cluster/admin.conf.fetched"
KUBECONFIG = "kubeconfig"
FAILURE_LINES = 25
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


# --------------------------------------------------------------------------- events

STATUS_OF_EVENT = {
    "runner_on_ok": "ok",
    "runner_on_failed": "failed",
    "runner_on_skipped": "skipped",
    "runner_on_unreachable": "unreachable",
    "runner_on_async_failed": "failed",
}


@dataclass
class TaskRecord:
    name: str
    role: str
    play: str
    started: float
    ended: float | None = None
    hosts: dict[str, str] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        return max(0.0, (self.ended or self.started) - self.started)


@dataclass
class Failure:
    host: str
    task: str
    role: str
    action: str
    kind: str  # "failed" or "unreachable"
    lines: list[str]

    def title(self) -> str:
        where = f"{self.role} : {self.task}" if self.role else self.task
        return f"{self.host}: {self.kind} in [{where}]"


def _tail(text: Any, n: int) -> list[str]:
    if not text:
        return []
    lines = [ln.rstrip() for ln in str(text).splitlines() if ln.strip()]
    return lines[-n:]


def failure_lines(res: dict[str, Any], limit: int = FAILURE_LINES) -> list[str]:
    """The lines of a failed result that explain it: command, message, stderr, stdout."""
    out: list[str] = []
    if not isinstance(res, dict):
        return _tail(res, limit)
    results = res.get("results")
    if isinstance(results, list):  # a loop: explain the failed items
        for item in results:
            if isinstance(item, dict) and (item.get("failed") or item.get("unreachable")):
                label = item.get("_ansible_item_label", item.get("item"))
                out.append(f"item: {label}")
                out.extend("  " + ln for ln in failure_lines(item, limit))
        if out:
            return out[:limit]
    cmd = res.get("cmd")
    if cmd:
        out.append("$ " + (shlex.join(cmd) if isinstance(cmd, list) else str(cmd)))
    if res.get("rc") not in (None, 0):
        out.append(f"rc={res['rc']}")
    msg = res.get("msg")
    if msg and not (cmd and str(msg).startswith("non-zero return code")):
        out.extend(_tail(msg, 12))
    stderr = _tail(res.get("stderr"), 15) or _tail(res.get("module_stderr"), 15)
    out.extend(stderr)
    if not stderr:
        out.extend(_tail(res.get("stdout"), 10) or _tail(res.get("module_stdout"), 10))
    if res.get("exception") and not stderr and "unavailable" not in str(res["exception"]):
        out.extend(_tail(res["exception"], 5))
    seen: set[str] = set()
    deduped = [ln for ln in out if not (ln in seen or seen.add(ln))]  # type: ignore[func-returns-value]
    return deduped[:limit] or ["(no message)"]


class ProgressModel:
    """Everything the display and the summary need, from ansible-runner events alone."""

    def __init__(self, clock: Any = time.monotonic):
        self.clock = clock
        self.started = clock()
        self.ended: float | None = None
        self.play = ""
        self.tasks: list[TaskRecord] = []
        self.failures: list[Failure] = []
        self.stats: dict[str, dict[str, int]] = {}
        self.hosts: list[str] = []
        self.finished_tasks: list[TaskRecord] = []

    @property
    def current(self) -> TaskRecord | None:
        return self.tasks[-1] if self.tasks and self.tasks[-1].ended is None else None

    def _close_current(self, now: float) -> None:
        task = self.current
        if task is not None:
            task.ended = now
            self.finished_tasks.append(task)

    def feed(self, event: dict[str, Any]) -> None:
        kind = event.get("event", "")
        data = event.get("event_data") or {}
        now = self.clock()
        if kind == "playbook_on_play_start":
            self._close_current(now)
            self.play = data.get("play", "") or data.get("name", "")
        elif kind in ("playbook_on_task_start", "playbook_on_handler_task_start"):
            self._close_current(now)
            name = data.get("task", "") or data.get("name", "")
            if kind == "playbook_on_handler_task_start":
                name = f"handler: {name}"
            self.tasks.append(
                TaskRecord(name=name, role=data.get("role", "") or "", play=self.play, started=now)
            )
        elif kind in STATUS_OF_EVENT:
            host = data.get("host", "?")
            if host not in self.hosts:
                self.hosts.append(host)
            res = data.get("res") or {}
            status = STATUS_OF_EVENT[kind]
            if status == "ok" and res.get("changed"):
                status = "changed"
            ignored = bool(data.get("ignore_errors"))
            if status == "failed" and ignored:
                status = "ignored"
            task = self.current
            if task is not None:
                task.hosts[host] = status
            if status in ("failed", "unreachable"):
                self.failures.append(
                    Failure(
                        host=host,
                        task=data.get("task", "") or (task.name if task else ""),
                        role=data.get("role", "") or "",
                        action=data.get("task_action", "") or "",
                        kind=status,
                        lines=failure_lines(res),
                    )
                )
        elif kind == "playbook_on_stats":
            self._close_current(now)
            self.ended = now
            for key in ("ok", "changed", "failures", "dark", "skipped", "rescued", "ignored"):
                for host, n in (data.get(key) or {}).items():
                    self.stats.setdefault(host, {})[key] = n
                    if host not in self.hosts:
                        self.hosts.append(host)

    # ---- summaries

    def elapsed(self) -> float:
        return (self.ended or self.clock()) - self.started

    def role_times(self) -> list[tuple[str, int, int, float]]:
        """(role, tasks, tasks that changed something, seconds) in order of appearance."""
        rows: dict[str, list[float]] = {}
        for task in self.tasks:
            role = task.role or "(playbook)"
            row = rows.setdefault(role, [0, 0, 0.0])
            row[0] += 1
            row[1] += any(s == "changed" for s in task.hosts.values())
            row[2] += task.seconds
        return [(role, int(r[0]), int(r[1]), r[2]) for role, r in rows.items()]

    def changed_count(self) -> int:
        return sum(s.get("changed", 0) for s in self.stats.values())

    def ok(self) -> bool:
        return not self.failures and all(
            not s.get("failures") and not s.get("dark") for s in self.stats.values()
        )


class RichProgress:
    """A live line with the running task, and one printed line per finished task."""

    SYMBOL: ClassVar[dict[str, str]] = {
        "ok": "[green]ok[/]",
        "changed": "[yellow]changed[/]",
        "failed": "[bold red]FAILED[/]",
        "unreachable": "[bold red]UNREACHABLE[/]",
        "skipped": "[dim]skipped[/]",
        "ignored": "[dim]failed (ignored)[/]",
    }

    def __init__(
        self,
        console: Any,
        model: ProgressModel | None = None,
        *,
        verbose: bool = False,
        quiet: bool = False,
    ):
        from rich.live import Live
        from rich.spinner import Spinner

        self.console = console
        self.model = model or ProgressModel()
        self.verbose = verbose
        self.quiet = quiet
        self._printed = 0
        self._play = ""
        self._spinner = Spinner("dots", text="starting ansible-playbook…")
        self.live = Live(
            self._spinner,
            console=console,
            refresh_per_second=8,
            transient=True,
            redirect_stdout=False,
            redirect_stderr=False,
        )

    def __enter__(self) -> RichProgress:
        if not self.quiet:
            self.live.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._flush()
        if not self.quiet:
            self.live.stop()

    def __call__(self, event: dict[str, Any]) -> bool:
        """ansible-runner's event_handler; returning True keeps the event."""
        self.model.feed(event)
        self._flush()
        task = self.model.current
        if task is not None and not self.quiet:
            role = f"{task.role} : " if task.role else ""
            done = len(self.model.finished_tasks)
            self._spinner.update(
                text=f"[bold]{role}{task.name}[/] "
                f"[dim]({done} tasks done, {self.model.elapsed():.0f} s)[/]"
            )
        return True

    def _flush(self) -> None:
        if self.quiet:
            return
        while self._printed < len(self.model.finished_tasks):
            task = self.model.finished_tasks[self._printed]
            self._printed += 1
            if task.play != self._play:
                self._play = task.play
                self.console.print(f"[bold cyan]▶ {task.play}[/]", highlight=False)
            self._print_task(task)

    def _print_task(self, task: TaskRecord) -> None:
        statuses = set(task.hosts.values())
        interesting = statuses & {"changed", "failed", "unreachable"}
        if not self.verbose and not interesting:
            return
        role = f"[dim]{task.role} :[/] " if task.role else ""
        by_status: dict[str, list[str]] = {}
        for host, status in task.hosts.items():
            by_status.setdefault(status, []).append(host)
        # Hosts finish in any order; sorted, the same run always reads the same.
        parts = [f"{self.SYMBOL.get(s, s)} {', '.join(sorted(h))}" for s, h in by_status.items()]
        self.console.print(
            f"  {role}{task.name}  {'; '.join(parts)} [dim]{task.seconds:.1f} s[/]", highlight=False
        )


def summary_tables(model: ProgressModel) -> list[Any]:
    """Per-role timing and per-host recap, as rich tables."""
    from rich.table import Table

    roles = Table(title="time per role", title_justify="left")
    for col, kw in (
        ("role", {}),
        ("tasks", {"justify": "right"}),
        ("changed", {"justify": "right"}),
        ("seconds", {"justify": "right"}),
    ):
        roles.add_column(col, **kw)
    for role, n, changed, secs in model.role_times():
        roles.add_row(role, str(n), str(changed), f"{secs:.1f}")
    roles.add_row(
        "[bold]total[/]",
        str(len(model.tasks)),
        str(sum(r[2] for r in model.role_times())),
        f"[bold]{model.elapsed():.1f}[/]",
    )
    hosts = Table(title="hosts", title_justify="left")
    for col in ("host", "ok", "changed", "failed", "unreachable", "skipped"):
        hosts.add_column(col, justify="left" if col == "host" else "right")
    for host in model.hosts:
        s = model.stats.get(host, {})
        hosts.add_row(
            host,
            str(s.get("ok", 0)),
            str(s.get("changed", 0)),
            str(s.get("failures", 0)),
            str(s.get("dark", 0)),
            str(s.get("skipped", 0)),
        )
    return [roles, hosts]


def failure_report(model: ProgressModel) -> str:
    """Plain text: which host failed which task, and why (for the error message)."""
    blocks = []
    for f in model.failures:
        blocks.append(f.title() + "\n" + "\n".join("    " + ln for ln in f.lines))
    return "\n".join(blocks)


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
            hint=f"full log: {log_path}; fix and rerun: finished steps are skipped",
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


# --------------------------------------------------------------------------- SSH tunnel


@dataclass
class SshTarget:
    host: str
    user: str | None = None
    port: int | None = None
    key: str | None = None
    common_args: list[str] = field(default_factory=list)
    node_ip: str | None = None


def inventory_json(inventory: Path) -> dict[str, Any]:
    """The inventory as Ansible itself reads it (`ansible-inventory --list`)."""
    r = subprocess.run(
        [tool("ansible-inventory"), "-i", str(inventory), "--list"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "ANSIBLE_NOCOLOR": "True"},
    )
    if r.returncode != 0:
        raise ClusterError(f"ansible-inventory cannot read {inventory}:\n{r.stderr.strip()}")
    return json.loads(r.stdout)


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
                    f"the SSH tunnel to {target.host} closed: {err or 'no message'}",
                    hint="check that `ggctl ssh node-0` works",
                )
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
                break
            if time.monotonic() > deadline:
                raise ClusterError(
                    f"the SSH tunnel to {target.host} did not open in {timeout:.0f} s"
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
    clusters = {c.get("name"): c.get("cluster") or {} for c in config.get("clusters") or []}
    contexts = {c.get("name"): c.get("context") or {} for c in config.get("contexts") or []}
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
        extra_vars={**cfg.extra_vars, **parse_extra_vars(extra)},
        tags=_split(tags),
        skip_tags=_split(skip_tags),
        limit=limit,
        check=check,
        verbosity=max(0, settings.verbose - 1),
        forks=cfg.forks,
    )
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


def kubectl_from_settings(settings: Any, args: Sequence[str]) -> int:
    state = StateDir(settings.state_dir)
    inventory = resolve_inventory(state, None, settings.cluster.inventory)
    return run_kubectl(state, inventory, args, settings.cluster.tunnel_port)


def _split(values: Sequence[str]) -> list[str]:
    return [t.strip() for v in values for t in v.split(",") if t.strip()]
