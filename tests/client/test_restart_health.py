"""The Client's health and restart count read the daemon's inspect, as the Engine's read the
state dir: the same protocol (api.ContainerHandle) on both sides."""

from __future__ import annotations

import time

import pytest

import containerkit as ck
from containerkit.client import Client

from .conftest import IMAGE

DEADLINE = 60.0


def test_health_and_restart_count_through_the_client(client: Client) -> None:
    check = ck.Healthcheck(test=["CMD", "true"], interval=0.2)
    healthy = client.containers.run(IMAGE, ["sleep", "1000"], network="none", healthcheck=check)
    failing = client.containers.run(
        IMAGE,
        "exit 1",
        network="none",
        restart_policy=ck.RestartPolicy(name="on-failure", maximum_retry_count=1),
    )
    try:
        end = time.monotonic() + DEADLINE
        while not (
            (h := healthy.health) is not None
            and h.status == "healthy"
            and failing.restart_count == 1
            and failing.status == "exited"
        ):
            if time.monotonic() > end:
                pytest.fail(f"health {healthy.health}, restarts {failing.restart_count} after {DEADLINE} s")
            time.sleep(0.1)
        health = healthy.health
        assert health is not None and health.log and health.log[-1].exit_code == 0
        assert failing.spec.restart_policy == ck.RestartPolicy(name="on-failure", maximum_retry_count=1)
        plain = client.containers.run(IMAGE, ["true"], network="none")
        assert plain.wait(30) == 0
        assert plain.health is None and plain.restart_count == 0
        plain.remove()
    finally:
        healthy.remove(force=True)
        failing.remove(force=True)
