"""An Engine opened in a single-threaded process forks its forkserver from itself at once: no
interpreter start for the first container to wait for or compete with; gone with the Engine."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import containerkit as ck

from .conftest import IMAGE

_SCRIPT = """
import json, os, sys, threading
import containerkit as ck
engine = ck.Engine(root=sys.argv[1], recover=False)  # no work for the other tests' containers
pid = engine.spawner.pid  # before any container
threads = threading.active_count()
own = open("/proc/self/cmdline", "rb").read()
its = open(f"/proc/{pid}/cmdline", "rb").read() if pid else b""
codes = []
for _ in range(3):
    c = engine.containers.run(%r, ["true"], network="none")
    codes.append(c.wait(timeout=30))
    c.remove()
engine.close()
print(json.dumps({"pid": pid, "threads": threads, "forked": its == own, "codes": codes}), flush=True)
"""


def _run(script: str, engine_root: Path) -> dict[str, Any]:
    """What ``script`` prints (JSON), run in a fresh single-threaded interpreter on the root."""
    out = subprocess.run(
        [sys.executable, "-c", script % IMAGE, str(engine_root)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def test_open_forks_the_forkserver_ahead(engine: ck.Engine, engine_root: Path) -> None:
    result = _run(_SCRIPT, engine_root)
    assert result["threads"] == 1
    assert result["pid"] is not None and result["forked"]
    assert result["codes"] == [0, 0, 0]
    # close() waited for it: its pid is gone, or reused meanwhile by a process not running our script
    cmdline = Path(f"/proc/{result['pid']}/cmdline")
    assert not cmdline.exists() or b"engine.spawner.pid" not in cmdline.read_bytes()


_HANDOVER = """
import json, os, sys, time
import containerkit as ck
engine = ck.Engine(root=sys.argv[1], recover=False)
forked = engine.spawner.pid
codes, pids = [], []
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    c = engine.containers.run(%r, ["true"], network="none")
    codes.append(c.wait(timeout=30))
    c.remove()
    pids.append(engine.spawner.pid)
    if pids[-1] != forked and len(pids) >= 3:
        break
lean = open(f"/proc/{pids[-1]}/cmdline", "rb").read().split(b"\\0")
engine.close()
print(json.dumps({"forked": forked, "pids": pids, "codes": codes, "lean": [a.decode() for a in lean]}))
"""


def test_a_lean_forkserver_takes_over_from_the_forked_one(engine: ck.Engine, engine_root: Path) -> None:
    """The forked server serves the first container; a fresh interpreter's takes over once it
    answers (a fork of a heavy caller makes every later start slower), and close ends both."""
    result = _run(_HANDOVER, engine_root)
    assert set(result["codes"]) == {0}
    assert result["pids"][0] == result["forked"]  # the first container: the forked server
    assert result["pids"][-1] != result["forked"]  # later ones: its successor
    assert any("containerkit.runtime.spawner" in arg for arg in result["lean"])
    # close waited for both: their pids are gone (or reused by a process that is not them)
    for pid, marker in ((result["forked"], b"engine.spawner.pid"), (result["pids"][-1], b"runtime.spawner")):
        cmdline = Path(f"/proc/{pid}/cmdline")
        assert not cmdline.exists() or marker not in cmdline.read_bytes()


_AFTER_A_REMOVAL = """
import json, os, sys, threading
import containerkit as ck
first = ck.Engine(root=sys.argv[1], recover=False)
c = first.containers.run(%r, ["true"], network="none")
c.wait(timeout=30)
c.remove()  # its files go to the trash, whose thread may still be deleting them
second = ck.Engine(root=sys.argv[1] + "-second", recover=False)
pid = second.spawner.pid
own = open("/proc/self/cmdline", "rb").read()
forked = bool(pid) and open(f"/proc/{pid}/cmdline", "rb").read() == own
second.close()
first.close()
print(json.dumps({"forked": forked}), flush=True)
"""


def test_a_removal_just_before_does_not_cost_the_next_engine_its_fork(
    engine: ck.Engine, engine_root: Path
) -> None:
    """The deleting thread of another Engine's removal (lingering where other threads run, or
    finishing its last deletion) is ended at open, so the new Engine still forks its forkserver
    instead of starting an interpreter."""
    second_root = Path(f"{engine_root}-second")
    try:
        result = _run(_AFTER_A_REMOVAL, engine_root)
    finally:
        subprocess.run(["rm", "-rf", str(second_root)], check=False)
    assert result["forked"]
