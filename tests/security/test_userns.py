"""Issue 9, finding 9: user namespaces (``userns="auto"``, docker's ``userns-remap``).

Container root is the first id of the ``containerkit`` range of ``/etc/subuid`` and
``/etc/subgid`` on the host (created on first use, as docker creates ``dockremap``). Every
attack here is also run without a user namespace first, where it works or is stopped by another
layer, so each assertion shows what the user namespace alone adds.
"""

from __future__ import annotations

import concurrent.futures
import os
import signal
import stat
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import containerkit as ck
from containerkit.daemon.config import load_config
from containerkit.daemon.convert import create_request
from containerkit.errors import InvalidArgument, NotFound
from containerkit.linux.userns import (
    IdRange,
    UsernsMapping,
    ensure_subordinate_ranges,
    read_subordinate_ranges,
)
from containerkit.runtime.usermap import STAGING_ROOT
from containerkit.storage.snapshots import copy_shifted, shift_ownership

from .conftest import IMAGE, probe_mount, run_to_exit
from .test_devices import CANARY, Loop, device_image, loop_device  # noqa: F401 - fixtures

KEY_PROBE = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <unistd.h>
#include <sys/syscall.h>
/* hostkey add DESC DATA | read ID | revoke ID */
int main(int argc, char **argv) {
    if (argc == 4 && !strcmp(argv[1], "add")) {
        long id = syscall(SYS_add_key, "user", argv[2], argv[3], strlen(argv[3]), -4 /* @u */);
        if (id < 0) { perror("add_key"); return 1; }
        /* possessor and owner (uid) may view, read, write, search, link, setattr */
        if (syscall(SYS_keyctl, 5 /* SETPERM */, id, 0x3f3f0000) < 0) { perror("setperm"); return 1; }
        printf("%ld\n", id);
        return 0;
    }
    if (argc == 3 && !strcmp(argv[1], "read")) {
        char buf[256] = {0};
        long n = syscall(SYS_keyctl, 11 /* READ */, atol(argv[2]), buf, sizeof buf - 1);
        if (n < 0) { printf("READ-DENIED %s\n", strerror(errno)); return 0; }
        printf("READ-OK %s\n", buf);
        return 0;
    }
    if (argc == 3 && !strcmp(argv[1], "revoke")) {
        syscall(SYS_keyctl, 3 /* REVOKE */, atol(argv[2]));
        return syscall(SYS_keyctl, 9 /* UNLINK */, atol(argv[2]), -4) < 0;
    }
    return 2;
}
"""


@pytest.fixture(scope="module")
def mapping() -> UsernsMapping:
    return ensure_subordinate_ranges()


def _host_mounts() -> str:
    return Path("/proc/self/mountinfo").read_text()


def _run(engine: ck.Engine, runtime: str, command: str, **fields: object) -> tuple[ck.Container, int, str]:
    """Run to the end and keep the container (the caller inspects its files, then removes it)."""
    c = engine.containers.run(IMAGE, ["sh", "-c", command], runtime=runtime, **fields)
    code = c.wait(timeout=60)
    return c, code, (c.logs(stdout=True, stderr=True) or b"").decode(errors="replace")


def test_root_files_belong_to_the_mapped_range(
    engine: ck.Engine, runtime: str, mapping: UsernsMapping
) -> None:
    volume = engine.volumes.create(f"ck-userns-{uuid.uuid4().hex[:8]}")
    try:
        c, code, out = _run(
            engine,
            runtime,
            "id; cat /proc/self/uid_map; echo x > /created; echo x > /vol/created; ls -ln /bin/busybox",
            userns="auto",
            network="none",
            mounts=[ck.Mount(target="/vol", source=volume.name, type="volume")],
        )
        try:
            assert code == 0, out
            assert "uid=0(root) gid=0(root)" in out, out
            assert out.split("\n")[1].split() == ["0", str(mapping.uids.start), str(mapping.uids.size)], out
            # image files (host root's) read as root's inside, through the idmapped lowers
            assert " 0        0 " in out.splitlines()[2], out
            upper = engine.snapshots.root / "snapshots" / c.id / "upper" / "created"
            st = os.stat(upper)
            assert (st.st_uid, st.st_gid) == (mapping.uids.start, mapping.gids.start)
            data = Path(volume.mountpoint)
            assert (data.stat().st_uid, data.stat().st_gid) == (mapping.uids.start, mapping.gids.start)
            st = os.stat(data / "created")
            assert (st.st_uid, st.st_gid) == (mapping.uids.start, mapping.gids.start)
        finally:
            c.remove(force=True)
    finally:
        engine.volumes.remove(volume.name, force=True)


def test_without_userns_root_is_host_root(engine: ck.Engine, runtime: str) -> None:
    """The control: the same file, without a user namespace, belongs to host root."""
    c, code, out = _run(engine, runtime, "echo x > /created", network="none")
    try:
        assert code == 0, out
        assert os.stat(engine.snapshots.root / "snapshots" / c.id / "upper" / "created").st_uid == 0
    finally:
        c.remove(force=True)


def test_bind_mount_of_a_root_owned_dir(engine: ck.Engine, runtime: str, tmp_path: Path) -> None:
    """As under docker's userns-remap: a root-owned host dir is readable, but not writable, by the
    remapped root; once chowned to the mapped root it is."""
    host = tmp_path / "shared"
    host.mkdir(mode=0o755)
    (host / "readme").write_text("from the host\n")
    script = "cat /host/readme; if echo x > /host/new; then echo WRITE-OK; else echo WRITE-DENIED; fi"
    mount = ck.Mount(target="/host", source=str(host), type="bind")
    _code, out = run_to_exit(engine, runtime, ["sh", "-c", script], userns="auto", mounts=[mount])
    assert "from the host" in out and "WRITE-DENIED" in out and "Permission denied" in out, out
    assert not (host / "new").exists()


def test_bind_mount_chowned_to_the_mapped_root_is_writable(
    engine: ck.Engine, runtime: str, tmp_path: Path, mapping: UsernsMapping
) -> None:
    host = tmp_path / "owned"
    host.mkdir(mode=0o755)
    os.chown(host, mapping.uids.start, mapping.gids.start)
    mount = ck.Mount(target="/host", source=str(host), type="bind")
    code, out = run_to_exit(
        engine, runtime, ["sh", "-c", "echo x > /host/new"], userns="auto", mounts=[mount]
    )
    assert code == 0, out
    assert os.stat(host / "new").st_uid == mapping.uids.start


def test_mknod_is_denied_in_a_user_namespace(engine: ck.Engine, runtime: str, loop_device: Loop) -> None:  # noqa: F811
    """CAP_MKNOD (a default capability) means nothing in a user namespace: no node is made, so no
    host block device can be reached this way even without a device cgroup."""
    script = (
        f"if mknod /tmp/disk b {loop_device.major} {loop_device.minor}; then echo MKNOD-OK; "
        "else echo MKNOD-DENIED; fi; head -c 8 /tmp/disk && echo READ-OK"
    )
    _code, out = run_to_exit(engine, runtime, ["sh", "-c", script], network="none")
    assert "MKNOD-OK" in out, out  # without a user namespace docker allows the mknod itself
    _code, out = run_to_exit(engine, runtime, ["sh", "-c", script], network="none", userns="auto")
    assert "MKNOD-DENIED" in out and "READ-OK" not in out, out
    assert loop_device.content() == CANARY


def test_device_node_from_the_image_cannot_be_opened(
    engine: ck.Engine,
    runtime: str,
    loop_device: Loop,  # noqa: F811
    device_image: str,  # noqa: F811
) -> None:
    """The rootfs of a user-namespaced container is ``nodev``: a node an image ships is refused
    before the device cgroup is even asked (EACCES, where the cgroup answers EPERM)."""
    script = (
        "ls -l /nodes/disk; if head -c 8 /nodes/disk; then echo READ-OK; else echo READ-DENIED; fi; "
        "if printf OVERWRITTEN | dd of=/nodes/disk conv=notrunc; then echo WRITE-OK; "
        "else echo WRITE-DENIED; fi"
    )
    c = engine.containers.run(
        device_image, ["sh", "-c", script], runtime=runtime, network="none", userns="auto"
    )
    try:
        c.wait(timeout=60)
        out = (c.logs(stdout=True, stderr=True) or b"").decode(errors="replace")
    finally:
        c.remove(force=True)
    assert "brw-rw-rw-" in out, out
    assert "READ-DENIED" in out and "WRITE-DENIED" in out, out
    assert "Permission denied" in out and "Operation not permitted" not in out, out
    assert CANARY.decode().strip() not in out
    assert loop_device.content() == CANARY


@pytest.fixture
def host_key(compile_probe: Callable[[str, str], Path]) -> Iterator[tuple[Path, str, str]]:
    """A key in host root's user keyring that any uid-0 process may read by its serial."""
    probe = compile_probe("hostkey", KEY_PROBE)
    secret = f"ck-secret-{uuid.uuid4().hex}"
    added = subprocess.run(
        [str(probe), "add", f"ck-canary-{uuid.uuid4().hex[:8]}", secret], capture_output=True, text=True
    )
    if added.returncode != 0:
        pytest.skip(f"cannot add a key on this host: {added.stderr.strip()}")
    serial = added.stdout.strip()
    try:
        yield probe, serial, secret
    finally:
        subprocess.run([str(probe), "revoke", serial], capture_output=True, check=False)


def test_host_key_is_out_of_reach(engine: ck.Engine, runtime: str, host_key: tuple[Path, str, str]) -> None:
    """With seccomp off (only the user namespace left to hold): host root's key, readable by any
    uid-0 process, is read without a user namespace and refused with one."""
    probe, serial, secret = host_key
    fields: dict[str, object] = {
        "network": "none",
        "security_opt": ["seccomp=unconfined"],
        "mounts": [probe_mount(probe)],
    }
    _code, out = run_to_exit(engine, runtime, ["/probe", "read", serial], **fields)
    assert f"READ-OK {secret}" in out, out  # the attack works where only uid 0 is checked
    _code, out = run_to_exit(engine, runtime, ["/probe", "read", serial], userns="auto", **fields)
    assert "READ-DENIED" in out and secret not in out, out


def test_exec_joins_the_user_namespace(engine: ck.Engine, runtime: str, mapping: UsernsMapping) -> None:
    c = engine.containers.run(IMAGE, ["sleep", "60"], runtime=runtime, userns="auto", network="none")
    try:
        result = c.exec(["sh", "-c", "id -u; cat /proc/self/uid_map; echo x > /from-exec"])
        out = result.stdout.decode()
        assert result.exit_code == 0, out
        lines = out.splitlines()
        assert lines[0] == "0" and lines[1].split()[:2] == ["0", str(mapping.uids.start)], out
        assert (
            os.stat(engine.snapshots.root / "snapshots" / c.id / "upper" / "from-exec").st_uid
            == mapping.uids.start
        )
    finally:
        c.remove(force=True)


def test_remove_leaves_nothing(engine: ck.Engine, runtime: str) -> None:
    volume = engine.volumes.create(f"ck-userns-{uuid.uuid4().hex[:8]}")
    try:
        c = engine.containers.run(
            IMAGE,
            ["sleep", "60"],
            runtime=runtime,
            userns="auto",
            mounts=[ck.Mount(target="/vol", source=volume.name, type="volume")],
        )
        staging = STAGING_ROOT / c.id
        assert c.id in _host_mounts() and staging.is_dir()
        cgroups = [p for p in Path("/sys/fs/cgroup").glob(f"*/containerkit/{c.id}")]
        assert cgroups
        c.remove(force=True)
        assert c.id not in _host_mounts()
        assert not staging.exists()
        assert not [p for p in cgroups if p.exists()]
        assert not (engine.snapshots.root / "snapshots" / c.id).exists()
        assert not [p for p in STAGING_ROOT.iterdir() if p.name.startswith("l-")]  # idmapped lowers
    finally:
        engine.volumes.remove(volume.name, force=True)


def test_privileged_is_refused_with_a_user_namespace(engine: ck.Engine) -> None:
    with pytest.raises(ck.InvalidArgument, match="privileged mode is incompatible with user namespaces"):
        engine.containers.create(image=IMAGE, userns="auto", privileged=True)


# -- the subordinate id ranges, docker's userns-remap, and the API's UsernsMode -------------------


def test_subordinate_range_is_added_once_past_existing_ones(tmp_path: Path) -> None:
    subuid, subgid = tmp_path / "subuid", tmp_path / "subgid"
    subuid.write_text("alice:100000:65536\nbob:165536:65536")  # no final newline
    subgid.write_text("alice:100000:65536\n")
    first = ensure_subordinate_ranges(subuid=subuid, subgid=subgid)
    assert first.uids == first.gids == IdRange(231072, 65536)
    again = ensure_subordinate_ranges(subuid=subuid, subgid=subgid)
    assert again == first
    assert subuid.read_text() == "alice:100000:65536\nbob:165536:65536\ncontainerkit:231072:65536\n"
    assert subgid.read_text() == "alice:100000:65536\ncontainerkit:231072:65536\n"
    assert read_subordinate_ranges("containerkit", subuid=subuid, subgid=subgid) == first


def test_subordinate_range_of_an_unknown_name_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "subuid").write_text("alice:100000:65536\n")
    (tmp_path / "subgid").write_text("")
    with pytest.raises(NotFound, match=r"no subordinate id range for 'alice' in .*subgid"):
        read_subordinate_ranges("alice", subuid=tmp_path / "subuid", subgid=tmp_path / "subgid")
    (tmp_path / "subgid").write_text("broken line\n")
    with pytest.raises(InvalidArgument, match=r"subgid:1: expected name:start:count"):
        ensure_subordinate_ranges(subuid=tmp_path / "subuid", subgid=tmp_path / "subgid")


def test_concurrent_callers_agree_on_one_range(tmp_path: Path) -> None:
    subuid, subgid = tmp_path / "subuid", tmp_path / "subgid"
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = set(pool.map(lambda _i: ensure_subordinate_ranges(subuid=subuid, subgid=subgid), range(16)))
    assert len(results) == 1
    assert subuid.read_text().count("containerkit:") == 1 and subgid.read_text().count("containerkit:") == 1


def test_daemon_userns_remap_setting(tmp_path: Path) -> None:
    assert load_config(["--userns-remap", "default"]).userns_remap == "default"
    toml = tmp_path / "daemon.toml"
    toml.write_text('userns-remap = "default"\n')
    assert load_config(["--config", str(toml)]).userns_remap == "default"
    assert load_config([]).userns_remap is None
    with pytest.raises(InvalidArgument, match="userns-remap"):
        load_config(["--userns-remap", "a:b"])


def test_api_userns_mode() -> None:
    def userns(mode: str | None) -> str | None:
        host = {} if mode is None else {"UsernsMode": mode}
        return create_request({"Image": IMAGE, "HostConfig": host}, None, networking=False).spec.userns

    assert userns(None) is None and userns("") is None  # the daemon's default
    assert userns("host") == "host"  # docker run --userns=host: out of the daemon's userns-remap
    with pytest.raises(InvalidArgument, match=r"HostConfig\.UsernsMode: 'private'"):
        userns("private")


@pytest.fixture
def remapped_engine(tmp_path: Path, busybox_rootfs_tar: Path) -> Iterator[ck.Engine]:
    with ck.Engine(root=tmp_path / "remapped", userns_remap="default") as eng:
        eng.images.import_rootfs(busybox_rootfs_tar, IMAGE, config={"Cmd": ["sh"]})
        try:
            yield eng
        finally:
            for container in eng.containers.list(all=True):
                container.remove(force=True)


def test_engine_userns_remap_is_the_default(
    remapped_engine: ck.Engine, runtime: str, mapping: UsernsMapping
) -> None:
    command = ["cat", "/proc/self/uid_map"]
    _code, out = run_to_exit(remapped_engine, runtime, command, network="none")
    assert out.split()[:2] == ["0", str(mapping.uids.start)], out
    _code, out = run_to_exit(remapped_engine, runtime, command, network="none", userns="host")
    assert out.split()[:2] == ["0", "0"], out


def test_shift_ownership_keeps_modes_and_hardlinks(tmp_path: Path) -> None:
    root = tmp_path / "rootfs"
    (root / "bin").mkdir(parents=True)
    tool = root / "bin" / "tool"
    tool.write_bytes(b"x")
    tool.chmod(0o4755)  # setuid: a chown clears it, the shift must put it back
    os.link(tool, root / "bin" / "tool-link")
    os.symlink("tool", root / "bin" / "alias")
    os.lchown(root / "bin" / "alias", 0, 5)
    shift_ownership(root, 100000, 200000)
    st = os.stat(tool)
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (100000, 200000, 0o4755)  # once, not twice
    st = os.lstat(root / "bin" / "alias")
    assert (st.st_uid, st.st_gid) == (100000, 200005)
    assert os.stat(root).st_uid == 100000


@pytest.fixture
def copy_driver_engine(tmp_path: Path, busybox_rootfs_tar: Path) -> Iterator[ck.Engine]:
    """An engine whose snapshot store uses the copy driver (where overlay or idmapped lowers
    are unavailable): a user-namespaced container then gets a chowned private copy."""
    root = tmp_path / "copy-engine"
    (root / "snapshots").mkdir(parents=True)
    (root / "snapshots" / "driver").write_text("copy")
    with ck.Engine(root=root) as eng:
        eng.images.import_rootfs(busybox_rootfs_tar, IMAGE, config={"Cmd": ["sh"]})
        try:
            yield eng
        finally:
            for container in eng.containers.list(all=True):
                container.remove(force=True)


def test_copy_driver_rootfs_is_chowned_to_the_mapped_range(
    copy_driver_engine: ck.Engine, runtime: str, mapping: UsernsMapping
) -> None:
    eng = copy_driver_engine
    assert eng.snapshots.driver == "copy"
    c, code, out = _run(eng, runtime, "ls -ln /bin/busybox; echo x > /created", userns="auto", network="none")
    try:
        assert code == 0, out
        assert " 0        0 " in out, out
        rootfs = eng.snapshots.root / "snapshots" / c.id / "rootfs"
        assert os.stat(rootfs / "bin" / "busybox").st_uid == mapping.uids.start
        assert os.stat(rootfs / "created").st_uid == mapping.uids.start
    finally:
        c.remove(force=True)
    assert c.id not in _host_mounts()


def test_cli_userns_option(tmp_path: Path, busybox_rootfs_tar: Path, mapping: UsernsMapping) -> None:
    """``containerkit run --userns auto|host``, with the engine's default left as docker's (host)."""
    from click.testing import CliRunner

    from containerkit.cli.main import cli

    def invoke(*args: str) -> str:
        result = CliRunner().invoke(cli, ["--root", str(tmp_path / "cli-root"), *args])
        assert result.exit_code == 0, result.output
        return str(result.output)

    invoke("import", "--change", 'CMD ["sh"]', str(busybox_rootfs_tar), IMAGE)
    try:
        out = invoke(
            "run", "--rm", "--network", "none", "--userns", "auto", IMAGE, "cat", "/proc/self/uid_map"
        )
        assert out.split()[:2] == ["0", str(mapping.uids.start)], out
        out = invoke(
            "run", "--rm", "--network", "none", "--userns", "host", IMAGE, "cat", "/proc/self/uid_map"
        )
        assert out.split()[:2] == ["0", "0"], out
    finally:
        invoke("system", "prune", "-f", "--volumes")


def test_remove_after_the_shim_was_killed_leaves_nothing(engine: ck.Engine, runtime: str) -> None:
    """The shim releases the staged mounts when the container ends; if it is killed first,
    removing the container does it."""
    c = engine.containers.run(IMAGE, ["sleep", "60"], runtime=runtime, userns="auto", network="none")
    try:
        shim = c.runtime_state().shim_pid
        assert shim is not None
        os.kill(shim, signal.SIGKILL)
        for _ in range(100):
            if not Path(f"/proc/{shim}").exists():
                break
            time.sleep(0.05)
        assert c.id in _host_mounts()  # nobody released them
    finally:
        c.remove(force=True)
    assert c.id not in _host_mounts()
    assert not (STAGING_ROOT / c.id).exists()


@pytest.fixture
def shifted_engine(tmp_path: Path, busybox_rootfs_tar: Path) -> Iterator[ck.Engine]:
    """An overlay store told that idmapped lowers are unavailable (this kernel has them; an
    older one, or a filesystem without idmapped mounts, cannot be had here)."""
    with ck.Engine(root=tmp_path / "shifted-engine") as eng:
        eng.snapshots.idmap_lowers = False
        eng.images.import_rootfs(busybox_rootfs_tar, IMAGE, config={"Cmd": ["sh"]})
        try:
            yield eng
        finally:
            for container in eng.containers.list(all=True):
                container.remove(force=True)


def test_without_idmapped_mounts_layers_are_chowned_copies(
    shifted_engine: ck.Engine, runtime: str, mapping: UsernsMapping
) -> None:
    eng = shifted_engine
    if eng.snapshots.driver != "overlay":
        pytest.skip("the snapshot store here uses the copy driver")
    script = "ls -ln /bin/busybox; grep ' / / ' /proc/self/mountinfo; echo x > /created"
    shifted = eng.snapshots.root / "shifted" / f"{mapping.uids.start}-{mapping.gids.start}"
    for _ in range(2):  # the second container shares the first one's copy
        c, code, out = _run(eng, runtime, script, userns="auto", network="none")
        try:
            assert code == 0, out
            assert " 0        0 " in out.splitlines()[0], out
            assert str(shifted) in out and "nodev" in out, out  # the copies are the lowers
            upper = eng.snapshots.root / "snapshots" / c.id / "upper" / "created"
            assert os.stat(upper).st_uid == mapping.uids.start
        finally:
            c.remove(force=True)
    [copy] = list(shifted.iterdir())
    assert os.stat(copy / "bin" / "busybox").st_uid == mapping.uids.start
    eng.images.remove(IMAGE, force=True)
    assert not list(shifted.iterdir())  # removed with its layer


def test_copy_shifted_keeps_whiteouts_xattrs_and_links(tmp_path: Path) -> None:
    src = tmp_path / "layer"
    (src / "opaque").mkdir(parents=True)
    os.setxattr(src / "opaque", "trusted.overlay.opaque", b"y")
    os.mknod(src / "gone", stat.S_IFCHR | 0o600, 0)  # an overlay whiteout
    (src / "tool").write_bytes(b"x")
    (src / "tool").chmod(0o4755)
    os.link(src / "tool", src / "tool-link")
    os.symlink("tool", src / "alias")
    copy_shifted(src, tmp_path / "copy", 100000, 100000)
    dst = tmp_path / "copy"
    assert os.getxattr(dst / "opaque", "trusted.overlay.opaque") == b"y"
    st = os.stat(dst / "gone")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0 and st.st_uid == 100000
    st = os.stat(dst / "tool")
    assert (st.st_uid, stat.S_IMODE(st.st_mode), st.st_nlink) == (100000, 0o4755, 2)
    assert os.readlink(dst / "alias") == "tool" and os.lstat(dst / "alias").st_uid == 100000
    assert os.stat(src / "tool").st_uid == 0  # the layer itself is untouched
