"""Settings → the service's run options, and the model to serve by default."""

from __future__ import annotations

from pathlib import Path

from ggctl.app.modelmeta import MetadataError, ModelMeta, resolve_metadata
from ggctl.app.server import ServeOptions, run
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
        access_log=access_log,
    )


def start_foreground(opts: ServeOptions) -> None:
    """Run gunicorn in this process until interrupted."""
    run(opts)


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
