"""Containers outlive the daemon: SIGTERM or SIGKILL it, start it again, everything is still there."""

from __future__ import annotations

import signal
import time
from typing import Any

import pytest

from .conftest import IMAGE, Daemon


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_containers_survive_a_daemon_restart(daemon: Daemon, client: Any, sig: int) -> None:
    running = client.containers.run(
        IMAGE, ["sh", "-c", "echo before; sleep 2; echo during; sleep 60"], detach=True
    )
    exited = client.containers.run(IMAGE, ["sh", "-c", "exit 9"], detach=True)
    assert exited.wait(timeout=30)["StatusCode"] == 9
    short = client.containers.run(IMAGE, ["sh", "-c", "sleep 2; exit 3"], detach=True)
    try:
        daemon.stop(sig)
        time.sleep(2.5)  # "during" is logged and "short" exits while no daemon runs
        daemon.start()
        running.reload()
        assert running.status == "running"
        assert running.logs() == b"before\nduring\n"
        assert running.exec_run("echo still").output == b"still\n"
        assert exited.wait(timeout=10)["StatusCode"] == 9
        assert short.wait(timeout=10)["StatusCode"] == 3
        short.reload()
        assert short.attrs["State"]["ExitCode"] == 3
        running.kill()
        assert running.wait(timeout=10)["StatusCode"] == 137
    finally:
        for c in (running, exited, short):
            c.remove(force=True)
