"""Health checks run beside the shim: status, results, events, and no Engine needed for them.

Real containers; the check flips on a file the test creates and removes with exec. Failures in
the (long) start period keep the status ``starting``, so each status is seen for sure, not by
timing. Waits poll with a generous deadline.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import containerkit as ck
from containerkit.runtime.task import Task
from tests.engine.conftest import IMAGE, leftovers

DEADLINE = 60.0
CHECK = ck.Healthcheck(
    test=["CMD-SHELL", "echo probe; test -f /tmp/ok"],
    interval=0.2,
    start_interval=0.2,
    start_period=600,
    timeout=10,
    retries=2,
)


def until(check: Callable[[], bool], what: str) -> None:
    end = time.monotonic() + DEADLINE
    while not check():
        if time.monotonic() > end:
            pytest.fail(f"still not {what} after {DEADLINE} s")
        time.sleep(0.05)


@pytest.fixture
def cleanup(engine: ck.Engine) -> Iterator[list[str]]:
    made: list[str] = []
    yield made
    for container_id in made:
        with contextlib.suppress(ck.NotFound):
            engine.containers.get(container_id).remove(force=True)
        assert leftovers(container_id) == []


def status(container: ck.Container) -> str | None:
    health = container.health
    return None if health is None else health.status


def test_starting_healthy_unhealthy(engine: ck.Engine, cleanup: list[str]) -> None:
    started = time.time()
    container = engine.containers.run(IMAGE, ["sleep", "1000"], network="none", healthcheck=CHECK)
    cleanup.append(container.id)
    # failures in the start period leave it starting, with their results kept
    until(lambda: container.health is not None and len(container.health.log) >= 2, "checked twice")
    health = container.health
    assert health is not None and health.status == "starting" and health.failing_streak == 0
    assert health.log[-1].exit_code == 1 and health.log[-1].output == "probe\n"
    assert container.exec(["touch", "/tmp/ok"]).exit_code == 0
    until(lambda: status(container) == "healthy", "healthy")
    listed = [c.id for c in engine.containers.list(filters={"health": "healthy"})]
    assert container.id in listed
    assert container.id not in [
        c.id for c in engine.containers.list(filters={"health": ["unhealthy", "none"]})
    ]
    assert container.exec(["rm", "/tmp/ok"]).exit_code == 0
    until(lambda: status(container) == "unhealthy", "unhealthy")
    health = container.health
    assert health is not None and health.failing_streak >= 2 and len(health.log) == 5
    # each change became one health_status event, with the time of the change
    actions = [
        e.action
        for e in engine.events(since=started, until=time.time(), filters={"container": container.id})
        if e.action.startswith("health_status")
    ]
    assert actions == ["health_status: healthy", "health_status: unhealthy"]
    container.stop(timeout=1)


def test_image_healthcheck_is_used(engine: ck.Engine, busybox_rootfs_tar: Path, cleanup: list[str]) -> None:
    engine.images.import_rootfs(
        busybox_rootfs_tar,
        "example/healthy:latest",
        config={"Cmd": ["sleep", "1000"], "Healthcheck": {"Test": ["CMD", "true"], "Interval": 200_000_000}},
    )
    container = engine.containers.run("example/healthy:latest", network="none")
    cleanup.append(container.id)
    until(lambda: status(container) == "healthy", "healthy")
    # NONE turns the image's check off
    off = engine.containers.run(
        "example/healthy:latest", network="none", healthcheck=ck.Healthcheck(test=["NONE"])
    )
    cleanup.append(off.id)
    assert off.health is None


def test_timeout_fails_the_check(engine: ck.Engine, cleanup: list[str]) -> None:
    check = ck.Healthcheck(test=["CMD", "sleep", "30"], interval=0.2, timeout=0.3, retries=1)
    container = engine.containers.run(IMAGE, ["sleep", "1000"], network="none", healthcheck=check)
    cleanup.append(container.id)
    until(lambda: status(container) == "unhealthy", "unhealthy")
    health = container.health
    assert health is not None
    assert health.log[-1].exit_code == -1 and "exceeded timeout" in health.log[-1].output


def test_health_goes_on_without_an_engine(engine_root: Path, engine: ck.Engine, cleanup: list[str]) -> None:
    """A process creates the container and exits; the checker goes on (the shim runs it)."""
    script = textwrap.dedent(
        f"""
        import containerkit as ck
        with ck.Engine(root={str(engine_root)!r}, forkserver=False) as engine:
            check = ck.Healthcheck(test=["CMD", "test", "-f", "/tmp/ok"], interval=0.2, retries=1)
            c = engine.containers.run(
                {IMAGE!r}, "touch /tmp/ok; sleep 1000", network="none", healthcheck=check
            )
            print(c.id)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    container_id = done.stdout.strip()
    cleanup.append(container_id)
    task = Task(container_id, engine_root / "containers" / container_id)  # reads the state dir only
    until(lambda: (h := task.health()) is not None and h.status == "healthy" and len(h.log) >= 3, "checked")
    assert engine.containers.get(container_id).health.status == "healthy"  # type: ignore[union-attr]


def test_no_check_no_health(engine: ck.Engine, cleanup: list[str]) -> None:
    container = engine.containers.run(IMAGE, ["sleep", "1000"], network="none")
    cleanup.append(container.id)
    assert container.health is None
    assert container.id in [c.id for c in engine.containers.list(filters={"health": "none"})]
    with pytest.raises(ck.InvalidArgument, match="health=sick"):
        engine.containers.list(filters={"health": "sick"})


def test_event_followers_see_health_changes_nobody_inspected(engine: ck.Engine, cleanup: list[str]) -> None:
    """The scan an event follower runs now and then records the changes (the checker writes no events)."""
    started = time.time()
    check = ck.Healthcheck(test=["CMD", "true"], interval=0.2)
    container = engine.containers.run(IMAGE, ["sleep", "1000"], network="none", healthcheck=check)
    cleanup.append(container.id)
    until(lambda: (h := container.task.health()) is not None and h.status == "healthy", "healthy")
    engine.event_log.scan_exits()  # what a follower of engine.events() / GET /events runs each second
    found = engine.events(
        since=started, until=time.time(), filters={"event": "health_status", "container": container.id}
    )
    assert [(e.actor_id, e.action) for e in found] == [(container.id, "health_status: healthy")]


def test_output_is_capped_at_4_kib(engine: ck.Engine, cleanup: list[str]) -> None:
    check = ck.Healthcheck(test=["CMD-SHELL", "head -c 10000 /dev/zero | tr '\\0' a"], interval=0.2)
    container = engine.containers.run(IMAGE, ["sleep", "1000"], network="none", healthcheck=check)
    cleanup.append(container.id)
    until(lambda: status(container) == "healthy", "healthy")
    health = container.health
    assert health is not None and health.log[-1].output == "a" * 4096
