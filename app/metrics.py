"""Prometheus metrics of the service; multiprocess-aware when gunicorn runs several workers."""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

# Inference on a MobileNetV2-class CPU model takes ~5-50 ms; a VGG16 ~1 s.
_BUCKETS = (0.0025, 0.005, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1, 2.5, 5)

REQUESTS = Counter("ggctl_http_requests", "HTTP requests served", ["method", "route", "status"])
REQUEST_SECONDS = Histogram(
    "ggctl_http_request_duration_seconds", "Request latency", ["route"], buckets=_BUCKETS
)
INFERENCE_SECONDS = Histogram(
    "ggctl_inference_duration_seconds", "Model run time per image", buckets=_BUCKETS
)
PREPROCESS_SECONDS = Histogram(
    "ggctl_preprocess_duration_seconds", "Decode + resize + normalise per image", buckets=_BUCKETS
)
INFLIGHT = Gauge(
    "ggctl_inflight_requests", "Requests being handled now", multiprocess_mode="livesum"
)
MODEL_INFO = Gauge(
    "ggctl_model_info",
    "The model being served (value is 1)",
    ["name", "classes", "input", "metadata_source"],
    multiprocess_mode="max",
)


def render() -> tuple[bytes, str]:
    """The exposition text for /metrics, merged over workers when they share a directory."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    from prometheus_client import REGISTRY

    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
