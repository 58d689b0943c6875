"""The Client's side of the docker API details of issue 12: the same calls as the Engine."""

from __future__ import annotations

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
