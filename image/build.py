"""`ggctl build`: the service image, built on node-0 by BuildKit and pushed to node-0:5000.

    resolve_model     --model, else [serve] model, else the built-in demo model
    choose_for_build  --int8-if-better: that model or its int8 twin (ggctl.model.select)
    prepare           the model checked, its build context (ggctl.image.context) and the image name
    buildctl_argv     the exact `buildctl build` command line run on node-0
    remote_script     what runs there: unpack the tar from stdin into a temporary folder, build
    registry_check    `curl` on node-0 asking the registry for the tag's manifest (HEAD)
    remote_build      skip if the registry has the tag, else stream the tar over SSH and build
    run_build         all of it from the settings; records <state>/build.json

No Docker on the user's machine: only the context travels, through the ssh_config that
`ggctl reserve` wrote. The builder is roles/image_builder (buildkitd, containerd worker,
socket /run/buildkit/buildkitd.sock, node-0:5000 as a plain-HTTP registry in buildkitd.toml).
"""

from __future__ import annotations

import shlex
import subprocess
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ggctl.errors import GgctlError
from ggctl.image.context import CONTEXT, DOCKERFILE, BuildContext, build_context
from ggctl.state import StateDir

REGISTRY = "node-0:5000"
REPOSITORY = "ml-app"
BUILDKIT_SOCKET = "/run/buildkit/buildkitd.sock"  # roles/image_builder: image_builder_socket
BUILD_NODE = "node-0"
STATE_NAME = "build"
MANIFEST_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
SSH_OPTIONS = ("-o", "BatchMode=yes", "-o", "ConnectTimeout=20", "-o", "ServerAliveInterval=30")
TAIL_LINES = 30


class BuildError(GgctlError):
    """The build could not run on node-0, or BuildKit failed; the message has its output."""


def image_name(tag: str, registry: str = REGISTRY, repository: str = REPOSITORY) -> str:
    return f"{registry}/{repository}:{tag}"


def check_tag(tag: str) -> str:
    import re

    if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", tag):
        raise GgctlError(
            f"{tag!r} is not a valid image tag",
            hint="letters, digits, '_', '.' and '-', at most 128, not starting with '.' or '-'",
        )
    return tag


# --------------------------------------------------------------------------- the plan


def resolve_model(settings: Any, model: Path | None, *, cache: bool = True) -> Path:
    """--model, else [serve] model, else the demo model (into a temporary folder if not cache)."""
    chosen = model or settings.serve.model
    if chosen is not None:
        return Path(chosen).expanduser()
    from ggctl.model.mobilenet import ensure_demo_model

    cache_dir = Path(settings.state_dir) / "models"
    if cache:
        return ensure_demo_model(cache_dir)
    from ggctl.model.mobilenet import demo_model_filename

    cached = cache_dir / demo_model_filename()
    if cached.is_file():
        return cached
    import atexit
    import shutil

    scratch = tempfile.mkdtemp(prefix="ggctl-demo-model-")
    atexit.register(shutil.rmtree, scratch, True)
    return ensure_demo_model(Path(scratch))


def choose_for_build(
    settings: Any,
    model: Path | None,
    data: Path | None,
    max_drop: float,
    *,
    dry_run: bool = False,
    console: Any = None,
) -> Any:
    """The fp32 model or its int8 twin, whichever `ggctl.model.select` chooses (a Choice).

    Measured with 1 ORT thread, as the optimized strategy's pods run. The int8 file and
    choice.json go to <state>/models/choice-<fp32 sha256>/, or to a temporary folder on a
    dry run, which leaves the state folder untouched.
    """
    from ggctl.image.context import sha256_file
    from ggctl.local.serving import check_model
    from ggctl.model.select import choose_model

    fp32 = resolve_model(settings, model, cache=not dry_run)
    check_model(fp32)
    if dry_run:
        import atexit
        import shutil

        out = Path(tempfile.mkdtemp(prefix="ggctl-choice-"))
        atexit.register(shutil.rmtree, out, True)
    else:
        out = Path(settings.state_dir) / "models" / f"choice-{sha256_file(fp32)[:12]}"
    return choose_model(fp32, data, max_drop, out, threads=1, console=console)


@dataclass
class BuildPlan:
    context: BuildContext
    tag: str
    image: str
    explicit_tag: bool


def prepare(
    settings: Any, model: Path | None = None, tag: str | None = None, *, dry_run: bool = False
) -> BuildPlan:
    """The model (checked to be servable), its context, and the image it becomes."""
    from ggctl.local.serving import check_model

    path = resolve_model(settings, model, cache=not dry_run)
    check_model(path)
    ctx = build_context(path)
    chosen = check_tag(tag) if tag else ctx.tag
    return BuildPlan(ctx, chosen, image_name(chosen), explicit_tag=bool(tag))


# --------------------------------------------------------------------------- on node-0


def buildctl_argv(image: str, socket: str = BUILDKIT_SOCKET) -> list[str]:
    """`buildctl build` for the unpacked tar in the current folder (context/, dockerfile/)."""
    return [
        "buildctl",
        "--addr",
        f"unix://{socket}",
        "build",
        "--progress",
        "plain",
        "--frontend",
        "dockerfile.v0",
        "--local",
        f"context={CONTEXT}",
        "--local",
        f"dockerfile={DOCKERFILE}",
        "--output",
        f"type=image,name={image},push=true,registry.insecure=true",
    ]


def remote_script(image: str, socket: str = BUILDKIT_SOCKET) -> str:
    """The shell script run on node-0: tar.gz on stdin → temporary folder → buildctl build."""
    return "\n".join(
        [
            "set -eu",
            "command -v buildctl >/dev/null || { echo 'buildctl is not installed on this node' "
            "'(run: ggctl cluster registry)' >&2; exit 127; }",
            "d=$(mktemp -d -t ggctl-build.XXXXXX)",
            "trap 'rm -rf \"$d\"' EXIT",
            'tar -xzf - -C "$d"',
            'cd "$d"',
            shlex.join(buildctl_argv(image, socket)),
        ]
    )


def remote_command(script: str) -> str:
    """One argument for ssh: the script under sh, whatever the login shell is."""
    return "sh -c " + shlex.quote(script)


def manifest_url(tag: str, registry: str = REGISTRY, repository: str = REPOSITORY) -> str:
    return f"http://{registry}/v2/{repository}/manifests/{tag}"


def registry_check_argv(tag: str) -> list[str]:
    """curl on node-0: the HTTP status of a HEAD of the tag's manifest (200: it exists)."""
    argv = ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-I", "--max-time", "20"]
    for media_type in MANIFEST_TYPES:
        argv += ["-H", f"Accept: {media_type}"]
    return [*argv, manifest_url(tag)]


def ssh_target(state_dir: Path, node: str = BUILD_NODE) -> list[str]:
    """The ssh argv prefix for node-0 (ssh -F <state>/ssh_config ... node-0)."""
    from ggctl.provision.shell import ssh_command

    argv = ssh_command(Path(state_dir), node, [])
    return [argv[0], *SSH_OPTIONS, *argv[1:]]


def registry_has(target: list[str], tag: str, timeout: float = 60.0) -> bool:
    """Whether node-0's registry holds `tag`; a clear error if it cannot be asked."""
    cmd = [*target, remote_command(shlex.join(registry_check_argv(tag)))]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise BuildError(
            f"no answer from {target[-1]} in {timeout:.0f} s",
            hint="check that `ggctl ssh node-0 -- true` works",
        ) from None
    code = r.stdout.strip()[-3:]
    if code == "200":
        return True
    if code == "404":
        return False
    if r.returncode == 255:
        raise BuildError(
            f"cannot ssh to {target[-1]}: {r.stderr.strip() or 'no message'}",
            hint="check `ggctl status` and `ggctl ssh node-0 -- true`",
        )
    node = target[-1]
    said = r.stderr.strip() or "no message"
    check = f"`ggctl ssh {node} -- curl -sSI http://{REGISTRY}/v2/`"
    if code in ("", "000"):  # curl's "no HTTP answer" (refused, timed out, no route)
        raise BuildError(
            f"the registry {REGISTRY} did not answer from {node}: {said}",
            hint=f"check it with {check}; `ggctl cluster registry` (re)installs it",
        )
    raise BuildError(
        f"the registry {REGISTRY} answered HTTP {code} to {node}'s check of "
        f"{manifest_url(tag)}: {said}",
        hint=f"a fault of the registry, not of the image: check it with {check} and its "
        f"log (`ggctl ssh {node} -- sudo journalctl -u ggctl-registry@private`); "
        "`ggctl cluster registry` (re)installs it; then rerun `ggctl build`",
    )


@dataclass
class BuildOutcome:
    image: str
    tag: str
    pushed: bool
    seconds: float
    sent_bytes: int = 0


class _CountingWriter:
    def __init__(self, fh: Any):
        self.fh, self.count = fh, 0

    def write(self, b: bytes) -> int:
        self.fh.write(b)
        self.count += len(b)
        return len(b)

    def flush(self) -> None:
        self.fh.flush()


def remote_build(
    ctx: BuildContext,
    target: list[str],
    *,
    image: str | None = None,
    force: bool = False,
    console: Any = None,
    socket: str = BUILDKIT_SOCKET,
) -> BuildOutcome:
    """Build `ctx` on the ssh `target` and push it, unless the registry already has the tag."""
    image = image or image_name(ctx.tag)
    tag = image.rsplit(":", 1)[1]
    start = time.monotonic()
    if not force and registry_has(target, tag):
        return BuildOutcome(image, tag, pushed=False, seconds=time.monotonic() - start)
    cmd = [*target, remote_command(remote_script(image, socket))]
    proc = subprocess.Popen(
        cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    tail: deque[str] = deque(maxlen=TAIL_LINES)
    reader = threading.Thread(target=_relay, args=(proc.stdout, tail, console), daemon=True)
    reader.start()
    sent = _CountingWriter(proc.stdin)
    broken = False
    try:
        ctx.write_tar_gz(sent)  # type: ignore[arg-type]
    except BrokenPipeError:
        broken = True  # the far end stopped reading: its output says why
    finally:
        try:
            proc.stdin.close()  # type: ignore[union-attr]
        except BrokenPipeError:
            broken = True
    rc = proc.wait()
    reader.join(10)
    if rc != 0 or broken:
        output = "\n".join(tail) or "no output"
        where = "ssh" if rc == 255 else "the build on " + target[-1]
        raise BuildError(
            f"{where} failed (exit {rc}):\n{output}",
            hint="fix and rerun `ggctl build`: BuildKit keeps its cache",
        )
    return BuildOutcome(
        image, tag, pushed=True, seconds=time.monotonic() - start, sent_bytes=sent.count
    )


def _relay(stream: Any, tail: deque[str], console: Any) -> None:
    for raw in iter(stream.readline, b""):
        line = raw.decode(errors="replace").rstrip()
        tail.append(line)
        if console is not None:
            console.print(line, markup=False, highlight=False, style="dim")
    stream.close()


# --------------------------------------------------------------------------- entry point


@dataclass
class BuildResult:
    plan: BuildPlan
    outcome: BuildOutcome
    record: dict[str, Any]


def record_for(
    plan: BuildPlan, outcome: BuildOutcome, previous: dict[str, Any] | None
) -> dict[str, Any]:
    now = datetime.now(UTC).isoformat(timespec="seconds")
    kept = (previous or {}).get("built_at") if (previous or {}).get("image") == plan.image else None
    return {
        "image": plan.image,
        "tag": plan.tag,
        "context_tag": plan.context.tag,
        "model": str(plan.context.model),
        "model_sha256": plan.context.model_sha256,
        "files": len(plan.context.files),
        "context_bytes": plan.context.size,
        "built_at": now if outcome.pushed or not kept else kept,
        "pushed": outcome.pushed,
    }


def run_build(
    settings: Any,
    *,
    model: Path | None = None,
    tag: str | None = None,
    console: Any = None,
    plan: BuildPlan | None = None,
) -> BuildResult:
    """Build and push the image for the settings; write <state>/build.json."""
    plan = plan or prepare(settings, model, tag)
    state = StateDir(settings.state_dir)
    target = ssh_target(state.root)
    if console is not None and not settings.quiet:
        console.print(
            f"[bold]ggctl build[/] {plan.image}: {len(plan.context.files)} files, "
            f"{plan.context.size / 1e6:.1f} MB, model {plan.context.model.name}",
            highlight=False,
        )
    outcome = remote_build(
        plan.context,
        target,
        image=plan.image,
        force=plan.explicit_tag,
        console=None if settings.quiet else console,
    )
    record = record_for(plan, outcome, state.read(STATE_NAME))
    state.write(STATE_NAME, record)
    return BuildResult(plan, outcome, record)
