"""containerkitd starting after a host reboot (every shim gone, no exit recorded) starts again
the containers whose restart policy wants them running, as dockerd does at its start:
``always`` and ``unless-stopped`` come back; one the user stopped, and one without a policy,
stay down."""

from __future__ import annotations

import contextlib
import os
import signal
from typing import Any

import pytest

from containerkit.runtime.task import Task
from tests.daemon.conftest import IMAGE, Daemon
from tests.daemon.test_restart_health import until


def test_always_and_unless_stopped_come_back_when_the_daemon_starts(daemon: Daemon, client: Any) -> None:
    docker = pytest.importorskip("docker")
    made = []
    try:
        for policy in ("always", "unless-stopped", "unless-stopped", "no"):
            made.append(
                client.containers.run(
                    IMAGE,
                    ["sleep", "1000"],
                    detach=True,
                    network_mode="none",
                    restart_policy={"Name": policy},
                )
            )
        always, unless, stopped, plain = made
        stopped.stop(timeout=1)
        pids = {c.id: client.api.inspect_container(c.id)["State"]["Pid"] for c in made}
        daemon.stop()
        tasks = {c.id: Task(c.id, daemon.root / "containers" / c.id) for c in (always, unless, plain)}
        for task in tasks.values():  # as in a reboot: the shims die, no exit is recorded
            shim = task.state().shim_pid
            assert shim is not None
            os.kill(shim, signal.SIGKILL)
        for task in tasks.values():
            until(lambda task=task: task.state().status == "dead", "dead without its shim")
        daemon.start()
        for container in (always, unless):
            info = client.api.inspect_container(container.id)
            assert info["State"]["Status"] == "running", info["State"]
            assert info["State"]["Pid"] != pids[container.id]
        assert client.api.inspect_container(stopped.id)["State"]["Status"] == "exited"
        assert client.api.inspect_container(plain.id)["State"]["Running"] is False
    finally:
        for container in made:
            with contextlib.suppress(docker.errors.NotFound):
                container.remove(force=True)
