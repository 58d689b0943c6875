"""Issue 9, finding 1: the device cgroup. A default container may make device nodes (docker lets
it: CAP_MKNOD and ``c/b *:* m``) but must not open any but the standard ones, whether it made
the node itself or an image layer shipped it.

The host "disk" is a loop device over a temp file holding canary bytes; it is detached in a
finalizer whatever happens.
"""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

import containerkit as ck

from .conftest import IMAGE, run_to_exit

CANARY = b"CANARY-BLOCK-0123456789abcdef\n"
DEVICE_IMAGE = "example/devices:latest"


@attrs.frozen
class Loop:
    path: str
    major: int
    minor: int
    backing: Path

    def content(self) -> bytes:
        """What the backing file holds, after the loop device's buffers were written back."""
        subprocess.run(["blockdev", "--flushbufs", self.path], check=False, capture_output=True)
        return self.backing.read_bytes()[: len(CANARY)]


@pytest.fixture
def loop_device(tmp_path: Path) -> Iterator[Loop]:
    backing = tmp_path / "disk.img"
    backing.write_bytes(CANARY + bytes(1 << 20))
    result = subprocess.run(
        ["losetup", "--find", "--show", str(backing)], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        pytest.skip(f"no loop device: {result.stderr.strip()}")
    path = result.stdout.strip()
    try:
        rdev = os.stat(path).st_rdev
        yield Loop(path, os.major(rdev), os.minor(rdev), backing)
    finally:
        subprocess.run(["losetup", "-d", path], check=False, capture_output=True)


def _open_script(node: str) -> str:
    """Read then write ``node``; one marker line per outcome (the shell says which failed)."""
    return (
        f"if head -c {len(CANARY)} {node}; then echo READ-OK; else echo READ-DENIED; fi; "
        f"if printf OVERWRITTEN | dd of={node} conv=notrunc 2>/dev/null; "
        "then echo WRITE-OK; else echo WRITE-DENIED; fi"
    )


def test_mknod_of_a_host_block_device_cannot_be_opened(
    engine: ck.Engine, runtime: str, loop_device: Loop
) -> None:
    script = f"mknod /tmp/disk b {loop_device.major} {loop_device.minor} && echo MKNOD-OK; " + _open_script(
        "/tmp/disk"
    )
    _code, out = run_to_exit(engine, runtime, ["sh", "-c", script], network="none")
    assert "MKNOD-OK" in out, out  # docker allows the mknod itself (b *:* m)
    assert "READ-DENIED" in out and "WRITE-DENIED" in out, out
    assert "Operation not permitted" in out, out
    assert CANARY.decode().strip() not in out
    assert loop_device.content() == CANARY


@pytest.fixture
def device_image(
    engine: ck.Engine, busybox_rootfs_tar: Path, loop_device: Loop, tmp_path: Path
) -> Iterator[str]:
    """The busybox rootfs plus a layer-shipped block node for the loop device and /dev/kmsg."""
    tar_path = tmp_path / "devices.tar"
    with tarfile.open(busybox_rootfs_tar) as src, tarfile.open(tar_path, "w") as out:
        for member in src.getmembers():
            out.addfile(member, src.extractfile(member) if member.isfile() else None)
        nodes = tarfile.TarInfo("nodes")
        nodes.type, nodes.mode = tarfile.DIRTYPE, 0o755
        out.addfile(nodes)
        for name, kind, major, minor in (
            ("nodes/disk", tarfile.BLKTYPE, loop_device.major, loop_device.minor),
            ("nodes/kmsg", tarfile.CHRTYPE, 1, 11),
        ):
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.devmajor, info.devminor = kind, 0o666, major, minor
            out.addfile(info, io.BytesIO(b""))
    engine.images.import_rootfs(tar_path, DEVICE_IMAGE, config={"Cmd": ["sh"]})
    try:
        yield DEVICE_IMAGE
    finally:
        engine.images.remove(DEVICE_IMAGE, force=True)


def test_device_nodes_shipped_in_an_image_cannot_be_opened(
    engine: ck.Engine, runtime: str, loop_device: Loop, device_image: str
) -> None:
    """Even with no capability at all and no_new_privileges: the node's mode (0666) is no key."""
    marker = f"ck-kmsg-{uuid.uuid4().hex}"
    script = (
        "ls -l /nodes; "
        + _open_script("/nodes/disk")
        + f"; if echo {marker} > /nodes/kmsg; then echo KMSG-OK; else echo KMSG-DENIED; fi"
    )
    container = engine.containers.run(
        device_image,
        ["sh", "-c", script],
        runtime=runtime,
        network="none",
        user="1000",
        cap_drop=["ALL"],
        no_new_privileges=True,
    )
    try:
        assert container.wait(timeout=60) == 0
        out = (container.logs(stdout=True, stderr=True) or b"").decode(errors="replace")
    finally:
        container.remove(force=True)
    assert "brw-rw-rw-" in out and "crw-rw-rw-" in out, out  # the nodes are there, open to all
    assert "READ-DENIED" in out and "WRITE-DENIED" in out and "KMSG-DENIED" in out, out
    assert CANARY.decode().strip() not in out
    assert loop_device.content() == CANARY
    assert marker not in _host_kernel_log()


def _full_bounding_set() -> bool:
    last = int(Path("/proc/sys/kernel/cap_last_cap").read_text())
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapBnd:"):
            return int(line.split()[1], 16) == (1 << (last + 1)) - 1
    return False


def _host_kernel_log() -> str:
    return subprocess.run(["dmesg"], capture_output=True, text=True, check=False).stdout


def test_mknod_of_kmsg_cannot_write_the_host_kernel_log(engine: ck.Engine, runtime: str) -> None:
    marker = f"ck-kmsg-{uuid.uuid4().hex}"
    script = (
        "mknod /tmp/kmsg c 1 11 && echo MKNOD-OK; "
        f"if echo {marker} > /tmp/kmsg; then echo KMSG-OK; else echo KMSG-DENIED; fi"
    )
    _code, out = run_to_exit(engine, runtime, ["sh", "-c", script], network="none")
    assert "MKNOD-OK" in out and "KMSG-DENIED" in out, out
    assert marker not in _host_kernel_log()


def test_standard_devices_still_work(engine: ck.Engine, runtime: str) -> None:
    script = (
        "echo x > /dev/null && echo NULL-OK; "
        "test $(head -c 8 /dev/zero | wc -c) = 8 && echo ZERO-OK; "
        "test $(head -c 8 /dev/urandom | wc -c) = 8 && echo URANDOM-OK; "
        "test $(head -c 8 /dev/random | wc -c) = 8 && echo RANDOM-OK; "
        "echo x > /dev/full 2>/tmp/full.err; grep -q 'No space left' /tmp/full.err && echo FULL-OK; "
        # no controlling terminal: the kernel's ENXIO, not the device cgroup's EPERM
        "(echo x > /dev/tty) 2>/tmp/tty.err; grep -q 'No such device' /tmp/tty.err && echo TTY-OK; "
        "mknod /tmp/null c 1 3 && echo x > /tmp/null && echo MKNOD-NULL-OK"
    )
    _code, out = run_to_exit(engine, runtime, ["sh", "-c", script], network="none")
    for marker in ("NULL-OK", "ZERO-OK", "URANDOM-OK", "RANDOM-OK", "FULL-OK", "TTY-OK", "MKNOD-NULL-OK"):
        assert marker in out, out


def test_standard_devices_work_with_a_tty(engine: ck.Engine, runtime: str) -> None:
    """The pty (136:*) and /dev/ptmx (5:2) are allowed: a tty container can use its terminal."""
    container = engine.containers.run(
        IMAGE,
        ["sh", "-c", "echo x > /dev/tty && echo TTY-OK; test -c /dev/ptmx && echo PTMX-OK"],
        runtime=runtime,
        network="none",
        tty=True,
    )
    try:
        assert container.wait(timeout=60) == 0
        out = (container.logs() or b"").decode(errors="replace")
    finally:
        container.remove(force=True)
    assert "TTY-OK" in out and "PTMX-OK" in out, out


def test_privileged_can_open_the_block_device(engine: ck.Engine, runtime: str, loop_device: Loop) -> None:
    """The rule list is what decides: ``privileged`` allows every device, as docker does."""
    if runtime != "builtin" and not _full_bounding_set():
        pytest.skip("runc refuses privileged here: this host's capability bounding set is not complete")
    script = f"mknod /tmp/disk b {loop_device.major} {loop_device.minor} && head -c {len(CANARY)} /tmp/disk"
    code, out = run_to_exit(engine, runtime, ["sh", "-c", script], network="none", privileged=True)
    assert code == 0 and CANARY.decode() in out, out
    assert loop_device.content() == CANARY
