"""Finding 4: the engine root is private, so no host user reaches what containers leave there.

The attack: a container writes a setuid-root program into a named volume (CVE-2021-41091
analogue), and an unprivileged host user runs it from the volume's ``_data``; the same user
reads ``config.json``, which holds the container's ``-e SECRET=...``. The engine root here sits
under a world-traversable directory (pytest's own temp dirs are 0700, which would hide the
attack), and the unprivileged user is ``nobody`` in a child that dropped root before its exec.
"""

from __future__ import annotations

import os
import secrets
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import containerkit as ck

from .conftest import IMAGE, probe_mount

NOBODY = 65534

EUID_PROBE = r"""
#include <stdio.h>
#include <unistd.h>
int main(void) { printf("euid=%d\n", (int)geteuid()); return 0; }
"""


def _as_nobody(*argv: str) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` as ``nobody`` with no capabilities (setgroups, setgid, setuid, then exec).

    Not ``setpriv``: it keeps root's capabilities until its own execve, so the exec's path walk
    would still pass with CAP_DAC_OVERRIDE.
    """
    return subprocess.run(
        list(argv), user=NOBODY, group=NOBODY, extra_groups=[], capture_output=True, text=True, timeout=30
    )


@pytest.fixture(scope="module")
def open_root() -> Iterator[Path]:
    """A directory every host user may traverse, to hold engine roots."""
    if os.geteuid() != 0:
        pytest.skip("needs root")
    base = Path(tempfile.mkdtemp(prefix="ck-perms-", dir="/var/tmp"))
    base.chmod(0o755)
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def perm_engine(open_root: Path, busybox_rootfs_tar: Path) -> Iterator[ck.Engine]:
    with ck.Engine(root=open_root / "root") as eng:
        eng.images.import_rootfs(busybox_rootfs_tar, IMAGE, config={"Cmd": ["sh"]})
        try:
            yield eng
        finally:
            for container in eng.containers.list(all=True):
                container.remove(force=True)
            for volume in eng.volumes.list():
                eng.volumes.remove(volume.name, force=True)


@pytest.fixture
def volume(perm_engine: ck.Engine) -> Iterator[ck.Volume]:
    vol = perm_engine.volumes.create(f"perm-{secrets.token_hex(4)}")
    try:
        yield vol
    finally:
        for container in perm_engine.containers.list(all=True):
            container.remove(force=True)
        perm_engine.volumes.remove(vol.name, force=True)


def _run(engine: ck.Engine, runtime: str, command: str, **fields: object) -> tuple[int, str]:
    c = engine.containers.run(IMAGE, ["sh", "-c", command], runtime=runtime, **fields)
    try:
        code = c.wait(timeout=60)
        return code, (c.logs() or b"").decode(errors="replace")
    finally:
        c.remove(force=True)


def test_setuid_binary_in_a_volume_is_out_of_reach(
    perm_engine: ck.Engine, runtime: str, volume: ck.Volume, compile_probe: Callable[[str, str], Path]
) -> None:
    probe = compile_probe("euid", EUID_PROBE)
    code, out = _run(
        perm_engine,
        runtime,
        "cp /probe /data/sush && chmod 4755 /data/sush && /data/sush",
        mounts=[probe_mount(probe), ck.Mount(target="/data", source=volume.name, type="volume")],
    )
    assert code == 0, out
    planted = Path(volume.mountpoint) / "sush"
    st = planted.stat()
    # The attack's first half worked: a setuid-root program sits in the volume on the host.
    assert st.st_uid == 0 and st.st_mode & stat.S_ISUID, oct(st.st_mode)
    result = _as_nobody("/bin/sh", "-c", 'exec "$0"', str(planted))
    assert "euid=" not in result.stdout, f"nobody ran the container's setuid program: {result.stdout}"
    assert result.returncode != 0 and "Permission denied" in result.stderr, result
    listing = _as_nobody("ls", str(Path(volume.mountpoint).parent.parent))
    assert listing.returncode != 0 and "Permission denied" in listing.stderr, listing
    assert stat.S_IMODE(Path(volume.mountpoint).parent.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(perm_engine.root.stat().st_mode) & 0o007 == 0


def test_user_container_still_reads_its_volume(
    perm_engine: ck.Engine, runtime: str, volume: ck.Volume
) -> None:
    """Containers reach volumes through their mounts, not through the private root."""
    mount = ck.Mount(target="/data", source=volume.name, type="volume")
    assert _run(perm_engine, runtime, "echo from-root > /data/f", mounts=[mount])[0] == 0
    code, out = _run(perm_engine, runtime, "id -u; cat /data/f; ls /", mounts=[mount], user="1000")
    assert code == 0, out
    assert out.splitlines()[:2] == ["1000", "from-root"]


def test_secret_in_config_json_is_private(perm_engine: ck.Engine, runtime: str) -> None:
    secret = f"canary-{secrets.token_hex(8)}"
    c = perm_engine.containers.run(IMAGE, ["true"], runtime=runtime, env={"SECRET": secret})
    try:
        assert c.wait(timeout=60) == 0
        config = c.state_dir / "bundle" / "config.json"
        assert secret in config.read_text()  # root (the runtime) reads it
        assert stat.S_IMODE(config.stat().st_mode) == 0o600
        assert stat.S_IMODE(c.state_dir.stat().st_mode) == 0o700
        result = _as_nobody("cat", str(config))
        assert secret not in result.stdout
        assert result.returncode != 0 and "Permission denied" in result.stderr, result
    finally:
        c.remove(force=True)


def test_an_old_root_with_loose_modes_is_tightened(open_root: Path, busybox_rootfs_tar: Path) -> None:
    root = open_root / f"old-{secrets.token_hex(4)}"
    with ck.Engine(root=root, forkserver=False) as eng:
        eng.images.import_rootfs(busybox_rootfs_tar, IMAGE, config={"Cmd": ["sh"]})
        c = eng.containers.create(image=IMAGE, env={"SECRET": "canary"})
        vol = eng.volumes.create("old")
    try:
        config = c.state_dir / "bundle" / "config.json"
        loose = [root, root / "volumes", root / "containers", c.state_dir]
        for path in loose:
            path.chmod(0o755)
        for path in (config, root / "metadata.db"):
            path.chmod(0o644)
        assert _as_nobody("cat", str(config)).returncode == 0  # what an old engine left
        with ck.Engine(root=root, forkserver=False) as eng:
            modes = {p: stat.S_IMODE(p.stat().st_mode) for p in [*loose, config, root / "metadata.db"]}
            assert modes == {
                root: 0o710,
                root / "volumes": 0o700,
                root / "containers": 0o710,
                c.state_dir: 0o700,
                config: 0o600,
                root / "metadata.db": 0o600,
            }
            assert _as_nobody("cat", str(config)).returncode != 0
            eng.containers.get(c.id).remove(force=True)
            eng.volumes.remove(vol.name, force=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_securing_an_open_root_keeps_this_process_s_database_locks(tmp_path: Path) -> None:
    # Closing any fd of a file drops every POSIX lock the process holds on it: a second Engine
    # on a root must not open and close metadata.db behind the first one's SQLite connections.
    import fcntl
    import subprocess
    import sys

    from containerkit.engine._perms import secure_root

    secure_root(tmp_path)
    db = tmp_path / "metadata.db"
    with open(db, "r+b") as held:
        fcntl.lockf(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as SQLite holds its write lock
        secure_root(tmp_path)  # what another Engine on the same root does first
        probe = (
            "import fcntl, sys\n"
            "f = open(sys.argv[1], 'r+b')\n"
            "try:\n    fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)\n    print('free')\n"
            "except OSError:\n    print('held')\n"
        )
        seen = subprocess.run([sys.executable, "-c", probe, str(db)], capture_output=True, text=True)
        assert seen.stdout.strip() == "held"
