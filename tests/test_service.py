"""The classifier service under real gunicorn on 127.0.0.1: every route, every bad input."""

from __future__ import annotations

import io
import json
import math
import os
import socket
import struct
import subprocess
import sys
import zlib
from concurrent.futures import ThreadPoolExecutor
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import requests
from conftest import (
    HOST,
    PROBE_CLASSES,
    LiveServer,
    image_bytes,
    make_linear_model,
    make_probe_model,
    solid_image,
)
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families

from ggctl.app.modelmeta import FOOD11_CLASSES, IMAGENET_MEAN, IMAGENET_STD, ModelMeta

PREDICTION_KEYS = {"class", "index", "confidence", "inference_ms", "top"}


def check_prediction(body: dict, classes: tuple[str, ...] | list[str]) -> None:
    """The /predict and /test JSON contract."""
    assert body.keys() >= PREDICTION_KEYS, body
    assert body["class"] in classes
    assert classes[body["index"]] == body["class"]
    assert 0.0 <= body["confidence"] <= 1.0 + 1e-6
    assert body["inference_ms"] > 0
    top = body["top"]
    assert 1 <= len(top) <= len(classes)
    assert top[0] == [body["class"], pytest.approx(body["confidence"], abs=1e-6)]
    probs = [p for _, p in top]
    assert probs == sorted(probs, reverse=True)
    assert len({name for name, _ in top}) == len(top)
    assert sum(probs) <= 1.0 + 1e-4
    if len(top) == len(classes):  # every class listed: they must sum to 1
        assert sum(probs) == pytest.approx(1.0, abs=1e-4)


def check_json_error(r: requests.Response, status: int, *words: str) -> dict:
    assert r.status_code == status, (r.status_code, r.text[:500])
    assert r.headers["Content-Type"].startswith("application/json"), r.headers
    body = r.json()
    assert isinstance(body.get("error"), str) and body["error"], body
    for word in words:
        assert word in body["error"].lower(), body
    return body


# --------------------------------------------------------------------------- page


class FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, str | None]] = []
        self.inputs: list[dict[str, str | None]] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if a.get("id"):
            self.ids.add(a["id"] or "")
        if tag == "form":
            self.forms.append(a)
        elif tag == "input":
            self.inputs.append(a)


def test_index_page_has_the_upload_form(live_server: LiveServer) -> None:
    r = live_server.get("/")
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/html")
    page = FormParser()
    page.feed(r.text)
    (form,) = page.forms
    assert form["action"] == "/predict"
    assert (form["method"] or "").lower() == "post"
    assert form["enctype"] == "multipart/form-data"
    files = [i for i in page.inputs if i.get("type") == "file"]
    assert [i["name"] for i in files] == ["file"]
    assert {"preview", "classify", "result"} <= page.ids
    assert "UNTRAINED" in r.text  # the demo model says so plainly
    for asset in ("/static/app.js", "/static/style.css"):
        assert asset in r.text
        a = live_server.get(asset)
        assert a.status_code == 200 and len(a.content) > 100


# --------------------------------------------------------------------------- predict


def test_predict_json(live_server: LiveServer, jpeg_bytes: bytes) -> None:
    r = live_server.predict(jpeg_bytes)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    check_prediction(r.json(), FOOD11_CLASSES)
    assert len(r.json()["top"]) == 5


def test_predict_is_deterministic(live_server: LiveServer, jpeg_bytes: bytes) -> None:
    a, b = (live_server.predict(jpeg_bytes).json() for _ in range(2))
    assert (a["class"], a["top"]) == (b["class"], b["top"])


def test_predict_html_when_asked(live_server: LiveServer, jpeg_bytes: bytes) -> None:
    # What a browser without JavaScript sends with a plain form post.
    accept = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
    r = live_server.predict(jpeg_bytes, headers={"Accept": accept})
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/html")
    expected = live_server.predict(jpeg_bytes).json()["class"]
    assert f'<strong id="category">{expected}</strong>' in r.text.replace("&amp;", "&")
    assert 'id="confidence"' in r.text and 'id="inference-time"' in r.text
    assert " ms</span>" in r.text


def test_predict_html_error(live_server: LiveServer) -> None:
    r = live_server.predict(b"not an image", headers={"Accept": "text/html"})
    assert r.status_code == 400
    assert r.headers["Content-Type"].startswith("text/html")
    assert 'class="error"' in r.text


def test_test_route(live_server: LiveServer) -> None:
    r = live_server.get("/test")
    assert r.status_code == 200
    check_prediction(r.json(), FOOD11_CLASSES)


def test_concurrent_predictions(live_server: LiveServer) -> None:
    payloads = [image_bytes("JPEG", (500, 400), seed=s) for s in range(4)]
    expected = [live_server.predict(p).json()["top"] for p in payloads]

    def one(i: int) -> tuple[int, list]:
        r = requests.post(
            live_server.url("/predict"),
            timeout=60,
            files={"file": ("x.jpg", payloads[i % 4], "image/jpeg")},
        )
        return r.status_code, r.json()["top"]

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(one, range(32)))
    for i, (status, top) in enumerate(results):
        assert status == 200
        assert top == expected[i % 4]  # no cross-talk between concurrent requests


# --------------------------------------------------------------------------- health, metrics


def test_healthz_and_readyz(live_server: LiveServer) -> None:
    assert live_server.get("/healthz").json() == {"status": "ok"}
    r = live_server.get("/readyz")
    assert r.status_code == 200
    assert r.json() == {"status": "ready", "model": "mobilenetv2-demo-untrained"}


def test_info(live_server: LiveServer) -> None:
    info = live_server.get("/info").json()
    assert info["classes"] == list(FOOD11_CLASSES)
    assert info["input"] == [224, 224]
    assert info["layout"] == "NHWC"
    assert info["metadata_source"] == "onnx metadata"
    assert info["max_upload_mb"] == 10


def _metrics(server: LiveServer) -> dict[str, list]:
    r = server.get("/metrics")
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/plain")
    families = {f.name: f.samples for f in text_string_to_metric_families(r.text)}
    return families


def _sample(samples: list, metric: str, **labels: str) -> float:
    values = [
        s.value
        for s in samples
        if s.name == metric and all(s.labels.get(k) == v for k, v in labels.items())
    ]
    assert values, f"no {metric}{labels} in {[(s.name, s.labels) for s in samples][:40]}"
    return sum(values)


def test_metrics(live_server: LiveServer, jpeg_bytes: bytes) -> None:
    before = _metrics(live_server)
    n_before = (
        _sample(
            before["ggctl_inference_duration_seconds"], "ggctl_inference_duration_seconds_count"
        )
        if ("ggctl_inference_duration_seconds" in before)
        else 0
    )
    assert live_server.predict(jpeg_bytes).status_code == 200
    assert live_server.get("/test").status_code == 200
    assert live_server.post("/predict").status_code == 400
    m = _metrics(live_server)

    inf = m["ggctl_inference_duration_seconds"]
    assert _sample(inf, "ggctl_inference_duration_seconds_count") >= n_before + 2
    assert _sample(inf, "ggctl_inference_duration_seconds_bucket", le="+Inf") == _sample(
        inf, "ggctl_inference_duration_seconds_count"
    )
    assert _sample(inf, "ggctl_inference_duration_seconds_sum") > 0
    assert "ggctl_preprocess_duration_seconds" in m

    req = m["ggctl_http_request_duration_seconds"]
    for route in ("/predict", "/test"):
        assert _sample(req, "ggctl_http_request_duration_seconds_count", route=route) >= 1
        assert (
            _sample(req, "ggctl_http_request_duration_seconds_bucket", route=route, le="+Inf") >= 1
        )
    total = m["ggctl_http_requests"]
    assert (
        _sample(total, "ggctl_http_requests_total", method="POST", route="/predict", status="200")
        >= 1
    )
    assert (
        _sample(total, "ggctl_http_requests_total", method="POST", route="/predict", status="400")
        >= 1
    )

    # The /metrics request itself is in flight while it renders.
    assert _sample(m["ggctl_inflight_requests"], "ggctl_inflight_requests") >= 1
    assert (
        _sample(
            m["ggctl_model_info"],
            "ggctl_model_info",
            name="mobilenetv2-demo-untrained",
            classes="11",
            input="224x224",
        )
        == 1
    )


def test_inflight_returns_to_zero_after_errors(live_server: LiveServer) -> None:
    for _ in range(3):
        live_server.post("/predict", files={"file": ("x", b"junk", "image/png")})
        live_server.get("/nope")
        live_server.request("DELETE", "/predict")
    # Only the /metrics request itself may be in flight.
    assert _sample(_metrics(live_server)["ggctl_inflight_requests"], "ggctl_inflight_requests") == 1


# --------------------------------------------------------------------------- bad input


def test_no_file_field(live_server: LiveServer) -> None:
    check_json_error(live_server.post("/predict"), 400, "file")
    check_json_error(live_server.post("/predict", data={"photo": "x"}), 400, "file")
    r = live_server.post("/predict", files={"image": ("a.jpg", image_bytes(), "image/jpeg")})
    check_json_error(r, 400, "file")


def test_not_an_image(live_server: LiveServer) -> None:
    check_json_error(live_server.predict(b"hello, I am text", "a.jpg"), 400, "not an image")
    check_json_error(
        live_server.predict(b"%PDF-1.4\n" + os.urandom(2000), "a.pdf", "application/pdf"), 400
    )


def test_empty_file(live_server: LiveServer) -> None:
    check_json_error(live_server.predict(b"", "empty.jpg"), 400, "empty")


def test_truncated_jpeg(live_server: LiveServer, jpeg_bytes: bytes) -> None:
    check_json_error(live_server.predict(jpeg_bytes[: len(jpeg_bytes) // 2]), 400, "truncated")


def test_corrupt_png(live_server: LiveServer) -> None:
    png = bytearray(image_bytes("PNG", (200, 150)))
    idat = png.find(b"IDAT")
    for i in range(idat + 40, idat + 400, 7):
        png[i] ^= 0x5A
    check_json_error(live_server.predict(bytes(png), "x.png", "image/png"), 400)


def test_header_only_png(live_server: LiveServer) -> None:
    png = image_bytes("PNG", (200, 150))
    check_json_error(live_server.predict(png[:60], "x.png", "image/png"), 400)


def _png(width: int, height: int, idat: bytes, bit_depth: int = 1, color_type: int = 0) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def png_bomb(width: int, height: int, bit_depth: int = 1, color_type: int = 0) -> bytes:
    """A valid all-black PNG of width x height that compresses to almost nothing."""
    channels = {0: 1, 2: 3, 6: 4}[color_type]
    row = b"\0" * (1 + (width * channels * bit_depth + 7) // 8)
    z = zlib.compressobj(9)
    block = row * 256
    parts = [z.compress(block) for _ in range(height // 256)]
    parts += [z.compress(row * (height % 256)), z.flush()]
    return _png(width, height, b"".join(parts), bit_depth, color_type)


@pytest.fixture(scope="module")
def bomb() -> bytes:
    data = png_bomb(20_000, 20_000)
    assert len(data) < 200_000  # ~60 KB that would decode to 400 million pixels
    return data


def test_decompression_bomb_refused(live_server: LiveServer, bomb: bytes) -> None:
    r = live_server.predict(bomb, "bomb.png", "image/png")
    assert 400 <= r.status_code < 500, (r.status_code, r.text[:300])
    # Pillow's DecompressionBombError: refused when the header is read, before decoding
    assert r.json()["error"] == "the image is too large to decode safely", r.text[:300]
    # The server is still up and still classifies.
    assert live_server.get("/healthz").status_code == 200
    assert live_server.get("/test").status_code == 200


def test_sub_limit_png_bomb_is_cheap_or_refused(live_server: LiveServer) -> None:
    data = png_bomb(11_900, 11_900, bit_depth=8, color_type=2)
    assert len(data) < 600_000
    r = live_server.predict(data, "bomb.png", "image/png", timeout=120)
    # Under Pillow's bomb limit, but a PNG has no reduced decode: the full-decode limit
    # refuses it from the header (a JPEG of this size is decoded at 1/8 scale instead).
    assert 400 <= r.status_code < 500, (r.status_code, r.text[:300])
    assert "11900x11900 pixels; the limit is 40,000,000" in r.json()["error"], r.text[:300]


def test_wrong_method(live_server: LiveServer) -> None:
    r = live_server.get("/predict")
    check_json_error(r, 405)
    assert "POST" in r.headers["Allow"]
    for method, path in (
        ("POST", "/"),
        ("PUT", "/predict"),
        ("DELETE", "/test"),
        ("POST", "/healthz"),
        ("POST", "/metrics"),
    ):
        assert live_server.request(method, path).status_code == 405, (method, path)


def test_unknown_path(live_server: LiveServer) -> None:
    check_json_error(live_server.get("/nope"), 404)
    check_json_error(live_server.post("/predict/extra"), 404)
    assert live_server.get("/static/../app/server.py").status_code == 404


def test_upload_limit(start_server, demo_model: Path) -> None:
    with start_server(demo_model, args=["--max-upload-mb", "1"]) as srv:
        assert srv.get("/info").json()["max_upload_mb"] == 1
        small = image_bytes("JPEG", (640, 480))
        assert srv.predict(small).status_code == 200
        big = small + os.urandom(1_100_000)  # a valid JPEG with junk after it, > 1 MB
        check_json_error(srv.predict(big), 413, "1 mb")
        # Chunked upload: no Content-Length to refuse early. The server answers 413 as soon
        # as the limit is passed and closes; a client still sending may see the close first.
        try:
            r = srv.post(
                "/predict",
                data=iter([b"x" * 65536] * 40),
                headers={"Content-Type": "multipart/form-data; boundary=b"},
            )
            assert r.status_code == 413, r.text[:300]
        except requests.ConnectionError:
            pass
        with socket.create_connection((HOST, int(srv.base_url.rsplit(":", 1)[1])), 10) as s:
            body = b'--b\r\nContent-Disposition: form-data; name="file"; filename="x"\r\n\r\n'
            body += b"x" * 1_200_000
            s.sendall(
                b"POST /predict HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                b"Content-Type: multipart/form-data; boundary=b\r\n\r\n"
                + b"%x\r\n" % len(body)
                + body
                + b"\r\n0\r\n\r\n"
            )
            s.settimeout(10)
            assert s.recv(4096).startswith(b"HTTP/1.1 413 "), "chunked over-limit upload"
        assert srv.predict(small).status_code == 200
        assert "Traceback" not in srv.log(), srv.log()


# --------------------------------------------------------------------------- formats


def _exif_rotated_jpeg() -> bytes:
    photo = Image.open(io.BytesIO(image_bytes("JPEG", (300, 200))))
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90° clockwise to display
    buf = io.BytesIO()
    photo.save(buf, "JPEG", exif=exif.tobytes())
    return buf.getvalue()


def _cmyk_jpeg() -> bytes:
    return image_bytes("JPEG", (300, 200), mode="CMYK", quality=90)


def _palette_png_with_transparency() -> bytes:
    img = Image.open(io.BytesIO(image_bytes("PNG", (120, 80)))).convert("P")
    buf = io.BytesIO()
    img.save(buf, "PNG", transparency=0)
    return buf.getvalue()


def _rgba_png() -> bytes:
    img = Image.open(io.BytesIO(image_bytes("PNG", (200, 150)))).convert("RGBA")
    alpha = Image.linear_gradient("L").resize(img.size)
    img.putalpha(alpha)
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


FORMATS = {
    "png-rgba-alpha": (_rgba_png, "image/png"),
    "png-grayscale": (lambda: image_bytes("PNG", mode="L"), "image/png"),
    "png-gray-alpha": (lambda: image_bytes("PNG", mode="LA"), "image/png"),
    "png-palette": (lambda: image_bytes("PNG", mode="P"), "image/png"),
    "png-palette-transparency": (_palette_png_with_transparency, "image/png"),
    "png-1bit": (lambda: image_bytes("PNG", mode="1"), "image/png"),
    "png-16bit-gray": (lambda: image_bytes("PNG", mode="I;16"), "image/png"),
    "jpeg-cmyk": (_cmyk_jpeg, "image/jpeg"),
    "jpeg-grayscale": (lambda: image_bytes("JPEG", mode="L", quality=85), "image/jpeg"),
    "jpeg-progressive": (lambda: image_bytes("JPEG", progressive=True, quality=80), "image/jpeg"),
    "jpeg-exif-rotated": (_exif_rotated_jpeg, "image/jpeg"),
    "jpeg-large-1280": (lambda: image_bytes("JPEG", (1280, 1280)), "image/jpeg"),
    "webp": (lambda: image_bytes("WEBP", quality=80), "image/webp"),
    "webp-lossless-alpha": (lambda: image_bytes("WEBP", mode="RGBA", lossless=True), "image/webp"),
    "gif": (lambda: image_bytes("GIF"), "image/gif"),
    "bmp": (lambda: image_bytes("BMP"), "image/bmp"),
    "tiff": (lambda: image_bytes("TIFF"), "image/tiff"),
    "tiny-1x1": (lambda: image_bytes("PNG", (1, 1)), "image/png"),
    "panorama-4000x60": (lambda: image_bytes("JPEG", (4000, 60)), "image/jpeg"),
}


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_formats_classify(live_server: LiveServer, name: str) -> None:
    make, ctype = FORMATS[name]
    # The client's content type and file name must not matter either.
    r = live_server.predict(make(), "upload.bin", "application/octet-stream")
    assert r.status_code == 200, r.text
    check_prediction(r.json(), FOOD11_CLASSES)
    assert live_server.predict(make(), "x", ctype).json()["top"] == r.json()["top"]


# --------------------------------------------------------------------------- disk


def test_uploads_never_touch_disk(start_server, demo_model: Path, tmp_path: Path) -> None:
    tmpdir = tmp_path / "tmpdir"
    tmpdir.mkdir()
    env = {"TMPDIR": str(tmpdir), "TEMP": str(tmpdir), "TMP": str(tmpdir)}
    rng = np.random.default_rng(0)
    noise = Image.fromarray(rng.integers(0, 256, (1400, 1300, 3), dtype=np.uint8))
    buf = io.BytesIO()
    noise.save(buf, "PNG", compress_level=0)
    big = buf.getvalue()
    assert 5_000_000 < len(big) < 9_000_000  # well past werkzeug's 500 KB spooling threshold
    with start_server(demo_model, env=env, audit_writes=True) as srv:
        at_start = srv.written_files()
        # The hook sees the worker's own files, so an empty list after uploads means something.
        assert any("tempfile.mkstemp" in line for line in at_start), at_start
        for data, name in (
            (big, "../../etc/evil.png"),
            (image_bytes("JPEG", (2000, 1500)), "photo.jpg"),
        ):
            r = srv.post("/predict", files={"file": (name, data, "image/png")})
            assert r.status_code == 200, r.text
        r = srv.post("/predict", files={"file": ("x.png", big + b"\0" * 3_000_000)})
        assert r.status_code == 200, r.text
        after = srv.written_files()
        assert after == at_start, f"the server wrote files during uploads: {after[len(at_start) :]}"
        assert list(tmpdir.iterdir()) == []
        assert not any(p.name.endswith((".png", ".jpg")) for p in srv.workdir.rglob("*"))


def test_werkzeug_keeps_uploads_in_memory(demo_model: Path, monkeypatch) -> None:
    """In-process: with temp files made impossible, a 5 MB upload still parses, in a BytesIO."""
    import tempfile

    from flask import request

    from ggctl.app import create_app

    app = create_app(demo_model, warmup=False)

    @app.post("/_stream_type")
    def stream_type():
        f = request.files["file"]
        return {"type": type(f.stream).__name__, "size": len(f.read())}

    def no_disk(*_a, **_k):
        raise AssertionError("an upload was spooled to a temporary file")

    for name in ("TemporaryFile", "NamedTemporaryFile", "SpooledTemporaryFile", "mkstemp"):
        monkeypatch.setattr(tempfile, name, no_disk)
        monkeypatch.setattr(f"werkzeug.formparser.{name}", no_disk, raising=False)
    payload = os.urandom(5_000_000)
    r = app.test_client().post("/_stream_type", data={"file": (io.BytesIO(payload), "x.jpg")})
    assert r.status_code == 200, r.data[:300]
    assert r.json == {"type": "BytesIO", "size": len(payload)}


# --------------------------------------------------------------------------- other models


def _imagenet(v: float, c: int) -> float:
    return (v / 255.0 - IMAGENET_MEAN[c]) / IMAGENET_STD[c]


@pytest.fixture(scope="module")
def probe_server(start_server, tmp_path_factory):
    """An NCHW model with ImageNet mean/std, its metadata in a sidecar `model.onnx.json`."""
    path = tmp_path_factory.mktemp("probe") / "model.onnx"
    side = json.loads(
        ModelMeta.imagenet(
            class_names=PROBE_CLASSES,
            input_height=32,
            input_width=32,
            layout="NCHW",
            name="probe-imagenet",
            resample="bilinear",
        ).to_json()
    )
    make_probe_model(path, layout="NCHW", size=32, sidecar=side)
    with start_server(path) as srv:
        yield srv


def _scores(body: dict) -> dict[str, float]:
    return dict((name, p) for name, p in body["top"])


def test_imagenet_nchw_model_info(probe_server: LiveServer) -> None:
    info = probe_server.get("/info").json()
    assert info["model"] == "probe-imagenet"
    assert info["layout"] == "NCHW"
    assert info["input"] == [32, 32]
    assert info["classes"] == list(PROBE_CLASSES)
    assert info["metadata_source"] == "sidecar model.onnx.json"


@pytest.mark.parametrize("rgb", [(255, 128, 0), (10, 200, 90), (0, 0, 0)])
def test_imagenet_nchw_normalisation(probe_server: LiveServer, rgb: tuple[int, int, int]) -> None:
    r = probe_server.predict(solid_image(rgb, (50, 70)), "x.png", "image/png")
    assert r.status_code == 200, r.text
    s = _scores(r.json())
    for c, name in enumerate(("red", "green", "blue")):
        assert s[name] == pytest.approx(_imagenet(rgb[c], c), abs=1e-3), (name, s)
    mean = sum(_imagenet(rgb[c], c) for c in range(3)) / 3
    assert s["top"] == pytest.approx(mean, abs=1e-3)
    assert s["bottom"] == pytest.approx(mean, abs=1e-3)


def test_exif_orientation_is_applied(probe_server: LiveServer) -> None:
    # Displayed: white top half, black bottom half. Stored rotated 90° anticlockwise (white
    # on the left) with Orientation=6, which tells viewers to rotate it back clockwise.
    shown = np.zeros((64, 64, 3), np.uint8)
    shown[:32] = 255
    stored = Image.fromarray(shown).transpose(Image.Transpose.ROTATE_90)
    assert np.asarray(stored)[:, :32].min() == 255  # white is on the left as stored
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    stored.save(buf, "JPEG", quality=95, exif=exif.tobytes())
    s = _scores(probe_server.predict(buf.getvalue()).json())
    white = sum(_imagenet(255, c) for c in range(3)) / 3
    black = sum(_imagenet(0, c) for c in range(3)) / 3
    # Unrotated, top and bottom would both be half white: equal.
    assert s["top"] == pytest.approx(white, abs=0.15), s
    assert s["bottom"] == pytest.approx(black, abs=0.15), s


@pytest.mark.parametrize(
    ("mode", "color", "fmt"),
    [
        ("L", 100, "PNG"),
        ("LA", (100, 0), "PNG"),  # fully transparent: the stored colour is what remains
        ("RGBA", (255, 128, 0, 255), "PNG"),
        ("P", None, "PNG"),
        ("RGB", (255, 128, 0), "WEBP"),
    ],
)
def test_colour_modes_reach_the_model_as_rgb(
    probe_server: LiveServer, mode: str, color, fmt: str
) -> None:
    if mode == "P":
        img = Image.new("RGB", (40, 40), (255, 128, 0)).quantize(4)
        expect = img.convert("RGB").getpixel((0, 0))
    else:
        img = Image.new(mode, (40, 40), color)
        expect = img.convert("RGB").getpixel((0, 0))
    buf = io.BytesIO()
    img.save(buf, fmt, **({"lossless": True} if fmt == "WEBP" else {}))
    s = _scores(probe_server.predict(buf.getvalue(), "x", "image/png").json())
    for c, name in enumerate(("red", "green", "blue")):
        assert s[name] == pytest.approx(_imagenet(expect[c], c), abs=0.02), (name, s, expect)


def test_cmyk_jpeg_colours(probe_server: LiveServer) -> None:
    buf = io.BytesIO()
    Image.new("RGB", (40, 40), (230, 30, 20)).convert("CMYK").save(buf, "JPEG", quality=95)
    s = _scores(probe_server.predict(buf.getvalue()).json())
    assert s["red"] > s["green"] + 2 and s["red"] > s["blue"] + 2, s  # red, not inverted


def test_16bit_png_is_scaled_not_clipped(probe_server: LiveServer) -> None:
    img = Image.fromarray(np.full((40, 40), 32768, np.uint16))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    s = _scores(probe_server.predict(buf.getvalue(), "x.png", "image/png").json())
    assert s["red"] == pytest.approx(_imagenet(128, 0), abs=0.05), s


def test_embedded_metadata_logits_model(start_server, tmp_path: Path) -> None:
    """NCHW, ImageNet mean/std, logits output, 4 classes: the service applies softmax."""
    classes = ("pizza", "sushi", "soup", "salad")
    meta = ModelMeta.imagenet(
        class_names=classes,
        input_height=64,
        input_width=64,
        layout="NCHW",
        output="logits",
        name="logits-4",
    )
    path = make_linear_model(
        tmp_path / "m.onnx", num_classes=4, size=64, layout="NCHW", softmax=False, meta=meta
    )
    with start_server(path) as srv:
        info = srv.get("/info").json()
        assert info["metadata_source"] == "onnx metadata"
        assert info["classes"] == list(classes)
        for seed in range(3):
            body = srv.predict(image_bytes("JPEG", (300, 200), seed=seed)).json()
            check_prediction(body, classes)
            assert len(body["top"]) == 4
            assert math.fsum(p for _, p in body["top"]) == pytest.approx(1.0, abs=1e-4)


def test_plain_onnx_gets_course_defaults(start_server, tmp_path: Path) -> None:
    path = make_linear_model(tmp_path / "plain.onnx", num_classes=11, size=224)
    assert not (tmp_path / "plain.onnx.json").exists()
    with start_server(path) as srv:
        info = srv.get("/info").json()
        assert info["metadata_source"] == "course defaults"
        assert info["classes"] == list(FOOD11_CLASSES)
        assert info["input"] == [224, 224]
        assert info["layout"] == "NHWC"
        r = srv.predict(image_bytes("JPEG", (640, 480)))
        assert r.status_code == 200, r.text
        check_prediction(r.json(), FOOD11_CLASSES)
        check_prediction(srv.get("/test").json(), FOOD11_CLASSES)


def test_service_sets_no_telemetry_files(tmp_path: Path) -> None:
    tmpdir, home = tmp_path / "tmp", tmp_path / "home"
    tmpdir.mkdir()
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "ORT_DISABLE_TELEMETRY"}
    # Any upload attempt goes to a closed port on 127.0.0.1, never out.
    proxy = "http://127.0.0.1:9"
    env.update(
        TMPDIR=str(tmpdir),
        HOME=str(home),
        https_proxy=proxy,
        HTTPS_PROXY=proxy,
        http_proxy=proxy,
        HTTP_PROXY=proxy,
        ALL_PROXY=proxy,
        all_proxy=proxy,
    )
    subprocess.run(
        [sys.executable, "-c", "import ggctl.app.inference"],
        env=env,
        check=True,
        timeout=60,
        cwd=tmp_path,
    )
    written = [str(p) for p in tmp_path.rglob("*") if p.is_file()]
    assert written == [], written
