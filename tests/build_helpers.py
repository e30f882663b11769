"""Stand-ins for the programs `ggctl build` runs, put first on PATH: `ssh` (runs the remote
command here, under sh, as sshd would), `buildctl` (records its arguments and what it was
given, "pushes" by copying the context into a folder registry) and `curl` (answers the
manifest HEAD from that folder registry). ggctl's own code runs unpatched."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SSH = r"""
import os, sys
args = sys.argv[1:]
takes_value = {"-F", "-o", "-i", "-p", "-J", "-l", "-L", "-R"}
while args and args[0].startswith("-"):
    flag = args.pop(0)
    if flag in takes_value:
        args.pop(0)
host = args.pop(0)
with open(os.environ["FAKE_SSH_LOG"], "a") as log:
    log.write(host + "\n")
os.environ["TMPDIR"] = os.environ["FAKE_REMOTE_TMP"]  # the "remote" side's own /tmp
os.execvp("sh", ["sh", "-c", " ".join(args)])
"""

BUILDCTL = r"""
import json, os, pathlib, shutil, sys
args = sys.argv[1:]
record = {"argv": args, "cwd": os.getcwd(), "locals": {}}
for i, arg in enumerate(args):
    if arg == "--local":
        key, folder = args[i + 1].split("=", 1)
        root = pathlib.Path(folder)
        record["locals"][key] = {str(p.relative_to(root)): p.stat().st_size
                                 for p in sorted(root.rglob("*")) if p.is_file()}
with open(os.environ["FAKE_BUILDCTL_LOG"], "a") as log:
    log.write(json.dumps(record) + "\n")
print("#1 [internal] load build definition from Dockerfile")
if os.environ.get("FAKE_BUILDCTL_FAIL"):
    print("#9 ERROR: process \"/bin/sh -c pip install\" did not complete successfully",
          file=sys.stderr)
    sys.exit(1)
output = dict(kv.split("=", 1) for kv in args[args.index("--output") + 1].split(","))
repo, tag = output["name"].split("/", 1)[1].split(":")
dest = pathlib.Path(os.environ["FAKE_REGISTRY"]) / repo / tag
shutil.rmtree(dest, ignore_errors=True)
shutil.copytree(record["cwd"] + "/context", dest)
print(f"#12 pushing manifest for {output['name']} done")
"""

CURL = r"""
import os, pathlib, re, sys
with open(os.environ["FAKE_CURL_LOG"], "a") as log:
    log.write(" ".join(sys.argv[1:]) + "\n")
if os.environ.get("FAKE_REGISTRY_DOWN"):
    sys.stdout.write("000")
    print("curl: (7) Failed to connect to node-0 port 5000", file=sys.stderr)
    sys.exit(7)
m = re.fullmatch(r"http://node-0:5000/v2/([^/]+)/manifests/(.+)", sys.argv[-1])
registry = pathlib.Path(os.environ["FAKE_REGISTRY"])
found = m and "-I" in sys.argv and (registry / m[1] / m[2]).is_dir()
sys.stdout.write("200" if found else "404")
"""


@dataclass
class FakeNode:
    """The stand-ins' folder and the logs they keep."""

    root: Path

    @property
    def registry(self) -> Path:
        return self.root / "registry"

    @property
    def tmp(self) -> Path:
        return self.root / "remote-tmp"

    def builds(self) -> list[dict[str, Any]]:
        log = self.root / "buildctl.log"
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []

    def curls(self) -> list[str]:
        log = self.root / "curl.log"
        return log.read_text().splitlines() if log.exists() else []

    def ssh_hosts(self) -> list[str]:
        log = self.root / "ssh.log"
        return log.read_text().splitlines() if log.exists() else []

    def pushed(self, tag: str) -> Path:
        return self.registry / "ml-app" / tag


def install_fake_node(root: Path, monkeypatch: Any) -> FakeNode:
    """Write the stand-ins under `root`/bin, put them first on PATH, point their logs there."""
    bin_dir = root / "bin"
    bin_dir.mkdir(parents=True)
    for name, body in (("ssh", SSH), ("buildctl", BUILDCTL), ("curl", CURL)):
        path = bin_dir / name
        path.write_text(f"#!{sys.executable}\n{body}")
        path.chmod(0o755)
    node = FakeNode(root)
    node.registry.mkdir()
    node.tmp.mkdir()
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_SSH_LOG", str(root / "ssh.log"))
    monkeypatch.setenv("FAKE_BUILDCTL_LOG", str(root / "buildctl.log"))
    monkeypatch.setenv("FAKE_CURL_LOG", str(root / "curl.log"))
    monkeypatch.setenv("FAKE_REGISTRY", str(node.registry))
    monkeypatch.setenv("FAKE_REMOTE_TMP", str(node.tmp))  # where the remote mktemp goes
    return node


def write_ssh_config(state_dir: Path) -> Path:
    """The ssh_config `ggctl reserve` would write (only its Host lines matter here)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / "ssh_config"
    path.write_text("Host node-0\n    HostName 127.0.0.1\n    User cc\n")
    return path
