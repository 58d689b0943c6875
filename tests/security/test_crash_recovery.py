"""SIGKILL at any moment of create or remove leaves nothing half done behind.

A child process loops create/remove (or creates many) on a root and is killed at a random
moment; a new Engine on that root must then list only containers that start, and nothing of
the killed ones may stay on disk, in mounts, cgroups or the metadata. Before containers were
recorded as ``creating`` first, 5 of 6 such kills left containers that listed but could not
start (``bundle ... has no config.json``).
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import containerkit as ck
from containerkit.linux import staging
from tests.daemon.conftest import Daemon

IMAGE = "example/busybox:latest"
ROUNDS = 6

_CHILD = """
import sys
import containerkit as ck
root, image, mode = sys.argv[1:4]
engine = ck.Engine(root=root)
engine.containers.create(image=image, command=["true"]).remove()  # warm: imports, first lookups
print("ready", flush=True)
while True:
    container = engine.containers.create(image=image, command=["true"])
    if mode == "cycle":
        container.remove(force=True)
"""


@pytest.fixture
def root(tmp_path: Path, busybox_rootfs_tar: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("needs root: containers use namespaces, mounts and cgroups")
    path = tmp_path / "root"
    with ck.Engine(root=path) as engine:
        engine.images.import_rootfs(busybox_rootfs_tar, IMAGE, config={"Cmd": ["sh"]})
    yield path
    with ck.Engine(root=path) as engine:
        for container in engine.containers.list(all=True):
            container.remove(force=True)


def _kill_mid_work(root: Path, mode: str, rng: random.Random) -> set[str]:
    """Run the child, SIGKILL it at a random moment; the container ids it had begun."""
    child = subprocess.Popen([sys.executable, "-c", _CHILD, str(root), IMAGE, mode], stdout=subprocess.PIPE)
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == b"ready\n"
        time.sleep(rng.uniform(0.02, 0.8 if mode == "cycle" else 0.3))
    finally:
        child.kill()
        child.wait(30)
    return {p.name for p in (root / "containers").iterdir()}


def _leftovers(root: Path, ids: set[str]) -> list[str]:
    found = [line for line in Path("/proc/mounts").read_text().splitlines() if str(root) in line]
    found += [str(p) for p in Path("/sys/fs/cgroup").glob("*/containerkit/*") if p.name in ids]
    found += [str(p) for p in Path("/sys/fs/cgroup").glob("containerkit/*") if p.name in ids]
    found += [str(p) for p in (root / "containers").iterdir()]
    found += [str(p) for p in (root / "snapshots" / "snapshots").iterdir()]
    found += [str(p) for p in (root / "snapshots" / "tmp").iterdir()]
    return found


@pytest.mark.parametrize("mode", ["cycle", "many"])
def test_sigkill_during_create_and_remove(root: Path, mode: str) -> None:
    rng = random.Random(f"{mode}-{time.time()}")
    seen: set[str] = set()
    for _round in range(ROUNDS):
        seen |= _kill_mid_work(root, mode, rng)
        with ck.Engine(root=root) as engine:
            assert engine.metadata.containers.unfinished() == []
            listed = engine.containers.list(all=True)
            for container in listed:
                container.start()  # a half-made container listed here fails this
            for container in listed:
                assert container.wait(30) == 0
                container.remove()
            assert engine.metadata.containers.all() == []
            assert engine.metadata.containers.unfinished() == []
    assert seen, "the child never began a container"
    assert _leftovers(root, seen) == []


def test_recovery_removes_spooled_bodies(tmp_path: Path) -> None:
    """A daemon killed while it spools an image load leaves the body in <root>/tmp; the next
    engine on that root removes it."""
    if os.geteuid() != 0:
        pytest.skip("needs root: the daemon serves a root engine")
    daemon = Daemon(tmp_path / "root", tmp_path / "d.sock", tmp_path / "daemon.log")
    daemon.start()
    spool = tmp_path / "root" / "tmp"
    try:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.connect(str(daemon.socket))
            sock.sendall(
                b"POST /images/load HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-tar\r\n"
                b"Content-Length: 314572800\r\n\r\n"
            )
            block = b"\0" * (1 << 20)
            for _ in range(32):
                sock.sendall(block)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                files = list(spool.glob("body-*")) if spool.exists() else []
                if files and files[0].stat().st_size >= 16 << 20:
                    break
                time.sleep(0.05)
            else:
                pytest.fail("the daemon did not spool the body")
            daemon.stop(signal.SIGKILL)
    finally:
        daemon.stop()
    assert files[0].exists(), "the killed daemon's spool file should still be there"
    time.sleep(staging.MIN_AGE + 0.1)  # recovery leaves entries younger than this alone
    with ck.Engine(root=tmp_path / "root"):
        pass
    assert list(spool.iterdir()) == []


_STAGER = """
import os, sys, time
from containerkit.linux import staging
os.mkdir(sys.argv[1])
open(os.path.join(sys.argv[1], "partial"), "wb").write(b"x" * 4096)
fd = staging.hold_dir(sys.argv[1])
print("ready", flush=True)
time.sleep(3600)
"""


def test_recovery_removes_staging_of_dead_processes_only(tmp_path: Path) -> None:
    """A layer staged by a killed process is removed; one a live process is staging stays."""
    if os.geteuid() != 0:
        pytest.skip("needs root: the engine root is root's")
    root = tmp_path / "root"
    with ck.Engine(root=root):
        pass
    tmp = root / "snapshots" / "tmp"
    stagers = {}
    for name in ("layer-dead", "layer-live"):
        proc = subprocess.Popen([sys.executable, "-c", _STAGER, str(tmp / name)], stdout=subprocess.PIPE)
        assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
        stagers[name] = proc
    try:
        stagers["layer-dead"].kill()
        stagers["layer-dead"].wait(30)
        old = time.time() - 60  # past the grace a writer has between creating and locking
        for name in stagers:
            os.utime(tmp / name, (old, old))
        assert staging.is_held(tmp / "layer-live")
        with ck.Engine(root=root):
            pass
        assert sorted(p.name for p in tmp.iterdir()) == ["layer-live"]
    finally:
        for proc in stagers.values():
            proc.kill()
            proc.wait(30)
    with ck.Engine(root=root):
        pass
    assert list(tmp.iterdir()) == []


def test_failed_create_leaves_no_record_dir_or_anonymous_volume(root: Path, tmp_path: Path) -> None:
    """A create that fails part-way (here: a bind source that does not exist, after an anonymous
    volume was made) is rolled back whole: no record, no state dir, no snapshot, no volume."""
    with ck.Engine(root=root) as engine:
        volumes_before = {v.name for v in engine.volumes.list()}
        with pytest.raises(ck.errors.InvalidArgument, match="bind source path does not exist"):
            engine.containers.create(
                image=IMAGE,
                command=["true"],
                mounts=[
                    ck.Mount(target="/data", type="volume"),
                    ck.Mount(target="/missing", source=str(tmp_path / "no-such-dir")),
                ],
            )
        assert {v.name for v in engine.volumes.list()} == volumes_before
        assert engine.metadata.containers.all() == []
        assert engine.metadata.containers.unfinished() == []
    assert _leftovers(root, set()) == []


def test_entry_of_a_writer_killed_before_its_lock_is_reaped_at_once(tmp_path: Path) -> None:
    # A writer killed between creating its staging dir and locking it: its name says whose it
    # is, so recovery need not wait for the entry to age (the next engine starts at once).
    child = subprocess.run(
        [sys.executable, "-c", "from containerkit.linux import staging; print(staging.owner_tag())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead = tmp_path / f"snap-x{child.stdout.strip()}abc"
    dead.mkdir()
    live = tmp_path / f"snap-y{staging.owner_tag()}abc"
    live.mkdir()
    assert staging.reap(tmp_path) == [dead.name]
    assert live.exists()
