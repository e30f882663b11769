"""The lab hosts' Debian 12 root filesystem: made once with debootstrap, then cached.

The cache key is the package list plus the mirror, so changing either makes a new
image; the old one stays until removed by hand (`rm -rf /var/cache/ggctl-lab`).
The mirror is the one this machine's own apt configuration uses: the lab never names
a package host of its own.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
from pathlib import Path

CACHE = Path(os.environ.get("GGCTL_LAB_CACHE", "/var/cache/ggctl-lab"))
SUITE = "bookworm"
# What a fresh cloud image has (sshd, python3, sudo, systemd) and little else: the roles
# install the rest through apt, as on Chameleon. iproute2 and iptables: the lab's own
# network checks; gnupg/ca-certificates: signed repositories.
PACKAGES = (
    "systemd",
    "systemd-sysv",
    "dbus",
    "openssh-server",
    "python3",
    "python3-apt",
    "sudo",
    "iptables",
    "iproute2",
    "gnupg",
    "ca-certificates",
    "kmod",
)


def apt_mirror(sources_dir: Path = Path("/etc/apt")) -> str:
    """The Debian mirror URI of this machine's apt configuration (deb822 or one-line)."""
    texts = []
    for path in [sources_dir / "sources.list", *sorted((sources_dir / "sources.list.d").glob("*"))]:
        if path.is_file():
            texts.append(path.read_text(errors="replace"))
    for text in texts:
        # deb822 stanzas: a "URIs:" line in a stanza whose Suites name the release.
        for stanza in re.split(r"\n\s*\n", text):
            uris = re.search(r"^URIs:\s*(\S+)", stanza, re.M)
            suites = re.search(r"^Suites:\s*(.+)$", stanza, re.M)
            if uris and suites and SUITE in suites.group(1).split():
                return uris.group(1).rstrip("/")
        for line in text.splitlines():
            m = re.match(r"deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+" + SUITE + r"\s", line)
            if m:
                return m.group(1).rstrip("/")
    raise RuntimeError(f"no {SUITE} source in this machine's apt configuration")


def cache_key(mirror: str) -> str:
    return hashlib.sha256(("\n".join((SUITE, mirror, *PACKAGES))).encode()).hexdigest()[:16]


def rootfs(mirror: str | None = None) -> Path:
    """The cached image directory, made now if missing (a lock serialises builders)."""
    mirror = mirror or apt_mirror()
    CACHE.mkdir(parents=True, exist_ok=True, mode=0o700)
    image = CACHE / f"rootfs-{cache_key(mirror)}"
    with open(CACHE / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (image / ".complete").is_file():
            return image
        tmp = image.with_name(image.name + ".tmp")
        _unmount_under(tmp)  # an interrupted debootstrap leaves /proc, /sys mounted there
        shutil.rmtree(tmp, ignore_errors=True)
        subprocess.run(
            [
                "debootstrap",
                "--variant=minbase",
                "--include=" + ",".join(PACKAGES),
                SUITE,
                str(tmp),
                mirror,
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        _unmount_under(tmp)
        _prepare(tmp)
        (tmp / ".complete").write_text(mirror + "\n")
        shutil.rmtree(image, ignore_errors=True)
        tmp.rename(image)
    return image


def _unmount_under(path: Path) -> None:
    """Unmount everything below path, deepest first, before anything deletes it."""
    prefix = str(path.resolve()) + "/"
    mounts = [
        line.split()[1].encode().decode("unicode_escape")
        for line in Path("/proc/self/mounts").read_text().splitlines()
    ]
    for target in sorted((m for m in mounts if m.startswith(prefix)), key=len, reverse=True):
        subprocess.run(["umount", "--lazy", target], check=False)


def _prepare(root: Path) -> None:
    """Host-independent setup: the cloud image's login user, networkd, no apt extras."""

    def chroot(*argv: str) -> None:
        subprocess.run(["chroot", str(root), *argv], check=True, capture_output=True)

    chroot("useradd", "--create-home", "--shell", "/bin/bash", "cc")
    (root / "etc/sudoers.d/90-cc").write_text("cc ALL=(ALL) NOPASSWD:ALL\n")
    (root / "etc/sudoers.d/90-cc").chmod(0o440)
    chroot("systemctl", "enable", "systemd-networkd", "ssh")
    # No console getty on the container's pts: it only adds noise to the boot.
    chroot("systemctl", "mask", "console-getty.service", "getty@tty1.service")
    # This kernel has its modules built in: let modprobe find them (the roles' modprobe
    # then reports "already loaded" as on a cloud kernel that has them loaded).
    release = os.uname().release
    builtin = Path(f"/lib/modules/{release}/modules.builtin")
    moddir = root / "lib/modules" / release
    moddir.mkdir(parents=True, exist_ok=True)
    names = builtin.read_text() if builtin.is_file() else ""
    if "overlay" not in names:
        names += "kernel/fs/overlayfs/overlay.ko\n"
    if "br_netfilter" not in names:
        names += "kernel/net/bridge/br_netfilter.ko\n"
    (moddir / "modules.builtin").write_text(names)
    chroot("depmod", release)
    # Apt keeps downloaded lists; no recommends, as on a minimal cloud image.
    (root / "etc/apt/apt.conf.d/90lab-norecommends").write_text(
        'APT::Install-Recommends "false";\n'
    )
    (root / "etc/machine-id").write_text("")


if __name__ == "__main__":
    print(rootfs())
