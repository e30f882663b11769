"""The service's Flask app: routes, content negotiation, errors, metrics hooks."""

from __future__ import annotations

import io
import os
import threading
import time
from pathlib import Path
from typing import Any

from flask import Flask, Request, jsonify, render_template, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from . import metrics
from .inference import Classifier, ModelLoadError, Prediction
from .preprocess import ImageError

HERE = Path(__file__).resolve().parent
TEST_IMAGE = HERE / "static" / "test_image.jpg"
ENV = "GGCTL_SERVE__"


class InMemoryRequest(Request):
    """Werkzeug spools uploads over 500 KB to temporary files; keep every upload in memory.

    MAX_CONTENT_LENGTH bounds what this can hold.
    """

    def _get_file_stream(
        self, total_content_length, content_type, filename=None, content_length=None
    ):
        return io.BytesIO()


def _env(name: str, default: Any) -> Any:
    return os.environ.get(ENV + name.upper(), default)


def create_app(
    model_path: str | os.PathLike[str] | None = None,
    *,
    ort_threads: int | None = None,
    max_inflight: int | None = None,
    max_upload_mb: float | None = None,
    ort_arena: bool | None = None,
    warmup: bool = True,
) -> Flask:
    """Build the service; raises ModelLoadError when the model cannot be served."""
    model_path = model_path or _env("model", None)
    if not model_path:
        raise ModelLoadError(
            "no model given: pass model_path or set GGCTL_SERVE__MODEL to an .onnx file"
        )
    ort_threads = int(ort_threads if ort_threads is not None else _env("ort_threads", 0))
    max_inflight = int(max_inflight if max_inflight is not None else _env("max_inflight", 0))
    max_upload_mb = float(max_upload_mb if max_upload_mb is not None else _env("max_upload_mb", 10))
    if ort_arena is None:
        ort_arena = str(_env("ort_arena", "1")).lower() in ("1", "true", "yes", "on")

    app = Flask(__name__)
    app.request_class = InMemoryRequest
    app.config["MAX_CONTENT_LENGTH"] = int(max_upload_mb * 1024 * 1024)
    app.config["MAX_FORM_MEMORY_SIZE"] = app.config["MAX_CONTENT_LENGTH"]
    app.config["JSON_SORT_KEYS"] = False

    clf = Classifier(
        model_path, ort_threads=ort_threads, max_inflight=max_inflight, arena=ort_arena
    )
    test_bytes = TEST_IMAGE.read_bytes()
    ready = threading.Event()
    meta = clf.meta
    metrics.MODEL_INFO.labels(
        meta.name,
        str(meta.num_classes),
        f"{meta.input_height}x{meta.input_width}",
        meta.extra.get("metadata_source", ""),
    ).set(1)
    app.extensions["ggctl.classifier"] = clf

    def classify(data: bytes) -> Prediction:
        pred = clf.classify_bytes(data)
        metrics.PREPROCESS_SECONDS.observe(pred.preprocess_ms / 1e3)
        metrics.INFERENCE_SECONDS.observe(pred.inference_ms / 1e3)
        return pred

    if warmup:
        # The first ORT run allocates arenas and picks kernels; do it before readiness.
        classify(test_bytes)
        ready.set()

    @app.before_request
    def _start() -> None:
        request.environ["ggctl.t0"] = time.perf_counter()
        metrics.INFLIGHT.inc()

    @app.teardown_request
    def _done(_exc: BaseException | None) -> None:
        if "ggctl.t0" in request.environ:
            metrics.INFLIGHT.dec()

    @app.after_request
    def _observe(response):
        route = request.url_rule.rule if request.url_rule else "<unmatched>"
        t0 = request.environ.get("ggctl.t0")
        if t0 is not None:
            metrics.REQUEST_SECONDS.labels(route).observe(time.perf_counter() - t0)
        metrics.REQUESTS.labels(request.method, route, str(response.status_code)).inc()
        return response

    def wants_html() -> bool:
        best = request.accept_mimetypes.best_match(["application/json", "text/html"])
        return (
            best == "text/html"
            and request.accept_mimetypes[best] > request.accept_mimetypes["application/json"]
        )

    def page(status: int = 200, **ctx: Any):
        return render_template("index.html", meta=meta, max_upload_mb=max_upload_mb, **ctx), status

    @app.get("/")
    def index():
        return page()

    @app.post("/predict")
    def predict():
        html = wants_html()
        upload = request.files.get("file")
        if upload is None:
            return _fail(
                "no file: send the photo as multipart/form-data field 'file'", 400, html, page
            )
        data = upload.read()
        try:
            pred = classify(data)
        except ImageError as exc:
            return _fail(str(exc), exc.status, html, page)
        if html:
            return page(result=pred.as_json())
        return jsonify(pred.as_json())

    @app.get("/test")
    def test():
        return jsonify(classify(test_bytes).as_json())

    @app.get("/healthz")
    def healthz():
        return jsonify(status="ok")

    @app.get("/readyz")
    def readyz():
        if not ready.is_set():
            return jsonify(status="warming up"), 503
        return jsonify(status="ready", model=meta.name)

    @app.get("/metrics")
    def prometheus():
        body, ctype = metrics.render()
        return body, 200, {"Content-Type": ctype}

    @app.get("/info")
    def info():
        return jsonify(
            model=meta.name,
            description=meta.description,
            classes=list(meta.class_names),
            input=[meta.input_height, meta.input_width],
            layout=meta.layout,
            metadata_source=meta.extra.get("metadata_source"),
            ort_threads=clf.ort_threads,
            max_inflight=clf.max_inflight,
            max_upload_mb=max_upload_mb,
        )

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(_exc: RequestEntityTooLarge):
        return _fail(
            f"the upload is larger than the limit of {max_upload_mb:g} MB", 413, wants_html(), page
        )

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        response = jsonify(error=exc.description, status=exc.code)
        response.status_code = exc.code or 500
        if exc.code == 405:
            response.headers["Allow"] = ", ".join(exc.valid_methods or [])
        return response

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        app.logger.exception("unhandled error")
        return jsonify(error="internal error", status=500), 500

    return app


def _fail(message: str, status: int, html: bool, page):
    if html:
        return page(status=status, error=message)
    return jsonify(error=message, status=status), status


__all__ = ["ModelLoadError", "create_app"]
