"""Inspect reads a container's state once for the whole shape: what it shows is what the
engine's live handle shows, running (pid, address) and after the exit (code, finish time)."""

from __future__ import annotations

import time
from typing import Any

import containerkit as ck

from .conftest import IMAGE, Daemon

ZERO = "0001-01-01T00:00:00Z"


def test_inspect_shows_what_the_engine_sees(daemon: Daemon, client: Any) -> None:
    c = client.containers.run(IMAGE, ["sleep", "60"], detach=True)
    try:
        with ck.Engine(root=daemon.root) as engine:
            live = engine.containers.get(c.id)
            state = client.api.inspect_container(c.id)["State"]
            settings = client.api.inspect_container(c.id)["NetworkSettings"]
            assert state["Status"] == "running" and state["Running"] is True
            assert state["Pid"] == live.pid and live.pid
            assert (state["ExitCode"], state["FinishedAt"], state["OOMKilled"]) == (0, ZERO, False)
            assert state["StartedAt"] == live.started_at
            assert settings["IPAddress"] == live.ip_address == settings["Networks"]["bridge"]["IPAddress"]
            assert live.ip_address
            c.kill()
            assert c.wait(timeout=30)["StatusCode"] == 137
            deadline = time.monotonic() + 10
            while (state := client.api.inspect_container(c.id)["State"])["Running"]:
                assert time.monotonic() < deadline, state
                time.sleep(0.05)
            settings = client.api.inspect_container(c.id)["NetworkSettings"]
            assert state["Status"] == "exited" and state["Pid"] == 0
            assert state["ExitCode"] == live.exit_code == 137
            assert state["FinishedAt"] == live.finished_at != ZERO
            assert settings["IPAddress"] == ""
    finally:
        c.remove(force=True)
