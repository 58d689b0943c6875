"""Docker API details where clients depend on dockerd's exact behaviour (issue 12), through
containerkitd with docker-py and the docker CLI."""

from __future__ import annotations

import json
import signal
import socket
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from containerkit.daemon import streams

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


def test_detach_key_parsing_and_matching() -> None:
    """moby's term.ToBytes, and a sequence found across reads (pure: no daemon)."""
    assert streams.detach_key_bytes("ctrl-p,ctrl-q") == b"\x10\x11"
    assert streams.detach_key_bytes("a,ctrl-@,ctrl-\\,ctrl-_,DEL") == b"a\x00\x1c\x1f\x7f"
    for bad in ("ctrl-1", "ctrl-", "ab", "", "ctrl-P"):
        with pytest.raises(ValueError):
            streams.detach_key_bytes(bad)
    matcher = streams.DetachMatcher(b"\x10\x11")
    assert matcher.feed(b"ab\x10") == (b"ab", False)
    assert matcher.feed(b"c\x10") == (b"\x10c", False)
    assert matcher.feed(b"\x10\x11rest") == (b"\x10", True)


def _read_until(sock: Any, marker: bytes) -> bytes:
    raw = getattr(sock, "_sock", sock)
    raw.settimeout(30)
    data = b""
    while marker not in data:
        chunk = raw.recv(65536)
        assert chunk, f"stream ended before {marker!r}: {data!r}"
        data += chunk
    return data


def test_detach_keys_leave_the_container_and_the_exec_running(client: Any) -> None:
    api = client.api
    c = client.containers.run(IMAGE, ["sh"], detach=True, tty=True, stdin_open=True)
    try:
        params = {"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1}
        sock = api.attach_socket(c.id, params=params)
        try:
            sock._sock.sendall(b"echo first\n")
            _read_until(sock, b"first\r\n")
            sock._sock.sendall(b"\x10\x11")  # dockerd's default: ctrl-p ctrl-q
            _read_all(sock)  # the stream ends: detached
        finally:
            sock.close()
        c.reload()
        assert c.status == "running"
        # a sequence of our own, split across writes; a broken one goes through to the process
        sock = api.attach_socket(c.id, params={**params, "detachKeys": "q,w"})
        try:
            sock._sock.sendall(b"echo qaq")
            sock._sock.sendall(b"q\n")
            _read_until(sock, b"qaqq\r\n")
            sock._sock.sendall(b"echo second\nq")
            _read_until(sock, b"second\r\n")
            sock._sock.sendall(b"w")
            _read_all(sock)
        finally:
            sock.close()
        c.reload()
        assert c.status == "running"
        docker = pytest.importorskip("docker")
        with pytest.raises(docker.errors.APIError, match=r"Invalid detach keys \(ctrl-1\) provided") as info:
            api.attach_socket(c.id, params={**params, "detachKeys": "ctrl-1"})
        assert info.value.status_code == 400

        exec_id = api.exec_create(c.id, ["sh"], stdin=True, tty=True)["Id"]
        sock = api.exec_start(exec_id, tty=True, socket=True)
        try:
            sock._sock.sendall(b"echo in-exec\n")
            _read_until(sock, b"in-exec\r\n")
            sock._sock.sendall(b"\x10\x11")
            _read_all(sock)
        finally:
            sock.close()
        assert api.exec_inspect(exec_id)["Running"] is True
        with pytest.raises(docker.errors.APIError, match=r"Invalid escape keys \(ctrl-\) provided") as info:
            api.exec_create(c.id, ["true"], detach_keys="ctrl-")
        assert info.value.status_code == 400
        # without a tty the keys are data, as in moby
        exec_id = api.exec_create(c.id, ["od", "-An", "-c"], stdin=True)["Id"]
        sock = api.exec_start(exec_id, socket=True)
        try:
            sock._sock.sendall(b"\x10\x11")
            sock._sock.shutdown(socket.SHUT_WR)
            frames = _frames(_read_all(sock))
        finally:
            sock.close()
        assert b"".join(data for _, data in frames).split() == [b"020", b"021"]
    finally:
        c.remove(force=True)


def test_inspect_right_after_sigkill_shows_the_exit(client: Any, cli: Any) -> None:
    for paused in (False, True):
        c = client.containers.run(IMAGE, ["sleep", "300"], detach=True)
        try:
            if paused:
                c.pause()
            c.kill()
            c.reload()  # no wait in between, as with dockerd
            assert (c.status, c.attrs["State"]["ExitCode"]) == ("exited", 137)
        finally:
            c.remove(force=True)
    name = cli("run", "-d", IMAGE, "sleep", "300").stdout.strip()
    try:
        cli("kill", name)
        assert cli("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", name).stdout == "exited 137\n"
    finally:
        cli("rm", "-f", name)


def test_update_through_docker_py_and_the_cli(client: Any, cli: Any) -> None:
    c = client.containers.run(IMAGE, ["sleep", "300"], detach=True, mem_limit="64m")
    try:
        reply = c.update(
            mem_limit="32m", memswap_limit="48m", cpu_quota=25000, cpu_period=100000, cpu_shares=512
        )
        assert reply == {"Warnings": []}
        c.update(restart_policy={"Name": "on-failure", "MaximumRetryCount": 3})
        c.reload()
        host = c.attrs["HostConfig"]
        assert (host["Memory"], host["MemorySwap"], host["NanoCpus"], host["CpuShares"]) == (
            32 << 20,
            48 << 20,
            250_000_000,
            512,
        )
        assert host["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
        cgroup = Path("/sys/fs/cgroup/memory/containerkit") / c.id / "memory.limit_in_bytes"
        if cgroup.exists():  # applied live (cgroup v1 here)
            assert cgroup.read_text().strip() == str(32 << 20)
        cli("update", "--pids-limit", "40", "--cpus", "1.5", "--memory", "40m", "--memory-swap", "80m", c.id)
        host = client.api.inspect_container(c.id)["HostConfig"]
        assert (host["PidsLimit"], host["NanoCpus"], host["Memory"]) == (40, 1_500_000_000, 40 << 20)
        assert c.exec_run("true").exit_code == 0  # still running, unharmed
        cli("update", "--cpuset-cpus", "0", c.id)
        assert client.api.inspect_container(c.id)["HostConfig"]["CpusetCpus"] == "0"
        cpuset = Path("/sys/fs/cgroup/cpuset/containerkit") / c.id / "cpuset.cpus"
        if cpuset.exists():
            assert cpuset.read_text().strip() == "0"
        allowed = cli(
            "run", "--rm", "--cpuset-cpus", "1", IMAGE, "grep", "Cpus_allowed_list", "/proc/self/status"
        )
        assert allowed.stdout.split() == ["Cpus_allowed_list:", "1"]  # create takes it too
        refused = cli("update", "--blkio-weight", "500", c.id, check=False)
        assert refused.returncode != 0 and "BlkioWeight" in refused.stderr
    finally:
        c.remove(force=True)


def test_update_below_the_memory_in_use_is_a_clear_error(client: Any, cli: Any) -> None:
    script = "dd if=/dev/zero of=/dev/shm/fill bs=1M count=40 2>/dev/null; echo filled; sleep 300"
    c = client.containers.run(IMAGE, ["sh", "-c", script], detach=True, mem_limit="128m")
    try:
        for _ in c.logs(stream=True, follow=True):
            break
        result = cli("update", "--memory", "16m", "--memory-swap", "16m", c.id, check=False)
        assert result.returncode != 0
        assert "below what the container uses now" in result.stderr, result.stderr
        assert client.api.inspect_container(c.id)["HostConfig"]["Memory"] == 128 << 20
    finally:
        c.remove(force=True)


def test_volume_drivers_and_local_driver_opts(client: Any, cli: Any, daemon: Daemon, tmp_path: Path) -> None:
    docker = pytest.importorskip("docker")
    with pytest.raises(
        docker.errors.NotFound, match='error looking up volume plugin nfs: plugin "nfs" not found'
    ):
        client.volumes.create("dapi-nfs", driver="nfs")
    refused = cli(
        "volume",
        "create",
        "--opt",
        "type=tmpfs",
        "--opt",
        "device=tmpfs",
        "--opt",
        "o=size=1m,suid",
        check=False,
    )
    assert refused.returncode != 0 and "'suid' is not allowed" in refused.stderr
    opts = ["--opt", "type=tmpfs", "--opt", "device=tmpfs", "--opt", "o=size=100m"]
    cli("volume", "create", *opts, "dapi-tmp")
    host = tmp_path / "bound"
    host.mkdir()
    (host / "on-host").write_text("x")
    cli("volume", "create", "--opt", "type=none", "--opt", "o=bind", "--opt", f"device={host}", "dapi-bind")
    try:
        inspected = client.api.inspect_volume("dapi-tmp")
        assert inspected["Options"] == {"type": "tmpfs", "device": "tmpfs", "o": "size=100m"}
        mountpoint = inspected["Mountpoint"]
        out = cli(
            "run",
            "--rm",
            "-v",
            "dapi-tmp:/data",
            "-v",
            "dapi-bind:/b",
            IMAGE,
            "sh",
            "-c",
            "df -k /data; ls /b; touch /b/new",
        )
        assert out.stdout.splitlines()[1].split()[1] == "102400"  # a 100m tmpfs
        assert "on-host" in out.stdout and (host / "new").exists()
        mounts = Path("/proc/mounts").read_text()
        assert mountpoint not in mounts  # unmounted once its container is gone
    finally:
        cli("volume", "rm", "dapi-tmp", "dapi-bind")
    assert (host / "on-host").exists()  # removing a bind volume leaves the host's files


def test_network_aliases_dns_names_and_short_id(client: Any, daemon: Daemon) -> None:
    net = client.networks.create("dapi-aliases")
    made = []
    try:
        a = client.containers.create(IMAGE, ["sleep", "300"], name="dapi-a", network="dapi-aliases")
        made.append(a)
        client.api.disconnect_container_from_network(a.id, net.id)
        net.connect(a, aliases=["al"])
        a.start()
        b = client.containers.run(
            IMAGE, ["sleep", "300"], detach=True, network="dapi-aliases", hostname="bhost"
        )
        made.append(b)
        a.reload()
        b.reload()
        endpoint = a.attrs["NetworkSettings"]["Networks"]["dapi-aliases"]
        assert endpoint["Aliases"] == ["al"]  # dockerd 25+: the user's aliases only
        assert endpoint["DNSNames"] == ["dapi-a", "al", a.id[:12]]
        other = b.attrs["NetworkSettings"]["Networks"]["dapi-aliases"]
        assert other["DNSNames"] == [b.name, b.id[:12], "bhost"]
        # API < 1.45: dockerd listed the short id and hostname among the Aliases
        for container, expected in ((a, ["al", a.id[:12]]), (b, [b.id[:12], "bhost"])):
            status, _headers, body = daemon.request("GET", f"/v1.44/containers/{container.id}/json")
            assert status == 200
            old = json.loads(body)["NetworkSettings"]["Networks"]["dapi-aliases"]
            assert old["Aliases"] == expected
        ip = endpoint["IPAddress"]
        for name in (a.id[:12], "al", "dapi-a"):
            result = b.exec_run(["sh", "-c", f"ping -c1 -W2 {name} | head -1"])
            assert f"({ip})".encode() in result.output, (name, result.output)
        assert a.exec_run(["ping", "-c1", "-W2", "bhost"]).exit_code == 0
        # the default bridge has no names
        plain = client.containers.run(IMAGE, ["sleep", "300"], detach=True)
        made.append(plain)
        plain.reload()
        assert plain.attrs["NetworkSettings"]["Networks"]["bridge"]["DNSNames"] is None
    finally:
        for c in made:
            c.remove(force=True)
        net.remove()


def test_log_drivers_through_the_daemon(client: Any, cli: Any) -> None:
    docker = pytest.importorskip("docker")
    with pytest.raises(
        docker.errors.APIError, match="logger: no log driver named 'gelfish' is registered"
    ) as info:
        client.containers.create(IMAGE, ["true"], log_config={"Type": "gelfish", "Config": {}})
    assert info.value.status_code == 400
    refused = cli("create", "--log-driver", "json-file", "--log-opt", "max-size=lots", IMAGE, check=False)
    assert refused.returncode != 0 and "max-size" in refused.stderr
    made = []
    try:
        silent = cli("run", "-d", "--log-driver", "none", IMAGE, "echo", "unseen").stdout.strip()
        made.append(silent)
        assert client.containers.get(silent).wait(timeout=30)["StatusCode"] == 0
        result = cli("logs", silent, check=False)
        assert result.returncode != 0
        assert "configured logging driver does not support reading" in result.stderr
        local = client.containers.run(
            IMAGE, ["echo", "kept locally"], detach=True, log_config={"Type": "local", "Config": {}}
        )
        made.append(local.id)
        local.wait(timeout=30)
        assert local.logs() == b"kept locally\n"
        assert local.attrs["HostConfig"]["LogConfig"]["Type"] == "local"
        # json-file rotation: at most max-file files of about max-size each; the newest lines stay
        script = (
            "i=0; while [ $i -lt 400 ]; do echo line-$i-................................; i=$((i+1)); done"
        )
        rotated = client.containers.run(
            IMAGE,
            ["sh", "-c", script],
            detach=True,
            log_config={"Type": "json-file", "Config": {"max-size": "2k", "max-file": "2"}},
        )
        made.append(rotated.id)
        rotated.wait(timeout=30)
        rotated.reload()
        lines = rotated.logs().decode().splitlines()
        assert lines[-1].startswith("line-399-") and 0 < len(lines) < 400
        log_path = Path(rotated.attrs["LogPath"])
        files = sorted(log_path.parent.glob(log_path.name + "*"))
        assert 1 <= len(files) <= 2 and all(f.stat().st_size <= 4096 for f in files), files
    finally:
        for cid in made:
            client.api.remove_container(cid, force=True)
