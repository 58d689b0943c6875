"""Create bodies both ways: ``from_create_body(to_create_body(spec)) == spec``, and the errors
a bad body gets (each names the field)."""

from __future__ import annotations

import json
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings

from containerkit.dockerapi import from_create_body, to_create_body
from containerkit.dockerapi.create import split_no_new_privileges
from containerkit.errors import InvalidArgument
from containerkit.spec import ContainerSpec, Healthcheck, Mount, PortBinding, RestartPolicy
from tests.dockerapi.strategies import container_specs


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(container_specs())
def test_round_trip(spec: ContainerSpec) -> None:
    body = json.loads(json.dumps(to_create_body(spec)))  # what goes over the wire
    assert from_create_body(body, name=spec.name) == spec


@pytest.mark.parametrize(
    "spec",
    [
        ContainerSpec(image="busybox"),
        ContainerSpec(image="busybox", command=[], entrypoint=[]),
        ContainerSpec(
            image="busybox",
            name="web-1",
            mounts=[
                Mount(type="bind", source="/srv", target="/srv", read_only=True, options=["rslave"]),
                Mount(type="volume", source="data", target="/data", options=["nocopy"]),
                Mount(type="tmpfs", target="/run", read_only=True, options=["size=1m"]),
            ],
            ports=["127.0.0.1:8080:80", "8081:80", "53/udp"],
            no_new_privileges=True,
            security_opt=["seccomp=unconfined"],
            resources={"memory": "64m", "cpus": 0.5, "pids": -1},
            network="mynet",
            aliases=["web"],
            runtime="runc",
            userns="host",
        ),
    ],
    ids=["minimal", "empty-argv", "everything"],
)
def test_round_trip_examples(spec: ContainerSpec) -> None:
    assert from_create_body(to_create_body(spec), name=spec.name) == spec


def test_docker_cli_body() -> None:
    """A body as docker 28's CLI sends it for ``run -d -p 8080:80 --tmpfs /run:ro -v /srv:/srv:ro``."""
    body: dict[str, Any] = {
        "Image": "busybox",
        "Cmd": ["sleep", "60"],
        "Entrypoint": None,
        "Env": [],
        "ExposedPorts": {"80/tcp": {}},
        "Volumes": {"/cache": {}},
        "HostConfig": {
            "Binds": ["/srv:/srv:ro"],
            "NetworkMode": "default",
            "PortBindings": {"80/tcp": [{"HostIp": "", "HostPort": "8080"}]},
            "Tmpfs": {"/run": "ro,size=1m"},
            "PidsLimit": 0,
            "ConsoleSize": [24, 80],
            "LogConfig": {"Type": "", "Config": {}},
        },
        "NetworkingConfig": {"EndpointsConfig": {"default": {}}},
    }
    spec = from_create_body(body, name="/web")
    assert spec.name == "web" and spec.network == "bridge" and spec.command == ("sleep", "60")
    assert spec.ports == (PortBinding(container_port=80, host_port=8080),)
    assert spec.mounts == (
        Mount(type="bind", source="/srv", target="/srv", read_only=True),
        Mount(type="tmpfs", target="/run", read_only=True, options=["size=1m"]),
        Mount(type="volume", target="/cache"),
    )
    assert spec.resources.pids is None and spec.log_driver == "json-file"


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"Image": ""}, "Image: a container needs an image"),
        ({"Cmd": 5}, "Cmd: expected an array of strings"),
        (
            {"HostConfig": {"PortBindings": {"80/tcp": [{"HostPort": "x"}]}}},
            r"HostConfig.PortBindings\[80/tcp\].HostPort",
        ),
        ({"HostConfig": {"PortBindings": {"eighty": []}}}, "HostConfig.PortBindings: invalid port 'eighty'"),
        ({"HostConfig": {"Memory": "1g"}}, "HostConfig.Memory: expected an integer"),
        ({"HostConfig": {"PidMode": "host"}}, "HostConfig.PidMode: 'host' is not supported"),
        ({"HostConfig": {"UsernsMode": "auto"}}, "HostConfig.UsernsMode: 'auto' is not supported"),
        ({"HostConfig": {"Mounts": [{"Type": "npipe", "Target": "/x"}]}}, r"HostConfig.Mounts\[0\].Type"),
        ({"HostConfig": {"ExtraHosts": ["nohost"]}}, "HostConfig.ExtraHosts: invalid entry 'nohost'"),
        ({"StopTimeout": "10"}, "StopTimeout: expected an integer"),
        ({"HostConfig": {"Tmpfs": {"/run": 1}}}, r"HostConfig.Tmpfs\[/run\]"),
    ],
)
def test_bad_bodies_name_the_field(patch: dict[str, Any], message: str) -> None:
    body = {"Image": "busybox", **patch}
    with pytest.raises(InvalidArgument, match=message):
        from_create_body(body)


def test_keys_are_case_insensitive_as_in_go() -> None:
    spec = from_create_body({"image": "busybox", "hostconfig": {"readonlyrootfs": True}, "TTY": True})
    assert spec.read_only and spec.tty


def test_name_follows_dockerd() -> None:
    assert from_create_body({"Image": "busybox"}, name="/ab").name == "ab"
    with pytest.raises(InvalidArgument, match="invalid container name 'a'"):
        from_create_body({"Image": "busybox"}, name="a")


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ([], ([], False)),
        (["no-new-privileges"], ([], True)),
        (["no-new-privileges=true", "seccomp=unconfined"], (["seccomp=unconfined"], True)),
        (["no-new-privileges", "no-new-privileges:false"], ([], False)),
        (["no-new-privileges=false", "no-new-privileges=1"], ([], True)),
    ],
)
def test_no_new_privileges_last_wins(options: list[str], expected: tuple[list[str], bool]) -> None:
    assert split_no_new_privileges(options) == expected


def test_security_opt_travels_verbatim() -> None:
    spec = ContainerSpec(image="busybox", security_opt=["seccomp=/etc/profile.json"], no_new_privileges=True)
    assert to_create_body(spec)["HostConfig"]["SecurityOpt"] == [
        "seccomp=/etc/profile.json",
        "no-new-privileges",
    ]
    assert from_create_body(to_create_body(spec)) == spec
    assert attrs.evolve(spec, no_new_privileges=False) != spec


def test_restart_policy_and_healthcheck_both_ways() -> None:
    """docker-py's body for ``restart_policy={"Name": "on-failure", "MaximumRetryCount": 2}`` and
    a health check in nanoseconds reads as the spec, and goes back the same."""
    body: dict[str, Any] = {
        "Image": "busybox",
        "Healthcheck": {"Test": ["CMD-SHELL", "test -f /ok"], "Interval": 500_000_000, "Retries": 2},
        "HostConfig": {"RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 2}},
    }
    spec = from_create_body(body)
    assert spec.restart_policy == RestartPolicy(name="on-failure", maximum_retry_count=2)
    assert spec.healthcheck == Healthcheck(test=["CMD-SHELL", "test -f /ok"], interval=0.5, retries=2)
    wire = to_create_body(spec)
    assert wire["Healthcheck"] == body["Healthcheck"]
    assert wire["HostConfig"]["RestartPolicy"] == body["HostConfig"]["RestartPolicy"]
    # docker before v25 sent an empty name for "no"
    assert from_create_body(
        {"Image": "busybox", "HostConfig": {"RestartPolicy": {"Name": ""}}}
    ).restart_policy == (RestartPolicy())


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"HostConfig": {"RestartPolicy": {"Name": "sometimes"}}}, "unknown policy 'sometimes'"),
        (
            {"HostConfig": {"RestartPolicy": {"Name": "always", "MaximumRetryCount": 3}}},
            "maximum retry count can only be used with 'on-failure'",
        ),
        (
            {"HostConfig": {"RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": -1}}},
            "cannot be negative",
        ),
        (
            {"HostConfig": {"AutoRemove": True, "RestartPolicy": {"Name": "always"}}},
            "can't create 'AutoRemove' container with restart policy",
        ),
        ({"Healthcheck": {"Test": ["RUN", "true"]}}, "Healthcheck: healthcheck test must start with NONE"),
        ({"Healthcheck": {"Test": ["CMD"]}}, "needs a command"),
        (
            {"Healthcheck": {"Test": ["CMD", "true"], "Interval": 10}},
            "Interval in Healthcheck cannot be less",
        ),
        (
            {"Healthcheck": {"Test": ["CMD", "true"], "Retries": -1}},
            "Retries in Healthcheck cannot be negative",
        ),
        ({"Healthcheck": {"Test": ["CMD", "true"], "Interval": "1s"}}, "nanoseconds"),
    ],
)
def test_bad_restart_policies_and_healthchecks(patch: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        from_create_body({"Image": "busybox", **patch})


def test_docker_py_keywords() -> None:
    """``containers.run(..., restart_policy={...}, healthcheck={...})`` as docker-py users type it."""
    spec = ContainerSpec.from_kwargs(
        image="busybox",
        restart_policy={"Name": "unless-stopped"},
        healthcheck={"test": "wget -q localhost", "interval": 2_000_000_000, "start_period": 10**9},
    )
    assert spec.restart_policy.name == "unless-stopped"
    assert spec.healthcheck == Healthcheck(
        test=["CMD-SHELL", "wget -q localhost"], interval=2, start_period=1
    )
    assert ContainerSpec.from_json(spec.to_json()) == spec
    assert RestartPolicy.parse("on-failure:5") == RestartPolicy(name="on-failure", maximum_retry_count=5)
    with pytest.raises(InvalidArgument, match="only on-failure takes a count"):
        RestartPolicy.parse("always:2")


def test_image_healthcheck_fills_what_the_container_leaves_unset() -> None:
    image = Healthcheck(test=["CMD", "check"], interval=5, retries=4)
    assert Healthcheck(timeout=2).merged(image) == Healthcheck(
        test=["CMD", "check"], interval=5, timeout=2, retries=4
    )
    assert Healthcheck(test=["NONE"]).merged(image) is None
    assert Healthcheck(test=["CMD", "mine"], interval=1).merged(image) == Healthcheck(
        test=["CMD", "mine"], interval=1, retries=4
    )
    assert Healthcheck(test=["CMD", "x"]).effective() == Healthcheck(
        test=["CMD", "x"], interval=30, timeout=30, start_interval=5, retries=3
    )
