"""Restart policies and the single auto-remove, owned by the shim's exit path (its exit command).

Real containers on the shared engine root: the shim runs ``engine.exit_hook`` after the exit, so
these behaviours hold with no Engine method running. Waits poll the container's state with a
generous deadline (conditions, not timings, are asserted).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import containerkit as ck
from containerkit.engine import exit_hook
from tests.engine.conftest import IMAGE, leftovers

DEADLINE = 60.0


def until(check: Callable[[], bool], what: str, deadline: float = DEADLINE) -> None:
    """Poll ``check`` until it holds; fail naming ``what`` after ``deadline`` seconds."""
    end = time.monotonic() + deadline
    while not check():
        if time.monotonic() > end:
            pytest.fail(f"still not {what} after {deadline} s")
        time.sleep(0.05)


@pytest.fixture
def cleanup(engine: ck.Engine) -> Iterator[list[ck.Container]]:
    made: list[ck.Container] = []
    yield made
    for container in made:
        # stop first: a removal racing a pending restart must not leave a restarted container
        try:
            if container.spec.restart_policy.enabled:
                container.task.update_restart_record(stopped_by_user=True, restarting=False)
            container.remove(force=True)
        except ck.NotFound:
            continue
        assert leftovers(container.id) == []


def test_on_failure_restarts_up_to_its_count(engine: ck.Engine, cleanup: list[ck.Container]) -> None:
    container = engine.containers.run(
        IMAGE,
        "echo run; exit 1",
        network="none",
        restart_policy={"Name": "on-failure", "MaximumRetryCount": 2},
    )
    cleanup.append(container)
    until(lambda: container.restart_count == 2 and container.status == "exited", "restarted twice and exited")
    time.sleep(1.0)  # a third restart would start within the back-off (at most 400 ms here)
    assert container.status == "exited" and container.restart_count == 2
    assert container.exit_code == 1
    assert container.logs() == b"run\n" * 3


def test_on_failure_leaves_a_clean_exit_alone(engine: ck.Engine, cleanup: list[ck.Container]) -> None:
    container = engine.containers.run(IMAGE, "exit 0", network="none", restart_policy="on-failure")
    cleanup.append(container)
    assert container.wait(30) == 0
    assert container.restart_count == 0 and container.status == "exited"


def test_always_survives_a_killed_process_and_stop_ends_it(
    engine: ck.Engine, cleanup: list[ck.Container]
) -> None:
    container = engine.containers.run(IMAGE, ["sleep", "1000"], restart_policy="always")
    cleanup.append(container)
    first = container.pid
    assert first is not None
    os.kill(first, signal.SIGKILL)  # from outside: not a stop by the user
    until(lambda: container.status == "running" and container.pid not in (None, first), "running again")
    assert container.restart_count == 1
    assert container.ip_address  # its network came back with it
    container.stop(timeout=1)
    assert container.status == "exited"
    time.sleep(1.0)  # a restart would come within the back-off
    assert container.status == "exited" and container.restart_count == 1
    # a start by the user begins the count again, as docker's
    container.start()
    assert container.status == "running" and container.restart_count == 0


def test_kill_by_the_user_is_not_restarted(engine: ck.Engine, cleanup: list[ck.Container]) -> None:
    container = engine.containers.run(IMAGE, ["sleep", "1000"], network="none", restart_policy="always")
    cleanup.append(container)
    container.kill()
    assert container.wait(30) == 137
    assert container.status == "exited" and container.restart_count == 0


def test_unless_stopped_is_not_restarted_after_stop_and_reopen(
    engine: ck.Engine, engine_root: Path, cleanup: list[ck.Container]
) -> None:
    stopped = engine.containers.run(IMAGE, ["sleep", "1000"], network="none", restart_policy="unless-stopped")
    lost = engine.containers.run(IMAGE, ["sleep", "1000"], network="none", restart_policy="unless-stopped")
    cleanup += [stopped, lost]
    stopped.stop(timeout=1)
    # the shim of the other goes as in a host reboot (killed, no exit recorded)
    shim = lost.runtime_state().shim_pid
    assert shim is not None
    old_pid = lost.pid
    os.kill(shim, signal.SIGKILL)
    until(lambda: lost.runtime_state().status == "dead", "dead")
    with ck.Engine(root=engine_root, forkserver=False) as reopened:  # Engine.recover runs
        assert reopened.containers.get(stopped.id).status == "exited"
        again = reopened.containers.get(lost.id)
        assert again.status == "running" and again.pid != old_pid


def test_auto_remove_wait_returns_the_code_and_the_container_is_gone(engine: ck.Engine) -> None:
    container = engine.containers.run(IMAGE, "echo bye; exit 3", network="none", auto_remove=True)
    assert container.wait(30) == 3
    with pytest.raises(ck.NotFound):
        engine.containers.get(container.id)
    assert container.wait(5) == 3  # a late waiter still gets the code
    assert leftovers(container.id) == []


def test_auto_remove_on_stop(engine: ck.Engine) -> None:
    container = engine.containers.run(IMAGE, ["sleep", "1000"], auto_remove=True)
    container.stop(timeout=1)
    with pytest.raises(ck.NotFound):
        engine.containers.get(container.id)
    assert leftovers(container.id) == []


def test_auto_remove_with_a_restart_policy_is_refused(engine: ck.Engine) -> None:
    with pytest.raises(ck.InvalidArgument, match="can't create 'AutoRemove' container with restart policy"):
        engine.containers.create(image=IMAGE, auto_remove=True, restart_policy="always")


def test_default_containers_get_no_exit_command(engine: ck.Engine, cleanup: list[ck.Container]) -> None:
    """The default path starts no extra process: no exit command in the shim's request."""
    plain = engine.containers.create(image=IMAGE, command=["true"], network="none")
    cleanup.append(plain)
    service = engine.container_service
    assert service._exit_command(plain, plain.spec) is None
    assert service._health_check(plain, plain.spec) is None
    policy = engine.containers.create(image=IMAGE, command=["true"], network="none", restart_policy="always")
    cleanup.append(policy)
    argv = service._exit_command(policy, policy.spec)
    assert argv is not None and argv[-2:] == [policy.id, str(engine.default_pids_limit or 0)]
    assert exit_hook.ENTRY in argv


@pytest.mark.parametrize(
    ("previous", "ran_for", "expected"),
    [(0, 0, 0.1), (0.1, 1, 0.2), (0.4, 9.9, 0.8), (0.8, 10, 0.1), (40, 1, 60), (60, 1, 60)],
)
def test_back_off_as_docker(previous: float, ran_for: float, expected: float) -> None:
    assert exit_hook.next_delay(previous, ran_for) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("policy", "code", "count", "stopped", "expected"),
    [
        ("no", 1, 0, False, False),
        ("always", 0, 5, False, True),
        ("always", 0, 0, True, False),
        ("unless-stopped", 1, 0, False, True),
        ("on-failure", 0, 0, False, False),
        ("on-failure", 2, 100, False, True),
        ("on-failure:3", 2, 2, False, True),
        ("on-failure:3", 2, 3, False, False),
    ],
)
def test_should_restart_as_docker(policy: str, code: int, count: int, stopped: bool, expected: bool) -> None:
    assert exit_hook.should_restart(ck.RestartPolicy.parse(policy), code, count, stopped) is expected


def test_a_held_exit_claim_keeps_the_exit_command_away(engine: ck.Engine) -> None:
    # The claim holder (here this test; a daemon's watcher, an attached run --rm) removes the
    # container itself: the shim exits without starting an exit command, so the container is
    # still there, stopped, until the holder's wait() handles it.
    container = engine.containers.create(
        image=IMAGE, command=["sh", "-c", "exit 4"], network="none", auto_remove=True
    )
    container.claim_exit()
    container.start()
    assert container.task.wait(30) == 4  # the shim is gone
    assert engine.containers.get(container.id).status == "exited"
    assert container.wait(30) == 4
    with pytest.raises(ck.NotFound):
        engine.containers.get(container.id)
    assert leftovers(container.id) == []


def test_an_exit_left_by_a_dead_claim_holder_is_removed_by_recovery(
    engine: ck.Engine, engine_root: Path
) -> None:
    container = engine.containers.create(image=IMAGE, command=["true"], network="none", auto_remove=True)
    container.claim_exit()
    container.start()
    container.task.wait(30)
    container.release_exit()  # as the kernel does when the holder dies before handling it
    assert engine.containers.get(container.id).status == "exited"
    with ck.Engine(engine_root):  # the next Engine on the root recovers
        pass
    with pytest.raises(ck.NotFound):
        engine.containers.get(container.id)
    assert leftovers(container.id) == []
