"""An Engine in a process whose stdio is unusable for its children (python-daemon leaves fds 0-2
close-on-exec) still starts containers: fds 0-2 reused for its own files are never clobbered."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import IMAGE

_SCRIPT = """
import os, sys
import containerkit as ck
root, result, forkserver = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
out = open(result, "w")
# What python-daemon leaves: stdio on /dev/null but close-on-exec, so children start without it.
for fd in (0, 1, 2):
    os.set_inheritable(fd, False)
try:
    with ck.Engine(root=root, forkserver=forkserver) as engine:
        for _ in range(3):  # the second start uses an init the spawner prepared ahead
            c = engine.containers.run(%r, ["sh", "-c", "echo out; echo err >&2"], network="none")
            code = c.wait(timeout=30)
            logs = c.logs()
            c.remove()
            out.write(f"{code} {logs!r};")
except BaseException as exc:
    out.write(f"error {exc!r}")
out.close()
"""


@pytest.mark.parametrize("forkserver", [True, False], ids=["forkserver", "direct"])
def test_engine_with_closed_stdio_runs_containers(
    engine_root: Path, engine: object, tmp_path: Path, forkserver: bool
) -> None:
    result = tmp_path / "result.txt"
    subprocess.run(
        [
            sys.executable,
            "-c",
            _SCRIPT % IMAGE,
            str(engine_root),
            str(result),
            "1" if forkserver else "0",
        ],
        check=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    assert result.read_text() == "0 b'out\\nerr\\n';" * 3
