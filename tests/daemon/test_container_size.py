"""``docker ps -s`` and ``inspect --size`` through containerkitd: ``SizeRw`` is the bytes of the
files a container wrote (not disk blocks), ``SizeRootFs`` that plus its image, as dockerd sends
them (a list entry leaves a zero out; a list without ``size`` has neither)."""

from __future__ import annotations

import json
from typing import Any

from click.testing import CliRunner

from containerkit.cli._output import human_size
from containerkit.cli.main import cli as cli_main

from .conftest import IMAGE, Daemon

WRITES = "head -c 5000 /dev/zero > /big && ln /big /big.link && printf 1 > /one && ln -s /big /ln"
WRITTEN = 5000 + 1 + len("/big")  # a hardlinked inode once, a symlink its target's length


def test_sizes_in_the_list_and_inspect(client: Any, cli: Any, daemon: Daemon) -> None:
    image_size = client.images.get(IMAGE).attrs["Size"]
    assert image_size > 0
    wrote = client.containers.run(IMAGE, ["sleep", "300"], detach=True)
    idle = client.containers.run(IMAGE, ["sleep", "300"], detach=True)
    try:
        assert wrote.exec_run(["sh", "-c", WRITES]).exit_code == 0
        listed = {c["Id"]: c for c in client.api.containers(size=True)}
        assert (listed[wrote.id]["SizeRw"], listed[wrote.id]["SizeRootFs"]) == (
            WRITTEN,
            WRITTEN + image_size,
        )
        assert "SizeRw" not in listed[idle.id] and listed[idle.id]["SizeRootFs"] == image_size
        plain = {c["Id"]: c for c in client.api.containers()}
        assert "SizeRw" not in plain[wrote.id] and "SizeRootFs" not in plain[wrote.id]

        status, _, body = daemon.request("GET", f"/containers/{idle.id}/json?size=1")
        assert status == 200
        assert (json.loads(body)["SizeRw"], json.loads(body)["SizeRootFs"]) == (0, image_size)
        assert "SizeRw" not in json.loads(daemon.request("GET", f"/containers/{idle.id}/json")[2])
        shown = cli("inspect", "--size", "-f", "{{.SizeRw}} {{.SizeRootFs}}", wrote.id).stdout
        assert shown == f"{WRITTEN} {WRITTEN + image_size}\n"

        sizes = cli("ps", "-s", "--no-trunc", "--format", "{{.ID}} {{.Size}}").stdout.splitlines()
        assert f"{wrote.id} 5kB (virtual {human_size(WRITTEN + image_size)})" in sizes, sizes
        assert f"{idle.id} 0B (virtual {human_size(image_size)})" in sizes, sizes
        df = {c["Id"]: c for c in client.df()["Containers"]}  # dockerd's df: the list with size=1
        assert (df[wrote.id]["SizeRw"], df[wrote.id]["SizeRootFs"]) == (WRITTEN, WRITTEN + image_size)
        assert df[idle.id]["State"] == "running" and "SizeRw" not in df[idle.id]
        # containerkit's own CLI through the daemon shows the daemon's figures
        ours = CliRunner().invoke(
            cli_main, ["-H", daemon.url, "ps", "-s", "--no-trunc", "--format", "{{.ID}} {{.Size}}"]
        )
        assert ours.exit_code == 0, ours.output
        assert f"{wrote.id} 5kB (virtual {human_size(WRITTEN + image_size)})" in ours.stdout.splitlines()
    finally:
        wrote.remove(force=True)
        idle.remove(force=True)
