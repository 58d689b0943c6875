"""An Engine opened in a single-threaded process forks its forkserver from itself at once: no
interpreter start for the first container to wait for or compete with; gone with the Engine."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

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


def test_open_forks_the_forkserver_ahead(engine: ck.Engine, engine_root: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-c", _SCRIPT % IMAGE, str(engine_root)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    result = json.loads(out.stdout)
    assert result["threads"] == 1
    assert result["pid"] is not None and result["forked"]
    assert result["codes"] == [0, 0, 0]
    # close() waited for it: its pid is gone, or reused meanwhile by a process not running our script
    cmdline = Path(f"/proc/{result['pid']}/cmdline")
    assert not cmdline.exists() or b"engine.spawner.pid" not in cmdline.read_bytes()
