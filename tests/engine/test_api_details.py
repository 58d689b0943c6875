"""Engine behaviour behind docker API details (issue 12): kill, volume drivers, update."""

from __future__ import annotations

import containerkit as ck

from .conftest import IMAGE


def test_sigkill_returns_with_the_exit_recorded(engine: ck.Engine) -> None:
    for paused in (False, True):
        c = engine.containers.run(IMAGE, ["sleep", "300"])
        try:
            if paused:
                c.pause()
            c.kill()
            # no wait in between: the exit is recorded when kill returns
            assert (c.status, c.exit_code) == ("exited", 137)
        finally:
            c.remove(force=True)
    script = "trap 'exit 3' TERM; echo ready; while true; do sleep 0.1; done"
    c = engine.containers.run(IMAGE, ["sh", "-c", script])
    try:
        for _stream, _chunk in c.follow_output():
            break  # "ready": the trap is set
        c.kill("SIGTERM")  # other signals do not wait (the process may handle them)
        assert c.wait(timeout=30) == 3
    finally:
        c.remove(force=True)
