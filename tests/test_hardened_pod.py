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


def _expose_interpreter() -> str:
    """Shell lines that make the interpreter's prefix reachable for the pod's user when a
    directory above it is private (mode 0700, e.g. /root for pyenv), read-only."""
    real = Path(os.path.realpath(sys.executable))
    top = Path(real.parts[0], real.parts[1])  # e.g. /root
    if top.stat().st_mode & 0o005 == 0o005:
        return ""
    inner = Path(real.parts[0], *real.parts[1:3])  # e.g. /root/.pyenv
    return (
        f"mount -t tmpfs -o mode=755 tmpfs /mnt{top}; mkdir -p /mnt{inner}; "
        f"mount --bind {inner} /mnt{inner}; mount -o remount,ro /mnt{top}; "
    )


def _keep_venv_visible() -> str:
    """Shell lines that bind the test's virtualenv back, read-only, when it lives under the
    pod's fresh /tmp (tox in a checkout under /tmp): the emptyDir would hide it otherwise."""
    prefix = Path(sys.prefix).resolve()
    if not prefix.is_relative_to(TMP_MOUNT):
        return ""
    return (
        f"mkdir -p /mnt{prefix}; mount --bind {prefix} /mnt{prefix}; "
        f"mount -o remount,bind,ro /mnt{prefix}; "
    )


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
            f"{_keep_venv_visible()}"
            # the interpreter may live under a 0700 home (pyenv): show the pod's user only it
            f"{_expose_interpreter()}"
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
