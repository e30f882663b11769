"""The `ggctl` command line: parse flags, call one function, print. No logic worth testing here."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import rich_click as click
from rich.console import Console

from ggctl import __version__
from ggctl.config import Settings, load_settings
from ggctl.errors import GgctlError

console = Console()
err_console = Console(stderr=True)


class Ctx:
    """What the group passes to every command: the settings source and the console."""

    def __init__(self, config: Path | None, flags: dict[str, Any]):
        self.config = config
        self.flags = flags
        #: The last settings a command loaded: main() reports a failure with their
        #: verbosity and state dir.
        self.loaded: Settings | None = None

    def settings(self, **overrides: Any) -> Settings:
        merged: dict[str, Any] = dict(self.flags)
        for key, value in overrides.items():
            if isinstance(value, dict):
                merged[key] = {**merged.get(key, {}), **value}
            else:
                merged[key] = value
        self.loaded = load_settings(self.config, merged)
        return self.loaded


pass_ctx = click.make_pass_decorator(Ctx)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="ggctl")
@click.option(
    "--config",
    "config",
    type=click.Path(dir_okay=False, path_type=Path),
    help="TOML config file (default: $GGCTL_CONFIG, else ~/.config/ggctl/config.toml).",
)
@click.option("-v", "--verbose", count=True, help="More output; repeat for more.")
@click.option("-q", "--quiet", is_flag=True, default=None, help="Only errors and results.")
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where ggctl keeps state and run results (default: XDG state dir).",
)
@click.pass_context
def cli(
    ctx: click.Context,
    config: Path | None,
    verbose: int,
    quiet: bool | None,
    state_dir: Path | None,
) -> None:
    """ggctl: from nothing to a fast, autoscaled food-photo classifier on Kubernetes.

    \b
    The journey:   reserve → cluster → build → deploy → evaluate → teardown
    Locally:       demo (serve + load test + scores), serve, model
    """
    flags: dict[str, Any] = {"state_dir": state_dir, "quiet": quiet}
    if verbose:
        flags["verbose"] = verbose
    if isinstance(ctx.obj, Ctx):  # main()'s, so that it can report a failure
        ctx.obj.config, ctx.obj.flags = config, flags
    else:
        ctx.obj = Ctx(config, flags)


def _cloud_flags(**flags: Any) -> dict[str, Any]:
    """The [cloud] settings given on the command line (None: not given)."""
    return {"cloud": flags}


_os_cloud_option = click.option(
    "--os-cloud", help="clouds.yaml entry (default: $OS_CLOUD, else OS_* variables)."
)
_name_option = click.option(
    "--name", help="Suffix on every resource name (default: your OpenStack user name)."
)
_site_option = click.option("--site", help="Chameleon site (default KVM@TACC).")


@cli.command()
@click.option("--dry-run", is_flag=True, help="Print the plan; change nothing.")
@_name_option
@_site_option
@click.option("--flavor", help="Flavor to reserve (default m1.large).")
@click.option("--image", help="Node image (default CC-Ubuntu24.04).")
@click.option("--hours", type=int, help="Length of a new lease (default 6).")
@_os_cloud_option
@click.option(
    "--key",
    "public_key",
    type=click.Path(dir_okay=False, path_type=Path),
    help="SSH public key (default ~/.ssh/id_ed25519.pub, else id_rsa.pub).",
)
@pass_ctx
def reserve(
    ctx: Ctx,
    dry_run: bool,
    name: str | None,
    site: str | None,
    flavor: str | None,
    image: str | None,
    hours: int | None,
    os_cloud: str | None,
    public_key: Path | None,
) -> None:
    """Reserve the lease, networks and three VMs on Chameleon; resumes, never duplicates."""
    from ggctl.provision.reserve import reserve as do_reserve
    from ggctl.provision.show import configure_logging, print_plan, print_status

    settings = ctx.settings(
        **_cloud_flags(
            name=name,
            site=site,
            flavor=flavor,
            image=image,
            hours=hours,
            os_cloud=os_cloud,
            public_key=public_key,
        )
    )
    configure_logging(settings.verbose)
    result = do_reserve(settings, dry_run=dry_run, console=err_console)
    print_plan(err_console, result.actions, title="reserve (dry run)" if dry_run else "reserve")
    if result.state is not None:
        print_status(console, result.state, "table")


def _cluster_options(f: Any) -> Any:
    for option in reversed(
        [
            click.option(
                "--inventory",
                "-i",
                type=click.Path(dir_okay=False, path_type=Path),
                help="Ansible inventory (default: the one `ggctl reserve` wrote).",
            ),
            click.option("--check", is_flag=True, help="Ansible check mode: show, change nothing."),
            click.option("--tags", "-t", multiple=True, help="Only tasks with these tags."),
            click.option("--skip-tags", multiple=True, help="Skip tasks with these tags."),
            click.option("--limit", "-l", help="Only these hosts (an Ansible pattern)."),
            click.option(
                "-e",
                "--extra-var",
                "extra",
                multiple=True,
                metavar="KEY=VALUE",
                help="Override a role variable, e.g. cluster_kube_version=1.36.",
            ),
        ]
    ):
        f = option(f)
    return f


def _run_cluster(ctx: Ctx, playbook: str, **kw: Any) -> None:
    from ggctl.cluster import run_from_settings

    result = run_from_settings(ctx.settings(), playbook=playbook, console=err_console, **kw)
    if result.kubeconfig:
        console.print(
            f"kubeconfig: {result.kubeconfig} (ggctl kubectl -- get nodes)", highlight=False
        )
    console.print(
        f"[green]done[/] in {result.model.elapsed():.0f} s; log: {result.log_path}", highlight=False
    )


@cli.group(invoke_without_command=True)
@_cluster_options
@click.pass_context
def cluster(cctx: click.Context, **kw: Any) -> None:
    """Turn the VMs into a Kubernetes cluster with a registry (Ansible; safe to rerun)."""
    if cctx.invoked_subcommand is None:
        _run_cluster(cctx.find_object(Ctx), "cluster", **kw)


@cluster.command("reset")
@_cluster_options
@click.option("--registry", is_flag=True, help="Also delete the registry and its images.")
@pass_ctx
def cluster_reset(ctx: Ctx, registry: bool, extra: tuple[str, ...], **kw: Any) -> None:
    """Undo kubeadm on every node (packages and registry stay, unless --registry)."""
    extra = (*extra, "reset_registry=true") if registry else extra
    _run_cluster(ctx, "reset", extra=extra, **kw)


@cluster.command("registry")
@_cluster_options
@pass_ctx
def cluster_registry(ctx: Ctx, **kw: Any) -> None:
    """Only the registry, Docker Hub cache and image builder, and trust them on every node."""
    _run_cluster(ctx, "registry", **kw)


@cli.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@pass_ctx
def kubectl(ctx: Ctx, args: tuple[str, ...]) -> None:
    """Run kubectl against the cluster through an SSH tunnel via node-0: ggctl kubectl -- ARGS."""
    from ggctl.tunnel import kubectl_from_settings

    sys.exit(kubectl_from_settings(ctx.settings(), args))


_model_option = click.option(
    "--model",
    type=click.Path(dir_okay=False, path_type=Path),
    help="ONNX model to bake in (default: [serve] model, else the untrained demo model).",
)


def _choice_options(f: Any) -> Any:
    for option in reversed(
        [
            click.option(
                "--int8-if-better",
                is_flag=True,
                help="Bake in the model's int8 twin where it measures faster and its accuracy "
                "drop is within --max-drop (needs --data; see `ggctl model choose`).",
            ),
            click.option(
                "--data",
                type=click.Path(exists=True, file_okay=False, path_type=Path),
                help="Food-11 layout folder the accuracy drop is measured on.",
            ),
            click.option(
                "--max-drop",
                type=float,
                default=1.0,
                show_default=True,
                help="Largest accepted accuracy drop of int8, in percentage points.",
            ),
        ]
    ):
        f = option(f)
    return f


def _choice_table(choice: Any) -> Any:
    from rich.table import Table

    table = Table(title="fp32 or int8", title_justify="left")
    for column in ("", "fp32", "int8"):
        table.add_column(column, style="bold" if not column else None)
    models = (choice.fp32, choice.int8)
    table.add_row("p50 latency, batch 1", *(f"{m.p50_ms:#.3g} ms" for m in models))
    table.add_row(
        "accuracy",
        *("unknown" if m.accuracy is None else f"{m.accuracy:.2%} of {m.images}" for m in models),
    )
    table.add_row(
        "size",
        *(
            f"{m.size_bytes / 1e6:.2f} MB"
            if m.size_bytes >= 1e5
            else f"{m.size_bytes / 1e3:.1f} kB"
            for m in models
        ),
    )
    table.add_row("file", *(m.path for m in models))
    return table


def _chosen_model(
    settings: Settings,
    model: Path | None,
    int8_if_better: bool,
    data: Path | None,
    max_drop: float,
    *,
    dry_run: bool = False,
) -> Path | None:
    """--int8-if-better: run the choice, show it, and return the chosen file; else `model`."""
    if not int8_if_better:
        if data is not None:
            raise click.UsageError("--data goes with --int8-if-better")
        return model
    from ggctl.build import choose_for_build

    with err_console.status("quantizing, measuring and evaluating fp32 and int8…"):
        choice = choose_for_build(settings, model, data, max_drop, dry_run=dry_run)
    err_console.print(_choice_table(choice))
    err_console.print(f"[bold]{choice.chosen}[/] chosen: {choice.reason}", highlight=False)
    return Path(choice.path)


@cli.command()
@_model_option
@_choice_options
@click.option("--tag", help="Push under this tag instead of the content hash (always built).")
@click.option("--dry-run", is_flag=True, help="List the context's files and the tag; send nothing.")
@pass_ctx
def build(
    ctx: Ctx,
    model: Path | None,
    int8_if_better: bool,
    data: Path | None,
    max_drop: float,
    tag: str | None,
    dry_run: bool,
) -> None:
    """Build the service image on node-0 (BuildKit) and push it to node-0:5000; no local Docker."""
    from ggctl.build import prepare, run_build

    settings = ctx.settings()
    model = _chosen_model(settings, model, int8_if_better, data, max_drop, dry_run=dry_run)
    plan = prepare(settings, model, tag, dry_run=dry_run)
    if dry_run:
        rows = [(f.name, f"{f.size:,} B") for f in plan.context.files]
        console.print(
            _kv_table(
                f"dry run: {len(rows)} files, {plan.context.size:,} B (nothing sent)",
                [
                    *rows,
                    ("model", str(plan.context.model)),
                    ("tag", plan.tag),
                    ("image", plan.image),
                ],
            )
        )
        return
    result = run_build(settings, plan=plan, console=err_console)
    done = "pushed" if result.outcome.pushed else "already in the registry, not rebuilt:"
    console.print(
        f"{done} {result.outcome.image} ({result.outcome.seconds:.0f} s)", highlight=False
    )


@cli.command()
@click.option(
    "--strategy",
    type=click.Choice(["k8s", "lb", "hpa", "optimized"]),
    help="k8s, lb, hpa (the course's) or optimized (ours; the default).",
)
@click.option("--image", help="Image reference (default: the last `ggctl build`).")
@click.option(
    "--kubeconfig",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Cluster to use (default: <state dir>/kubeconfig, else $KUBECONFIG).",
)
@click.option("-n", "--namespace", help="Namespace (default: default).")
@click.option("--dry-run", is_flag=True, help="Render only; contact no cluster.")
@click.option(
    "-o",
    "--output",
    type=click.Choice(["yaml", "json"]),
    help="Print the manifests (with --dry-run: instead of applying).",
)
@click.option("--timeout", type=float, help="Seconds to wait for the rollout (default 600).")
@pass_ctx
def deploy(
    ctx: Ctx,
    strategy: str | None,
    image: str | None,
    kubeconfig: Path | None,
    namespace: str | None,
    dry_run: bool,
    output: str | None,
    timeout: float | None,
) -> None:
    """Deploy the service with a strategy; switching removes the previous one's objects."""
    from ggctl.manifests.deploy import plan, render_output, run_deploy

    settings = ctx.settings(
        deploy={
            "strategy": strategy,
            "image": image,
            "namespace": namespace,
            "kubeconfig": kubeconfig,
            "timeout": timeout,
        }
    )
    if output:
        click.echo(render_output(plan(settings), output), nl=False)
    if dry_run:
        if not output:
            p = plan(settings)
            console.print(
                _kv_table(
                    f"dry run: strategy {p.strategy} (nothing applied)",
                    [(f"{o['kind']}", o["metadata"]["name"]) for o in p.objects]
                    + [("image", f"{p.image} ({p.image_source})"), ("namespace", p.namespace)],
                )
            )
        return
    from ggctl.state import StateDir
    from ggctl.tunnel import api_access

    with api_access(settings, StateDir(settings.state_dir)):
        result = run_deploy(settings, console=err_console)
    console.print(
        _kv_table(
            f"deployed in {result.namespace} ({result.rollout_s:.0f} s rollout)",
            [(f"{c.kind} {c.name}", c.action) for c in result.changes],
        )
    )


@cli.command()
@click.option("--url", help="Service base URL (default: http://<node-0's floating IP>:32000).")
@click.option(
    "--profile",
    default="challenge",
    show_default=True,
    help="Load profile: challenge, smoke, or a YAML file.",
)
@click.option(
    "--speed",
    type=float,
    default=1.0,
    show_default=True,
    help="Time compression of the profile (1: the challenge's 30 minutes).",
)
@click.option("--duration", type=float, help="Stop after this many (compressed) seconds.")
@click.option(
    "--kubeconfig",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Cluster to sample (default: the one `ggctl deploy` used).",
)
@click.option("-n", "--namespace", help="Namespace of the pods (default: the deployment's).")
@click.option(
    "--data",
    type=click.Path(file_okay=False, path_type=Path),
    help="Food-11 folder: also report the accuracy of --model on it.",
)
@click.option(
    "--model",
    type=click.Path(dir_okay=False, path_type=Path),
    help="ONNX model the image was built from (with --data).",
)
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the results JSON here.",
)
@pass_ctx
def evaluate(
    ctx: Ctx,
    url: str | None,
    profile: str,
    speed: float,
    duration: float | None,
    kubeconfig: Path | None,
    namespace: str | None,
    data: Path | None,
    model: Path | None,
    json_path: Path | None,
) -> None:
    """Load-test the deployed service with the challenge's profile while sampling its pods."""
    from ggctl.evaluate.cluster_run import run_evaluation
    from ggctl.evaluate.report import scores_table, stages_table

    settings = ctx.settings(deploy={"kubeconfig": kubeconfig})

    def show(r: Any) -> None:
        if not settings.quiet:
            console.print(stages_table(r.scores, r.profile))
        console.print(
            scores_table(
                r.scores,
                title=f"{r.run_dir.name}: {r.profile.name} x{r.profile.speed:g} at {r.target.url}",
            )
        )
        if r.accuracy:
            console.print(
                f"accuracy {r.accuracy['accuracy']:.2%} ({r.accuracy['correct']}/"
                f"{r.accuracy['images']}) of {r.accuracy['model']}",
                highlight=False,
            )
        for w in r.warnings:
            err_console.print(f"[yellow]warning:[/] {w}", highlight=False)
        console.print(f"[dim]files and plots in {r.run_dir}[/]", highlight=False)

    from ggctl.state import StateDir
    from ggctl.tunnel import api_access

    # The sampler reaches ggctl's own cluster through the SSH tunnel, as deploy does.
    with api_access(settings, StateDir(settings.state_dir)):
        run_evaluation(
            settings,
            url=url,
            profile=profile,
            speed=speed,
            duration=duration,
            namespace=namespace,
            data=data,
            model=model,
            json_path=json_path,
            console=err_console,
            on_result=show,
        )


@cli.command()
@click.argument(
    "runs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False, path_type=Path)
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the table and plots go (default: <state dir>/runs/<stamp>-report).",
)
@pass_ctx
def report(ctx: Ctx, runs: tuple[Path, ...], out: Path | None) -> None:
    """Put evaluate (or demo) runs side by side: one table, one plot per metric."""
    from ggctl.evaluate.compare import run_report

    r = run_report(list(runs), out, state_dir=ctx.settings().state_dir)
    console.print(r.table)
    console.print(f"[dim]plots and report.csv in {r.out_dir}[/]", highlight=False)


@cli.command()
@click.option("-o", "--output", type=click.Choice(["table", "json", "yaml"]), default="table")
@_name_option
@_site_option
@_os_cloud_option
@pass_ctx
def status(ctx: Ctx, output: str, name: str | None, site: str | None, os_cloud: str | None) -> None:
    """Show what exists: lease and its expiry, servers, addresses, floating IP."""
    from ggctl.provision.show import configure_logging, print_status
    from ggctl.provision.status import status as do_status

    settings = ctx.settings(**_cloud_flags(name=name, site=site, os_cloud=os_cloud))
    configure_logging(settings.verbose)
    print_status(console, do_status(settings), output)


@cli.command()
@click.option(
    "--hours", type=click.IntRange(1, 24 * 183), required=True, help="Hours to add to the lease."
)
@_name_option
@_site_option
@_os_cloud_option
@pass_ctx
def extend(ctx: Ctx, hours: int, name: str | None, site: str | None, os_cloud: str | None) -> None:
    """Lengthen the lease by some hours."""
    from ggctl.provision.show import configure_logging
    from ggctl.provision.status import extend as do_extend

    settings = ctx.settings(**_cloud_flags(name=name, site=site, os_cloud=os_cloud))
    configure_logging(settings.verbose)
    lease = do_extend(settings, hours)
    console.print(
        f"lease {lease['name']} {lease['status']}: ends {lease['end']} ({lease['remaining']})",
        highlight=False,
    )


@cli.command(context_settings={"ignore_unknown_options": True})
@click.argument("node")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@pass_ctx
def ssh(ctx: Ctx, node: str, command: tuple[str, ...]) -> None:
    """SSH to node-N through node-0 (`ggctl ssh node-1 -- uptime`)."""
    import os

    from ggctl.provision.shell import ssh_command

    argv = ssh_command(ctx.settings().state_dir, node, list(command))
    os.execvp(argv[0], argv)  # noqa: S606 (replace ggctl by ssh: a tty, signals, exit code)


@cli.command()
@click.option("--dry-run", is_flag=True, help="List what would be deleted; change nothing.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@_name_option
@_site_option
@_os_cloud_option
@pass_ctx
def teardown(
    ctx: Ctx, dry_run: bool, yes: bool, name: str | None, site: str | None, os_cloud: str | None
) -> None:
    """Release everything of yours: floating IP, servers, router, networks, group, lease."""
    from ggctl.provision.show import configure_logging, print_leaks, print_plan
    from ggctl.provision.teardown import teardown as do_teardown

    settings = ctx.settings(**_cloud_flags(name=name, site=site, os_cloud=os_cloud))
    configure_logging(settings.verbose)
    if not dry_run and not yes:
        preview = do_teardown(settings, dry_run=True, console=err_console)
        print_plan(err_console, preview.actions, title=f"teardown of {preview.suffix}")
        if not preview.actions:
            return
        click.confirm("Delete all of the above?", abort=True, err=True)
    result = do_teardown(settings, dry_run=dry_run, console=err_console)
    print_plan(
        err_console,
        result.actions,
        title="teardown (dry run)" if dry_run else f"teardown of {result.suffix}",
    )
    if not dry_run:
        print_leaks(console, result.leaks)
        if result.leaks:
            raise GgctlError(
                "teardown left resources behind (listed above)",
                hint="rerun `ggctl teardown --yes`; it is safe to repeat",
            )


@cli.command()
@click.option(
    "--strategy",
    type=click.Choice(["k8s", "lb", "hpa", "optimized"]),
    help="Deploy strategy (default: [deploy] strategy, optimized).",
)
@_model_option
@_choice_options
@click.option(
    "--key",
    "public_key",
    type=click.Path(dir_okay=False, path_type=Path),
    help="SSH public key (default ~/.ssh/id_ed25519.pub, else id_rsa.pub).",
)
@_name_option
@_site_option
@_os_cloud_option
@pass_ctx
def up(
    ctx: Ctx,
    strategy: str | None,
    model: Path | None,
    int8_if_better: bool,
    data: Path | None,
    max_drop: float,
    public_key: Path | None,
    name: str | None,
    site: str | None,
    os_cloud: str | None,
) -> None:
    """From nothing to a URL: reserve → cluster → build → deploy, skipping what is done."""
    from ggctl.provision.show import configure_logging
    from ggctl.up import run_up, steps_table

    settings = ctx.settings(
        deploy={"strategy": strategy},
        **_cloud_flags(name=name, site=site, os_cloud=os_cloud, public_key=public_key),
    )
    configure_logging(settings.verbose)
    model = _chosen_model(settings, model, int8_if_better, data, max_drop)

    def show(step: Any) -> None:
        mark = {"ran": "[green]✓[/]", "skipped": "[dim]–[/]", "failed": "[red]✗[/]"}
        err_console.print(
            f"{mark.get(step.status, '?')} [bold]{step.name}[/] {step.status} "
            f"in {step.seconds:.1f} s: {step.detail}",
            highlight=False,
        )

    result = run_up(settings, model=model, console=err_console, on_step=show)
    console.print(steps_table(result))
    console.print(
        f"service: {result.url}  (open it in a browser to classify a photo; "
        f"{result.url}test runs the bundled test image)",
        highlight=False,
    )


@cli.command()
@click.option("--dry-run", is_flag=True, help="List what would be deleted; change nothing.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@_name_option
@_site_option
@_os_cloud_option
@click.pass_context
def down(cctx: click.Context, dry_run: bool, **kw: Any) -> None:
    """Undo `ggctl up`: teardown, then forget the cluster, image and deployment records."""
    from ggctl.up import forget_markers

    cctx.invoke(teardown, dry_run=dry_run, **kw)
    if not dry_run:
        forgot = forget_markers(cctx.find_object(Ctx).settings().state_dir)
        if forgot:
            console.print(f"forgot {', '.join(forgot)}", highlight=False)


@cli.command()
@click.option(
    "--model",
    type=click.Path(dir_okay=False, path_type=Path),
    help="ONNX model to serve (default: the built-in, untrained demo model).",
)
@click.option("--host", help="Address to bind (default 127.0.0.1; 0.0.0.0 to expose).")
@click.option("--port", type=int, help="Port (default 5000).")
@click.option("--workers", type=int, help="gunicorn worker processes (default 1).")
@click.option("--threads", type=int, help="Request threads per worker (default 4).")
@click.option(
    "--ort-threads", type=int, help="ONNX Runtime threads per inference (0: 2 on 2+ CPUs)."
)
@click.option(
    "--max-inflight", type=int, help="Concurrent inferences per worker (0: fill the CPUs)."
)
@click.option("--max-upload-mb", type=float, help="Largest accepted upload (default 10).")
@click.option("--access-log", is_flag=True, help="Log every request.")
@pass_ctx
def serve(
    ctx: Ctx,
    model: Path | None,
    host: str | None,
    port: int | None,
    workers: int | None,
    threads: int | None,
    ort_threads: int | None,
    max_inflight: int | None,
    max_upload_mb: float | None,
    access_log: bool,
) -> None:
    """Serve the classifier locally under gunicorn (page, /predict, /test, /metrics)."""
    from ggctl.serving import serve_options, start_foreground

    settings = ctx.settings(
        serve={
            "model": model,
            "host": host,
            "port": port,
            "workers": workers,
            "threads": threads,
            "ort_threads": ort_threads,
            "max_inflight": max_inflight,
            "max_upload_mb": max_upload_mb,
        }
    )
    opts = serve_options(settings, access_log=access_log)
    if not settings.quiet:
        err_console.print(
            f"[bold]ggctl serve[/] {opts.model} on http://{opts.host}:{opts.port}/ "
            f"({opts.workers} worker(s) x {opts.threads} threads, ORT {opts.ort_threads} "
            f"thread(s)); Ctrl-C stops",
            highlight=False,
        )
    start_foreground(opts)


@cli.group("config")
def config_group() -> None:
    """Inspect the effective settings."""


@config_group.command("show")
@click.option("-o", "--output", type=click.Choice(["toml", "json"]), default="json")
@pass_ctx
def config_show(ctx: Ctx, output: str) -> None:
    """Print the settings after defaults, config file, GGCTL_* variables and flags."""
    settings = ctx.settings()
    data = settings.model_dump(mode="json")
    if output == "json":
        import json

        click.echo(json.dumps(data, indent=2))
    else:
        for section, values in data.items():
            if not isinstance(values, dict):
                click.echo(f"{section} = {_toml_value(values)}")
        for section, values in data.items():
            if isinstance(values, dict):
                click.echo(f"\n[{section}]")
                for key, value in values.items():
                    if value is not None:
                        click.echo(f"{key} = {_toml_value(value)}")


def _toml_value(value: Any) -> str:
    import json

    return json.dumps(value)


@cli.group("model")
def model_group() -> None:
    """Export, quantize, evaluate and choose (fp32 or int8) ONNX classifiers; the demo model."""


def _floats3(text: str | None, flag: str) -> tuple[float, float, float] | None:
    if text is None:
        return None
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 3:
        raise GgctlError(f"{flag} takes three comma-separated numbers (R,G,B), not {text!r}")
    return values  # type: ignore[return-value]


def _kv_table(title: str, rows: list[tuple[str, str]]) -> Any:
    from rich.table import Table

    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    for key, value in rows:
        table.add_row(key, value)
    return table


@model_group.command("export")
@click.argument("src", type=click.Path(exists=True, path_type=Path))
@click.option(
    "-o",
    "--output",
    "out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="ONNX file to write.",
)
@click.option(
    "--framework",
    type=click.Choice(["keras", "torch"]),
    help="Source framework (default: from the file suffix).",
)
@click.option(
    "--class-names",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Class names: one per line, or a JSON list (default: Food-11's 11).",
)
@click.option("--input-size", help="Input size N or HxW (default: the model's, else 224).")
@click.option(
    "--normalization",
    help="course ([0,1], Keras default), imagenet (PyTorch default), raw (0..255) or tf ([-1,1]).",
)
@click.option("--mean", help="Per-channel mean R,G,B, applied after scaling.")
@click.option("--std", help="Per-channel std R,G,B.")
@click.option("--scale", type=float, help="Pixel scale factor (e.g. 0.00392 for 1/255).")
@click.option(
    "--resample",
    type=click.Choice(["nearest", "bilinear", "bicubic", "lanczos", "box", "hamming"]),
    help="Resize filter (default: bicubic for Keras, bilinear for PyTorch).",
)
@click.option(
    "--output-kind",
    type=click.Choice(["probabilities", "logits"]),
    help="What the model outputs (default: detected).",
)
@click.option("--name", help="Model name shown by the service (default: the file's stem).")
@click.option("--description", default="", help="Free text stored with the model.")
@click.option("--opset", type=int, default=17, show_default=True, help="ONNX opset.")
def model_export(
    src: Path,
    out: Path,
    framework: str | None,
    class_names: Path | None,
    input_size: str | None,
    normalization: str | None,
    mean: str | None,
    std: str | None,
    scale: float | None,
    resample: str | None,
    output_kind: str | None,
    name: str | None,
    description: str,
    opset: int,
) -> None:
    """Export a Keras (.keras, .h5, SavedModel) or PyTorch (TorchScript, pickled) model."""
    from ggctl.model.export import export_model, parse_size, read_class_names

    report = export_model(
        src,
        out,
        framework=framework,
        class_names=read_class_names(class_names) if class_names else None,
        input_size=parse_size(input_size) if input_size else None,
        normalization=normalization,
        scale=scale,
        mean=_floats3(mean, "--mean"),
        std=_floats3(std, "--std"),
        resample=resample,
        output=output_kind,
        name=name,
        description=description,
        opset=opset,
    )
    m = report.meta
    console.print(
        _kv_table(
            f"exported {report.framework} model",
            [
                ("output", report.output),
                ("size", f"{report.size_bytes / 1e6:.2f} MB"),
                ("input", f"{m.layout} {m.input_height}x{m.input_width}, {m.resample} resize"),
                ("normalisation", f"pixel*{m.scale:.6g}, mean {m.mean}, std {m.std}"),
                ("output", f"{m.output}, {m.num_classes} classes"),
                ("max |ORT - source|", f"{report.max_abs_diff:.3g} (random input)"),
                ("took", f"{report.seconds:.1f} s"),
            ],
        )
    )


@model_group.command("quantize")
@click.argument("model", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "-o",
    "--output",
    "out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="int8 ONNX file to write.",
)
@click.option(
    "--calibration",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Folder of calibration images (default: synthetic images).",
)
@click.option(
    "--max-images", type=int, default=64, show_default=True, help="Calibration images used at most."
)
@click.option(
    "--threads",
    type=int,
    default=1,
    show_default=True,
    help="ORT intra-op threads for the latency comparison.",
)
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the report as JSON.",
)
def model_quantize(
    model: Path,
    out: Path,
    calibration: Path | None,
    max_images: int,
    threads: int,
    json_path: Path | None,
) -> None:
    """Quantize to int8 (static QDQ) and compare size, speed and top-1 with the fp32 model."""
    from ggctl.model.quantize import quantize_model

    with console.status("calibrating and quantizing…"):
        r = quantize_model(model, out, calibration, max_images=max_images, threads=threads)
    if json_path:
        json_path.write_text(r.to_json())
    console.print(
        _kv_table(
            "int8 quantization (static, QDQ)",
            [
                ("output", r.output),
                (
                    "size",
                    f"{r.size_fp32_bytes / 1e6:.2f} MB → {r.size_int8_bytes / 1e6:.2f} MB "
                    f"({r.size_ratio:.1f}x smaller)",
                ),
                (
                    "p50 latency, batch 1",
                    f"fp32 {r.p50_fp32_ms:.2f} ms, int8 {r.p50_int8_ms:.2f} ms "
                    f"({r.threads} thread(s))",
                ),
                ("speed", r.verdict),
                ("top-1 agreement", f"{r.agreement:.1%} of {r.images} images"),
                ("calibration", r.calibration),
                ("cpu", f"{r.cpu} ({'with' if r.vnni else 'no'} VNNI)"),
            ],
        )
    )


@model_group.command("choose")
@click.argument("model", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--data",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Food-11 layout folder for both accuracies (without it int8 is never chosen).",
)
@click.option(
    "--max-drop",
    type=float,
    default=1.0,
    show_default=True,
    help="Largest accepted accuracy drop of int8, in percentage points.",
)
@click.option(
    "-o",
    "--output",
    "out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the int8 model and choice.json (default: <model>.choice/ beside it).",
)
@click.option(
    "--int8",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Compare with this int8 model instead of quantizing.",
)
@click.option("--threads", type=int, default=1, show_default=True, help="ORT intra-op threads.")
def model_choose(
    model: Path,
    data: Path | None,
    max_drop: float,
    out: Path | None,
    int8: Path | None,
    threads: int,
) -> None:
    """fp32 or int8: int8 only where it measures faster here and loses at most --max-drop points."""
    from ggctl.model.select import choose_model

    out = out or model.with_name(model.stem + ".choice")
    with console.status("quantizing, measuring and evaluating fp32 and int8…"):
        c = choose_model(model, data, max_drop, out, threads, int8_path=int8)
    console.print(_choice_table(c))
    console.print(f"[bold]{c.chosen}[/] chosen: {c.reason}", highlight=False)
    console.print(f"model to serve: {c.path}  (record: {out / 'choice.json'})", highlight=False)


@model_group.command("evaluate")
@click.argument("model", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--data",
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Food-11 layout folder: <class>_<n>.jpg files, or split subfolders.",
)
@click.option(
    "--split",
    type=click.Choice(["training", "validation", "evaluation"]),
    help="Split folder to use (default: evaluation when present).",
)
@click.option("--limit", type=int, help="Evaluate an evenly spread subset of this many images.")
@click.option("--threads", type=int, default=1, show_default=True, help="ORT intra-op threads.")
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the results as JSON.",
)
def model_evaluate(
    model: Path,
    data: Path,
    split: str | None,
    limit: int | None,
    threads: int,
    json_path: Path | None,
) -> None:
    """Accuracy, per-class accuracy, confusion matrix and latency on Food-11 images."""
    from rich.table import Table

    from ggctl.model.evaluate import evaluate_model

    r = evaluate_model(
        model,
        data,
        split=split,
        limit=limit,
        ort_threads=threads,
        console=console,
        json_path=json_path,
    )
    if r.description:
        console.print(f"[dim]{r.model_name}: {r.description}[/]", highlight=False)
    per_class = Table(
        title=f"accuracy {r.accuracy:.2%} ({r.correct}/{r.images}), mean "
        f"latency {r.mean_latency_ms:.1f} ms (preprocess "
        f"{r.mean_preprocess_ms:.1f} + inference "
        f"{r.mean_inference_ms:.1f})",
        title_justify="left",
    )
    for col in ("#", "class", "images", "correct", "accuracy"):
        per_class.add_column(col, justify="left" if col == "class" else "right")
    for c in r.per_class:
        per_class.add_row(
            str(c.index),
            c.name,
            str(c.images),
            str(c.correct),
            f"{c.accuracy:.1%}" if c.images else "—",
        )
    console.print(per_class)
    confusion = Table(
        title="confusion matrix (rows: true class, columns: predicted)", title_justify="left"
    )
    confusion.add_column("")
    for i in range(len(r.class_names)):
        confusion.add_column(str(i), justify="right")
    for i, row in enumerate(r.confusion):
        confusion.add_row(
            str(i), *(f"[bold]{v}[/]" if i == j else str(v or "·") for j, v in enumerate(row))
        )
    console.print(confusion)
    if r.skipped:
        err_console.print(
            f"[yellow]skipped {len(r.skipped)} undecodable image(s)[/]: "
            + ", ".join(Path(p).name for p in r.skipped[:5]),
            highlight=False,
        )


@model_group.command("build-demo")
@click.option(
    "-o",
    "--output",
    "out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="ONNX file to write.",
)
@click.option("--resolution", type=int, default=224, show_default=True, help="Input size.")
@click.option("--width", type=float, default=1.0, show_default=True, help="Width multiplier.")
@click.option("--seed", type=int, default=0, show_default=True, help="Weight seed.")
def model_build_demo(out: Path, resolution: int, width: float, seed: int) -> None:
    """Write the UNTRAINED MobileNetV2-shaped demo model (random weights, meaningless output)."""
    from ggctl.model.mobilenet import build_mobilenet_v2, save_model_atomic

    try:
        model, cost = build_mobilenet_v2(resolution=resolution, width=width, seed=seed)
    except ValueError as exc:
        raise GgctlError(str(exc)) from None
    save_model_atomic(model, out)
    console.print(
        _kv_table(
            "demo model (UNTRAINED: predictions are meaningless)",
            [
                ("output", str(out)),
                ("size", f"{out.stat().st_size / 1e6:.2f} MB"),
                ("parameters", f"{cost.parameters / 1e6:.2f} M"),
                (
                    "compute",
                    f"{cost.macs / 1e6:.0f} M multiply-adds ({cost.mflops:.0f} MFLOPs) per image",
                ),
                ("input", f"NHWC {resolution}x{resolution}, pixels scaled to [0, 1]"),
            ],
        )
    )


def _recipe_options(f: Any) -> Any:
    from ggctl.model.recipe import click_options

    for option in reversed(click_options()):
        f = option(f)
    return f


@model_group.command("train")
@click.option(
    "--data",
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Food-11 folder: training/, validation/, evaluation/ of <class>_<n>.jpg.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Run directory (default: runs/<backbone>-<img-size>); rerun to resume.",
)
@click.option(
    "--class-names",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Class names: one per line, or a JSON list (default: Food-11's 11).",
)
@click.option("--no-progress", is_flag=True, help="No progress bars (for log files).")
@_recipe_options
def model_train(
    data: Path, out: Path | None, class_names: Path | None, no_progress: bool, **flags: Any
) -> None:
    """Fine-tune a backbone on Food-11, then export ONNX + int8 and evaluate both (resumable)."""
    from ggctl.model.compare import overview_table
    from ggctl.model.export import read_class_names
    from ggctl.model.recipe import default_run_dir, given
    from ggctl.model.train import train

    overrides = given(flags)
    outcome = train(
        data,
        out or default_run_dir(overrides),
        overrides,
        class_names=read_class_names(class_names) if class_names else None,
        console=console,
        progress=not no_progress,
    )
    if outcome.summary:
        console.print(overview_table([outcome.summary]))
    console.print(f"run directory: {outcome.run_dir}", highlight=False)


@model_group.command("compare")
@click.argument(
    "runs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False, path_type=Path)
)
def model_compare(runs: tuple[Path, ...]) -> None:
    """Accuracy (fp32, int8), p50 latency and size of `ggctl model train` runs, side by side."""
    from ggctl.model.compare import compare_tables

    for table in compare_tables(list(runs)):
        console.print(table)


@cli.command()
@click.option(
    "--model",
    type=click.Path(dir_okay=False, path_type=Path),
    help="ONNX model to serve (default: the built-in, untrained demo model).",
)
@click.option(
    "--speed", type=float, help="Time compression of the profile (default 15: 30 min in 2 min)."
)
@click.option("--duration", type=float, help="Stop after this many (compressed) seconds.")
@click.option("--profile", help="Load profile: challenge, smoke, or a YAML file.")
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the results JSON here.",
)
@click.option("--keep-serving", is_flag=True, help="Leave the service up until Ctrl-C.")
@click.option("--workers", type=int, help="gunicorn worker processes.")
@click.option("--threads", type=int, help="Request threads per worker.")
@click.option(
    "--ort-threads", type=int, help="ONNX Runtime threads per inference (0: 2 on 2+ CPUs)."
)
@pass_ctx
def demo(
    ctx: Ctx,
    model: Path | None,
    speed: float | None,
    duration: float | None,
    profile: str | None,
    json_path: Path | None,
    keep_serving: bool,
    workers: int | None,
    threads: int | None,
    ort_threads: int | None,
) -> None:
    """Serve locally and run the challenge's load test on it, time-compressed, with scores."""
    from ggctl.demo import run_demo
    from ggctl.evaluate.report import scores_table, stages_table

    settings = ctx.settings(
        demo={"speed": speed, "duration": duration, "profile": profile},
        serve={"model": model, "workers": workers, "threads": threads, "ort_threads": ort_threads},
    )

    def show(result: Any) -> None:
        if not settings.quiet:
            console.print(stages_table(result.scores, result.profile))
        console.print(
            scores_table(
                result.scores,
                title=f"{result.profile.name} profile x{result.profile.speed:g} on "
                f"{result.model.name} ({result.scores.duration_s:.0f} s)",
            )
        )
        warned = " (Locust warned of CPU saturation)" if result.load.cpu_warning else ""
        console.print(
            f"[dim]load generator used {result.load.cpu_cores:.2f} CPU cores{warned}; "
            f"files in {result.run_dir}[/]",
            highlight=False,
        )

    run_demo(
        settings,
        keep_serving=keep_serving,
        json_path=json_path,
        console=err_console,
        on_result=show,
    )


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI, turning failures of the outside world into one readable
    message (errors.report: -v shows the traceback, <state dir>/errors.log keeps it)."""
    from ggctl.errors import report

    run = Ctx(None, {})
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        cli.main(args=args, prog_name="ggctl", standalone_mode=False, obj=run)
    except click.exceptions.Abort:
        err_console.print("[yellow]Aborted.[/]")
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err_console.print("[yellow]Interrupted.[/]")
        sys.exit(130)
    except Exception as exc:
        settings = run.loaded
        verbose = settings.verbose if settings else int(run.flags.get("verbose") or 0)
        code = report(
            exc,
            err_console,
            verbose=verbose,
            state_dir=settings.state_dir if settings else None,
            argv=args,
        )
        if code is None:
            raise  # a bug in ggctl: its traceback is what a report needs
        sys.exit(code)
    else:
        sys.exit(0)
