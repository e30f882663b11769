"""Settings → the service's run options, and the model to serve by default."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from ggctl.app.modelmeta import MetadataError, ModelMeta, resolve_metadata
from ggctl.app.server import PROCESS_ENV, ServeOptions
from ggctl.config import Settings
from ggctl.errors import GgctlError


def default_model(settings: Settings) -> Path:
    """The built-in demo model, built once into the state dir's model cache."""
    from ggctl.model.mobilenet import ensure_demo_model

    return ensure_demo_model(settings.state_dir / "models")


def serve_options(settings: Settings, access_log: bool = False) -> ServeOptions:
    """ServeOptions for `settings.serve`, with the model checked to load."""
    s = settings.serve
    model = Path(s.model) if s.model else default_model(settings)
    check_model(model)
    return ServeOptions(
        model=str(model),
        host=s.host,
        port=s.port,
        workers=s.workers,
        threads=s.threads,
        ort_threads=s.ort_threads,
        max_inflight=s.max_inflight,
        max_upload_mb=s.max_upload_mb,
        timeout=s.timeout,
        keepalive=s.keepalive,
        master=s.master,
        ort_arena=s.ort_arena,
        access_log=access_log,
    )


def start_foreground(opts: ServeOptions) -> None:
    """Become the container's entrypoint (`python -m ggctl.app.server`) with these options,
    until interrupted.

    An exec, not a call: gunicorn in this process would keep everything the command line
    loaded (click, rich, pydantic, the `onnx` package and the model it parsed for the
    check) for the server's whole life, in its master or, with one worker, in the worker
    itself; the issue measured ggctl serve at 203 MiB RSS against the container's ~120.
    """
    own = {k: v for k, v in os.environ.items() if not k.startswith("GGCTL_SERVE__")}
    env = {**PROCESS_ENV, **own}
    env.update(opts.to_env())
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, "-m", "ggctl.app.server"], env)  # noqa: S606 - our own interpreter, argv fixed


def check_model(path: Path) -> ModelMeta:
    """Fail early, with a clear message, on a model the service could not serve.

    This reads the file with `onnx`, not ONNX Runtime: an ORT session created here, in
    gunicorn's master, would be inherited by the forked workers, whose ORT thread pools
    then abort the process at exit.
    """
    import onnx

    hint = "pass --model with an image classifier in ONNX format"
    if not path.is_file():
        raise GgctlError(f"model file {path} does not exist", hint=hint)
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise GgctlError(f"{path} is not a loadable ONNX model: {exc}", hint=hint) from None
    graph = proto.graph
    initializers = {t.name for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializers]
    if len(inputs) != 1 or not graph.output:
        raise GgctlError(f"{path}: expected one image input, found {len(inputs)}", hint=hint)
    try:
        return resolve_metadata(
            path,
            {p.key: p.value for p in proto.metadata_props},
            _dims(inputs[0]),
            (_dims(graph.output[0]) or [None])[-1],
        )
    except MetadataError as exc:
        raise GgctlError(f"{path}: {exc}", hint=hint) from None


def _dims(value_info) -> list[int | str | None]:
    dims = value_info.type.tensor_type.shape.dim
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in dims]
