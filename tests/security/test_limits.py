"""Finding 10: default limits. A pids limit for every container (Podman's 2048 unless the spec or
the engine says otherwise), and json-file logs that rotate instead of filling the disk."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

import containerkit as ck

from ..daemon.conftest import IMAGE as DAEMON_IMAGE
from ..daemon.conftest import Daemon, serve
from .conftest import IMAGE

# pid 1 (sh) runs an inner sh that forks ``sleep`` until a fork fails, which ends a
# non-interactive ash; pid 1 then counts the processes left in the container's pid namespace
# with builtins only (a glob over /proc), since no fork is left to spare at the limit.
FORK_UNTIL_FAILURE = (
    "sh -c 'n=0; while [ $n -lt {cap} ]; do sleep 120 & n=$((n+1)); done' 2>/dev/null; "
    "set -- /proc/[0-9]*; echo count=$#"
)


def _fork_count(engine: ck.Engine, runtime: str, cap: int, **fields: object) -> int:
    c = engine.containers.run(
        IMAGE, ["sh", "-c", FORK_UNTIL_FAILURE.format(cap=cap)], runtime=runtime, **fields
    )
    try:
        assert c.wait(timeout=120) == 0
        out = (c.logs() or b"").decode()
    finally:
        c.remove(force=True)  # the sleeps die with the container's pid namespace
    match = re.search(r"count=(\d+)", out)
    assert match, out
    return int(match.group(1))


def _pids_limit(engine: ck.Engine, runtime: str, **fields: object) -> int | None:
    c = engine.containers.run(IMAGE, ["sleep", "60"], runtime=runtime, **fields)
    try:
        return c.stats().pids_limit
    finally:
        c.remove(force=True)


def test_default_container_cannot_fork_past_2048(engine: ck.Engine, runtime: str) -> None:
    # without a limit all 3000 sleeps start (3001 processes); at the limit, pid 1, the inner
    # sh and the sleeps make 2048, and the inner sh is gone when pid 1 counts
    assert 2040 <= _fork_count(engine, runtime, cap=3000) <= 2048


def test_pids_limit_settings(engine: ck.Engine, runtime: str) -> None:
    assert _pids_limit(engine, runtime) == 2048
    assert _pids_limit(engine, runtime, resources=ck.Resources(pids=100)) == 100
    assert _pids_limit(engine, runtime, resources=ck.Resources(pids=-1)) is None


@pytest.fixture
def small_default_engine(security_root: Path, engine: ck.Engine) -> Iterator[ck.Engine]:
    """A second engine on the same root whose default pids limit is 64 (``engine`` first: it
    imports the test image into that root)."""
    with ck.Engine(root=security_root, default_pids_limit=64, forkserver=False) as eng:
        yield eng


def test_engine_default_pids_limit(small_default_engine: ck.Engine, runtime: str) -> None:
    assert _pids_limit(small_default_engine, runtime) == 64
    assert 56 <= _fork_count(small_default_engine, runtime, cap=200) <= 64
    assert _pids_limit(small_default_engine, runtime, resources=ck.Resources(pids=500)) == 500


def test_pids_validation() -> None:
    for bad in (0, -2, True, "10"):
        with pytest.raises(ck.errors.InvalidArgument, match="pids"):
            ck.Resources(pids=bad)  # type: ignore[arg-type]
    assert ck.Resources(pids=-1).effective(2048).pids is None
    assert ck.Resources().effective(2048).pids == 2048
    assert ck.Resources().effective(None).pids is None
    assert ck.Resources(pids=7).effective(2048).pids == 7
    with pytest.raises(ck.errors.InvalidArgument, match="default_pids_limit"):
        ck.Engine(root="/nonexistent-never-made", default_pids_limit=-5)


# -- logs ----------------------------------------------------------------------------------

PAD = "x" * 90
TEN_MB = f"seq 1 100000 | sed 's/$/ {PAD}/'"  # 100,000 numbered lines, ~10 MB


def _log_bytes(state_dir: Path) -> int:
    return sum(p.stat().st_size for p in state_dir.glob("container.log*"))


def test_json_file_log_rotates(engine: ck.Engine, runtime: str) -> None:
    c = engine.containers.run(
        IMAGE, ["sh", "-c", TEN_MB], runtime=runtime, log_opts={"max-size": "1m", "max-file": "3"}
    )
    try:
        assert c.wait(timeout=120) == 0
        names = sorted(p.name for p in c.state_dir.glob("container.log*"))
        assert names == ["container.log", "container.log.1", "container.log.2"]
        assert _log_bytes(c.state_dir) <= 3 * (1 << 20)
        numbers = [int(line.split()[0]) for line in c.logs().decode().splitlines()]
        # the newest lines, in order, none missing between the rotated files
        assert numbers == list(range(100001 - len(numbers), 100001))
        assert len(numbers) > 2 * (1 << 20) // 200
        assert c.logs(tail=3).decode().split()[::2] == ["99998", "99999", "100000"]
    finally:
        c.remove(force=True)


def test_follow_across_rotation(engine: ck.Engine, runtime: str) -> None:
    script = (
        f"sleep 0.3; for b in $(seq 0 29); do for i in $(seq 1 100); do echo $((b*100+i)) {PAD}; done; "
        "sleep 0.05; done"
    )
    c = engine.containers.run(
        IMAGE, ["sh", "-c", script], runtime=runtime, log_opts={"max-size": "50k", "max-file": "5"}
    )
    try:
        got = b"".join(c.logs(follow=True)).decode()
        assert c.wait(timeout=60) == 0
        assert (c.state_dir / "container.log.4").exists()  # it rotated (more than once)
        assert [int(line.split()[0]) for line in got.splitlines()] == list(range(1, 3001))
    finally:
        c.remove(force=True)


def test_none_driver_keeps_no_log(engine: ck.Engine, runtime: str) -> None:
    c = engine.containers.run(IMAGE, ["echo", "not kept"], runtime=runtime, log_driver="none")
    try:
        assert c.wait(timeout=60) == 0
        assert list(c.state_dir.glob("container.log*")) == []
        with pytest.raises(
            ck.errors.NotSupported, match="configured logging driver does not support reading"
        ):
            c.logs()
    finally:
        c.remove(force=True)


def test_unknown_log_driver_is_refused() -> None:
    with pytest.raises(ck.errors.InvalidArgument, match="logger: no log driver named 'syslog' is registered"):
        ck.ContainerSpec(image=IMAGE, log_driver="syslog")


# -- through containerkitd (docker's API) ----------------------------------------------------


@pytest.fixture(scope="module")
def ckd(tmp_path_factory: pytest.TempPathFactory, busybox_rootfs_tar: Path) -> Iterator[Daemon]:
    with serve(tmp_path_factory.mktemp("limits-ckd"), busybox_rootfs_tar) as running:
        yield running


def _call(daemon: Daemon, method: str, path: str, body: object = None) -> tuple[int, object]:
    data = None if body is None else json.dumps(body).encode()
    status, _headers, raw = daemon.request(method, path, data, {"Content-Type": "application/json"})
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, raw


def _create(daemon: Daemon, host_config: dict[str, object], cmd: list[str]) -> str:
    status, body = _call(
        daemon, "POST", "/containers/create", {"Image": DAEMON_IMAGE, "Cmd": cmd, "HostConfig": host_config}
    )
    assert status == 201, body
    assert isinstance(body, dict)
    return str(body["Id"])


def test_daemon_refuses_an_unknown_log_driver(ckd: Daemon) -> None:
    status, body = _call(
        ckd,
        "POST",
        "/containers/create",
        {"Image": DAEMON_IMAGE, "HostConfig": {"LogConfig": {"Type": "syslog", "Config": {}}}},
    )
    assert status == 400
    assert isinstance(body, dict) and body["message"] == "logger: no log driver named 'syslog' is registered"


def test_daemon_log_config_and_none_driver(ckd: Daemon) -> None:
    rotated = _create(ckd, {"LogConfig": {"Type": "json-file", "Config": {"max-size": "1m"}}}, ["true"])
    none = _create(ckd, {"LogConfig": {"Type": "none", "Config": {}}}, ["echo", "hi"])
    try:
        status, info = _call(ckd, "GET", f"/containers/{rotated}/json")
        assert status == 200 and isinstance(info, dict)
        assert info["HostConfig"]["LogConfig"] == {"Type": "json-file", "Config": {"max-size": "1m"}}
        assert _call(ckd, "POST", f"/containers/{none}/start")[0] == 204
        assert _call(ckd, "POST", f"/containers/{none}/wait")[0] == 200
        status, body = _call(ckd, "GET", f"/containers/{none}/logs?stdout=1&stderr=1")
        assert status == 501
        assert (
            isinstance(body, dict) and body["message"] == "configured logging driver does not support reading"
        )
    finally:
        for cid in (rotated, none):
            _call(ckd, "DELETE", f"/containers/{cid}?force=1")


def test_daemon_pids_limit(ckd: Daemon) -> None:
    """Absent and 0 (what the docker CLI sends without --pids-limit) take the default."""
    bodies: list[dict[str, object]] = [
        {},
        {"PidsLimit": 0},
        {"PidsLimit": None},
        {"PidsLimit": -1},
        {"PidsLimit": 77},
    ]
    ids = [_create(ckd, body, ["sleep", "60"]) for body in bodies]
    try:
        limits = []
        for cid in ids:
            assert _call(ckd, "POST", f"/containers/{cid}/start")[0] == 204
            status, stats = _call(ckd, "GET", f"/containers/{cid}/stats?stream=0")
            assert status == 200 and isinstance(stats, dict)
            limits.append(stats["pids_stats"].get("limit"))
        assert limits == [2048, 2048, 2048, None, 77]
    finally:
        for cid in ids:
            _call(ckd, "DELETE", f"/containers/{cid}?force=1")


def test_client_log_config_round_trip(ckd: Daemon) -> None:
    """The Client sends LogConfig and maps the daemon's 501 back to NotSupported."""
    with ck.Client(ckd.url) as client:
        c = client.containers.run(DAEMON_IMAGE, ["echo", "hi"], log_driver="none")
        try:
            assert c.wait(timeout=60) == 0
            assert (c.spec.log_driver, c.spec.log_opts) == ("none", ())
            with pytest.raises(
                ck.errors.NotSupported, match="configured logging driver does not support reading"
            ):
                c.logs()
        finally:
            c.remove(force=True)
        c = client.containers.run(DAEMON_IMAGE, ["echo", "hi"], log_opts={"max-size": "10k", "max-file": "2"})
        try:
            assert c.wait(timeout=60) == 0
            assert c.spec.log_opts_dict == {"max-size": "10k", "max-file": "2"}
            assert c.logs() == b"hi\n"
        finally:
            c.remove(force=True)


def test_daemon_config_default_pids_limit(tmp_path: Path) -> None:
    from containerkit.daemon.config import load_config

    assert load_config([]).default_pids_limit == 2048
    assert load_config(["--default-pids-limit", "-1"]).default_pids_limit == -1
    toml = tmp_path / "daemon.toml"
    toml.write_text("default-pids-limit = 100\n")
    assert load_config(["--config", str(toml)]).default_pids_limit == 100
    toml.write_text('default-pids-limit = "lots"\n')
    with pytest.raises(ck.errors.InvalidArgument, match="default-pids-limit"):
        load_config(["--config", str(toml)])


def test_docker_cli_container_gets_the_default(ckd: Daemon, tmp_path: Path) -> None:
    """The docker CLI sends PidsLimit 0 unless --pids-limit is given: the default still holds."""
    docker = shutil.which("docker") or (
        "/usr/local/bin/docker" if os.path.exists("/usr/local/bin/docker") else None
    )
    if docker is None:
        pytest.skip("the docker CLI is not installed")
    env = {**os.environ, "DOCKER_HOST": ckd.url, "DOCKER_CONFIG": str(tmp_path)}
    read = ["sh", "-c", "cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max"]
    limits = []
    for extra in ([], ["--pids-limit", "-1"], ["--pids-limit", "99"]):
        result = subprocess.run(
            [docker, "run", "--rm", "--network", "none", *extra, DAEMON_IMAGE, *read],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        limits.append(result.stdout.strip())
    assert limits == ["2048", "max", "99"]
