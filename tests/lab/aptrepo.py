"""A signed apt repository in the pkgs.k8s.io layout with stand-in Kubernetes packages,
and a stand-in BuildKit release tarball.

pkgs.k8s.io serves one flat repository per minor, `/core:/stable:/v1.35/deb/`, with
`InRelease`, `Release`, `Release.gpg`, `Packages` and an ASCII-armored `Release.key`,
and versions like `1.35.9-1.1` (the `-1.1` is the OBS revision). The lab has the same
files, signed with a key made in the test, so that apt and Ansible's deb822_repository
do exactly what they do against the real one.

The packages are stand-ins: shell scripts named kubelet/kubeadm/kubectl with the real
packages' unit files, enough for the roles up to the point where a real kubeadm runs.
"""

from __future__ import annotations

import os
import subprocess
import tarfile
import textwrap
from pathlib import Path

MINOR = "1.35"
# Two patches: a pin of 1.35.9 must not pick 1.35.10, and must match "1.35.9-1.1".
VERSIONS = ("1.35.9-1.1", "1.35.10-1.1")
PINNED_PATCH = "1.35.9"

KUBELET_UNIT = """\
[Unit]
Description=kubelet: The Kubernetes Node Agent (lab stand-in)
Wants=network-online.target
After=network-online.target

[Service]
ExecStart=/usr/bin/kubelet
Restart=always
StartLimitInterval=0
RestartSec=10

[Install]
WantedBy=multi-user.target
"""
# The real package's drop-in reads /etc/default/kubelet (KUBELET_EXTRA_ARGS).
KUBELET_DROPIN = """\
[Service]
EnvironmentFile=-/etc/default/kubelet
ExecStart=
ExecStart=/usr/bin/kubelet $KUBELET_EXTRA_ARGS
"""


def _script(name: str, version: str) -> str:
    return textwrap.dedent(f"""\
        #!/bin/sh
        # Lab stand-in for {name} v{version}: no Kubernetes behind it.
        case "$1" in
          version|--version) echo "{name} v{version.split("-")[0]} (lab stand-in)"; exit 0;;
        esac
        if [ "{name}" = kubelet ]; then exec sleep infinity; fi
        if [ "{name}" = kubeadm ] && [ "$1" = reset ]; then exit 0; fi
        echo "{name} (lab stand-in): '$*' needs the real binary" >&2
        exit 1
        """)


def build_deb(work: Path, name: str, version: str) -> Path:
    root = work / f"{name}_{version}"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "usr/bin").mkdir(parents=True)
    binary = root / "usr/bin" / name
    binary.write_text(_script(name, version))
    binary.chmod(0o755)
    if name == "kubelet":
        unit = root / "lib/systemd/system"
        unit.mkdir(parents=True)
        (unit / "kubelet.service").write_text(KUBELET_UNIT)
        dropin = root / "usr/lib/systemd/system/kubelet.service.d"
        dropin.mkdir(parents=True)
        (dropin / "10-kubeadm.conf").write_text(KUBELET_DROPIN)
    (root / "DEBIAN/control").write_text(
        textwrap.dedent(f"""\
            Package: {name}
            Version: {version}
            Architecture: amd64
            Maintainer: ggctl lab <lab@invalid>
            Section: admin
            Priority: optional
            Description: {name} stand-in for the ggctl lab
            """)
    )
    out = work / f"{name}_{version}_amd64.deb"
    subprocess.run(
        ["dpkg-deb", "--root-owner-group", "--build", str(root), str(out)],
        check=True,
        capture_output=True,
    )
    return out


def make_repo(work: Path) -> Path:
    """The served tree; the repository is at <tree>/core:/stable:/v1.35/deb/."""
    tree = work / "www"
    repo = tree / "core:" / "stable:" / f"v{MINOR}" / "deb"
    repo.mkdir(parents=True)
    debs = work / "debs"
    debs.mkdir()
    for version in VERSIONS:
        for name in ("kubelet", "kubeadm", "kubectl"):
            deb = build_deb(debs, name, version)
            os.replace(deb, repo / deb.name)
    gnupg = work / "gnupg"
    gnupg.mkdir(mode=0o700)
    env = {**os.environ, "GNUPGHOME": str(gnupg)}

    def gpg(*args: str, **kw: object) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(["gpg", "--batch", "--yes", *args], check=True, env=env, **kw)  # type: ignore[call-overload]

    gpg(
        "--passphrase",
        "",
        "--quick-gen-key",
        "ggctl lab <lab@invalid>",
        "ed25519",
        "sign",
        "never",
        capture_output=True,
    )
    run = partial_run(repo)
    (repo / "Packages").write_bytes(run(["apt-ftparchive", "packages", "."]))
    subprocess.run(["gzip", "-k9", "Packages"], cwd=repo, check=True)
    (repo / "Release").write_bytes(
        run(
            [
                "apt-ftparchive",
                "-o",
                "APT::FTPArchive::Release::Origin=obs://ggctl-lab",
                "release",
                ".",
            ]
        )
    )
    gpg("--clearsign", "-o", str(repo / "InRelease"), str(repo / "Release"), capture_output=True)
    gpg("-abs", "-o", str(repo / "Release.gpg"), str(repo / "Release"), capture_output=True)
    key = gpg("--armor", "--export", capture_output=True).stdout
    (repo / "Release.key").write_bytes(key)
    subprocess.run(["gpgconf", "--kill", "all"], env=env, check=False)
    return tree


def partial_run(cwd: Path):  # type: ignore[no-untyped-def]
    def run(argv: list[str]) -> bytes:
        return subprocess.run(argv, cwd=cwd, check=True, capture_output=True).stdout

    return run


BUILDKITD = """\
#!/usr/bin/python3
# Lab stand-in for buildkitd: listens on its socket, builds nothing.
import os, socket, sys, grp, signal
addr = "/run/buildkit/buildkitd.sock"
os.makedirs(os.path.dirname(addr), exist_ok=True)
if os.path.exists(addr):
    os.unlink(addr)
s = socket.socket(socket.AF_UNIX)
s.bind(addr)
if "--group" in sys.argv:
    os.chown(addr, 0, grp.getgrnam(sys.argv[sys.argv.index("--group") + 1]).gr_gid)
    os.chmod(addr, 0o660)
s.listen(8)
signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
while True:
    s.accept()[0].close()
"""
BUILDCTL = """\
#!/usr/bin/python3
# Lab stand-in for buildctl: `debug workers` answers when buildkitd's socket accepts.
import socket, sys
addr = "/run/buildkit/buildkitd.sock"
for a in sys.argv:
    if a.startswith("unix://"):
        addr = a[len("unix://"):]
s = socket.socket(socket.AF_UNIX)
try:
    s.connect(addr)
except OSError as e:
    sys.exit(f"buildctl (lab stand-in): {addr}: {e}")
print("ID  PLATFORMS\\nlab linux/amd64")
"""


def buildkit_tarball(tree: Path, version: str = "v0.31.2") -> tuple[str, Path]:
    """The stand-in release at GitHub's path; (path under the tree, file)."""
    rel = f"moby/buildkit/releases/download/{version}/buildkit-{version}.linux-amd64.tar.gz"
    out = tree / rel
    out.parent.mkdir(parents=True, exist_ok=True)
    src = out.parent / "src"
    (src / "bin").mkdir(parents=True)
    for name, text in (("buildkitd", BUILDKITD), ("buildctl", BUILDCTL)):
        (src / "bin" / name).write_text(text)
        (src / "bin" / name).chmod(0o755)
    with tarfile.open(out, "w:gz") as tar:
        tar.add(src / "bin", arcname="bin")
    return rel, out
