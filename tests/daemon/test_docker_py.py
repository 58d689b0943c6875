"""docker-py 7.1 against containerkitd: the calls testcontainers and most Python code make."""

from __future__ import annotations

import io
import tarfile
import time
from typing import Any

import pytest

from .conftest import IMAGE, Daemon


def _tar(name: str, data: bytes) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_ping_version_info(client: Any) -> None:
    assert client.ping() is True
    version = client.version()
    assert version["ApiVersion"] == "1.50" and version["MinAPIVersion"] == "1.24"
    assert client.info()["LoggingDriver"] == "json-file"


def test_run_foreground_returns_output(client: Any) -> None:
    assert client.containers.run(IMAGE, ["echo", "hello"], remove=True) == b"hello\n"
    docker = pytest.importorskip("docker")
    with pytest.raises(docker.errors.ContainerError) as info:
        client.containers.run(IMAGE, ["sh", "-c", "echo bad >&2; exit 3"], remove=True)
    assert info.value.exit_status == 3 and b"bad" in info.value.stderr


def test_run_detached_logs_wait_exec_stop_remove(client: Any) -> None:
    c = client.containers.run(
        IMAGE, ["sh", "-c", "echo up; echo warn >&2; sleep 60"], detach=True, labels={"t": "1"}
    )
    try:
        deadline = time.monotonic() + 10
        while b"warn" not in c.logs() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert c.logs(stdout=True, stderr=False) == b"up\n"
        assert c.logs(stdout=False, stderr=True) == b"warn\n"
        c.reload()
        assert c.status == "running" and c.attrs["State"]["Pid"] > 0
        assert c.attrs["HostConfig"]["LogConfig"]["Type"] == "json-file"
        for _ in range(10):  # a fast echo must never lose its output
            result = c.exec_run("echo fast")
            assert (result.exit_code, result.output) == (0, b"fast\n")
        result = c.exec_run(["sh", "-c", "echo o; echo e >&2; exit 5"], demux=True)
        assert result.exit_code == 5 and result.output == (b"o\n", b"e\n")
        assert [x.id for x in client.containers.list(filters={"label": "t=1"})] == [c.id]
        c.stop(timeout=1)
        assert c.wait()["StatusCode"] == 137
        c.reload()
        assert c.status == "exited"
    finally:
        c.remove(force=True)
    docker = pytest.importorskip("docker")
    with pytest.raises(docker.errors.NotFound, match="No such container"):
        client.containers.get(c.id)


def test_exec_stream_and_missing_command(client: Any) -> None:
    c = client.containers.run(IMAGE, ["sleep", "60"], detach=True)
    try:
        result = c.exec_run(["sh", "-c", "for i in 1 2 3; do echo $i; done"], stream=True)
        assert b"".join(result.output) == b"1\n2\n3\n"
        missing = c.exec_run(["nosuchcommand"])
        assert missing.exit_code == 126 and b"not found" in missing.output  # dockerd's exec code
    finally:
        c.remove(force=True)


def test_resize_a_tty_container(client: Any, daemon: Daemon) -> None:
    docker = pytest.importorskip("docker")
    c = client.containers.run(IMAGE, ["sleep", "60"], detach=True, tty=True)
    plain = client.containers.run(IMAGE, ["sleep", "60"], detach=True)
    try:
        c.resize(height=40, width=132)
        deadline = time.monotonic() + 10
        while (
            c.exec_run(["sh", "-c", "stty size </dev/console"]).output != b"40 132\n"
            and time.monotonic() < deadline
        ):
            time.sleep(0.05)
        assert c.exec_run(["sh", "-c", "stty size </dev/console"]).output == b"40 132\n"
        status, _headers, body = daemon.request("POST", f"/containers/{c.id}/resize?h=40")
        assert status == 400 and b"w" in body
        with pytest.raises(docker.errors.APIError) as info:
            plain.resize(height=40, width=132)
        assert info.value.status_code == 400 and b"tty" in info.value.response.content
    finally:
        c.remove(force=True)
        plain.remove(force=True)
    with pytest.raises(docker.errors.NotFound):
        c.resize(height=40, width=132)


def test_put_and_get_archive(client: Any) -> None:
    c = client.containers.create(IMAGE, ["sleep", "60"])
    try:
        assert c.put_archive("/tmp", _tar("f.txt", b"before start"))  # works before start, too
        c.start()
        assert c.put_archive("/tmp", _tar("g.txt", b"while running"))
        bits, stat = c.get_archive("/tmp/g.txt")
        assert stat["name"] == "g.txt" and stat["size"] == len(b"while running")
        with tarfile.open(fileobj=io.BytesIO(b"".join(bits))) as tar:
            assert tar.extractfile("g.txt").read() == b"while running"  # type: ignore[union-attr]
        assert c.exec_run("cat /tmp/f.txt").output == b"before start"
    finally:
        c.remove(force=True)


def test_images_get_list_save_load_tag_remove(client: Any) -> None:
    image = client.images.get(IMAGE)
    assert IMAGE in image.tags and image.id.startswith("sha256:")
    assert client.images.get(image.short_id.split(":")[1]).id == image.id
    assert image.id in [i.id for i in client.images.list()]
    archive = b"".join(image.save(named=True))
    assert image.tag("example/copy", "v1")
    client.images.remove("example/copy:v1")
    client.images.remove(image.id, force=True)
    docker = pytest.importorskip("docker")
    with pytest.raises(docker.errors.ImageNotFound):
        client.images.get(IMAGE)
    loaded = client.images.load(archive)
    assert [i.id for i in loaded] == [image.id] and IMAGE in client.images.get(IMAGE).tags


def test_pull_from_an_unreachable_registry_fails_and_run_reports_it(client: Any) -> None:
    """Nothing listens on 127.0.0.1:1: the pull fails as dockerd's does (500, the registry named);
    pulls from a real registry are in test_registry_api.py."""
    docker = pytest.importorskip("docker")
    with pytest.raises(docker.errors.APIError, match=r"127\.0\.0\.1:1"):
        client.images.pull("127.0.0.1:1/nosuch/image", tag="1")
    with pytest.raises(docker.errors.APIError, match=r"127\.0\.0\.1:1"):  # create 404s, run pulls
        client.containers.run("127.0.0.1:1/nosuch/image:1", ["true"])
    assert client.images.get(IMAGE).tags == [IMAGE]


def test_volumes(client: Any) -> None:
    volume = client.volumes.create("pyvol", labels={"k": "v"})
    try:
        assert client.volumes.get("pyvol").attrs["Labels"] == {"k": "v"}
        assert [v.name for v in client.volumes.list(filters={"label": "k=v"})] == ["pyvol"]
        out = client.containers.run(
            IMAGE,
            ["sh", "-c", "echo kept > /data/x; cat /data/x"],
            volumes={"pyvol": {"bind": "/data"}},
            remove=True,
        )
        assert out == b"kept\n"
        out = client.containers.run(IMAGE, ["cat", "/data/x"], volumes=["pyvol:/data:ro"], remove=True)
        assert out == b"kept\n"
    finally:
        volume.remove()


def test_networks(client: Any) -> None:
    net = client.networks.create("pynet", labels={"k": "v"})
    try:
        assert [n.name for n in client.networks.list(filters={"label": "k=v"})] == ["pynet"]
        server = client.containers.run(IMAGE, ["sleep", "60"], detach=True, network="pynet", name="pyserver")
        try:
            server.reload()
            address = server.attrs["NetworkSettings"]["Networks"]["pynet"]["IPAddress"]
            assert address
            out = client.containers.run(
                IMAGE, ["ping", "-c", "1", "-W", "2", "pyserver"], network="pynet", remove=True
            )
            assert address.encode() in out
            other = client.containers.run(IMAGE, ["sleep", "60"], detach=True)
            try:
                net.connect(other, aliases=["second"])
                assert other.exec_run(["ping", "-c", "1", "-W", "2", "pyserver"]).exit_code == 0
                net.disconnect(other)
            finally:
                other.remove(force=True)
        finally:
            server.remove(force=True)
    finally:
        net.remove()


def test_events_and_wait_conditions(client: Any, daemon: Daemon) -> None:
    since = time.time()
    c = client.containers.create(IMAGE, ["sh", "-c", "exit 2"])
    assert c.wait(condition="not-running")["StatusCode"] == 0  # created: at once
    c.start()
    assert c.wait(timeout=30)["StatusCode"] == 2
    c.remove()
    actions = [
        e["Action"]
        for e in client.events(since=since, until=time.time() + 1, decode=True, filters={"container": c.id})
    ]
    assert actions[:4] == ["create", "start", "die", "destroy"]
