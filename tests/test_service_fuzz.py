"""Fuzz /predict of one live gunicorn server: whatever arrives, never a 5xx."""

from __future__ import annotations

import socket

import pytest
import requests
from conftest import HOST, LiveServer, image_bytes
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

SETTINGS = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)

SEEDS = [
    image_bytes(fmt, (96, 64), seed=i)
    for i, fmt in enumerate(("JPEG", "PNG", "WEBP", "GIF", "BMP"))
]

field_names = st.one_of(
    st.just("file"),
    st.text(max_size=12),
    st.sampled_from(["File", "file[]", "files", "", "image", "file "]),
)
filenames = st.one_of(
    st.none(),
    st.just(""),
    st.text(max_size=40),
    st.sampled_from(["../../etc/passwd", "a.jpg", "..", "/", "x\x00.png", "é.png", "a" * 300]),
)
content_types = st.one_of(
    st.none(),
    st.sampled_from(
        [
            "image/jpeg",
            "image/png",
            "text/plain",
            "application/octet-stream",
            "",
            "image/*",
            "multipart/mixed",
            "image/jpeg; charset=binary",
        ]
    ),
    st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), max_size=30),
)


@st.composite
def mutated_images(draw) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(0, 8))):
        op = draw(st.sampled_from(["flip", "cut", "insert", "dup"]))
        i = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[i] ^= draw(st.integers(1, 255))
        elif op == "cut":
            del data[i : i + draw(st.integers(1, 2000))]
        elif op == "insert":
            data[i:i] = draw(st.binary(max_size=64))
        elif op == "dup":
            data[i:i] = data[i : i + draw(st.integers(1, 500))]
    return bytes(data)


payloads = st.one_of(st.binary(max_size=4096), mutated_images(), st.sampled_from(SEEDS))
parts = st.tuples(field_names, filenames, payloads, content_types)


def check(r: requests.Response) -> None:
    assert r.status_code < 500, (r.status_code, r.text[:500])
    if r.status_code == 200:
        assert {"class", "confidence", "top"} <= r.json().keys()
    else:
        assert r.json()["error"], r.text[:500]


@SETTINGS
@given(
    files=st.lists(parts, min_size=0, max_size=4),
    fields=st.dictionaries(st.text(max_size=10), st.text(max_size=20), max_size=3),
)
def test_fuzz_multipart(live_server: LiveServer, files, fields) -> None:
    body = [(name, (fn, data) if ct is None else (fn, data, ct)) for name, fn, data, ct in files]
    r = live_server.post("/predict", files=body or None, data=fields or None)
    check(r)


@SETTINGS
@given(
    body=st.one_of(st.binary(max_size=8192), mutated_images()),
    ctype=st.one_of(
        st.none(),
        st.sampled_from(
            [
                "multipart/form-data",
                "multipart/form-data; boundary=",
                "multipart/form-data; boundary=x",
                "application/json",
                "image/jpeg",
                "application/x-www-form-urlencoded",
                "multipart/form-data; boundary=" + "b" * 300,
            ]
        ),
        st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=60),
    ),
)
def test_fuzz_raw_body(live_server: LiveServer, body: bytes, ctype: str | None) -> None:
    headers = {} if ctype is None else {"Content-Type": ctype}
    check(live_server.post("/predict", data=body, headers=headers))


@SETTINGS
@given(
    data=mutated_images(),
    boundary=st.text(
        alphabet=st.characters(min_codepoint=33, max_codepoint=126, exclude_characters='";'),
        min_size=1,
        max_size=70,
    ),
    preamble=st.binary(max_size=40),
    disposition=st.sampled_from(
        [
            'form-data; name="file"; filename="a.jpg"',
            'form-data; name="file"',
            "form-data; name=file; filename=a.jpg",
            "form-data",
            'attachment; name="file"',
            "form-data; name=\"file\"; filename*=UTF-8''%E2%82%AC.jpg",
            "",
        ]
    ),
    close=st.booleans(),
)
def test_fuzz_handmade_multipart(
    live_server: LiveServer,
    data: bytes,
    boundary: str,
    preamble: bytes,
    disposition: str,
    close: bool,
) -> None:
    b = boundary.encode()
    body = (
        preamble
        + b"--"
        + b
        + b"\r\nContent-Disposition: "
        + disposition.encode()
        + b"\r\nContent-Type: image/jpeg\r\n\r\n"
        + data
        + b"\r\n"
    )
    if close:
        body += b"--" + b + b"--\r\n"
    headers = {"Content-Type": f'multipart/form-data; boundary="{boundary}"'}
    check(live_server.post("/predict", data=body, headers=headers))


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n"
        b"Content-Type: multipart/form-data; boundary=b\r\n\r\n--b\r\n",  # body cut short
        b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
        b"POST /predict HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"GARBAGE\r\n\r\n",
    ],
)
def test_malformed_http_does_not_hurt_the_server(
    live_server: LiveServer, request_bytes: bytes
) -> None:
    port = int(live_server.base_url.rsplit(":", 1)[1])
    with socket.create_connection((HOST, port), timeout=10) as s:
        s.sendall(request_bytes)
        s.shutdown(socket.SHUT_WR)
        s.settimeout(10)
        reply = s.recv(65536)
    assert not reply.startswith(b"HTTP/1.1 5"), reply[:300]
    assert live_server.get("/healthz").status_code == 200
    assert live_server.predict(SEEDS[0]).status_code == 200
