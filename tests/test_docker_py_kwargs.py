"""The keyword spellings docker-py users type, accepted where unambiguous (pure: no containers)."""

from __future__ import annotations

import pytest

import containerkit as ck
from containerkit.spec import PortBinding


def spec(**fields: object) -> ck.ContainerSpec:
    return ck.ContainerSpec.from_kwargs(image="busybox", **fields)


def test_ports_as_publish_strings() -> None:
    assert spec(ports=["8080:80", "127.0.0.1::53/udp"]).ports == (
        PortBinding(container_port=80, protocol="tcp", host_ip="0.0.0.0", host_port=8080),
        PortBinding(container_port=53, protocol="udp", host_ip="127.0.0.1", host_port=0),
    )
    assert spec(ports={"80/tcp": 8080}).ports == spec(ports=["8080:80"]).ports
    with pytest.raises(ck.InvalidArgument, match="invalid publish spec 'http'"):
        spec(ports=["http"])
    with pytest.raises(ck.InvalidArgument, match=r"use \['8080:80'\]"):
        spec(ports="8080:80")


def test_environment_resources_and_flags() -> None:
    assert spec(environment={"A": "1"}).env == spec(env=["A=1"]).env == (("A", "1"),)
    s = spec(mem_limit="64m", memswap_limit="128m", pids_limit=10, nano_cpus=500_000_000, cpu_shares=512)
    assert s.resources == ck.Resources(memory="64m", memory_swap="128m", pids=10, cpus=0.5, cpu_shares=512)
    assert spec(remove=True, detach=True).auto_remove is True
    assert spec(working_dir="/srv", network_mode="none").workdir == "/srv"
    with pytest.raises(ck.InvalidArgument, match=r"container\.wait\(\)"):
        spec(detach=False)
    with pytest.raises(ck.InvalidArgument, match="either environment= or env="):
        spec(environment={"A": "1"}, env=["B=2"])
    with pytest.raises(ck.InvalidArgument, match=r"unknown container option.*bogus"):
        spec(bogus=1)


def test_volumes_as_docker_py_types_them() -> None:
    s = spec(volumes={"data": {"bind": "/data", "mode": "rw"}, "/srv/conf": {"bind": "/conf", "mode": "ro"}})
    assert s.mounts == (
        ck.Mount(type="volume", source="data", target="/data"),
        ck.Mount(type="bind", source="/srv/conf", target="/conf", read_only=True),
    )
    assert spec(volumes=["data:/data:ro"]).mounts == (
        ck.Mount(type="volume", source="data", target="/data", read_only=True),
    )
    with pytest.raises(ck.InvalidArgument, match=r"mounts=\['data:/path'\]"):
        spec(volumes={"data": "/data"})
