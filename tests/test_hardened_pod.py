"""The optimized strategy's hardened pod (issue 13 item 20), and the service running the
way that pod runs it: a read-only root filesystem with a writable /tmp volume and its own
/dev/shm, as an unprivileged user with no capabilities and no_new_privs.

The "pod" is a mount namespace made by this test (`unshare -m`): the root is bind-mounted
read-only, /tmp is a fresh tmpfs (the emptyDir), and the server runs under `setpriv` as
uid/gid 10001 with every capability dropped. Its only traffic is to 127.0.0.1. Needs root
(CAP_SYS_ADMIN) to make the namespace; skipped without it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import kubernetes_validate
import pytest
import requests
from conftest import free_port, image_bytes

from ggctl.manifests.render import render
from ggctl.manifests.strategy import APP_UID, STRATEGY_NAMES, TMP_MOUNT


def pod_spec(strategy: str) -> dict:
    dep = next(o for o in render(strategy) if o["kind"] == "Deployment")
    return dep["spec"]["template"]["spec"]


def test_optimized_pods_are_hardened_and_valid():
    spec = pod_spec("optimized")
    assert spec["automountServiceAccountToken"] is False
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] == APP_UID
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (c,) = spec["containers"]
    assert c["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": True,
    }
    (mount,) = c["volumeMounts"]
    (volume,) = spec["volumes"]
    assert mount == {"name": volume["name"], "mountPath": TMP_MOUNT}
    assert "emptyDir" in volume
    for obj in render("optimized"):
        kubernetes_validate.validate(obj, "1.33.0", strict=True)


@pytest.mark.parametrize("strategy", [s for s in STRATEGY_NAMES if s != "optimized"])
def test_the_course_strategies_stay_as_the_course_wrote_them(strategy):
    spec = pod_spec(strategy)
    assert "securityContext" not in spec and "volumes" not in spec
    assert "securityContext" not in spec["containers"][0]


def _private_ancestor(path: Path) -> Path | None:
    """The highest directory above `path` that other users cannot enter (mode 0700 /root for
    pyenv, a CI checkout under a private directory), or None when the whole way is open."""
    for parent in reversed(path.parents):
        if parent != Path("/") and parent.stat().st_mode & 0o001 == 0:
            return parent
    return None


def _expose_python() -> str:
    """Shell lines that make the interpreter and the test's virtualenv reachable, read-only,
    for the pod's user: a directory above either may be private, and a virtualenv under /tmp
    (tox in a checkout there) is hidden by the pod's fresh /tmp. Each private directory is
    masked by an empty tmpfs with only those trees bound back in."""
    trees = {
        Path(sys.prefix).resolve(),
        Path(sys.base_prefix).resolve(),
        Path(os.path.realpath(sys.executable)).parent.parent,
    }
    # a tree inside another is bound along with it
    trees = {t for t in trees if not any(t != o and t.is_relative_to(o) for o in trees)}
    lines = []
    masks = sorted({a for t in trees if (a := _private_ancestor(t))}, key=lambda a: len(a.parts))
    for mask in masks:
        if not any(mask != m and mask.is_relative_to(m) for m in masks):
            lines.append(f"mount -t tmpfs -o mode=755 tmpfs /mnt{mask}; ")
    for tree in sorted(trees):
        hidden = tree.is_relative_to(TMP_MOUNT) or any(tree.is_relative_to(m) for m in masks)
        if hidden:
            lines.append(
                f"mkdir -p /mnt{tree}; mount --bind {tree} /mnt{tree}; "
                f"mount -o remount,bind,ro /mnt{tree}; "
            )
    for mask in masks:
        lines.append(f"mount -o remount,ro /mnt{mask} 2>/dev/null || true; ")
    return "".join(lines)


def _can_make_namespaces() -> bool:
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("setpriv"):
        return False
    r = subprocess.run(["unshare", "-m", "true"], capture_output=True, timeout=30)
    return r.returncode == 0


@pytest.mark.skipif(not _can_make_namespaces(), reason="needs root to make a mount namespace")
def test_the_service_runs_with_a_read_only_root_as_the_pod_runs_it(demo_model):
    # What the pod's user can read: the model in a world-readable directory on the root fs.
    shared = Path(tempfile.mkdtemp(prefix="ggctl-ro-", dir="/var/tmp"))
    try:
        shared.chmod(0o755)
        model = shared / "model.onnx"
        shutil.copyfile(demo_model, model)
        model.chmod(0o644)
        log = shared / "server.log"
        log.touch()
        log.chmod(0o666)
        port = free_port()
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": "/home/app-does-not-exist",  # as unwritable as the image's under ro root
            "TMPDIR": TMP_MOUNT,
            "PYTHONDONTWRITEBYTECODE": "1",
            "ORT_DISABLE_TELEMETRY": "1",
            "GGCTL_SERVE__HOST": "127.0.0.1",
            "GGCTL_SERVE__PORT": str(port),
            "GGCTL_SERVE__MODEL": str(model),
            "GGCTL_SERVE__THREADS": "4",
            "GGCTL_SERVE__ORT_THREADS": "1",
        }
        # The log file is bound writable over the read-only root (the container's stdout).
        # /dev, /dev/shm and /proc come along (rbind); only the root itself turns read-only.
        script = (
            "set -e; mount --make-rprivate /; "
            "mount --rbind / /mnt && mount -o remount,bind,ro /mnt; "
            f"mount --bind {log} /mnt{log}; "
            f"mount -t tmpfs -o size=64m,mode=1777 tmpfs /mnt{TMP_MOUNT}; "
            f"{_expose_python()}"
            "cd /mnt && exec chroot /mnt setpriv "
            f"--reuid {APP_UID} --regid {APP_UID} --clear-groups --no-new-privs "
            "--inh-caps=-all --bounding-set=-all "
            f"sh -c 'cd / && exec \"$0\" -m ggctl.app.server >>{log} 2>&1' {sys.executable}"
        )
        proc = subprocess.Popen(
            ["unshare", "-m", "sh", "-c", script], env=env, start_new_session=True
        )
        try:
            base = f"http://127.0.0.1:{port}"
            for _ in range(600):  # a hang detector, not a performance bound
                if proc.poll() is not None:
                    break
                try:
                    if requests.get(f"{base}/readyz", timeout=2).status_code == 200:
                        break
                except requests.RequestException:  # not listening yet, or busy warming up
                    pass
                time.sleep(0.2)
            assert proc.poll() is None, log.read_text()
            assert requests.get(f"{base}/healthz", timeout=5).status_code == 200
            big = image_bytes("PNG", (1400, 1300))  # over werkzeug's 500 KB spooling threshold
            for data in (big, image_bytes("JPEG", (640, 480))):
                r = requests.post(f"{base}/predict", files={"file": ("x.png", data)}, timeout=60)
                assert r.status_code == 200, r.text + log.read_text()
            assert "Read-only file system" not in log.read_text()
            assert "Traceback" not in log.read_text(), log.read_text()
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, 15)
            proc.wait(30)
    finally:
        shutil.rmtree(shared, ignore_errors=True)
