"""Docker API details where clients depend on dockerd's exact behaviour (issue 12), through
containerkitd with docker-py and the docker CLI."""

from __future__ import annotations

import signal
import struct
from collections.abc import Iterator
from typing import Any

import pytest

from .conftest import IMAGE, Daemon


@pytest.fixture
def sleeper(client: Any) -> Iterator[Any]:
    c = client.containers.run(IMAGE, ["sleep", "300"], detach=True)
    try:
        yield c
    finally:
        c.remove(force=True)


def _frames(data: bytes) -> list[tuple[int, bytes]]:
    frames = []
    while data:
        assert len(data) >= 8, data
        stream, size = struct.unpack(">BxxxL", data[:8])
        frames.append((stream, data[8 : 8 + size]))
        data = data[8 + size :]
    return frames


def _read_all(sock: Any) -> bytes:
    raw = getattr(sock, "_sock", sock)
    raw.settimeout(30)
    chunks = []
    while True:
        chunk = raw.recv(65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def test_exec_framing_follows_the_start_request_tty(client: Any, sleeper: Any) -> None:
    """moby's postContainerExecStart: created with a tty, started without ``Tty`` -> frames."""
    api = client.api
    cmd = ["sh", "-c", "echo out; echo err >&2"]
    exec_id = api.exec_create(sleeper.id, cmd, tty=True)["Id"]
    assert api.exec_start(exec_id) == b"out\r\nerr\r\n"
    exec_id = api.exec_create(sleeper.id, cmd, tty=True)["Id"]
    assert api.exec_start(exec_id, demux=True) == (b"out\r\nerr\r\n", None)
    exec_id = api.exec_create(sleeper.id, cmd, tty=True)["Id"]
    sock = api.exec_start(exec_id, socket=True)
    try:
        frames = _frames(_read_all(sock))
    finally:
        sock.close()
    assert {stream for stream, _ in frames} == {1}  # a tty merges the streams: all stdout
    assert b"".join(data for _, data in frames) == b"out\r\nerr\r\n"
    # started with Tty: raw bytes, as before
    exec_id = api.exec_create(sleeper.id, cmd, tty=True)["Id"]
    assert api.exec_start(exec_id, tty=True) == b"out\r\nerr\r\n"
    # no tty anywhere: frames per stream
    assert sleeper.exec_run(cmd, demux=True).output == (b"out\n", b"err\n")


def test_exec_of_a_missing_or_non_executable_command_exits_126(client: Any, sleeper: Any, cli: Any) -> None:
    missing = sleeper.exec_run(["nosuchcommand"])
    assert missing.exit_code == 126
    assert b'exec: "nosuchcommand": executable file not found in $PATH' in missing.output
    assert sleeper.exec_run(["/etc/passwd"]).exit_code == 126
    assert sleeper.exec_run(["sh", "-c", "nosuchcommand"]).exit_code == 127  # the shell's own 127
    result = cli("exec", sleeper.id, "nosuchcommand", check=False)
    assert result.returncode == 126, result
    assert result.stderr.startswith(
        "OCI runtime exec failed: exec failed: unable to start container process: "
        'exec: "nosuchcommand": executable file not found in $PATH: unknown'
    ), result.stderr
    # only `docker run` of a missing command gives 127
    run = cli("run", "--rm", IMAGE, "nosuchcommand", check=False)
    assert run.returncode == 127, run


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_exec_ids_survive_a_daemon_restart(daemon: Daemon, client: Any, sleeper: Any, sig: int) -> None:
    api = client.api
    done = api.exec_create(sleeper.id, ["sh", "-c", "exit 3"])["Id"]
    api.exec_start(done)
    created = api.exec_create(sleeper.id, ["true"])["Id"]  # never started
    assert api.exec_inspect(done)["ExitCode"] == 3
    daemon.stop(sig)
    daemon.start()
    after = api.exec_inspect(done)
    assert (after["ID"], after["Running"], after["ExitCode"]) == (done, False, 3)
    assert after["ContainerID"] == sleeper.id and after["ProcessConfig"]["arguments"] == ["-c", "exit 3"]
    assert api.exec_inspect(created)["Running"] is False
    api.exec_start(created)  # a created exec can still be started after the restart
    assert api.exec_inspect(created)["ExitCode"] == 0
    docker = pytest.importorskip("docker")
    with pytest.raises(docker.errors.NotFound, match="No such exec instance"):
        api.exec_inspect("0" * 64)
