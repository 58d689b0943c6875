"""Shared fixtures: test images are built here, from Debian's static busybox, never pulled."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

BUSYBOX = Path("/bin/busybox")

PASSWD = (
    "root:x:0:0:root:/root:/bin/sh\n"
    "daemon:x:1:1:daemon:/usr/sbin:/bin/false\n"
    "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
    "app:x:1000:1000:app:/home/app:/bin/sh\n"
)
GROUP = "root:x:0:\ndaemon:x:1:\nnogroup:x:65534:\napp:x:1000:\nextra:x:2000:app\n"


def _add_file(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    info.mtime = 1_700_000_000
    tar.addfile(info, io.BytesIO(data))


def _add_dir(tar: tarfile.TarFile, name: str, mode: int = 0o755) -> None:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = mode
    info.mtime = 1_700_000_000
    tar.addfile(info)


def write_busybox_rootfs_tar(path: Path) -> Path:
    """A minimal rootfs: static busybox, every applet as a symlink, /etc/passwd and /etc/group."""
    if not BUSYBOX.exists():
        pytest.skip("Debian's busybox-static is not installed (/bin/busybox missing)")
    applets = subprocess.run([str(BUSYBOX), "--list"], capture_output=True, text=True, check=True).stdout.split()
    with tarfile.open(path, "w") as tar:
        for d in ("bin", "etc", "tmp", "root", "home", "home/app", "var", "proc", "sys", "dev", "usr", "usr/bin"):
            _add_dir(tar, d, 0o1777 if d == "tmp" else 0o755)
        _add_file(tar, "bin/busybox", BUSYBOX.read_bytes(), 0o755)
        for applet in applets:
            if applet == "busybox":
                continue
            info = tarfile.TarInfo(f"bin/{applet}")
            info.type = tarfile.SYMTYPE
            info.linkname = "busybox"
            info.mode = 0o777
            info.mtime = 1_700_000_000
            tar.addfile(info)
        _add_file(tar, "etc/passwd", PASSWD.encode())
        _add_file(tar, "etc/group", GROUP.encode())
        _add_file(tar, "etc/os-release", b'NAME="containerkit test busybox"\n')
    return path


@pytest.fixture(scope="session")
def busybox_rootfs_tar(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Path of an uncompressed tar of a busybox rootfs (built once per session)."""
    return write_busybox_rootfs_tar(tmp_path_factory.mktemp("busybox") / "rootfs.tar")


@pytest.fixture(scope="session")
def busybox_rootfs_dir(tmp_path_factory: pytest.TempPathFactory, busybox_rootfs_tar: Path) -> Path:
    """The same rootfs extracted to a directory (for runtime tests that need no image store)."""
    target = tmp_path_factory.mktemp("busybox-dir")
    with tarfile.open(busybox_rootfs_tar) as tar:
        tar.extractall(target, filter="fully_trusted")
    return target


def require_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root: containers use namespaces, mounts and cgroups")


def require_binary(name: str) -> str:
    found = shutil.which(name)
    if not found:
        pytest.skip(f"{name} is not installed")
    return found
