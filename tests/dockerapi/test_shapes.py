"""Inspect and list shapes against the Docker Engine API v1.50 definitions, and read back."""

from __future__ import annotations

import datetime as dt

import attrs
import jsonschema
import pytest

from containerkit.dockerapi import (
    container_inspect,
    container_summary,
    image_from_wire,
    image_inspect,
    image_summary,
    network_inspect,
    spec_from_inspect,
    to_create_body,
    volume_from_wire,
    volume_json,
)
from containerkit.dockerapi.containers import ContainerView, health_from_inspect
from containerkit.spec import (
    ContainerSpec,
    Health,
    Healthcheck,
    HealthResult,
    Image,
    ImageConfig,
    Mount,
    NetworkEndpoint,
    RestartPolicy,
    Volume,
)
from tests.dockerapi import openapi

pytestmark = pytest.mark.skipif(not openapi.available(), reason=f"{openapi.SPEC} is missing")

NOW = dt.datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=dt.UTC)
SPEC = ContainerSpec(
    image="busybox",
    name="web",
    command=["httpd", "-f"],
    env={"A": "1"},
    labels={"team": "a"},
    mounts=[
        Mount(type="bind", source="/srv", target="/srv", read_only=True),
        Mount(type="volume", source="data", target="/data"),
        Mount(type="tmpfs", target="/run", options=["size=1m"]),
    ],
    ports=["127.0.0.1:8080:80", "53/udp"],
    resources={"memory": "64m", "cpus": 0.5, "pids": 100},
    no_new_privileges=True,
    network="mynet",
    aliases=["www"],
    runtime="runc",
)
CONFIG = ImageConfig(cmd=["sh"], env=["PATH=/bin", "A=0"], exposed_ports=["80/tcp"], labels={"base": "1"})


@attrs.frozen(kw_only=True)
class View:
    """A container as the engine's handle shows it (the ``ContainerView`` attributes)."""

    id: str = "c0ffee" * 10 + "abcd"
    name: str = "web"
    image: str = "busybox"
    image_id: str = "sha256:" + "ab" * 32
    spec: ContainerSpec = SPEC
    labels: dict[str, str] = attrs.field(factory=lambda: {"base": "1", "team": "a"})
    created: dt.datetime = NOW
    status: str = "running"
    exit_code: int | None = None
    oom_killed: bool = False
    pid: int | None = 4242
    started_at: str | None = "2026-01-02T03:04:06.123456789Z"
    finished_at: str | None = None
    ports: dict[str, list[tuple[str, int]]] = attrs.field(factory=lambda: {"80/tcp": [("127.0.0.1", 8080)]})
    networks: dict[str, NetworkEndpoint] = attrs.field(
        factory=lambda: {
            "mynet": NetworkEndpoint(
                network_id="n" * 64,
                ip="10.9.0.2",
                prefixlen=24,
                gateway="10.9.0.1",
                mac="02:42:0a:09:00:02",
                aliases=["www"],
            )
        }
    )
    ip_address: str = "10.9.0.2"


def _view(**changes: object) -> ContainerView:
    return attrs.evolve(View(), **changes)


@pytest.mark.parametrize(
    "view",
    [
        _view(),
        _view(
            status="exited",
            pid=None,
            exit_code=3,
            finished_at="2026-01-02T03:05:00Z",
            networks={},
            ip_address="",
        ),
    ],
    ids=["running", "exited"],
)
def test_container_inspect_is_a_v150_document(view: ContainerView) -> None:
    document = container_inspect(
        view, args=["httpd", "-f"], image_config=CONFIG, driver="overlay", exec_ids=["e1"]
    )
    openapi.validate(document, "ContainerInspectResponse")
    assert document["Driver"] == document["GraphDriver"]["Name"] == "overlay"
    assert document["Config"]["Env"] == ["PATH=/bin", "A=1"]


def test_container_inspect_reads_back_as_the_spec() -> None:
    """What a client reads from inspect is the spec it created, the daemon's defaults filled in
    (each bind mount once: listing it in Binds beside the sent Mounts read it twice)."""
    body = to_create_body(SPEC)
    kept = {"Config": {k: v for k, v in body.items() if k != "HostConfig"}, "HostConfig": body["HostConfig"]}
    document = container_inspect(
        _view(), args=["httpd", "-f"], image_config=None, driver="overlay", docker=kept
    )
    assert spec_from_inspect(document) == attrs.evolve(SPEC, hostname=_view().id[:12], stop_signal="SIGTERM")


def test_running_ports_and_network() -> None:
    document = container_inspect(_view(), args=[], image_config=CONFIG, driver="overlay")
    settings = document["NetworkSettings"]
    assert settings["Ports"] == {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}], "53/udp": None}
    assert settings["IPAddress"] == "10.9.0.2" and settings["Networks"]["mynet"]["Aliases"] == ["www"]
    assert document["State"]["Pid"] == 4242 and document["State"]["Running"]


def test_container_summary_is_a_v150_document() -> None:
    summary = container_summary(_view(), args=["httpd", "-f"])
    openapi.validate(summary, "ContainerSummary")
    assert summary["Names"] == ["/web"] and summary["Command"] == "httpd -f"
    assert {"PrivatePort": 80, "Type": "tcp", "IP": "127.0.0.1", "PublicPort": 8080} in summary["Ports"]
    assert summary["Status"].startswith("Up ")


def test_a_wrong_shape_fails_the_schema() -> None:
    """The schema check can fail: a state that is not one of docker's is refused."""
    document = container_inspect(_view(), args=[], image_config=None, driver="overlay")
    document["State"]["Status"] = "sleeping"
    with pytest.raises(jsonschema.ValidationError):
        openapi.validate(document, "ContainerInspectResponse")


IMAGE = Image(
    id="sha256:" + "cd" * 32,
    tags=("busybox:latest",),
    digests=("busybox@sha256:" + "ef" * 32,),
    created=NOW,
    size=1234,
    config=CONFIG,
    layers=("sha256:" + "01" * 32,),
)


def test_image_shapes() -> None:
    document = image_inspect(IMAGE, driver="overlay")
    openapi.validate(document, "ImageInspect")
    openapi.validate(image_summary(IMAGE), "ImageSummary")
    assert document["GraphDriver"]["Name"] == "overlay"
    assert image_from_wire(document) == IMAGE


def test_volume_shapes() -> None:
    volume = Volume(
        name="data", mountpoint="/var/lib/x/data", created=NOW.replace(microsecond=0), labels={"a": "b"}
    )
    document = volume_json(volume)
    openapi.validate(document, "Volume")
    assert volume_from_wire(document) == volume


def test_network_shape() -> None:
    @attrs.frozen
    class Net:
        id: str = "n" * 64
        name: str = "mynet"
        created: dt.datetime = NOW
        subnet: str = "10.9.0.0/24"
        gateway: str = "10.9.0.1"
        labels: dict[str, str] = attrs.field(factory=lambda: {"a": "b"})
        containers: tuple[View, ...] = (View(),)

    document = network_inspect(Net())
    openapi.validate(document, "Network")
    assert document["IPAM"]["Config"] == [{"Subnet": "10.9.0.0/24", "Gateway": "10.9.0.1"}]
    assert document["Containers"][View().id]["IPv4Address"] == "10.9.0.2"


def test_health_restart_count_and_policy_in_inspect_and_list() -> None:
    """``State.Health`` (the last results), ``RestartCount``, ``HostConfig.RestartPolicy`` and
    ``Config.Healthcheck`` (the image's filling the container's) as dockerd shows them, read back."""
    spec = attrs.evolve(
        SPEC,
        restart_policy=RestartPolicy(name="on-failure", maximum_retry_count=3),
        healthcheck=Healthcheck(test=["CMD", "true"], interval=2),
    )
    image = attrs.evolve(CONFIG, healthcheck=Healthcheck(test=["CMD", "image"], retries=7))
    health = Health(
        status="healthy",
        failing_streak=0,
        log=[
            HealthResult(start="2026-01-02T03:04:07Z", end="2026-01-02T03:04:08Z", exit_code=0, output="ok\n")
        ],
    )
    view = _view(spec=spec)
    document = container_inspect(
        view, args=["httpd"], image_config=image, driver="overlay", health=health, restart_count=2
    )
    openapi.validate(document, "ContainerInspectResponse")
    assert document["RestartCount"] == 2
    assert document["State"]["Health"] == {
        "Status": "healthy",
        "FailingStreak": 0,
        "Log": [
            {"Start": "2026-01-02T03:04:07Z", "End": "2026-01-02T03:04:08Z", "ExitCode": 0, "Output": "ok\n"}
        ],
    }
    assert document["HostConfig"]["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
    assert document["Config"]["Healthcheck"] == {
        "Test": ["CMD", "true"],
        "Interval": 2_000_000_000,
        "Retries": 7,
    }
    assert health_from_inspect(document) == health
    back = spec_from_inspect(document)
    assert back.restart_policy == spec.restart_policy
    assert back.healthcheck == Healthcheck(test=["CMD", "true"], interval=2, retries=7)
    # without a check, no State.Health, as dockerd
    plain = container_inspect(_view(), args=[], image_config=CONFIG, driver="overlay")
    assert "Health" not in plain["State"] and "Healthcheck" not in plain["Config"]
    assert health_from_inspect(plain) is None

    summary = container_summary(view, args=["httpd"], health=health)
    openapi.validate(summary, "ContainerSummary")
    assert summary["Status"].startswith("Up ") and summary["Status"].endswith(" (healthy)")
    starting = container_summary(view, args=["httpd"], health=attrs.evolve(health, status="starting"))
    assert starting["Status"].endswith(" (health: starting)")
    restarting = container_summary(
        _view(status="restarting", exit_code=1, finished_at="2026-01-02T03:05:00Z"), args=["httpd"]
    )
    assert restarting["Status"].startswith("Restarting (1) ")
