"""``docker top`` of a container run with ``--init``: its init shows as dockerd's does
(``/sbin/docker-init -- <cmd>``, comm ``docker-init``), never as the host's Python command line
it was forked from; inside the container ``ps`` sees the same PID 1."""

from __future__ import annotations

from typing import Any

from .conftest import IMAGE


def test_top_shows_the_init_as_dockerd_does(client: Any, cli: Any) -> None:
    name = cli("run", "-d", "--init", IMAGE, "sleep", "300").stdout.strip()
    try:
        rows = cli("top", name).stdout.splitlines()
        assert rows[0].split()[:3] == ["UID", "PID", "PPID"] and rows[0].split()[-1] == "CMD", rows
        init, command = (row.split() for row in rows[1:])
        assert init[-4:] == ["/sbin/docker-init", "--", "sleep", "300"], rows
        assert command[-2:] == ["sleep", "300"] and command[2] == init[1], rows  # its child
        assert not any("python" in row or "containerkit" in row for row in rows), rows

        top = client.containers.get(name).top()
        assert [p[-1] for p in top["Processes"]] == ["/sbin/docker-init -- sleep 300", "sleep 300"]
        inside = cli("exec", name, "ps", "-o", "pid,comm,args").stdout.splitlines()
        assert inside[1].split() == ["1", "docker-init", "/sbin/docker-init", "--", "sleep", "300"], inside
    finally:
        cli("rm", "-f", name)
