"""`ggctl serve`: the classifier locally under gunicorn (local/, app/)."""

from __future__ import annotations

from pathlib import Path

import rich_click as click

from ggctl.commands.base import Ctx, err_console, pass_ctx


@click.command()
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
    from ggctl.local.serving import serve_options, start_foreground

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
