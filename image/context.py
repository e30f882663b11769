"""The build context of the service image: exactly the files `ggctl build` sends to node-0.

    DockerIgnore     .dockerignore patterns with Docker's semantics (`**`, `!` exceptions, a
                     matched directory excludes its contents, the last match wins)
    build_context    app/ as its Dockerfile expects it, filtered by app/.dockerignore, plus the
                     chosen model as context/model.onnx (and its sidecar as model.onnx.json)
    BuildContext     the file list, a deterministic tar of it (sorted names, mtime 0, uid/gid
                     0, mode 0644/0755), and the tag: the first 12 hex digits of the sha256 of
                     that tar, so the same inputs always give the same tag

The tar holds two folders, the two `--local` sources of `buildctl build`:

    context/     what the Dockerfile's COPY lines read (its root is app/)
    dockerfile/  the Dockerfile alone

The tag hashes the uncompressed tar (stable across zlib builds); the gzip stream that travels
over SSH is deterministic too (mtime 0, no file name).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import re
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import IO

from ggctl.errors import GgctlError

APP_DIR = Path(__file__).resolve().parents[1] / "app"
MODEL_NAME = "model.onnx"  # the Dockerfile's ARG MODEL default
CONTEXT = "context"
DOCKERFILE = "dockerfile"
TAG_LENGTH = 12
CHUNK = 1 << 20


# --------------------------------------------------------------------------- .dockerignore


@dataclass(frozen=True)
class _Pattern:
    text: str
    exclusion: bool
    regex: re.Pattern[str]


def _to_regex(pattern: str) -> re.Pattern[str]:
    """A Docker (Go filepath.Match plus `**`) pattern as an anchored regex on '/' paths."""
    out, i, n = [], 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "*":
            if pattern.startswith("**", i):
                i += 2
                if i < n and pattern[i] == "/":
                    out.append("(?:.*/)?")  # `**/`: any number of folders, including none
                    i += 1
                else:
                    out.append(".*")
                continue
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            end = pattern.find("]", i + 1)
            if end < 0:
                out.append(re.escape(c))
            else:
                body = pattern[i + 1 : end]
                if body.startswith("^"):
                    body = "!" + body[1:]
                out.append("[" + ("^" + body[1:] if body.startswith("!") else body) + "]")
                i = end
        elif c == "\\" and i + 1 < n:
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out) + r"\Z")


def _clean(pattern: str) -> str:
    parts: list[str] = []
    for part in pattern.strip("/").split("/"):
        if part in ("", "."):
            continue
        if part == ".." and parts:
            parts.pop()
        elif part != "..":
            parts.append(part)
    return "/".join(parts)


class DockerIgnore:
    """The patterns of one .dockerignore file."""

    def __init__(self, lines: Iterable[str]):
        self.patterns: list[_Pattern] = []
        for raw in lines:
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            exclusion = line.startswith("!")
            text = _clean(line[1:].strip() if exclusion else line)
            if text:
                self.patterns.append(_Pattern(line, exclusion, _to_regex(text)))

    @classmethod
    def read(cls, path: Path) -> DockerIgnore:
        return cls(path.read_text().splitlines() if path.is_file() else [])

    def excluded(self, relpath: str) -> bool:
        """Whether Docker leaves `relpath` ('/'-separated, relative) out of the context."""
        parts = relpath.split("/")
        candidates = ["/".join(parts[:k]) for k in range(1, len(parts) + 1)]
        matched = False
        for p in self.patterns:
            if p.exclusion != matched:
                continue  # an inclusion already matched, or an exception with nothing to undo
            if any(p.regex.match(c) for c in candidates):
                matched = not p.exclusion
        return matched


# --------------------------------------------------------------------------- the context


@dataclass(frozen=True)
class ContextFile:
    """One file of the tar: its name there, where it comes from, its size and mode."""

    name: str
    source: Path
    size: int
    mode: int


@dataclass
class BuildContext:
    """What `ggctl build` sends: the files in tar order, and the chosen model."""

    files: tuple[ContextFile, ...]
    model: Path
    app_dir: Path
    excluded: tuple[str, ...] = field(default=())

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)

    def names(self) -> list[str]:
        return [f.name for f in self.files]

    def context_names(self) -> list[str]:
        """Names as the Dockerfile's COPY lines see them (relative to the context root)."""
        prefix = CONTEXT + "/"
        return [f.name[len(prefix) :] for f in self.files if f.name.startswith(prefix)]

    def write_tar(self, out: IO[bytes]) -> None:
        """The deterministic, uncompressed tar of the files, written to `out`."""
        with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            for f in self.files:
                info = tarfile.TarInfo(f.name)
                info.size = f.size
                info.mode = f.mode
                info.mtime = 0
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                info.type = tarfile.REGTYPE
                with f.source.open("rb") as src:
                    tar.addfile(info, _Exact(src, f.size, f.source))

    def write_tar_gz(self, out: IO[bytes], level: int = 1) -> None:
        """The same tar through gzip with no time stamp and no file name (what travels)."""
        with gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0, compresslevel=level) as gz:
            self.write_tar(gz)  # type: ignore[arg-type]

    def tar_bytes(self) -> bytes:
        buf = io.BytesIO()
        self.write_tar(buf)
        return buf.getvalue()

    @cached_property
    def digest(self) -> str:
        """sha256 (hex) of the uncompressed tar, computed as it streams (no copy in memory)."""
        sink = _HashSink()
        self.write_tar(sink)  # type: ignore[arg-type]
        return sink.hash.hexdigest()

    @property
    def tag(self) -> str:
        return self.digest[:TAG_LENGTH]

    @cached_property
    def model_sha256(self) -> str:
        return sha256_file(self.model)


class _HashSink(io.RawIOBase):
    def __init__(self) -> None:
        self.hash = hashlib.sha256()

    def writable(self) -> bool:
        return True

    def write(self, b: bytes) -> int:  # type: ignore[override]
        self.hash.update(b)
        return len(b)


class _Exact:
    """A file object that fails loudly if the file changed size since it was listed."""

    def __init__(self, fh: IO[bytes], size: int, path: Path):
        self.fh, self.left, self.path = fh, size, path

    def read(self, n: int = -1) -> bytes:
        data = self.fh.read(self.left if n < 0 else min(n, self.left))
        self.left -= len(data)
        if n != 0 and not data and self.left > 0:
            raise GgctlError(
                f"{self.path} changed while it was being sent",
                hint="rerun `ggctl build` once the file is stable",
            )
        return data


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _mode(st_mode: int) -> int:
    return 0o755 if st_mode & 0o100 else 0o644


def _entry(name: str, path: Path) -> ContextFile:
    st = path.stat()
    return ContextFile(name, path, st.st_size, _mode(st.st_mode))


def _sidecar(model: Path) -> Path | None:
    """The model's metadata sidecar as the service looks for it (model.onnx.json, model.json)."""
    for side in (model.with_name(model.name + ".json"), model.with_suffix(".json")):
        if side.is_file():
            return side
    return None


def build_context(model_path: Path | str, app_dir: Path | None = None) -> BuildContext:
    """The context for `model_path` baked into the image built from `app_dir` (default app/)."""
    app = Path(app_dir or APP_DIR)
    model = Path(model_path).expanduser()
    if not (app / "Dockerfile").is_file():
        raise GgctlError(f"no Dockerfile in {app}", hint="reinstall ggctl")
    if not model.is_file():
        raise GgctlError(
            f"model file {model} does not exist", hint="pass --model with an ONNX image classifier"
        )
    ignore = DockerIgnore.read(app / ".dockerignore")
    files: dict[str, ContextFile] = {}
    excluded: list[str] = []
    for root, dirs, names in os.walk(app):
        rel_root = Path(root).relative_to(app).as_posix()
        dirs.sort()
        for name in sorted(names):
            rel = name if rel_root == "." else f"{rel_root}/{name}"
            path = Path(root) / name
            # A model.onnx* left in app/ would be baked in by `COPY ${MODEL}*`: ours replaces it.
            if ignore.excluded(rel) or rel.startswith(MODEL_NAME) or not _regular(path):
                excluded.append(rel)
                continue
            files[f"{CONTEXT}/{rel}"] = _entry(f"{CONTEXT}/{rel}", path)
    files[f"{CONTEXT}/{MODEL_NAME}"] = _entry(f"{CONTEXT}/{MODEL_NAME}", model)
    side = _sidecar(model)
    if side is not None:
        name = f"{CONTEXT}/{MODEL_NAME}.json"
        files[name] = _entry(name, side)
    files[f"{DOCKERFILE}/Dockerfile"] = _entry(f"{DOCKERFILE}/Dockerfile", app / "Dockerfile")
    ordered = tuple(files[k] for k in sorted(files))
    return BuildContext(ordered, model.resolve(), app.resolve(), tuple(sorted(excluded)))


def _regular(path: Path) -> bool:
    return path.is_file() and not path.is_symlink()
