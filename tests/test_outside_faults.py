"""Per-command faults of `ggctl cluster`, `ggctl build` and `ggctl kubectl` (issue 13, errors
for people): each command runs for real (ggctl.cli.main, unpatched) against outside parts
that really fail on loopback, and must end in one message (what failed, the outside's own
words, the next command), no traceback on screen, the traceback with -v and in errors.log.

    cluster   real ansible-runner/ansible-playbook/ssh: a refused port, a real sshd that
              refuses the key; an inventory Ansible cannot use; no reservation at all
    build     real ssh to a refused port; real curl (on the "node", through a stand-in ssh
              that runs the remote command here) against a registry that answers 500 or
              refuses; the node without buildctl; no ssh program
    kubectl   real ssh refused, a real sshd with another host key; real kubectl through a
              stand-in tunnel to the Kubernetes fake answering 401/403/500/503 or hanging
"""

from __future__ import annotations

import http.server
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import ClassVar

import pytest
from build_helpers import SSH as STANDIN_SSH
from conftest import make_linear_model

from ggctl.inventory.ansible import INVENTORY_FILE
from ggctl.ports import free_port

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
# The "node" runs /usr/bin's curl; kubectl is the machine's own (on every CI machine).
needs_curl = pytest.mark.skipif(
    not os.access("/usr/bin/curl", os.X_OK), reason="needs curl in /usr/bin"
)
needs_kubectl = pytest.mark.skipif(
    shutil.which("kubectl") is None and not os.environ.get("CI"),
    reason="kubectl is not installed (it is on CI machines)",
)
needs_ssh = pytest.mark.skipif(shutil.which("ssh") is None, reason="needs OpenSSH's ssh")
needs_ansible = pytest.mark.skipif(
    not (Path(sys.executable).parent / "ansible-playbook").exists()
    and shutil.which("ansible-playbook") is None,
    reason="ansible-core is not installed",
)


def cli(capfd, *args: str) -> tuple[int, str]:
    """`ggctl ARGS` in-process; (exit code, stderr with rich's line wrapping undone).
    capfd, not capsys: kubectl and ssh write to the file descriptors themselves."""
    from ggctl.cli import main

    with pytest.raises(SystemExit) as exc:
        main(list(args))
    _out, err = capfd.readouterr()
    return int(exc.value.code or 0), " ".join(err.split())


def one_message(code: int, err: str, state: Path, *texts: str) -> None:
    assert code == 1, err
    assert "Traceback" not in err and err.count("error:") == 1, err
    for text in texts:
        assert text in err, (text, err)
    assert "hint:" in err, err
    assert "Traceback" in (state / "errors.log").read_text()


def shows_traceback_with_v(capfd, state: Path, *args: str) -> None:
    code, err = cli(capfd, "-v", "--state-dir", str(state), *args)
    assert code == 1 and "Traceback" in err, err


def keygen(path: Path) -> Path:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", path.name, "-f", str(path)],
        check=True,
        timeout=60,
    )
    return path


def inventory(path: Path, port: int, **extra: str) -> Path:
    """A hand-written inventory (`ggctl cluster --inventory`): one node at 127.0.0.1:port."""
    args = " ".join(f"{k}: {v!r}," for k, v in extra.items())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        textwrap.dedent(f"""\
        all:
          children:
            k8s_cluster:
              children: {{kube_control_plane: {{}}, kube_node: {{}}}}
            kube_control_plane: {{hosts: {{node-0: {{}}}}}}
            kube_node: {{hosts: {{node-0: {{}}}}}}
            registry: {{hosts: {{node-0: {{}}}}}}
          hosts:
            node-0: {{ansible_host: 127.0.0.1, ansible_port: {port}, ansible_user: cc,
                      node_ip: 192.168.1.10, {args}}}
        """)
    )
    return path


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """No user config; Ansible's and ssh's own files under tmp_path."""
    for name in list(os.environ):
        if name.startswith("GGCTL_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("ANSIBLE_LOCAL_TEMP", str(tmp_path / "ansible-tmp"))
    monkeypatch.setenv("ANSIBLE_SSH_CONTROL_PATH_DIR", str(tmp_path / "ansible-cp"))
    monkeypatch.setenv("COLUMNS", "200")
    return tmp_path


@pytest.fixture
def sshd():
    """A real OpenSSH server on 127.0.0.1 that lets nobody in (its host key is its own)."""
    if os.geteuid() != 0 or not os.access(SSHD, os.X_OK) or not shutil.which("ssh-keygen"):
        pytest.skip("needs root, OpenSSH's sshd and ssh-keygen")
    d = Path(tempfile.mkdtemp(prefix="ggctl-sshd-"))
    host_key = keygen(d / "host")
    port = free_port()
    config = d / "sshd_config"
    config.write_text(
        textwrap.dedent(f"""\
        ListenAddress 127.0.0.1:{port}
        HostKey {host_key}
        PidFile none
        UsePAM no
        PasswordAuthentication no
        KbdInteractiveAuthentication no
        PubkeyAuthentication yes
        AuthorizedKeysFile none
        AllowUsers ggctl-nobody
        LogLevel VERBOSE
        """)
    )
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation dir
    log = d / "sshd.log"
    with log.open("w") as fh:
        proc = subprocess.Popen(
            [SSHD, "-D", "-e", "-f", str(config)],
            stdout=fh,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        for _ in range(300):  # bounded: about 30 s
            if "Server listening on" in log.read_text():
                break
            assert proc.poll() is None, log.read_text()
            time.sleep(0.1)
        else:
            raise AssertionError(f"sshd did not start:\n{log.read_text()}")
        yield SimpleNamespace(port=port, dir=d, log=log)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        shutil.rmtree(d, ignore_errors=True)


# ------------------------------------------------------------------------------ cluster


@needs_ssh
@needs_ansible
def test_cluster_node_refuses_ssh(isolated, capfd):
    state = isolated / "state"
    dead = free_port()
    inv = inventory(isolated / "inv.yml", dead)
    code, err = cli(capfd, "--state-dir", str(state), "cluster", "-i", str(inv))
    one_message(
        code,
        err,
        state,
        "ansible-playbook cluster.yml failed",
        "node-0: unreachable in [Gathering Facts]",
        f"ssh: connect to host 127.0.0.1 port {dead}: Connection refused",
        "ssh could not reach node-0",
        "`ggctl status`",
        "`ggctl ssh node-0 -- true`",
        "then rerun `ggctl cluster`",
    )
    shows_traceback_with_v(capfd, state, "cluster", "-i", str(inv))


@needs_ansible
def test_cluster_node_refuses_the_key(isolated, capfd, sshd):
    state = isolated / "state"
    key = keygen(isolated / "not-authorized")
    inv = inventory(
        isolated / "inv.yml",
        sshd.port,
        ansible_ssh_common_args=f"-o UserKnownHostsFile={isolated / 'known_hosts'} "
        f"-o IdentitiesOnly=yes -o IdentityFile={key}",
    )
    code, err = cli(capfd, "--state-dir", str(state), "cluster", "-i", str(inv))
    one_message(
        code,
        err,
        state,
        "node-0: unreachable",
        "Permission denied (publickey",
        "its key was refused",
        "--key",
    )


@needs_ansible
def test_cluster_refuses_an_inventory_without_a_control_plane(isolated, capfd):
    """ansible-playbook runs every play on no host and says "successful": ggctl must not."""
    state = isolated / "state"
    bad = isolated / "bad.yml"
    bad.write_text("all: [oops\n")
    code, err = cli(capfd, "--state-dir", str(state), "cluster", "-i", str(bad))
    one_message(
        code,
        err,
        state,
        f"Ansible finds no host in group kube_control_plane in {bad}",
        "YAML parsing failed",  # Ansible's own words about the file
        "inventory.example.yml",
    )
    assert not (state / "cluster.json").exists()  # nothing recorded as done
    shows_traceback_with_v(capfd, state, "cluster", "-i", str(bad))


def test_cluster_without_a_reservation(isolated, capfd):
    state = isolated / "state"
    code, err = cli(capfd, "--state-dir", str(state), "cluster")
    one_message(code, err, state, "no inventory at", "run `ggctl reserve` first")


def test_cluster_with_a_file_where_the_runs_folder_goes(isolated, capfd):
    state = isolated / "state"
    state.mkdir()
    (state / "runs").write_text("not a folder\n")
    inv = inventory(isolated / "inv.yml", free_port())
    code, err = cli(capfd, "--state-dir", str(state), "cluster", "-i", str(inv))
    one_message(code, err, state, f"cannot use {state / 'runs'}/", "Not a directory", "--state-dir")


@pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("unshare"), reason="needs root and unshare (mounts)"
)
def test_cluster_on_a_read_only_state_dir(isolated):
    """The installed command in a private mount namespace whose state dir is read-only."""
    ro = isolated / "ro"
    ro.mkdir()
    inv = inventory(isolated / "inv.yml", free_port())
    ggctl = Path(sys.executable).parent / "ggctl"
    script = f'mount -t tmpfs -o ro,size=1m tmpfs "{ro}" && exec "$@"'
    r = subprocess.run(
        [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            script,
            "sh",
            str(ggctl),
            "--state-dir",
            str(ro / "state"),
            "cluster",
            "-i",
            str(inv),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    err = " ".join(r.stderr.split())
    assert r.returncode == 1 and "Traceback" not in err, err
    assert f"cannot use {ro / 'state'}: Read-only file system" in err and "hint:" in err


# ------------------------------------------------------------------------------ build


class Registry(http.server.BaseHTTPRequestHandler):
    """The node's registry as curl reaches it through an HTTP proxy (this server): every
    request is answered with `status` (no body: a HEAD)."""

    status = 500
    seen: ClassVar[list[str]] = []

    def do_HEAD(self) -> None:
        type(self).seen.append(self.path)
        self.send_response(self.status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def registry():
    """A registry answering on 127.0.0.1; curl on the "node" reaches it as its proxy."""

    class Handler(Registry):
        seen: ClassVar[list[str]] = []

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield SimpleNamespace(handler=Handler, port=server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def node(isolated, monkeypatch):
    """node-0 as `ggctl build` reaches it: a stand-in ssh that runs the remote command here
    under sh (as sshd would), with only /usr/bin and /bin besides: real curl, no buildctl."""
    bin_dir = isolated / "bin"
    bin_dir.mkdir()
    ssh = bin_dir / "ssh"
    ssh.write_text(f"#!{sys.executable}\n{STANDIN_SSH}")
    ssh.chmod(0o755)
    (isolated / "remote-tmp").mkdir()
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}/usr/bin{os.pathsep}/bin")
    monkeypatch.setenv("FAKE_SSH_LOG", str(isolated / "ssh.log"))
    monkeypatch.setenv("FAKE_REMOTE_TMP", str(isolated / "remote-tmp"))
    for name in ("no_proxy", "NO_PROXY", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY"):
        monkeypatch.delenv(name, raising=False)
    state = isolated / "state"
    state.mkdir()
    (state / "ssh_config").write_text("Host node-0\n    HostName 127.0.0.1\n    User cc\n")
    return state


@pytest.fixture
def model(isolated):
    return make_linear_model(isolated / "linear.onnx", size=32)


def build_args(state: Path, model: Path) -> list[str]:
    return ["--state-dir", str(state), "build", "--model", str(model)]


@needs_ssh
def test_build_node_refuses_ssh(isolated, model, capfd):
    state = isolated / "state"
    state.mkdir()
    dead = free_port()
    (state / "ssh_config").write_text(
        f"Host node-0\n    HostName 127.0.0.1\n    Port {dead}\n    User cc\n"
        f"    UserKnownHostsFile {isolated / 'known_hosts'}\n"
    )
    code, err = cli(capfd, *build_args(state, model))
    one_message(
        code,
        err,
        state,
        "cannot ssh to node-0",
        f"ssh: connect to host 127.0.0.1 port {dead}: Connection refused",
        "`ggctl ssh node-0 -- true`",
    )
    shows_traceback_with_v(capfd, state, *build_args(state, model)[2:])


@needs_curl
def test_build_registry_answers_500(node, registry, model, capfd, monkeypatch):
    monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{registry.port}")
    registry.handler.status = 500
    code, err = cli(capfd, *build_args(node, model))
    one_message(
        code,
        err,
        node,
        "the registry node-0:5000 answered HTTP 500 to node-0's check of "
        "http://node-0:5000/v2/ml-app/manifests/",
        "journalctl -u ggctl-registry@private",
        "`ggctl cluster registry`",
    )
    assert registry.handler.seen and registry.handler.seen[0].startswith("http://node-0:5000/v2/")


@needs_curl
def test_build_registry_refuses(node, model, capfd, monkeypatch):
    dead = free_port()
    monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{dead}")
    code, err = cli(capfd, *build_args(node, model))
    one_message(
        code,
        err,
        node,
        "the registry node-0:5000 did not answer from node-0: curl: (7)",
        f"port {dead}",
        "`ggctl cluster registry`",
    )


@needs_curl
def test_build_node_without_buildkit(node, registry, model, capfd, monkeypatch):
    monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{registry.port}")
    registry.handler.status = 404  # not pushed yet: build it
    code, err = cli(capfd, *build_args(node, model))
    one_message(
        code,
        err,
        node,
        "the build on node-0 failed (exit 127)",
        "buildctl is not installed on this node (run: ggctl cluster registry)",
    )


def test_build_without_an_ssh_program(node, model, capfd, monkeypatch, isolated):
    empty = isolated / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    code, err = cli(capfd, *build_args(node, model))
    one_message(code, err, node, "ssh", "No such file or directory", "install it")


# ------------------------------------------------------------------------------ kubectl

# A stand-in for `ssh -N -L 127.0.0.1:LOCAL:127.0.0.1:6443 node-0`: listens on LOCAL and
# carries every connection to $FAKE_API_PORT on this machine (node-0's API server is the
# Kubernetes fake here), until terminated.
FORWARDING_SSH = r"""
import os, socket, sys, threading
spec = sys.argv[sys.argv.index("-L") + 1].split(":")
local = socket.create_server((spec[0], int(spec[1])))
target = ("127.0.0.1", int(os.environ["FAKE_API_PORT"]))

def pipe(a, b):
    try:
        while data := a.recv(65536):
            b.sendall(data)
    except OSError:
        pass
    finally:
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

while True:
    client, _ = local.accept()
    upstream = socket.create_connection(target)
    for a, b in ((client, upstream), (upstream, client)):
        threading.Thread(target=pipe, args=(a, b), daemon=True).start()
"""


@pytest.fixture
def cluster_state(isolated, fake_k8s, monkeypatch):
    """The state `ggctl cluster` leaves: its kubeconfig and the reserved inventory; ssh
    is the forwarding stand-in (kubectl, the API and ggctl are real)."""
    state = isolated / "state"
    state.mkdir()
    shutil.copy(fake_k8s.kubeconfig_path, state / "kubeconfig")
    inventory(state / INVENTORY_FILE, 22)
    bin_dir = isolated / "bin"
    bin_dir.mkdir()
    ssh = bin_dir / "ssh"
    ssh.write_text(f"#!{sys.executable}\n{FORWARDING_SSH}")
    ssh.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_API_PORT", str(fake_k8s.port))
    monkeypatch.setenv("GGCTL_CLUSTER__TUNNEL_PORT", str(free_port()))
    return state


@needs_kubectl
def test_kubectl_through_the_tunnel_works(cluster_state, capfd):
    """The baseline the faults below break: the same path answers."""
    code, err = cli(capfd, "--state-dir", str(cluster_state), "kubectl", "--", "get", "ns")
    assert code == 0, err


KUBECTL_ANSWERS = [
    (401, "Unauthorized", "Unauthorized", "You must be logged in to the server"),
    (
        403,
        "Forbidden",
        'pods is forbidden: User "system:anonymous" cannot list resource "pods" in API group '
        '"" in the namespace "default"',
        "Error from server (Forbidden)",
    ),
    (
        500,
        "InternalError",
        "Internal error occurred: etcdserver: request timed out",
        "Error from server (InternalError)",
    ),
    (
        503,
        "ServiceUnavailable",
        "the server is currently unable to handle the request",
        "Error from server (ServiceUnavailable)",
    ),
]


@needs_kubectl
@pytest.mark.parametrize(("status", "reason", "message", "kubectl_says"), KUBECTL_ANSWERS)
def test_kubectl_passes_the_api_servers_answer_on(
    cluster_state, fake_k8s, capfd, status, reason, message, kubectl_says
):
    """kubectl's own message is the message: ggctl passes its exit code on and adds nothing
    (no traceback: ggctl itself did not fail)."""
    fake_k8s.fail_http(status, reason, message, path="/api/v1/namespaces/default/pods")
    code, err = cli(capfd, "--state-dir", str(cluster_state), "kubectl", "--", "get", "pods")
    assert code == 1, err
    assert kubectl_says in err and "Traceback" not in err, err
    if status != 401:  # kubectl replaces a 401's text by its own sentence
        assert message in err, err


@needs_kubectl
def test_kubectl_against_a_hung_api_server_ends_at_its_request_timeout(
    cluster_state, fake_k8s, capfd
):
    fake_k8s.fail_http(code=0, delay_s=60, path="/api/v1/namespaces/default/pods")
    argv = ["--state-dir", str(cluster_state), "kubectl", "--", "get", "pods"]
    code, err = cli(capfd, *argv, "--request-timeout=2s")
    assert code == 1 and "Traceback" not in err, err
    assert "Client.Timeout" in err or "context deadline exceeded" in err, err


@needs_ssh
def test_kubectl_tunnel_refused(isolated, fake_k8s, capfd, monkeypatch):
    """Real ssh, and nothing listening where node-0 should be."""
    state = isolated / "state"
    state.mkdir()
    shutil.copy(fake_k8s.kubeconfig_path, state / "kubeconfig")
    dead = free_port()
    inventory(
        state / INVENTORY_FILE,
        dead,
        ansible_ssh_common_args=f"-o UserKnownHostsFile={isolated / 'known_hosts'}",
    )
    monkeypatch.setenv("GGCTL_CLUSTER__TUNNEL_PORT", str(free_port()))
    args = ["kubectl", "--", "get", "pods"]
    code, err = cli(capfd, "--state-dir", str(state), *args)
    one_message(
        code,
        err,
        state,
        "the SSH tunnel to the API server via 127.0.0.1 closed",
        f"ssh: connect to host 127.0.0.1 port {dead}: Connection refused",
        "`ggctl status`",
        "`ggctl ssh node-0 -- true`",
    )
    shows_traceback_with_v(capfd, state, *args)


@needs_ssh
def test_kubectl_tunnel_meets_another_host_key(isolated, fake_k8s, capfd, monkeypatch, sshd):
    """A real sshd whose host key is not the one remembered (a reused address)."""
    state = isolated / "state"
    state.mkdir()
    shutil.copy(fake_k8s.kubeconfig_path, state / "kubeconfig")
    old = keygen(isolated / "old-host")
    known = isolated / "known_hosts"
    known.write_text(f"[127.0.0.1]:{sshd.port} {old.with_suffix('.pub').read_text()}")
    inventory(
        state / INVENTORY_FILE,
        sshd.port,
        ansible_ssh_common_args=f"-o UserKnownHostsFile={known} -o StrictHostKeyChecking=yes",
    )
    monkeypatch.setenv("GGCTL_CLUSTER__TUNNEL_PORT", str(free_port()))
    code, err = cli(capfd, "--state-dir", str(state), "kubectl", "--", "get", "pods")
    one_message(
        code,
        err,
        state,
        "the SSH tunnel to the API server via 127.0.0.1 closed",
        "Host key verification failed",
        "another host key than the one remembered",
        "ssh-keygen -R",
    )


def test_kubectl_not_installed(cluster_state, capfd, monkeypatch, isolated):
    monkeypatch.setenv("PATH", str(isolated / "bin"))  # the stand-in ssh only
    code, err = cli(capfd, "--state-dir", str(cluster_state), "kubectl", "--", "get", "pods")
    one_message(code, err, cluster_state, "kubectl is not installed here", "ggctl ssh node-0")


# ------------------------------------------------------------------------------ deploy


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("garbage: [\n", "it is not YAML"),
        ("- a\n- b\n", "it is not a kubeconfig"),
        ("plain text\n", "it is not a kubeconfig"),
    ],
)
def test_deploy_with_a_file_that_is_no_kubeconfig(isolated, capfd, text, says):
    state = isolated / "state"
    kubeconfig = isolated / "kubeconfig"
    kubeconfig.write_text(text)
    args = ["deploy", "--kubeconfig", str(kubeconfig), "--image", "node-0:5000/ml-app:x"]
    code, err = cli(capfd, "--state-dir", str(state), *args)
    one_message(code, err, state, f"cannot use the kubeconfig {kubeconfig}: {says}", "--kubeconfig")
    shows_traceback_with_v(capfd, state, *args)


def test_a_state_record_that_is_not_json(isolated, capfd, fake_k8s):
    """deploy reads the image `ggctl build` recorded: a broken record is named, not a trace."""
    state = isolated / "state"
    state.mkdir()
    (state / "build.json").write_text('{"image": "node-0:5000/ml-app:abc",\n')
    args = ["deploy", "--kubeconfig", str(fake_k8s.kubeconfig_path)]
    code, err = cli(capfd, "--state-dir", str(state), *args)
    one_message(
        code,
        err,
        state,
        f"{state / 'build.json'} (ggctl's record of `build`) is not valid JSON",
        f"mv {state / 'build.json'}",
    )
