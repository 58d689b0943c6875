"""containerkit.Client against a real containerkitd: the calls, the streams, the errors."""

from __future__ import annotations

import datetime as dt
import io
import tarfile
import threading
import time
import urllib.request
from pathlib import Path

import pytest

import containerkit.errors as ck_errors
from containerkit.client import AttachStream, Client, Container, ExecStream
from containerkit.spec import Event, ExecResult, Image, Stats, Volume

from .conftest import IMAGE, Daemon, start_daemon, stop_daemon


def sleeper(client: Client, **fields: object) -> Container:
    return client.containers.run(IMAGE, ["sleep", "60"], **fields)


def tar_of(name: str, payload: bytes) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    return buffer.getvalue()


# -- the daemon -------------------------------------------------------------------------------


def test_ping_version_info(client: Client) -> None:
    assert client.ping() is True
    assert client.version()["ApiVersion"] == "1.50"
    assert client.info()["OSType"] == "linux"


def test_events_since_until(client: Client) -> None:
    since = time.time()
    c = client.containers.run(IMAGE, ["true"])
    c.wait(timeout=30)
    c.remove()
    until = time.time()
    events = list(client.events(since=since, until=until, filters={"container": [c.id]}))
    assert [(e.type, e.action, e.actor_id) for e in events] == [
        ("container", "create", c.id),
        ("container", "start", c.id),
        ("container", "die", c.id),
        ("container", "destroy", c.id),
    ]
    assert events[2].attributes["exitCode"] == "0" and events[2].attributes["name"] == c.name
    raw = list(client.events(since=since, until=until, filters={"container": [c.id]}, decode=False))
    assert [m["Action"] for m in raw] == ["create", "start", "die", "destroy"] and raw[0]["id"] == c.id
    assert [Event.from_docker(m) for m in raw] == events
    # durations and RFC 3339 times, as the docker CLI takes them: turned into unix seconds
    recent = list(client.events(since="10m", until="0s", filters={"container": [c.id]}))
    assert [e.action for e in recent] == ["create", "start", "die", "destroy"]
    stamp = dt.datetime.fromtimestamp(since, dt.UTC).isoformat().replace("+00:00", "Z")
    assert len(list(client.events(since=stamp, until=until, filters={"container": [c.id]}))) == 4
    with pytest.raises(ck_errors.InvalidArgument, match="since"):
        client.events(since="soon")


# -- containers ---------------------------------------------------------------------------------


def test_run_wait_logs_and_remove(client: Client) -> None:
    c = client.containers.run(IMAGE, "echo out; echo err >&2; exit 7")
    assert c.wait(timeout=30) == 7
    assert (c.status, c.exit_code, c.pid) == ("exited", 7, None)
    assert c.logs() == b"out\nerr\n"
    assert c.logs(stdout=False) == b"err\n"
    assert c.logs(stdout=False, stderr=False) == b""
    c.remove()
    with pytest.raises(ck_errors.NotFound, match="No such container"):
        client.containers.get(c.id)


def test_logs_follow_ends_at_exit(client: Client) -> None:
    c = client.containers.run(IMAGE, "for i in 1 2 3; do echo line$i; sleep 0.3; done")
    started = time.monotonic()
    seen = []
    for chunk in c.logs(follow=True):
        seen.append((time.monotonic() - started, chunk))
    assert b"".join(chunk for _, chunk in seen) == b"line1\nline2\nline3\n"
    assert seen[0][0] < seen[-1][0] - 0.3  # delivered as written, not at the end
    assert c.status == "exited"
    c.remove()


def test_tty_logs_are_raw(client: Client) -> None:
    c = client.containers.run(IMAGE, "test -t 1 && echo tty", tty=True)
    c.wait(timeout=30)
    assert c.logs() == b"tty\r\n"
    c.remove()


def test_lifecycle_errors_use_the_engine_classes(client: Client) -> None:
    c = sleeper(client, name="client-lifecycle")
    try:
        with pytest.raises(ck_errors.Conflict, match="client-lifecycle"):
            client.containers.create(image=IMAGE, command=["true"], name="client-lifecycle")
        with pytest.raises(ck_errors.NotModified):
            c.start()
        with pytest.raises(ck_errors.Conflict, match="cannot remove a running container"):
            c.remove()
        c.pause()
        assert c.status == "paused"
        c.unpause()
        c.rename("client-renamed")
        assert c.name == "client-renamed" and client.containers.get("/client-renamed") == c
        c.restart(timeout=1)
        assert c.status == "running"
        c.stop(timeout=1)
        assert c.exit_code == 137
        with pytest.raises(ck_errors.NotModified):
            c.stop()
        with pytest.raises(ck_errors.NotRunning):
            c.kill()
        with pytest.raises(ck_errors.NotRunning):
            c.exec(["true"])
        with pytest.raises(ck_errors.NotRunning):
            c.stats()
        with pytest.raises(ck_errors.InvalidArgument, match="unknown signal"):
            c.kill("SIGNOPE")
    finally:
        c.remove(force=True)
    with pytest.raises(ck_errors.NotFound, match="No such image: nosuch/image"):
        client.containers.run("nosuch/image", ["true"])
    created = client.containers.create(image=IMAGE, command=["true"])
    with pytest.raises(ck_errors.NotRunning, match="has not been started"):
        created.wait()
    created.remove()


def test_wait_timeout_and_stop_longer_than_the_client_timeout(daemon: Daemon) -> None:
    client = Client(daemon.url, timeout=2)
    c = sleeper(client)
    with pytest.raises(ck_errors.Timeout, match=r"still running after 0\.5 s"):
        c.wait(timeout=0.5)
    # sleep as PID 1 ignores SIGTERM: stop takes its full 4 s, twice the client's read timeout
    started = time.monotonic()
    c.stop(timeout=4)
    assert time.monotonic() - started >= 3.5
    assert c.exit_code == 137
    c.remove()


def test_exec_result_and_fast_exits(client: Client) -> None:
    c = sleeper(client, hostname="exec-host")
    try:
        assert c.exec("cat /etc/hostname; echo e >&2; exit 4") == ExecResult(4, b"exec-host\n", b"e\n")
        for _ in range(20):  # output sent with the upgrade must never be lost
            assert c.exec(["echo", "fast"]) == ExecResult(0, b"fast\n", b"")
        assert c.exec(["nosuchcommand"]).exit_code == 126  # dockerd's, as the engine's
        assert c.exec("echo $X $(pwd) $(id -u)", env={"X": "y"}, workdir="/tmp", user="app").stdout == (
            b"y /tmp 1000\n"
        )
        assert c.exec("test -t 1 && echo tty", tty=True).stdout == b"tty\r\n"
    finally:
        c.remove(force=True)


def test_exec_stream_handle_always_has_an_exit_code(client: Client) -> None:
    c = sleeper(client)
    try:
        handle = c.exec(["sh", "-c", "echo a; sleep 0.3; echo b >&2; exit 3"], stream=True)
        assert isinstance(handle, ExecStream)
        assert list(handle.stream()) == [("stdout", b"a\n"), ("stderr", b"b\n")]
        assert handle.wait() == 3
        # wait() before reading: the output is kept, the code is there
        handle = c.exec(["sh", "-c", "echo kept; exit 5"], stream=True)
        assert handle.wait(timeout=30) == 5
        assert b"".join(handle) == b"kept\n"
        # a killed exec: 128 + signal
        handle = c.exec(["sh", "-c", "kill -9 $$"], stream=True)
        assert handle.wait(timeout=30) == 137
        # stdin, and its EOF
        with c.exec(["cat"], stdin=True, stream=True) as handle:
            handle.write_stdin(b"through stdin\n")
            handle.close_stdin()
            assert b"".join(handle) == b"through stdin\n"
            assert handle.wait(timeout=30) == 0
    finally:
        c.remove(force=True)


def test_attach_with_stdin_reaches_a_stdin_once_container(client: Client) -> None:
    c = client.containers.create(
        image=IMAGE, command=["sh", "-c", "tr a-z A-Z; echo done >&2"], stdin_open=True, stdin_once=True
    )
    try:
        with c.attach(stdin=True) as attached:
            assert isinstance(attached, AttachStream)
            c.start()
            attached.write_stdin(b"hello ")
            attached.write_stdin(b"world\n")
            attached.close_stdin()  # the half-close is the container's EOF: tr ends
            assert list(attached) == [("stdout", b"HELLO WORLD\n"), ("stderr", b"done\n")]
        assert c.wait(timeout=30) == 0
    finally:
        c.remove(force=True)


def test_attach_stdin_eof_without_input(client: Client) -> None:
    c = client.containers.create(image=IMAGE, command=["cat"], stdin_open=True, stdin_once=True)
    try:
        with c.attach(stdin=True) as attached:
            c.start()
            attached.close_stdin()
            assert list(attached) == []
        assert c.wait(timeout=30) == 0
    finally:
        c.remove(force=True)


def test_attach_without_stdin_refuses_writes(client: Client) -> None:
    c = client.containers.create(image=IMAGE, command=["true"])
    try:
        with c.attach() as attached, pytest.raises(ck_errors.RuntimeFailure, match="no open stdin"):
            attached.write_stdin(b"x")
    finally:
        c.remove(force=True)


def test_put_get_and_stat(client: Client, tmp_path: Path) -> None:
    c = client.containers.create(image=IMAGE, command=["sh", "-c", "cat /data/a.txt /etc/conf/b.txt"])
    c.put("/", tar_of("data/a.txt", b"from tar\n"))
    host_file = tmp_path / "b.txt"
    host_file.write_text("from host\n")
    c.put("/etc/conf/b.txt", host_file)  # the parent does not exist yet: created, like the Engine
    c.start()
    assert c.wait(timeout=30) == 0
    assert c.logs() == b"from tar\nfrom host\n"
    with tarfile.open(fileobj=io.BytesIO(c.get("/data/a.txt"))) as tar:
        member = tar.extractfile("a.txt")
        assert member is not None and member.read() == b"from tar\n"
    assert c.stat_path("/data/a.txt")["size"] == len(b"from tar\n")
    with pytest.raises(ck_errors.NotFound):
        c.get("/no/such/file")
    with pytest.raises(ck_errors.NotFound):
        c.put("/no/such/dir", tar_of("x", b""))
    c.remove()


def test_stats_and_top(client: Client) -> None:
    c = sleeper(client, resources={"memory": "64m", "pids": 50})
    stats = c.stats()
    assert isinstance(stats, Stats)
    assert stats.memory_usage > 0 and stats.memory_limit == 64 << 20
    assert (stats.pids, stats.pids_limit) == (1, 50)
    assert any("sleep" in " ".join(row) for row in c.top()["Processes"])
    unlimited = sleeper(client)
    assert unlimited.stats().memory_limit is None
    c.remove(force=True)
    unlimited.remove(force=True)


def test_list_filters_and_prune(client: Client) -> None:
    running = sleeper(client, labels={"suite": "client-list"})
    done = client.containers.run(IMAGE, ["true"], labels={"suite": "client-list"})
    done.wait(timeout=30)
    assert [c.id for c in client.containers.list(filters={"label": "suite=client-list"})] == [running.id]
    every = client.containers.list(all=True, filters={"label": ["suite=client-list"]})
    assert {c.id for c in every} == {running.id, done.id}
    pruned = client.containers.prune(filters={"label": "suite=client-list"})
    assert done.id in pruned and running.id not in pruned
    running.remove(force=True)


# -- images -------------------------------------------------------------------------------------


def test_images_save_load_round_trip(client: Client, tmp_path: Path) -> None:
    image = client.images.get(IMAGE)
    assert isinstance(image, Image) and IMAGE.replace(":latest", "") in image.tags[0]
    client.images.tag(IMAGE, "client/roundtrip:1")
    archive = tmp_path / "saved.tar"
    client.images.save("client/roundtrip:1", archive)
    assert client.images.remove("client/roundtrip:1") == ["Untagged: client/roundtrip:1"]
    with pytest.raises(ck_errors.NotFound, match="No such image"):
        client.images.get("client/roundtrip:1")
    loaded = client.images.load(archive)
    assert [i.id for i in loaded] == [image.id]
    assert "client/roundtrip:1" in client.images.get(image.id).tags
    assert image.id in {i.id for i in client.images.list(filters={"reference": "client/roundtrip"})}
    with pytest.raises(ck_errors.Conflict):
        client.images.remove(image.id)  # several tags, used by containers: must force
    client.images.remove("client/roundtrip:1")
    with pytest.raises(ck_errors.InvalidReference):
        client.images.tag(IMAGE, "client/x@sha256:" + "0" * 64)


def test_import_rootfs_and_prune(client: Client, busybox_rootfs_tar: Path) -> None:
    untagged = client.images.import_rootfs(busybox_rootfs_tar)
    assert untagged.tags == () and len(untagged.layers) == 1
    assert untagged.id in client.images.prune() or untagged.id == client.images.get(IMAGE).id
    with pytest.raises(ck_errors.NotFound, match="no such file"):
        client.images.import_rootfs(busybox_rootfs_tar.parent / "missing.tar")


def test_import_rootfs_applies_the_config(client: Client, busybox_rootfs_tar: Path) -> None:
    image = client.images.import_rootfs(busybox_rootfs_tar, "client/configured:1", config={"Cmd": ["sh"]})
    try:
        assert image.config.cmd == ("sh",)
    finally:
        client.images.remove("client/configured:1")


# -- volumes and networks ---------------------------------------------------------------------


def test_volumes(client: Client) -> None:
    volume = client.volumes.create("client-vol", labels={"suite": "client"})
    assert isinstance(volume, Volume) and dict(volume.labels) == {"suite": "client"}
    assert client.volumes.create("client-vol") == volume  # docker's create is idempotent on the wire
    assert [v.name for v in client.volumes.list(filters={"label": "suite=client"})] == ["client-vol"]
    c = client.containers.run(IMAGE, "echo kept > /v/f", mounts=["client-vol:/v"])
    c.wait(timeout=30)
    with pytest.raises(ck_errors.Conflict, match="in use"):
        client.volumes.remove("client-vol")
    c.remove()
    assert client.volumes.get("client-vol").name == "client-vol"
    client.volumes.remove("client-vol")
    with pytest.raises(ck_errors.NotFound):
        client.volumes.get("client-vol")
    anonymous = client.volumes.create()
    assert len(anonymous.name) == 64
    assert anonymous.name in client.volumes.prune()


def test_networks(client: Client) -> None:
    net = client.networks.create("client-net", labels={"suite": "client"})
    try:
        assert client.networks.get("client-net") == net
        assert net.subnet and net.gateway and net.labels == {"suite": "client"}
        assert [n.name for n in client.networks.list(filters={"label": "suite=client"})] == ["client-net"]
        with pytest.raises(ck_errors.Conflict):
            client.networks.create("client-net")
        server = sleeper(client, network="client-net", aliases=["db"])
        other = sleeper(client)
        net.connect(other, aliases=["peer"])
        assert {c.id for c in net.containers} == {server.id, other.id}
        assert server.networks["client-net"].ip == server.ip_address != ""
        assert other.exec(["ping", "-c", "1", "-W", "2", "db"]).exit_code == 0
        net.disconnect(other)
        with pytest.raises(ck_errors.Conflict):
            net.remove()
        server.remove(force=True)
        other.remove(force=True)
    finally:
        pruned = client.networks.prune(filters={"label": "suite=client"})
    assert "client-net" in pruned
    with pytest.raises(ck_errors.NotFound):
        client.networks.get("client-net")


def test_published_port(client: Client) -> None:
    c = client.containers.run(
        IMAGE, "mkdir /www; echo hello > /www/index.html; httpd -f -p 80 -h /www", ports={"80/tcp": None}
    )
    try:
        [(_host_ip, host_port)] = c.ports["80/tcp"]
        assert host_port > 0
        deadline = time.monotonic() + 10
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{host_port}/index.html", timeout=2) as page:
                    assert page.read() == b"hello\n"
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
    finally:
        c.remove(force=True)


# -- the daemon going away and coming back ---------------------------------------------------------


def test_daemon_restart_keeps_containers_and_the_client_reconnects(
    tmp_path_factory: pytest.TempPathFactory, busybox_rootfs_tar: Path
) -> None:
    base = tmp_path_factory.mktemp("ckd-restart")
    first = start_daemon(base)
    client = Client(first.url)
    try:
        client.images.import_rootfs(busybox_rootfs_tar, IMAGE)
        c = client.containers.run(IMAGE, "echo before; sleep 3; echo after; exit 6")
        stop_daemon(first)
        with pytest.raises(ck_errors.DaemonUnavailable, match=str(first.socket)):
            c.reload()
        second = start_daemon(base)
        try:
            assert c.wait(timeout=30) == 6
            assert c.logs() == b"before\nafter\n"
            c.remove()
        finally:
            stop_daemon(second)
    finally:
        stop_daemon(first)
        client.close()


def test_streams_do_not_block_other_calls(client: Client) -> None:
    c = sleeper(client)
    follow = c.logs(follow=True)
    reader = threading.Thread(target=lambda: list(follow), daemon=True)
    reader.start()
    assert client.ping()
    c.remove(force=True)
    reader.join(30)
    assert not reader.is_alive()


def test_port_wait_on_an_exited_container_says_it_exited(client: Client) -> None:
    from containerkit import wait

    c = client.containers.run(IMAGE, ["sh", "-c", "echo cannot listen >&2; exit 4"], ports={"80/tcp": None})
    try:
        c.wait(timeout=30)
        with pytest.raises(wait.ContainerExited) as caught:
            wait.until(c, wait.port(80), timeout=5)
        message = str(caught.value)
        assert "exited with status 4" in message and "cannot listen" in message
        assert "is not published" not in message
    finally:
        c.remove(force=True)
