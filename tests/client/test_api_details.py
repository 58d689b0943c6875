"""The Client's side of the docker API details of issue 12: the same calls as the Engine."""

from __future__ import annotations

import threading

import pytest

import containerkit as ck
from containerkit.client import Client

from .conftest import IMAGE


def test_update_and_kill_as_the_engine_does(client: Client) -> None:
    c = client.containers.run(IMAGE, ["sleep", "60"], resources=ck.Resources(memory="64m"))
    try:
        c.update(
            memory="32m",
            memory_swap=-1,
            cpus=0.5,
            pids=30,
            restart_policy=ck.RestartPolicy(name="on-failure", maximum_retry_count=2),
        )
        spec = client.containers.get(c.id).spec
        assert (spec.resources.memory, spec.resources.cpus, spec.resources.pids) == (32 << 20, 0.5, 30)
        assert spec.restart_policy == ck.RestartPolicy(name="on-failure", maximum_retry_count=2)
        with pytest.raises(ck.errors.InvalidArgument, match="cpu_shares"):
            c.update(cpu_shares=1)
        c.kill()
        assert (c.status, c.exit_code) == ("exited", 137)  # no wait: kill returned after the exit
    finally:
        c.remove(force=True)


def test_volume_driver_opts_as_the_engine(client: Client) -> None:
    opts = {"type": "tmpfs", "device": "tmpfs", "o": "size=5m"}
    volume = client.volumes.create("dapi-client-tmpfs", driver_opts=opts)
    try:
        assert dict(client.volumes.get(volume.name).options) == opts
        with pytest.raises(ck.errors.InvalidArgument, match="'suid' is not allowed"):
            client.volumes.create("dapi-client-bad", driver_opts={**opts, "o": "suid"})
        with pytest.raises(ck.errors.NotFound, match='plugin "nfs" not found'):
            client.volumes.create("dapi-client-nfs", driver="nfs")
    finally:
        client.volumes.remove(volume.name)


def test_detach_keys_end_the_attachment_through_the_daemon(client: Client) -> None:
    c = client.containers.run(IMAGE, ["sh"], tty=True, stdin_open=True)
    try:
        with c.attach(stdin=True, detach_keys="ctrl-x") as stream:
            stream.write_stdin(b"echo one\n")
            seen = b""
            for _name, chunk in stream:
                seen += chunk
                if b"one\r\n" in seen:
                    break
            stream.write_stdin(b"\x18")
            drained = threading.Thread(target=lambda: [None for _ in stream], daemon=True)
            drained.start()
            drained.join(30)  # a bound for a failure only: the daemon ends the stream at once
            assert not drained.is_alive(), "the stream did not end at the detach keys"
        assert c.status == "running"
        with pytest.raises(ck.errors.InvalidArgument, match=r"Invalid detach keys \(ctrl-\) provided"):
            c.attach(stdin=True, detach_keys="ctrl-")
    finally:
        c.remove(force=True)
