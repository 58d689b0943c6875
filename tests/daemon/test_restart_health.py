"""Restart policies, health checks and auto-remove through containerkitd, as docker's clients use
them (docker-py, testcontainers' health wait, the docker CLI), and across a daemon restart.

The shim's exit command and health checker do the work, so a daemon that is down meanwhile
changes nothing. Waits poll inspect with a generous deadline (conditions, not timings).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from containerkit.runtime.task import Task
from tests.daemon.conftest import IMAGE, Daemon, serve

DEADLINE = 60.0
SECOND = 1_000_000_000


def until(check: Callable[[], bool], what: str) -> None:
    end = time.monotonic() + DEADLINE
    while not check():
        if time.monotonic() > end:
            pytest.fail(f"still not {what} after {DEADLINE} s")
        time.sleep(0.1)


def flip_check(path: str = "/tmp/ok") -> dict[str, Any]:
    """docker-py's healthcheck keywords (nanoseconds): healthy while ``path`` exists."""
    return {
        "test": ["CMD", "test", "-f", path],
        "interval": SECOND // 5,
        "retries": 2,
        "timeout": 10 * SECOND,
    }


@pytest.fixture
def removing(client: Any) -> Iterator[list[Any]]:
    made: list[Any] = []
    yield made
    docker = pytest.importorskip("docker")
    for container in made:
        with contextlib.suppress(docker.errors.NotFound):
            container.remove(force=True)


def test_on_failure_restart_count_and_policy_in_inspect(client: Any, removing: list[Any]) -> None:
    container = client.containers.run(
        IMAGE,
        ["sh", "-c", "exit 3"],
        detach=True,
        restart_policy={"Name": "on-failure", "MaximumRetryCount": 2},
    )
    removing.append(container)

    def done() -> bool:
        container.reload()
        return container.attrs["RestartCount"] == 2 and container.status == "exited"

    until(done, "restarted twice")
    assert container.attrs["HostConfig"]["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 2}
    assert container.attrs["State"]["ExitCode"] == 3


def test_health_starting_healthy_unhealthy_through_inspect_ps_and_events(
    client: Any, cli: Any, removing: list[Any]
) -> None:
    since = int(time.time())
    container = client.containers.run(
        IMAGE, ["sh", "-c", "touch /tmp/ok; sleep 1000"], detach=True, healthcheck=flip_check()
    )
    removing.append(container)

    def health() -> dict[str, Any]:
        container.reload()
        return dict(container.attrs["State"].get("Health") or {})

    until(lambda: health().get("Status") == "healthy", "healthy")
    assert health()["Log"][-1]["ExitCode"] == 0
    assert container.attrs["Config"]["Healthcheck"]["Test"] == ["CMD", "test", "-f", "/tmp/ok"]
    ps = cli("ps", "--filter", f"id={container.id}", "--format", "{{.Status}}").stdout
    assert ps.strip().endswith("(healthy)"), ps
    assert container.id in [c.id for c in client.containers.list(filters={"health": "healthy"})]
    assert container.id not in [c.id for c in client.containers.list(filters={"health": "unhealthy"})]
    container.exec_run(["rm", "/tmp/ok"])
    until(lambda: health().get("Status") == "unhealthy", "unhealthy")
    assert health()["FailingStreak"] >= 2
    events = client.events(
        since=since, until=int(time.time()) + 1, decode=True, filters={"container": container.id}
    )
    actions = [e["Action"] for e in events if e["Action"].startswith("health_status")]
    assert actions == ["health_status: healthy", "health_status: unhealthy"]


def test_testcontainers_waits_for_healthy(daemon: Daemon, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("testcontainers")
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.wait_strategies import HealthcheckWaitStrategy

    monkeypatch.setenv("DOCKER_HOST", daemon.url)
    monkeypatch.setenv("TESTCONTAINERS_RYUK_DISABLED", "true")
    container = (
        DockerContainer(IMAGE)
        .with_command("sh -c 'sleep 1; touch /tmp/ok; sleep 1000'")
        # failures in the start period do not count: starting until the file is there
        .with_kwargs(healthcheck={**flip_check(), "start_period": 60 * SECOND})
        .waiting_for(HealthcheckWaitStrategy().with_startup_timeout(30))
    )
    with container:
        health = container.get_wrapped_container().attrs["State"]["Health"]
        assert health["Status"] == "healthy"


def test_docker_run_rm_prints_every_time(cli: Any, client: Any) -> None:
    """The attach stream drains before the exit command removes the container: ``hi`` each time."""
    before = {c.id for c in client.containers.list(all=True)}
    for _ in range(50):
        assert cli("run", "--rm", IMAGE, "echo", "hi").stdout == "hi\n"
    assert {c.id for c in client.containers.list(all=True)} == before


def test_wait_condition_removed_and_auto_remove_with_restart_refused(client: Any, daemon: Daemon) -> None:
    docker = pytest.importorskip("docker")
    container = client.containers.run(IMAGE, ["sh", "-c", "sleep 0.5; exit 4"], detach=True, auto_remove=True)
    assert container.wait(condition="removed")["StatusCode"] == 4
    with pytest.raises(docker.errors.NotFound):
        client.containers.get(container.id)
    with pytest.raises(
        docker.errors.APIError, match="can't create 'AutoRemove' container with restart policy"
    ):
        client.containers.create(IMAGE, auto_remove=True, restart_policy={"Name": "always"})


def test_restart_and_health_go_on_while_the_daemon_is_down(tmp_path: Path, busybox_rootfs_tar: Path) -> None:
    docker = pytest.importorskip("docker")
    with serve(tmp_path, busybox_rootfs_tar) as own:
        client = docker.DockerClient(base_url=own.url, timeout=60)
        try:
            always = client.containers.run(
                IMAGE, ["sleep", "1000"], detach=True, restart_policy={"Name": "always"}
            )
            healthy = client.containers.run(
                IMAGE, ["sh", "-c", "touch /tmp/ok; sleep 1000"], detach=True, healthcheck=flip_check()
            )
            first_pid = (
                always.attrs["State"]["Pid"] or client.api.inspect_container(always.id)["State"]["Pid"]
            )
            own.stop()
            # while no daemon runs: the container's process dies, and the health check goes on
            os.kill(first_pid, signal.SIGKILL)
            task = Task(healthy.id, own.root / "containers" / healthy.id)
            until(
                lambda: (h := task.health()) is not None and h.status == "healthy", "healthy without a daemon"
            )
            restarted = Task(always.id, own.root / "containers" / always.id)
            until(
                lambda: restarted.running() and restarted.state().pid != first_pid,
                "restarted without a daemon",
            )
            own.start()
            info = client.api.inspect_container(always.id)
            assert info["State"]["Running"] and info["RestartCount"] == 1
            assert client.api.inspect_container(healthy.id)["State"]["Health"]["Status"] == "healthy"
            client.api.stop(always.id, timeout=1)
            assert client.api.inspect_container(always.id)["State"]["Status"] == "exited"
        finally:
            client.close()
