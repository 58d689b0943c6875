"""Copying into and out of a container never reaches the host through the container's symlinks
(CVE-2018-15664 pattern), nor through the entries of a hostile archive, nor by swapping a
directory for a symlink while a copy runs; and the daemon copies in bounded memory.

Every path of every copy surface is attacked: ``Container.put``/``get`` (bytes and host paths,
running and stopped), the daemon's archive endpoints through docker-py and the docker CLI, and
``containerkit cp`` both ways.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
import tarfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import containerkit as ck
from containerkit.errors import ContainerkitError, NotFound, UnsafeArchive
from tests.daemon.conftest import DOCKER, Daemon, UnixHTTPConnection, serve
from tests.security.conftest import IMAGE, probe_mount

DAEMON_IMAGE = "busybox:latest"
CANARY_TEXT = "canary: untouched\n"

SWAP_PROBE = r"""
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Exchange a directory and a symlink to a host path, atomically, as fast as possible. */
int main(int argc, char **argv) {
    if (argc != 3) return 2;
    for (;;) {
        if (syscall(SYS_renameat2, AT_FDCWD, argv[1], AT_FDCWD, argv[2], 2 /* RENAME_EXCHANGE */) != 0) {
            perror("renameat2");
            return 1;
        }
    }
}
"""


# -- helpers --------------------------------------------------------------------------------


def tar_of(*entries: tuple[str, str, str | bytes]) -> bytes:
    """A tar of (name, kind, payload): kind ``file`` (payload: content), ``dir``, ``symlink`` or
    ``hardlink`` (payload: link target)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, kind, payload in entries:
            info = tarfile.TarInfo(name)
            info.mode = 0o644
            if kind == "file":
                data = payload.encode() if isinstance(payload, str) else payload
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
                continue
            info.type = {"dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE, "hardlink": tarfile.LNKTYPE}[
                kind
            ]
            info.mode = 0o755 if kind == "dir" else 0o777
            info.linkname = str(payload) if kind != "dir" else ""
            tar.addfile(info)
    return buffer.getvalue()


def members(archive: bytes) -> dict[str, tuple[str, bytes]]:
    """name -> (linkname, content) of every entry of a tar."""
    found: dict[str, tuple[str, bytes]] = {}
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        for info in tar:
            handle = tar.extractfile(info) if info.isfile() else None
            found[info.name] = (info.linkname, handle.read() if handle is not None else b"")
    return found


@pytest.fixture
def host_dir(tmp_path: Path) -> Path:
    """A host directory holding a secret canary; an attack must neither read nor change it."""
    path = tmp_path / "hostdir"
    path.mkdir()
    (path / "secret").write_text("host secret\n")
    return path


def assert_host_dir_untouched(path: Path) -> None:
    assert sorted(p.name for p in path.iterdir()) == ["secret"]
    assert (path / "secret").read_text() == "host secret\n"
    assert (path / "secret").stat().st_nlink == 1


def assert_canary_untouched(canary: Path) -> None:
    assert canary.read_text() == CANARY_TEXT
    assert canary.stat().st_nlink == 1 and not canary.is_symlink()


@pytest.fixture
def running(engine: ck.Engine, runtime: str) -> Iterator[Callable[..., ck.Container]]:
    """``running(setup_script, **fields)``: a container that ran ``setup_script`` and then sleeps;
    removed afterwards."""
    made: list[ck.Container] = []

    def start(script: str, command: list[str] | None = None, **fields: Any) -> ck.Container:
        body = f"{script} && touch /tmp/.ready && " + (" ".join(command) if command else "sleep 600")
        c = engine.containers.run(IMAGE, ["sh", "-c", body], runtime=runtime, network="none", **fields)
        made.append(c)
        deadline = time.monotonic() + 20
        while c.exec(["test", "-e", "/tmp/.ready"]).exit_code != 0:
            assert c.status == "running", (c.logs() or b"").decode(errors="replace")
            assert time.monotonic() < deadline, "the container's setup did not finish"
            time.sleep(0.02)
        return c

    yield start
    for c in made:
        c.remove(force=True)


def cat(c: ck.Container, path: str) -> bytes:
    result = c.exec(["cat", path])
    assert result.exit_code == 0, result.stderr
    return bytes(result.output)


# -- (a) writing through a symlink the container made --------------------------------------


def test_put_tar_does_not_follow_a_container_symlink(
    running: Callable[..., ck.Container], canary: Path
) -> None:
    c = running(f"ln -s {canary} /tmp/config.json")
    c.put("/tmp", tar_of(("config.json", "file", "from the archive\n")))
    assert_canary_untouched(canary)
    assert cat(c, "/tmp/config.json") == b"from the archive\n"
    assert c.exec(["test", "-L", "/tmp/config.json"]).exit_code == 1  # replaced, not followed
    assert_canary_untouched(canary)


def test_put_host_file_does_not_follow_a_container_symlink(
    running: Callable[..., ck.Container], canary: Path, tmp_path: Path
) -> None:
    c = running(
        f"ln -s {canary} /tmp/config.json && mkdir /tmp/dir /tmp/src && ln -s {canary} /tmp/dir/config.json"
        f" && ln -s {canary} /tmp/src/config.json"
    )
    source = tmp_path / "src" / "config.json"
    source.parent.mkdir()
    source.write_text("from a host file\n")
    c.put("/tmp/config.json", source)  # named as the destination
    c.put("/tmp/dir", source)  # into the directory, under its own name
    c.put("/tmp", source.parent)  # a host directory, over the container's /tmp/src
    assert_canary_untouched(canary)
    assert cat(c, "/tmp/config.json") == b"from a host file\n"
    assert cat(c, "/tmp/dir/config.json") == b"from a host file\n"
    assert cat(c, "/tmp/src/config.json") == b"from a host file\n"
    assert_canary_untouched(canary)


def test_containerkit_cp_into_and_out_of_a_container(
    running: Callable[..., ck.Container], canary: Path, tmp_path: Path, security_root: Path
) -> None:
    from tests.cli.conftest import invoke

    c = running(
        f"ln -s {canary} /tmp/config.json && mkdir /tmp/out /tmp/src && ln -s {canary} /tmp/out/canary-link"
        f" && ln -s / /tmp/out/root && echo inside > /tmp/out/file && ln -s {canary} /tmp/src/config.json"
    )
    source = tmp_path / "src" / "config.json"
    source.parent.mkdir()
    source.write_text("from containerkit cp\n")
    result = invoke(security_root, "cp", str(source), f"{c.name}:/tmp/config.json")
    assert result.exit_code == 0, result.output
    result = invoke(security_root, "cp", str(source.parent), f"{c.name}:/tmp")
    assert result.exit_code == 0, result.output
    assert_canary_untouched(canary)
    assert cat(c, "/tmp/config.json") == b"from containerkit cp\n"
    assert cat(c, "/tmp/src/config.json") == b"from containerkit cp\n"
    # out of the container: its symlinks arrive as symlinks, nothing is written through them
    dest = tmp_path / "dest"
    dest.mkdir()
    result = invoke(security_root, "cp", f"{c.name}:/tmp/out", str(dest))
    assert result.exit_code == 0, result.output
    assert os.readlink(dest / "out" / "canary-link") == str(canary)
    assert os.readlink(dest / "out" / "root") == "/"
    assert (dest / "out" / "file").read_text() == "inside\n"
    assert_canary_untouched(canary)


def test_containerkit_cp_to_host_refuses_a_hostile_archive(
    running: Callable[..., ck.Container], canary: Path, tmp_path: Path, security_root: Path
) -> None:
    """The archive a container sends is untrusted: a symlink it holds is never followed while
    extracting, even when a later entry is written "through" it."""
    from containerkit.engine._archive import extract_to_host

    dest = tmp_path / "dest"
    dest.mkdir()
    through_link = tar_of(
        ("out", "dir", ""),
        ("out/up", "symlink", str(canary.parent)),
        ("out/up/canary.txt", "file", "through the symlink\n"),
    )
    with pytest.raises(NotFound):  # the link resolves inside dest, where it dangles
        extract_to_host([through_link], "out", dest, owner=None)
    through_root = tar_of(("out/abs", "symlink", "/"), (f"out/abs{canary}", "file", "through a link to /\n"))
    extract_to_host([through_root], "out", dest, owner=None)
    assert (dest / str(canary).lstrip("/")).read_text() == "through a link to /\n"  # dest is its /
    assert_canary_untouched(canary)
    for name, payload in [("../../escape", "file"), ("out/h", "hardlink")]:
        entry = (name, "file", "x") if payload == "file" else (name, "hardlink", f"../../..{canary}")
        with pytest.raises(UnsafeArchive):
            extract_to_host([tar_of(entry)], "out", dest, owner=None)
    assert not (tmp_path / "escape").exists()
    device = io.BytesIO()
    with tarfile.open(fileobj=device, mode="w") as tar:
        info = tarfile.TarInfo("out/disk")
        info.type, info.devmajor, info.devminor = tarfile.BLKTYPE, 7, 0  # a loop device
        tar.addfile(info)
    with pytest.raises(UnsafeArchive, match="device"):
        extract_to_host([device.getvalue()], "out", dest, owner=None)
    assert not (dest / "out" / "disk").exists()
    assert_canary_untouched(canary)


# -- (b) hostile archive entries and symlinked parents --------------------------------------


def test_symlinked_destination_and_hostile_entries_stay_inside(
    running: Callable[..., ck.Container], canary: Path, host_dir: Path
) -> None:
    c = running(f"ln -s {host_dir} /tmp/d && mkdir -p /tmp/in")
    # the destination is a symlink to a host dir: resolved in the container, where it dangles
    with pytest.raises(NotFound):
        c.put("/tmp/d", tar_of(("secret", "file", "overwritten\n")))
    # a parent in the entry's name is that symlink: resolved in the container, where it dangles
    with pytest.raises(NotFound):
        c.put("/tmp", tar_of(("d/secret", "file", "overwritten\n")))
    c.exec(["mkdir", "-p", str(host_dir)])  # now it names a directory of the container
    c.put("/tmp", tar_of(("d/secret", "file", "inside now\n")))
    assert cat(c, f"{host_dir}/secret") == b"inside now\n"
    with pytest.raises(UnsafeArchive):
        c.put("/tmp/in", tar_of((f"../../../../../..{canary}", "file", "climbed\n")))
    c.put("/tmp/in", tar_of((str(canary), "file", "absolute\n")))  # taken relative to /tmp/in
    assert cat(c, f"/tmp/in{canary}") == b"absolute\n"
    c.exec(["mkdir", "-p", str(canary.parent)])
    c.put(
        "/tmp/in",
        tar_of(
            ("link", "symlink", str(canary.parent)),
            ("link/canary.txt", "file", "through an archive symlink\n"),
        ),
    )
    assert cat(c, f"{canary}") == b"through an archive symlink\n"  # the container's own path
    with pytest.raises(UnsafeArchive):
        c.put("/tmp/in", tar_of(("hard", "hardlink", f"../../../..{canary}")))
    with pytest.raises(UnsafeArchive):  # absolute: relative to /tmp/in, where nothing is
        c.put("/tmp/in", tar_of(("hard", "hardlink", f"{host_dir}/secret")))
    assert_canary_untouched(canary)
    assert_host_dir_untouched(host_dir)


# -- (c) reading through a symlink ----------------------------------------------------------


def test_get_returns_links_and_never_host_files(
    running: Callable[..., ck.Container], canary: Path, host_dir: Path
) -> None:
    c = running(f"ln -s {canary} /tmp/link && ln -s {host_dir} /tmp/d")
    assert members(c.get("/tmp/link")) == {"link": (str(canary), b"")}
    assert c.stat_path("/tmp/link")["linkTarget"] == str(canary)
    with pytest.raises(NotFound):
        c.get("/tmp/d/secret")  # d dangles inside the container
    with pytest.raises(NotFound):
        c.get("/tmp/link/")  # followed in the container, where the canary does not exist
    c.exec(["sh", "-c", f"mkdir -p {host_dir} && echo container > {host_dir}/secret"])
    assert members(c.get("/tmp/d/secret")) == {"secret": ("", b"container\n")}
    assert_canary_untouched(canary)


# -- (d) the swap race ----------------------------------------------------------------------


def test_get_swap_race_never_reads_the_host(
    running: Callable[..., ck.Container], compile_probe: Callable[[str, str], Path], host_dir: Path
) -> None:
    probe = compile_probe("swap_exchange", SWAP_PROBE)
    c = running(
        f"mkdir /tmp/d && echo inside > /tmp/d/secret && ln -s {host_dir} /tmp/l",
        command=["/probe", "/tmp/d", "/tmp/l"],
        mounts=[probe_mount(probe)],
    )
    inside = leaked = misses = 0
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            archive = c.get("/tmp/d/secret")
        except (ContainerkitError, OSError):
            misses += 1
            continue
        content = b"".join(data for _, data in members(archive).values())
        if b"host secret" in content:
            leaked += 1
        elif content == b"inside\n":
            inside += 1
    assert c.status == "running", (c.logs() or b"").decode(errors="replace")  # the swapper ran all along
    assert leaked == 0, f"{leaked} of {inside + leaked + misses} reads returned the host file"
    assert inside > 0 and misses > 0, (inside, misses)  # both states of the swap were seen
    assert_host_dir_untouched(host_dir)


# -- (e) a stopped container ----------------------------------------------------------------


def test_stopped_container_put_and_get(engine: ck.Engine, runtime: str, canary: Path, host_dir: Path) -> None:
    c = engine.containers.create(
        image=IMAGE, command=["cat", "/tmp/config.json"], runtime=runtime, network="none"
    )
    try:
        c.put("/tmp", tar_of(("config.json", "symlink", str(canary)), ("d", "symlink", str(host_dir))))
        assert members(c.get("/tmp/config.json")) == {"config.json": (str(canary), b"")}
        with pytest.raises(NotFound):
            c.get("/tmp/d/secret")
        c.put("/tmp", tar_of(("config.json", "file", "written while stopped\n")))
        with pytest.raises(NotFound):
            c.put("/tmp/d", tar_of(("secret", "file", "x")))
        c.start()
        assert c.wait(timeout=30) == 0
        assert c.logs() == b"written while stopped\n"
    finally:
        c.remove(force=True)
    assert_canary_untouched(canary)
    assert_host_dir_untouched(host_dir)


# -- through containerkitd: docker-py and the docker CLI -------------------------------------


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory, busybox_rootfs_tar: Path) -> Iterator[Daemon]:
    if os.geteuid() != 0:
        pytest.skip("needs root: containers use namespaces, mounts and cgroups")
    with serve(tmp_path_factory.mktemp("ckd-copy"), busybox_rootfs_tar, DAEMON_IMAGE) as running_daemon:
        yield running_daemon


@pytest.fixture
def docker_container(daemon: Daemon, runtime: str) -> Iterator[Callable[[str], Any]]:
    docker = pytest.importorskip("docker")
    client = docker.DockerClient(base_url=daemon.url, timeout=120)
    made: list[Any] = []

    def start(script: str) -> Any:
        c = client.containers.run(
            DAEMON_IMAGE,
            ["sh", "-c", f"{script} && sleep 600"],
            detach=True,
            runtime=runtime,
            network_mode="none",
        )
        made.append(c)
        deadline = time.monotonic() + 20
        while c.exec_run(["sh", "-c", "test -e /tmp/.ready"]).exit_code != 0:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        return c

    yield start
    for c in made:
        c.remove(force=True)
    client.close()


def test_daemon_put_archive_does_not_follow_a_container_symlink(
    docker_container: Callable[[str], Any], canary: Path
) -> None:
    c = docker_container(f"ln -s {canary} /tmp/config.json && touch /tmp/.ready")
    assert c.put_archive("/tmp", tar_of(("config.json", "file", "through the daemon\n")))
    assert c.exec_run(["cat", "/tmp/config.json"]).output == b"through the daemon\n"
    bits, stat = c.get_archive("/tmp/config.json")
    assert stat["linkTarget"] == ""
    assert members(b"".join(bits)) == {"config.json": ("", b"through the daemon\n")}
    assert_canary_untouched(canary)


def test_docker_cli_cp_does_not_follow_a_container_symlink(
    daemon: Daemon, docker_container: Callable[[str], Any], canary: Path, tmp_path: Path
) -> None:
    binary = shutil.which("docker") or (DOCKER if os.path.exists(DOCKER) else None)
    if binary is None:
        pytest.skip("the docker CLI is not installed (/usr/local/bin/docker)")
    # the docker CLI follows a destination symlink itself, asking the daemon about its target:
    # the target must then be the container's own path, never the host's
    c = docker_container(
        f"mkdir -p {canary.parent} && ln -s {canary} /tmp/config.json && ln -s {canary} /tmp/link"
        " && touch /tmp/.ready"
    )
    source = tmp_path / "config.json"
    source.write_text("from docker cp\n")
    env = {**os.environ, "DOCKER_HOST": daemon.url, "DOCKER_CONFIG": str(tmp_path / "docker-config")}

    def docker_cp(*args: str) -> None:
        result = subprocess.run([binary, "cp", *args], capture_output=True, text=True, env=env, timeout=60)
        assert result.returncode == 0, result.stderr

    docker_cp(str(source), f"{c.id}:/tmp/config.json")
    assert c.exec_run(["cat", str(canary)]).output == b"from docker cp\n"
    out = tmp_path / "out"
    out.mkdir()
    docker_cp(f"{c.id}:/tmp/link", str(out))
    assert os.readlink(out / "link") == str(canary)
    assert_canary_untouched(canary)


# -- (f) bounded memory in the daemon -------------------------------------------------------


def _peak_rss(pid: int) -> int:
    """The process's peak resident set (VmHWM), bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc/<pid>/status")


def _zero_tar(name: str, size: int) -> Iterator[bytes]:
    """A tar of one file of ``size`` zero bytes, generated as it is sent."""
    info = tarfile.TarInfo(name)
    info.size = size
    yield info.tobuf(tarfile.PAX_FORMAT)
    block = bytes(1 << 20)
    left = size
    while left > 0:
        chunk = block[: min(left, len(block))]
        left -= len(chunk)
        yield chunk
    yield bytes(-size % 512 + 1024)


@pytest.mark.parametrize("runtime", ["builtin"], indirect=True)
def test_daemon_archive_memory_is_bounded(daemon: Daemon, docker_container: Callable[[str], Any]) -> None:
    assert daemon.proc is not None
    c = docker_container(
        "dd if=/dev/zero of=/tmp/big bs=1 count=0 seek=2147483648 2>/dev/null && touch /tmp/.ready"
    )
    before = _peak_rss(daemon.proc.pid)
    conn = UnixHTTPConnection(str(daemon.socket), timeout=120)
    try:
        conn.request("GET", f"/containers/{c.id}/archive?path=/tmp/big")
        response = conn.getresponse()
        assert response.status == 200
        total = 0
        while data := response.read(1 << 20):
            total += len(data)
        assert total > 2 << 30
    finally:
        conn.close()
    size = 1 << 30
    conn = UnixHTTPConnection(str(daemon.socket), timeout=120)
    try:
        conn.request(
            "PUT",
            f"/containers/{c.id}/archive?path=/tmp",
            body=_zero_tar("upload", size),
            headers={"Content-Type": "application/x-tar"},
            encode_chunked=True,
        )
        response = conn.getresponse()
        assert response.status == 200, response.read()
    finally:
        conn.close()
    assert c.exec_run(["stat", "-c", "%s", "/tmp/upload"]).output.strip() == str(size).encode()
    grown = _peak_rss(daemon.proc.pid) - before
    assert grown < 100 << 20, f"the daemon's peak RSS grew by {grown >> 20} MiB"
    with contextlib.suppress(Exception):
        c.exec_run(["rm", "-f", "/tmp/big", "/tmp/upload"])


# -- ownership and modes as docker cp keeps them ---------------------------------------------


def test_put_keeps_archive_ids_modes_and_times_or_gives_them_to_the_user(
    running: Callable[..., ck.Container],
) -> None:
    c = running("true", user="1000:1000")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo("owned")
        info.uid, info.gid, info.mode, info.mtime, info.size = 1234, 4321, 0o4750, 1_000_000_000, 2
        tar.addfile(info, io.BytesIO(b"x\n"))
    c.put("/tmp", buffer.getvalue())
    assert c.exec(["stat", "-c", "%u %g %a %Y", "/tmp/owned"]).output == b"1234 4321 4750 1000000000\n"
    c.put("/tmp", buffer.getvalue(), copy_uid_gid=True)  # docker cp -a: the container's user
    assert c.exec(["stat", "-c", "%u %g %a", "/tmp/owned"]).output == b"1000 1000 4750\n"
