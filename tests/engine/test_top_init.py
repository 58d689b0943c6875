"""``Container.top()`` of a container with ``init=True`` (the builtin runtime's Python PID 1):
the init reads as dockerd's ``/sbin/docker-init -- <cmd>``, not as the program that started it."""

from __future__ import annotations

import containerkit as ck

from .conftest import IMAGE


def test_the_init_is_named_as_dockerds(engine: ck.Engine) -> None:
    c = engine.containers.run(IMAGE, ["sleep", "60"], init=True)
    try:
        rows = c.top()["Processes"]
        assert [row[-1] for row in rows] == ["/sbin/docker-init -- sleep 60", "sleep 60"], rows
        assert rows[1][2] == rows[0][1], rows  # the command is the init's child
        state = c.runtime_state()
        with open(f"/proc/{state.pid}/comm") as comm:
            assert comm.read() == "docker-init\n"
    finally:
        c.remove(force=True)
