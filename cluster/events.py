"""ansible-runner events → what a person needs: tasks, hosts, per-role time, failures.

ProgressModel   pure bookkeeping of the events (testable without a terminal)
RichProgress    the live display on top of it
failure_lines   the lines of a failed task's result that matter (command, rc, msg, stderr)
"""

from __future__ import annotations

import shlex
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

FAILURE_LINES = 25


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
