"""Containers outlive the process that started them; a killed process leaves nothing behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import containerkit as ck

from .conftest import IMAGE, leftovers


def _script(root: Path, body: str) -> str:
    return textwrap.dedent(
        f"""
        import json, os, sys, time
        import containerkit as ck
        engine = ck.Engine(root={str(root)!r})
        """
    ) + textwrap.dedent(body)


def test_container_outlives_its_starter(engine: ck.Engine, engine_root: Path) -> None:
    body = f"""
    c = engine.containers.run({IMAGE!r}, ["sh", "-c", "echo started; sleep 1; echo finished; exit 4"])
    print(json.dumps({{"id": c.id}}), flush=True)
    os._exit(0)  # no cleanup, no close: as if the program simply ended
    """
    out = subprocess.run(
        [sys.executable, "-c", _script(engine_root, body)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    container_id = json.loads(out.stdout)["id"]
    # A new Engine (here the session's, created before) finds it, its logs, and its exit code.
    c = engine.containers.get(container_id)
    assert c.status == "running"
    assert c.wait(timeout=30) == 4
    assert c.logs() == b"started\nfinished\n"
    c.remove()
    assert leftovers(container_id) == []


def test_sigkilled_engine_process_leaves_nothing(engine_root: Path, tmp_path: Path) -> None:
    """A process is SIGKILLed in the middle of its work; a new Engine removes all it left."""
    root = engine_root  # the image is already there
    body = f"""
    ids = []
    for i in range(3):
        c = engine.containers.run({IMAGE!r}, ["sleep", "300"], labels={{"suite": "sigkill"}})
        ids.append(c.id)
    done = engine.containers.create(image={IMAGE!r}, command=["true"], labels={{"suite": "sigkill"}})
    ids.append(done.id)
    print(json.dumps(ids), flush=True)
    time.sleep(300)
    """
    proc = subprocess.Popen([sys.executable, "-c", _script(root, body)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    ids = json.loads(proc.stdout.readline())
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    with ck.Engine(root=root) as fresh:
        found = {c.id for c in fresh.containers.list(all=True, filters={"label": "suite=sigkill"})}
        assert found == set(ids)
        for container_id in ids:
            fresh.containers.get(container_id).remove(force=True)
    for container_id in ids:
        assert leftovers(container_id) == []
        assert not (root / "containers" / container_id).exists()


def test_half_created_container_is_swept(engine_root: Path) -> None:
    """A state dir without a record (a crash between the two) is removed by the next Engine."""
    orphan = engine_root / "containers" / ("f" * 64)
    (orphan / "bundle").mkdir(parents=True)
    with ck.Engine(root=engine_root):  # recovery runs when an Engine opens a root
        pass
    assert not orphan.exists()


def test_recovery_keeps_a_container_another_engine_creates_meanwhile(
    engine: ck.Engine, engine_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process on the same root creates a container while this one recovers: its record,
    state dir and snapshot are new to the recovery's listing and must not be taken for orphans."""
    created: list[ck.Container] = []
    with ck.Engine(root=engine_root) as recovering:
        listing = recovering.snapshots.list_snapshots

        def list_while_another_creates() -> list[str]:
            created.append(engine.containers.create(image=IMAGE, command=["sh", "-c", "exit 3"]))
            return listing()

        monkeypatch.setattr(recovering.snapshots, "list_snapshots", list_while_another_creates)
        cleaned = recovering.recover()
    (container,) = created
    assert container.id not in cleaned
    container.start()
    assert container.wait(timeout=30) == 3
    container.remove()
    assert leftovers(container.id) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
def test_forkserver_gone_with_engine(engine_root: Path) -> None:
    body = """
    c = engine.containers.run("example/busybox", ["true"])
    c.wait(timeout=30)
    c.remove()
    print(engine.spawner.pid, flush=True)
    engine.close()
    """
    out = subprocess.run(
        [sys.executable, "-c", _script(engine_root, body)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    spawner_pid = int(out.stdout.split()[-1])
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and Path(f"/proc/{spawner_pid}").exists():
        time.sleep(0.05)
    assert (
        not Path(f"/proc/{spawner_pid}/cmdline").exists()
        or b"spawner" not in Path(f"/proc/{spawner_pid}/cmdline").read_bytes()
    )


def test_recovery_removes_the_cgroups_a_killed_shim_left(engine: ck.Engine, engine_root: Path) -> None:
    from containerkit.linux.cgroups import open_cgroup
    from containerkit.runtime.task import cgroup_name

    stopped = engine.containers.run(IMAGE, ["true"])
    stopped.wait(timeout=30)
    orphan = engine_root / "containers" / ("f" * 64)  # a state dir whose record is gone
    orphan.mkdir(parents=True)
    # what a shim SIGKILLed before its teardown leaves: the cgroups of an exited container
    left = [open_cgroup(cgroup_name(stopped.id)), open_cgroup(cgroup_name(orphan.name))]
    try:
        for cgroup in left:
            cgroup.create_everywhere()
            assert cgroup.exists()
        with ck.Engine(root=engine_root, forkserver=False):  # recovery runs when an Engine opens
            pass
        assert [c.exists() for c in left] == [False, False]
        assert not orphan.exists()
        assert stopped.status == "exited"  # the stopped container itself is kept
    finally:
        for cgroup in left:
            if cgroup.exists():
                cgroup.destroy()
        stopped.remove(force=True)
