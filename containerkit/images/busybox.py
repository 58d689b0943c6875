"""A one-file rootfs from a static busybox: the test and demo image, built offline.

Debian's ``busybox-static`` puts a static binary at ``/bin/busybox``; with every applet as a
symlink and a small ``/etc/passwd``/``/etc/group`` it is a complete little userland.
"""

from __future__ import annotations

import io
import subprocess
import tarfile
from pathlib import Path

from containerkit.errors import Unavailable

__all__ = ["BUSYBOX", "write_busybox_rootfs"]

BUSYBOX = Path("/bin/busybox")

_MTIME = 1_700_000_000
_PASSWD = (
    "root:x:0:0:root:/root:/bin/sh\n"
    "daemon:x:1:1:daemon:/usr/sbin:/bin/false\n"
    "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
    "app:x:1000:1000:app:/home/app:/bin/sh\n"
)
_GROUP = "root:x:0:\ndaemon:x:1:\nnogroup:x:65534:\napp:x:1000:\nextra:x:2000:app\n"
_DIRS = ("bin", "etc", "tmp", "root", "home", "home/app", "var", "proc", "sys", "dev", "usr", "usr/bin")


def _entry(name: str, kind: bytes, mode: int, size: int = 0, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.size = size
    info.linkname = linkname
    info.mtime = _MTIME
    return info


def write_busybox_rootfs(path: Path, *, busybox: Path = BUSYBOX) -> Path:
    """Write an uncompressed rootfs tar at ``path`` (uid 1000 is ``app``, group 2000 ``extra``)."""
    if not busybox.exists():
        raise Unavailable(f"{busybox} not found: install Debian's busybox-static")
    applets = subprocess.run(
        [str(busybox), "--list"], capture_output=True, text=True, check=True
    ).stdout.split()
    binary = busybox.read_bytes()
    with tarfile.open(path, "w") as tar:
        for d in _DIRS:
            tar.addfile(_entry(d, tarfile.DIRTYPE, 0o1777 if d == "tmp" else 0o755))
        tar.addfile(_entry("bin/busybox", tarfile.REGTYPE, 0o755, len(binary)), io.BytesIO(binary))
        for applet in applets:
            if applet != "busybox":
                tar.addfile(_entry(f"bin/{applet}", tarfile.SYMTYPE, 0o777, linkname="busybox"))
        for name, text in (
            ("etc/passwd", _PASSWD),
            ("etc/group", _GROUP),
            ("etc/os-release", 'NAME="containerkit busybox"\n'),
        ):
            data = text.encode()
            tar.addfile(_entry(name, tarfile.REGTYPE, 0o644, len(data)), io.BytesIO(data))
    return path
