"""config.json generation: docker's defaults, checked against the OCI runtime-spec schema."""

from __future__ import annotations

import base64
import json
import resource
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

from containerkit.errors import InvalidArgument, NotFound
from containerkit.linux import seccomp
from containerkit.linux.capabilities import known_capabilities
from containerkit.runtime.bundle import (
    DEFAULT_CAPABILITIES,
    DEFAULT_PATH,
    INIT_ANNOTATION,
    MASKED_PATHS,
    READONLY_PATHS,
    SECCOMP_PROGRAM_ANNOTATION,
    ResolvedUser,
    build_oci_config,
    resolve_user,
    write_config,
)
from containerkit.spec import ContainerSpec, ImageConfig, Mount

SCHEMA_DIR = Path("/work/shared/specs/oci-runtime-spec")


@pytest.fixture(scope="module")
def validator() -> jsonschema.protocols.Validator:
    if not (SCHEMA_DIR / "config-schema.json").exists():
        pytest.skip("OCI runtime-spec schema not available")
    resources = [
        (p.name, Resource.from_contents(json.loads(p.read_text()), default_specification=DRAFT4))
        for p in SCHEMA_DIR.glob("*.json")
    ]
    registry: Registry[Any] = Registry().with_resources(resources)
    schema = json.loads((SCHEMA_DIR / "config-schema.json").read_text())
    return jsonschema.Draft4Validator(schema, registry=registry)


def build(spec: ContainerSpec | None = None, image: ImageConfig | None = None, **kw: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "user": (0, 0, []),
        "hostname": "abc123",
        "etc_files": {},
        "mounts": [],
        "cgroups_path": "/containerkit/abc123",
    }
    args.update(kw)
    return build_oci_config(
        spec or ContainerSpec(image="busybox", command=["true"]), image or ImageConfig(), **args
    )


def test_full_config_validates_against_the_oci_schema(validator: jsonschema.protocols.Validator) -> None:
    spec = ContainerSpec(
        image="busybox",
        command=["sh"],
        tty=True,
        read_only=True,
        cap_add=["NET_ADMIN"],
        mounts=[Mount(type="tmpfs", target="/run", options=["size=1m"])],
        resources={"memory": "64m", "cpus": 0.5, "cpu_shares": 512, "pids": 100},
        no_new_privileges=True,
        init=True,
    )
    config = build(
        spec,
        etc_files={"/etc/hosts": "/var/lib/ck/hosts", "/etc/resolv.conf": "/var/lib/ck/resolv.conf"},
        mounts=[{"destination": "/data", "type": "bind", "source": "/srv/vol", "options": ["rbind", "ro"]}],
        netns_path="/run/netns/ck-1",
        annotations={"org.example": "1"},
        user=ResolvedUser(uid=1000, gid=1000, additional_gids=(2000,), home="/home/app"),
    )
    validator.validate(config)
    assert config["root"] == {"path": "rootfs", "readonly": True}
    assert config["process"]["terminal"] is True and config["process"]["noNewPrivileges"] is True
    assert config["process"]["user"] == {"uid": 1000, "gid": 1000, "additionalGids": [2000]}
    assert {"type": "network", "path": "/run/netns/ck-1"} in config["linux"]["namespaces"]
    assert [n["type"] for n in config["linux"]["namespaces"]] == [
        "pid",
        "mount",
        "uts",
        "ipc",
        "network",
        "cgroup",
    ]
    notes = config["annotations"]
    # the seccomp program the create compiled, for the built-in runtime to load as is
    program = seccomp.program(config["linux"]["seccomp"])
    assert base64.b64decode(notes.pop(SECCOMP_PROGRAM_ANNOTATION)) == program
    assert notes == {"org.example": "1", INIT_ANNOTATION: "true"}
    resources = config["linux"]["resources"]
    assert resources["memory"] == {"limit": 64 << 20, "swap": 128 << 20}
    assert resources["cpu"] == {"quota": 50000, "period": 100000, "shares": 512}
    assert resources["pids"] == {"limit": 100}
    assert config["linux"]["cgroupsPath"] == "/containerkit/abc123"
    assert "HOME=/home/app" in config["process"]["env"] and "TERM=xterm" in config["process"]["env"]


def test_default_config_validates(validator: jsonschema.protocols.Validator) -> None:
    config = build()
    validator.validate(config)
    config["linux"]["namespaces"].append({"type": "bogus"})  # the schema really is being applied
    with pytest.raises(jsonschema.ValidationError):
        validator.validate(config)


@pytest.mark.parametrize(
    ("entrypoint", "command", "image", "expected"),
    [
        (None, None, ImageConfig(entrypoint=["/ep"], cmd=["a", "b"]), ["/ep", "a", "b"]),
        (None, ["x"], ImageConfig(entrypoint=["/ep"], cmd=["a"]), ["/ep", "x"]),
        (["/new"], None, ImageConfig(entrypoint=["/ep"], cmd=["a"]), ["/new"]),
        (["/new"], ["y"], ImageConfig(entrypoint=["/ep"], cmd=["a"]), ["/new", "y"]),
        (None, None, ImageConfig(cmd=["sh"]), ["sh"]),
        ([], ["ls"], ImageConfig(entrypoint=["/ep"]), ["ls"]),
    ],
)
def test_args_follow_docker(
    entrypoint: list[str] | None, command: list[str] | None, image: ImageConfig, expected: list[str]
) -> None:
    spec = ContainerSpec(image="x", entrypoint=entrypoint, command=command)
    assert build(spec, image)["process"]["args"] == expected


def test_no_command_is_invalid() -> None:
    with pytest.raises(InvalidArgument, match="no command specified"):
        build(ContainerSpec(image="x"), ImageConfig())


def test_env_order_defaults_and_overrides() -> None:
    image = ImageConfig(env=["PATH=/opt/bin", "A=1", "B=2"], cmd=["sh"])
    env = build(ContainerSpec(image="x", env={"B": "3", "C": "4"}), image)["process"]["env"]
    assert env == ["PATH=/opt/bin", "HOSTNAME=abc123", "A=1", "B=3", "C=4", "HOME=/"]
    assert f"PATH={DEFAULT_PATH}" in build()["process"]["env"]
    home_given = build(ContainerSpec(image="x", command=["sh"], env={"HOME": "/h"}))["process"]["env"]
    assert home_given.count("HOME=/h") == 1 and "HOME=/" not in home_given


def test_workdir_precedence() -> None:
    assert build()["process"]["cwd"] == "/"
    image = ImageConfig(working_dir="/img", cmd=["sh"])
    assert build(ContainerSpec(image="x"), image)["process"]["cwd"] == "/img"
    assert build(ContainerSpec(image="x", workdir="/mine"), image)["process"]["cwd"] == "/mine"


def caps_of(**spec: Any) -> list[str]:
    return build(ContainerSpec(image="x", command=["sh"], **spec))["process"]["capabilities"]["effective"]


def test_capabilities_like_docker() -> None:
    assert caps_of() == list(DEFAULT_CAPABILITIES)
    assert "CAP_NET_ADMIN" in caps_of(cap_add=["net_admin"])
    assert "CAP_CHOWN" not in caps_of(cap_drop=["chown"])
    assert caps_of(cap_drop=["ALL"], cap_add=["CAP_KILL"]) == ["CAP_KILL"]
    assert caps_of(cap_add=["ALL"], cap_drop=["SYS_ADMIN"]) == [
        c for c in known_capabilities() if c != "CAP_SYS_ADMIN"
    ]
    assert caps_of(privileged=True) == known_capabilities()
    with pytest.raises(InvalidArgument, match='unknown capability: "CAP_BOGUS"'):
        caps_of(cap_add=["bogus"])


def test_masked_readonly_paths_and_privileged() -> None:
    linux = build()["linux"]
    assert linux["maskedPaths"] == list(MASKED_PATHS) and linux["readonlyPaths"] == list(READONLY_PATHS)
    assert "/proc/kcore" in MASKED_PATHS and "/proc/sys" in READONLY_PATHS
    privileged = build(ContainerSpec(image="x", command=["sh"], privileged=True))
    assert privileged["linux"]["maskedPaths"] == [] and privileged["linux"]["readonlyPaths"] == []
    sys_mount = next(m for m in privileged["mounts"] if m["destination"] == "/sys")
    assert "ro" not in sys_mount["options"]


def test_mounts_defaults_then_etc_files_then_user_mounts() -> None:
    spec = ContainerSpec(
        image="x", command=["sh"], mounts=[Mount(type="tmpfs", target="/run/x", read_only=True)]
    )
    config = build(
        spec,
        etc_files={"/etc/hostname": "/h/hostname"},
        mounts=[{"destination": "/data", "type": "bind", "source": "/v", "options": ["rbind"]}],
    )
    destinations = [m["destination"] for m in config["mounts"]]
    assert destinations[:7] == [
        "/proc",
        "/dev",
        "/dev/pts",
        "/sys",
        "/sys/fs/cgroup",
        "/dev/mqueue",
        "/dev/shm",
    ]
    assert destinations[7:] == ["/data", "/etc/hostname", "/run/x"]
    pts = config["mounts"][2]
    assert {"newinstance", "ptmxmode=0666", "gid=5"} <= set(pts["options"])
    assert "ro" in config["mounts"][-1]["options"] and config["mounts"][-1]["type"] == "tmpfs"
    assert {d["path"] for d in config["linux"]["devices"]} == {
        "/dev/null",
        "/dev/zero",
        "/dev/full",
        "/dev/random",
        "/dev/urandom",
        "/dev/tty",
    }
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    expected = 1048576 if hard == resource.RLIM_INFINITY else min(1048576, hard)
    assert config["process"]["rlimits"] == [{"type": "RLIMIT_NOFILE", "hard": expected, "soft": expected}]


def test_user_mount_replaces_default_at_same_destination() -> None:
    config = build(mounts=[{"destination": "/dev/shm", "type": "bind", "source": "/s", "options": ["rbind"]}])
    shm = [m for m in config["mounts"] if m["destination"] == "/dev/shm"]
    assert shm == [{"destination": "/dev/shm", "type": "bind", "source": "/s", "options": ["rbind"]}]


def test_write_config_round_trips(tmp_path: Path) -> None:
    config = build()
    path = write_config(tmp_path, config)
    assert json.loads(path.read_text()) == config and not list(tmp_path.glob(".*"))


PASSWD = b"root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n"
GROUP = b"root:x:0:\napp:x:1000:\nextra:x:2000:app\nother:x:3000:root,app\n"


def reader(path: str) -> bytes | None:
    return {"/etc/passwd": PASSWD, "/etc/group": GROUP}.get(path)


@pytest.mark.parametrize(
    ("user", "expected"),
    [
        ("", ResolvedUser(0, 0, (3000,), "/root")),
        ("app", ResolvedUser(1000, 1000, (2000, 3000), "/home/app")),
        ("1000", ResolvedUser(1000, 1000, (2000, 3000), "/home/app")),
        ("1000:1000", ResolvedUser(1000, 1000, (), "/home/app")),
        ("app:extra", ResolvedUser(1000, 2000, (), "/home/app")),
        ("1000:other", ResolvedUser(1000, 3000, (), "/home/app")),
        ("4242", ResolvedUser(4242, 0, (), "/")),
        ("4242:77", ResolvedUser(4242, 77, (), "/")),
    ],
)
def test_resolve_user(user: str, expected: ResolvedUser) -> None:
    assert resolve_user(user, reader) == expected


def test_resolve_unknown_names() -> None:
    with pytest.raises(NotFound, match="unable to find user nobody: no matching entries in passwd file"):
        resolve_user("nobody", reader)
    with pytest.raises(NotFound, match="unable to find group nogroup"):
        resolve_user("app:nogroup", reader)
    assert resolve_user("0", lambda _p: None) == ResolvedUser(0, 0, (), "/")
