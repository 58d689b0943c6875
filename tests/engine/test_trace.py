"""CONTAINERKIT_TRACE: every process on a start's path (engine, fork server, shim, the container's
init) appends its phases to one file, in the order they happen; off, nothing is written."""

from __future__ import annotations

import os
from pathlib import Path

import containerkit as ck
from containerkit.runtime import trace

from .conftest import IMAGE

# Causal order: each of these happens after the one before, whatever the machine's load.
ORDERED = [
    "engine.shim_request",
    "spawner.request",
    "shim.begin",
    "init.begin",
    "init.namespaces",
    "init.root_mount",
    "init.in_cgroup",
    "init.pivot_root",
    "init.keyring",
    "init.user_seccomp",
    "init.execve",
    "shim.exec_seen",
    "shim.reported",
    "shim.exit_seen",
    "shim.cleaned_up",
    "shim.exit_recorded",
]


def _lines(path: Path) -> list[tuple[int, int, str]]:
    rows = []
    for line in path.read_text().splitlines():
        stamp, pid, phase = line.split()
        rows.append((int(stamp), int(pid), phase))
    return rows


def test_a_traced_start_records_every_process_in_order(
    engine: ck.Engine, engine_root: Path, tmp_path: Path
) -> None:
    path = tmp_path / "trace.log"
    trace.enable(str(path))
    try:
        with ck.Engine(root=engine_root) as traced:  # its fork server starts with the variable set
            assert traced.spawner is not None
            traced.spawner.start()  # ready: the start goes through it, not a direct fork
            container = traced.containers.run(IMAGE, ["true"], network="none")
            assert container.wait(timeout=30) == 0
            container.remove()
    finally:
        trace.disable()
    rows = _lines(path)
    first = {phase: (stamp, pid) for stamp, pid, phase in reversed(rows)}
    missing = [phase for phase in ORDERED if phase not in first]
    assert not missing, rows
    stamps = [first[phase][0] for phase in ORDERED]
    assert stamps == sorted(stamps), list(zip(ORDERED, stamps, strict=True))
    # the container's init is PID 1 of its own pid namespace; the others are host processes
    assert first["init.begin"][1] == 1
    pids = {first[p][1] for p in ("engine.shim_request", "spawner.request", "shim.begin")}
    assert len(pids) == 3


def test_disabled_tracing_writes_nothing_and_leaves_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "trace.log"
    trace.enable(str(path))
    trace.mark("before")
    trace.disable()
    trace.mark("after")
    assert [phase for _s, _p, phase in _lines(path)] == ["before"]
    assert trace.ENV not in os.environ
