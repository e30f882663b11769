"""`ggctl build`: the context and its tag are deterministic, exactly what the Dockerfile needs
and nothing .dockerignore leaves out; the command line run on node-0; the tar streamed over
(stand-in) SSH to a (stand-in) buildctl; no rebuild when the registry has the tag."""

from __future__ import annotations

import fnmatch
import gzip
import io
import json
import os
import re
import shutil
import tarfile
from pathlib import Path

import pytest
from build_helpers import install_fake_node, write_ssh_config
from conftest import make_linear_model
from test_dockerfile import instructions

from ggctl.cli import main
from ggctl.image.build import (
    BUILDKIT_SOCKET,
    BuildError,
    buildctl_argv,
    image_name,
    registry_check_argv,
    remote_build,
)
from ggctl.image.context import APP_DIR, DockerIgnore, build_context

IMAGE = "node-0:5000/ml-app:0123456789ab"


@pytest.fixture
def app(tmp_path: Path) -> Path:
    """A copy of app/ (without caches) that a test may change."""
    dest = tmp_path / "app"
    shutil.copytree(APP_DIR, dest, ignore=shutil.ignore_patterns("__pycache__"))
    return dest


@pytest.fixture
def model(tmp_path: Path) -> Path:
    path = tmp_path / "models" / "food11.onnx"
    path.parent.mkdir()
    path.write_bytes(bytes(range(256)) * 40)
    return path


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    out = capsys.readouterr()
    return exit_.value.code, out.out, out.err


# --------------------------------------------------------------------------- the context


def test_same_inputs_same_bytes_and_tag_whatever_the_file_times_and_modes(app, model, tmp_path):
    first = build_context(model, app)
    twice = build_context(model, app)
    assert first.tar_bytes() == twice.tar_bytes()
    gz1, gz2 = io.BytesIO(), io.BytesIO()
    first.write_tar_gz(gz1)
    twice.write_tar_gz(gz2)
    assert gz1.getvalue() == gz2.getvalue()
    assert gzip.decompress(gz1.getvalue()) == first.tar_bytes()
    assert re.fullmatch(r"[0-9a-f]{12}", first.tag) and first.tag == twice.tag

    # Another checkout: other times, other group/other bits, another folder: same tag.
    other = tmp_path / "elsewhere" / "app"
    shutil.copytree(app, other)
    for path in other.rglob("*"):
        os.utime(path, (1_000_000, 1_000_000))
        if path.is_file():
            path.chmod(0o664)
    copy = tmp_path / "elsewhere" / "m.onnx"
    shutil.copy(model, copy)
    assert build_context(copy, other).tag == first.tag


def test_the_tar_is_normalised_and_sorted(app, model):
    with tarfile.open(fileobj=io.BytesIO(build_context(model, app).tar_bytes())) as tar:
        members = tar.getmembers()
    names = [m.name for m in members]
    assert names == sorted(names)
    assert {(m.mtime, m.uid, m.gid, m.uname, m.gname) for m in members} == {(0, 0, 0, "", "")}
    assert {m.mode for m in members} == {0o644} and all(m.isfile() for m in members)


@pytest.mark.parametrize(
    "change", ["model", "app file", "new app file", "Dockerfile", "requirements"]
)
def test_any_input_change_gives_another_tag(app, model, change):
    before = build_context(model, app).tag
    if change == "model":
        model.write_bytes(model.read_bytes()[:-1] + b"\x00")
    elif change == "app file":
        (app / "server.py").write_text((app / "server.py").read_text() + "\n# changed\n")
    elif change == "new app file":
        (app / "templates" / "about.html").write_text("<p>new</p>")
    elif change == "Dockerfile":
        (app / "Dockerfile").write_text((app / "Dockerfile").read_text() + "\nLABEL x=y\n")
    else:
        (app / "requirements.txt").write_text("flask>=3.0,<4\n")
    assert build_context(model, app).tag != before


def test_dockerignored_files_are_not_sent(app, model):
    (app / "__pycache__").mkdir()
    (app / "__pycache__" / "server.cpython-311.pyc").write_bytes(b"pyc")
    (app / "static" / "stale.pyc").write_bytes(b"pyc")
    (app / "debug.log").write_text("log")
    (app / ".ruff_cache").mkdir()
    (app / ".ruff_cache" / "x").write_text("cache")
    (app / "model.onnx").write_bytes(b"a stray model from a manual docker build")
    (app / "model.onnx.json").write_text("{}")
    ctx = build_context(model, app)
    sent = ctx.context_names()
    for left_out in (
        "__pycache__/server.cpython-311.pyc",
        "static/stale.pyc",
        "debug.log",
        ".ruff_cache/x",
        "Dockerfile",
        ".dockerignore",
    ):
        assert left_out not in sent
        assert left_out in ctx.excluded
    # The chosen model, and only it, is the image's model.onnx.
    assert "model.onnx.json" not in sent
    model_entry = next(f for f in ctx.files if f.name == "context/model.onnx")
    assert model_entry.source == model.resolve()
    assert [f.name for f in ctx.files if f.name.startswith("dockerfile/")] == [
        "dockerfile/Dockerfile"
    ]
    tracked = {p.relative_to(app).as_posix() for p in app.rglob("*") if p.is_file()}
    assert set(sent) == {
        n
        for n in tracked
        if not DockerIgnore.read(app / ".dockerignore").excluded(n)
        and not n.startswith("model.onnx")
    } | {"model.onnx"}


def test_a_sidecar_travels_as_model_onnx_json(app, model):
    model.with_suffix(".json").write_text('{"class_names": ["a", "b"]}')
    ctx = build_context(model, app)
    assert "model.onnx.json" in ctx.context_names()


def test_every_copy_source_of_the_dockerfile_is_in_the_context(model):
    ctx = build_context(model)
    sent = ctx.context_names()
    args = {"MODEL": "model.onnx"}
    copies = [
        a
        for w, a in instructions((APP_DIR / "Dockerfile").read_text())
        if w == "COPY" and not a.startswith("--from")
    ]
    assert len(copies) >= 4
    for copy in copies:
        for source in copy.split()[:-1]:
            pattern = re.sub(r"\$\{(\w+)\}", lambda m: args[m[1]], source)
            if pattern.endswith("/"):
                hits = [n for n in sent if n.startswith(pattern)]
            else:
                hits = fnmatch.filter(sent, pattern)
            assert hits, f"COPY {source} matches nothing in {sent}"
    assert "model.onnx" in sent and "requirements.txt" in sent


@pytest.mark.parametrize(
    ("patterns", "path", "excluded"),
    [
        (["**/__pycache__"], "a/b/__pycache__/c.pyc", True),
        (["**/__pycache__"], "__pycache__/c.pyc", True),
        (["*.log"], "a.log", True),
        (["*.log"], "sub/a.log", False),  # Docker's `*` stays in one folder
        (["*.log", "!keep.log"], "keep.log", False),
        (["docs/", "!docs/README.md"], "docs/README.md", False),
        (["docs"], "docs/a/b.txt", True),
        (["/x/**/y"], "x/a/b/y", True),
        (["# comment", "", "a?c"], "abc", True),
        (["[a-c].txt"], "b.txt", True),
    ],
)
def test_dockerignore_semantics(patterns, path, excluded):
    assert DockerIgnore(patterns).excluded(path) is excluded


# --------------------------------------------------------------------------- node-0


def test_the_buildctl_command_line_on_node_0():
    assert buildctl_argv(IMAGE) == [
        "buildctl",
        "--addr",
        "unix:///run/buildkit/buildkitd.sock",
        "build",
        "--progress",
        "plain",
        "--frontend",
        "dockerfile.v0",
        "--local",
        "context=context",
        "--local",
        "dockerfile=dockerfile",
        "--output",
        "type=image,name=node-0:5000/ml-app:0123456789ab,push=true,registry.insecure=true",
    ]


def test_the_socket_and_registry_agree_with_the_cluster_roles():
    import yaml

    root = APP_DIR.parent / "roles"
    builder = yaml.safe_load((root / "image_builder" / "defaults" / "main.yml").read_text())
    registry = yaml.safe_load((root / "registry" / "defaults" / "main.yml").read_text())
    assert builder["image_builder_socket"] == BUILDKIT_SOCKET
    assert image_name("t").startswith(f"node-0:{registry['registry_port']}/")
    assert image_name("t").split("/")[0] in builder["image_builder_insecure_registries"]


def test_registry_check_asks_for_every_manifest_type():
    argv = registry_check_argv("abc")
    assert argv[-1] == "http://node-0:5000/v2/ml-app/manifests/abc" and "-I" in argv
    accepts = [argv[i + 1] for i, a in enumerate(argv) if a == "-H"]
    assert "Accept: application/vnd.oci.image.index.v1+json" in accepts
    assert "Accept: application/vnd.docker.distribution.manifest.v2+json" in accepts


def test_remote_build_streams_the_context_and_skips_a_pushed_tag(tmp_path, model, monkeypatch):
    node = install_fake_node(tmp_path / "node", monkeypatch)
    ctx = build_context(model)
    target = ["ssh", "-F", str(write_ssh_config(tmp_path / "state")), "node-0"]

    first = remote_build(ctx, target)
    assert first.pushed and first.image == image_name(ctx.tag) and first.sent_bytes > 0
    [build] = node.builds()
    assert build["argv"] == buildctl_argv(first.image)[1:]
    received = build["locals"]
    assert received["context"] == {
        f.name.split("/", 1)[1]: f.size for f in ctx.files if f.name.startswith("context/")
    }
    assert received["dockerfile"] == {"Dockerfile": (APP_DIR / "Dockerfile").stat().st_size}
    pushed = node.pushed(ctx.tag)
    assert (pushed / "model.onnx").read_bytes() == model.read_bytes()
    assert (pushed / "server.py").read_bytes() == (APP_DIR / "server.py").read_bytes()
    assert list(node.tmp.iterdir()) == []  # the remote folder is removed
    assert set(node.ssh_hosts()) == {"node-0"}

    again = remote_build(build_context(model), target)
    assert not again.pushed and again.tag == ctx.tag
    assert len(node.builds()) == 1  # nothing rebuilt
    assert len(node.curls()) == 2

    forced = remote_build(ctx, target, force=True)
    assert forced.pushed and len(node.builds()) == 2


def test_a_failed_build_shows_buildkits_output(tmp_path, model, monkeypatch):
    install_fake_node(tmp_path / "node", monkeypatch)
    monkeypatch.setenv("FAKE_BUILDCTL_FAIL", "1")
    target = ["ssh", "-F", str(write_ssh_config(tmp_path / "state")), "node-0"]
    with pytest.raises(BuildError) as exc:
        remote_build(build_context(model), target)
    assert "did not complete successfully" in exc.value.message
    assert "exit 1" in exc.value.message


def test_an_unreachable_registry_is_a_clear_error(tmp_path, model, monkeypatch):
    node = install_fake_node(tmp_path / "node", monkeypatch)
    monkeypatch.setenv("FAKE_REGISTRY_DOWN", "1")
    target = ["ssh", "-F", str(write_ssh_config(tmp_path / "state")), "node-0"]
    with pytest.raises(BuildError) as exc:
        remote_build(build_context(model), target)
    assert "registry node-0:5000 did not answer" in exc.value.message
    assert "ggctl cluster registry" in exc.value.hint
    assert node.builds() == []


# --------------------------------------------------------------------------- the CLI


@pytest.fixture
def onnx_model(tmp_path: Path) -> Path:
    return make_linear_model(tmp_path / "linear.onnx", size=32)


def test_cli_dry_run_lists_files_and_tag_and_touches_nothing(
    tmp_path, onnx_model, capsys, monkeypatch
):
    monkeypatch.setenv("COLUMNS", "200")
    state = tmp_path / "state"
    code, out, err = run(
        ["--state-dir", str(state), "build", "--model", str(onnx_model), "--dry-run"], capsys
    )
    assert code == 0, err
    ctx = build_context(onnx_model)
    assert f"{len(ctx.files)} files" in out and "nothing sent" in out
    for f in ctx.files:
        assert f.name in out and f"{f.size:,} B" in out
    assert ctx.tag in out and f"node-0:5000/ml-app:{ctx.tag}" in out
    assert not state.exists()

    code, out, err = run(
        [
            "--state-dir",
            str(state),
            "build",
            "--model",
            str(onnx_model),
            "--dry-run",
            "--tag",
            "v1",
        ],
        capsys,
    )
    assert code == 0 and "node-0:5000/ml-app:v1" in out


def test_cli_refuses_a_bad_model_or_tag_before_sending_anything(tmp_path, onnx_model, capsys):
    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"not onnx")
    code, _out, err = run(["--state-dir", str(tmp_path), "build", "--model", str(bad)], capsys)
    assert code == 1 and "not a loadable ONNX model" in err and "Traceback" not in err
    code, _out, err = run(
        ["--state-dir", str(tmp_path), "build", "--model", str(onnx_model), "--tag", "-bad:tag"],
        capsys,
    )
    assert code == 1 and "not a valid image tag" in err


def test_cli_build_records_build_json_and_rebuilds_nothing(
    tmp_path, onnx_model, capsys, monkeypatch
):
    node = install_fake_node(tmp_path / "node", monkeypatch)
    state = tmp_path / "state"
    write_ssh_config(state)
    base = ["--state-dir", str(state), "build", "--model", str(onnx_model)]

    code, out, err = run(base, capsys)
    assert code == 0, err
    record = json.loads((state / "build.json").read_text())
    tag = build_context(onnx_model).tag
    assert record["image"] == f"node-0:5000/ml-app:{tag}" and record["tag"] == tag
    assert record["model"] == str(onnx_model.resolve())
    assert (
        record["model_sha256"] == __import__("hashlib").sha256(onnx_model.read_bytes()).hexdigest()
    )
    assert record["built_at"] and record["pushed"] is True
    assert f"pushed node-0:5000/ml-app:{tag}" in out
    assert "pushing manifest" in err  # BuildKit's output is shown

    code, out, err = run(base, capsys)
    assert code == 0, err
    assert "already in the registry, not rebuilt" in out and len(node.builds()) == 1
    again = json.loads((state / "build.json").read_text())
    assert again["built_at"] == record["built_at"] and again["pushed"] is False

    code, out, err = run([*base, "--tag", "v1"], capsys)
    assert code == 0, err
    assert len(node.builds()) == 2 and node.pushed("v1").is_dir()
    assert json.loads((state / "build.json").read_text())["image"] == "node-0:5000/ml-app:v1"


def test_cli_build_without_a_reservation_says_so(tmp_path, onnx_model, capsys):
    code, _out, err = run(
        ["--state-dir", str(tmp_path / "s"), "build", "--model", str(onnx_model)], capsys
    )
    assert code == 1 and "nothing reserved yet" in err and "ggctl reserve" in err
