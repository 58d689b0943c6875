"""Validation in spec.py: bad input is refused with a message naming the field and value."""

import pytest

import containerkit as ck
from containerkit.errors import InvalidArgument
from containerkit.spec import Mount, parse_bytes, parse_ports, parse_signal


@pytest.mark.parametrize(
    ("text", "expected"),
    [("64m", 64 << 20), ("1g", 1 << 30), ("512k", 512 << 10), ("100", 100), ("1.5g", int(1.5 * (1 << 30)))],
)
def test_parse_bytes(text: str, expected: int) -> None:
    assert parse_bytes(text) == expected


def test_parse_bytes_names_the_field() -> None:
    with pytest.raises(InvalidArgument, match=r"memory.*'lots'"):
        ck.Resources(memory="lots")


def test_memory_minimum() -> None:
    with pytest.raises(InvalidArgument, match="minimum is 6m"):
        ck.Resources(memory="1m")


@pytest.mark.parametrize(
    ("value", "number"), [("SIGTERM", 15), ("TERM", 15), ("9", 9), (2, 2), ("sigkill", 9)]
)
def test_parse_signal(value: object, number: int) -> None:
    assert parse_signal(value) == number  # type: ignore[arg-type]


def test_unknown_signal() -> None:
    with pytest.raises(InvalidArgument, match="SIGNOPE"):
        parse_signal("SIGNOPE")


def test_env_forms_and_last_wins() -> None:
    spec = ck.ContainerSpec(image="busybox", env=["A=1", "B=2", "A=3"])
    assert spec.env_dict == {"A": "3", "B": "2"}
    assert ck.ContainerSpec(image="busybox", env={"A": "1"}).env == (("A", "1"),)
    with pytest.raises(InvalidArgument, match="no '='"):
        ck.ContainerSpec(image="busybox", env=["JUSTNAME"])


def test_command_must_be_a_list() -> None:
    with pytest.raises(InvalidArgument, match="got the string"):
        ck.ContainerSpec(image="busybox", command="echo hi")  # type: ignore[arg-type]


def test_bad_name_and_workdir() -> None:
    with pytest.raises(InvalidArgument, match="invalid container name '-x'"):
        ck.ContainerSpec(image="busybox", name="-x")
    with pytest.raises(InvalidArgument, match="workdir must be an absolute path"):
        ck.ContainerSpec(image="busybox", workdir="tmp")


def test_mount_parse() -> None:
    assert Mount.parse("/host:/ctr:ro") == Mount(type="bind", source="/host", target="/ctr", read_only=True)
    assert Mount.parse("data:/var/lib") == Mount(type="volume", source="data", target="/var/lib")
    with pytest.raises(InvalidArgument, match="absolute"):
        Mount.parse("/host:relative")


def test_ports_docker_py_shape() -> None:
    bindings = parse_ports({"80/tcp": 8080, "53/udp": None, "9000": ("127.0.0.1", 0)})
    assert [(b.key, b.host_ip, b.host_port) for b in bindings] == [
        ("80/tcp", "0.0.0.0", 8080),
        ("53/udp", "0.0.0.0", 0),
        ("9000/tcp", "127.0.0.1", 0),
    ]
    with pytest.raises(InvalidArgument, match="invalid protocol"):
        parse_ports({"80/sctp": 1})
    with pytest.raises(InvalidArgument, match="out of range"):
        parse_ports({"80": 70000})


def test_spec_json_round_trip() -> None:
    spec = ck.ContainerSpec(
        image="busybox",
        command=["sh", "-c", "echo hi"],
        env={"A": "1"},
        resources=ck.Resources(memory="64m", cpus=0.5, pids=100),
        mounts=["/tmp:/x:ro", ck.Mount(type="tmpfs", target="/run")],
        ports={"80/tcp": 8080},
        labels={"b": "1", "a": "2"},
        cap_add=["NET_ADMIN"],
    )
    assert ck.ContainerSpec.from_json(spec.to_json()) == spec


def test_resources_validation() -> None:
    with pytest.raises(InvalidArgument, match="cpus"):
        ck.Resources(cpus=-1)
    with pytest.raises(InvalidArgument, match="pids"):
        ck.Resources(pids=0)
    with pytest.raises(InvalidArgument, match="cpu_shares"):
        ck.Resources(cpu_shares=1)


def test_image_config_from_docker_changes() -> None:
    config = ck.ImageConfig.from_changes(
        [
            'CMD ["sh", "-c", "echo hi"]',
            "ENTRYPOINT /bin/run",
            "ENV A=1 B='two words'",
            "EXPOSE 80 53/udp",
            'VOLUME ["/data"]',
            "LABEL org.example=yes",
            "WORKDIR /srv",
            "USER app",
            "STOPSIGNAL SIGINT",
        ]
    )
    assert config.cmd == ("sh", "-c", "echo hi")
    assert config.entrypoint == ("/bin/sh", "-c", "/bin/run")
    assert config.env == ("A=1", "B=two words")
    assert config.exposed_ports == ("53/udp", "80/tcp")
    assert config.volumes == ("/data",)
    assert dict(config.labels) == {"org.example": "yes"}
    assert (config.working_dir, config.user, config.stop_signal) == ("/srv", "app", "SIGINT")
    assert ck.ImageConfig.from_changes(config.to_changes()) == config


@pytest.mark.parametrize("change", ["FROM busybox", "CMD", 'CMD ["unterminated'])
def test_bad_changes_are_named(change: str) -> None:
    with pytest.raises(InvalidArgument, match="change"):
        ck.ImageConfig.from_changes([change])


def test_one_rule_names_volumes_and_networks() -> None:
    from containerkit.spec import check_object_name

    assert check_object_name("volume", "a") == "a"  # one character is fine, unlike a container's
    for kind, bad in (("volume", "-x"), ("network", "a b"), ("volume", "")):
        with pytest.raises(ck.InvalidArgument, match=f"invalid {kind} name"):
            check_object_name(kind, bad)
    with pytest.raises(ck.InvalidArgument, match=r"invalid volume name '\.\./x'"):
        ck.Mount(type="volume", source="../x", target="/data")
