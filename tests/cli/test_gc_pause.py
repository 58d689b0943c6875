"""The console script runs its setup (imports, opening the engine) without cyclic collections,
then freezes what it built and collects as usual for the rest of the command."""

from __future__ import annotations

import gc
import json
import subprocess
import sys
from pathlib import Path

from containerkit.cli._backend import pause_gc, resume_gc
from tests.cli.conftest import IMAGE

RUN = """
import atexit, gc, json, sys
from containerkit.cli.main import main
collections = []
gc.callbacks.append(lambda phase, info: collections.append(1) if phase == "stop" else None)
def report():
    state = {{"enabled": gc.isenabled(), "frozen": gc.get_freeze_count(), "collections": len(collections)}}
    open({out!r}, "w").write(json.dumps(state))
atexit.register(report)
main(["--root", {root!r}, *sys.argv[1:]])
"""


def _run(tmp_path: Path, root: Path, *args: str) -> dict[str, int]:
    out = tmp_path / "gc.json"
    code = RUN.format(out=str(out), root=str(root))
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    state: dict[str, int] = json.loads(out.read_text())
    return state


def test_a_run_collects_again_once_its_engine_is_open(cli_root: Path, tmp_path: Path) -> None:
    state = _run(tmp_path, cli_root, "run", "--rm", "--network", "none", IMAGE, "true")
    assert state["enabled"]  # the collector is back on for the container's lifetime
    assert state["frozen"] > 10_000  # what the setup built is frozen: later collections skip it
    # without the pause the setup alone ran ~45 collections (what is left: the create and start)
    assert state["collections"] < 30


def test_a_collector_the_caller_turned_off_stays_off() -> None:
    gc.disable()
    try:
        pause_gc()
        resume_gc()
        assert not gc.isenabled()
        assert gc.get_freeze_count() == 0
    finally:
        gc.enable()
