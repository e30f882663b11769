"""Settings → the service's run options, and the model to serve by default."""

from __future__ import annotations

from pathlib import Path

from ggctl.app.inference import Classifier, ModelLoadError
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
    try:
        Classifier(model, ort_threads=1, max_inflight=1)
    except ModelLoadError as exc:
        raise GgctlError(str(exc), hint="pass --model with an image classifier in ONNX format") from None
    return ServeOptions(
        model=str(model), host=s.host, port=s.port, workers=s.workers, threads=s.threads,
        ort_threads=s.ort_threads, max_inflight=s.max_inflight, max_upload_mb=s.max_upload_mb,
        timeout=s.timeout, access_log=access_log,
    )


def start_foreground(opts: ServeOptions) -> None:
    """Run gunicorn in this process until interrupted."""
    run(opts)
