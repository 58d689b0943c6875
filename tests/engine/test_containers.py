"""The container lifecycle through Engine, against the real kernel."""

from __future__ import annotations

import io
import re
import tarfile
import time

import pytest

import containerkit as ck

from .conftest import IMAGE, leftovers


def run(engine: ck.Engine, command: list[str] | str, **fields: object) -> ck.Container:
    return engine.containers.run(IMAGE, command, **fields)


def finished(engine: ck.Engine, command: list[str] | str, **fields: object) -> ck.Container:
    container = run(engine, command, **fields)
    container.wait(timeout=30)
    return container


def test_echo_output_and_exit_code(engine: ck.Engine) -> None:
    c = run(engine, ["sh", "-c", "echo hi; echo oops >&2; exit 3"])
    assert c.wait(timeout=30) == 3
    assert c.status == "exited"
    assert c.exit_code == 3
    assert c.logs() == b"hi\noops\n"
    assert c.logs(stderr=False) == b"hi\n"
    assert c.logs(stdout=False) == b"oops\n"
    c.remove()
    assert leftovers(c.id) == []


def test_image_cmd_is_the_default_command(engine: ck.Engine) -> None:
    c = engine.containers.create(
        ck.ContainerSpec(image=IMAGE, entrypoint=["echo"], command=["from", "entry"])
    )
    c.start()
    assert c.wait(timeout=30) == 0
    assert c.logs() == b"from entry\n"
    c.remove()


def test_namespaces_pid1_hostname_env_workdir(engine: ck.Engine) -> None:
    c = finished(
        engine,
        'echo "$$ $(hostname) $A $(pwd)"; ls /proc | grep -cE "^[0-9]+$"',
        hostname="box",
        env={"A": "x"},
        workdir="/tmp",
    )
    first, count = c.logs().decode().splitlines()
    assert first == "1 box x /tmp"
    assert int(count) <= 3  # sh, ls, grep: nothing of the host
    c.remove()


def test_default_hostname_is_short_id_and_etc_files(engine: ck.Engine) -> None:
    c = finished(
        engine, "cat /etc/hostname; grep -c localhost /etc/hosts; test -s /etc/resolv.conf && echo rc"
    )
    lines = c.logs().decode().split()
    assert lines[0] == c.id[:12]
    assert int(lines[1]) >= 1 and lines[2] == "rc"
    c.remove()


def test_user_by_name_and_number(engine: ck.Engine) -> None:
    c = finished(engine, "id -u; id -g; id -G", user="app")
    assert c.logs().split() == [b"1000", b"1000", b"1000", b"2000"]
    c.remove()
    c = finished(engine, "id -u; id -g", user="1234:5678")
    assert c.logs().split() == [b"1234", b"5678"]
    c.remove()
    with pytest.raises(ck.NotFound, match="unable to find user nosuchuser"):
        engine.containers.create(image=IMAGE, command=["true"], user="nosuchuser")


def test_default_capabilities_and_cap_drop(engine: ck.Engine) -> None:
    c = finished(engine, "grep CapEff /proc/self/status")
    default = int(c.logs().split()[1], 16)
    c.remove()
    assert default == 0xA80425FB  # docker's default set
    c = finished(engine, "grep CapEff /proc/self/status", cap_drop=["NET_RAW"], cap_add=["SYS_ADMIN"])
    changed = int(c.logs().split()[1], 16)
    c.remove()
    assert not changed & (1 << 13)  # CAP_NET_RAW
    assert changed & (1 << 21)  # CAP_SYS_ADMIN


def test_command_not_found(engine: ck.Engine) -> None:
    c = engine.containers.create(image=IMAGE, command=["nosuchcommand"])
    with pytest.raises(ck.CommandNotFound, match="nosuchcommand"):
        c.start()
    assert c.exit_code == 127
    c.remove()
    assert leftovers(c.id) == []


def test_unknown_image_and_container(engine: ck.Engine) -> None:
    with pytest.raises(ck.NotFound, match="No such image: nosuch/image"):
        engine.containers.run("nosuch/image", ["true"])
    with pytest.raises(ck.NotFound, match="No such container: nope"):
        engine.containers.get("nope")


def test_name_conflict_and_lookup(engine: ck.Engine) -> None:
    c = engine.containers.create(image=IMAGE, command=["true"], name="unique-name")
    try:
        with pytest.raises(ck.Conflict, match="unique-name"):
            engine.containers.create(image=IMAGE, command=["true"], name="unique-name")
        assert engine.containers.get("unique-name") == c
        assert engine.containers.get("/unique-name") == c
        assert engine.containers.get(c.id[:10]) == c
    finally:
        c.remove()


def test_stop_escalates_to_sigkill(engine: ck.Engine) -> None:
    # PID 1 ignores SIGTERM unless it installs a handler, so stop must fall back to SIGKILL.
    c = run(engine, ["sleep", "60"])
    started = time.monotonic()
    c.stop(timeout=1)
    assert time.monotonic() - started < 10
    assert c.exit_code == 137
    c.remove()


def test_stop_with_handler_and_restart(engine: ck.Engine) -> None:
    c = run(engine, "trap 'echo bye; exit 5' TERM; echo up; while true; do sleep 0.1; done")
    _wait_for_log(c, b"up")
    c.stop(timeout=10)
    assert c.exit_code == 5
    c.restart()
    assert c.status == "running"
    _wait_for(lambda: c.logs().count(b"up") == 2)
    c.kill("SIGKILL")
    assert c.wait(timeout=10) == 137
    assert c.logs().count(b"up") == 2
    c.remove()


def test_remove_running_needs_force(engine: ck.Engine) -> None:
    c = run(engine, ["sleep", "60"])
    with pytest.raises(ck.Conflict, match="cannot remove a running container"):
        c.remove()
    c.remove(force=True)
    assert leftovers(c.id) == []
    with pytest.raises(ck.NotFound):
        engine.containers.get(c.id)


def test_pause_unpause(engine: ck.Engine) -> None:
    c = run(engine, ["sleep", "60"])
    c.pause()
    assert c.status == "paused"
    c.unpause()
    assert c.status == "running"
    c.remove(force=True)
    assert leftovers(c.id) == []


def test_exec(engine: ck.Engine) -> None:
    c = run(engine, ["sleep", "60"], hostname="exechost")
    result = c.exec(["sh", "-c", "cat /etc/hostname; echo err >&2; exit 4"])
    assert result == ck.ExecResult(4, b"exechost\n", b"err\n")
    assert c.exec(["echo", "fast"]).stdout == b"fast\n"
    assert c.exec(["id", "-u"], user="app").stdout == b"1000\n"
    assert c.exec("echo $X", env={"X": "y"}).stdout == b"y\n"
    assert c.exec("pwd", workdir="/tmp").stdout == b"/tmp\n"
    handle = c.exec(["sh", "-c", "echo a; sleep 0.2; echo b"], stream=True)
    assert b"".join(handle) == b"a\nb\n"
    assert handle.wait() == 0
    c.remove(force=True)


def test_exec_not_running(engine: ck.Engine) -> None:
    c = finished(engine, ["true"])
    with pytest.raises(ck.NotRunning):
        c.exec(["true"])
    c.remove()


def test_logs_follow_tail_timestamps(engine: ck.Engine) -> None:
    c = run(engine, "for i in 1 2 3; do echo line$i; sleep 0.2; done")
    chunks = b"".join(c.logs(follow=True))  # ends when the container exits
    assert chunks == b"line1\nline2\nline3\n"
    assert c.logs(tail=1) == b"line3\n"
    stamped = c.logs(timestamps=True).decode().splitlines()
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z line1$", stamped[0])
    c.remove()


def test_put_and_get_before_and_after_start(engine: ck.Engine) -> None:
    c = engine.containers.create(image=IMAGE, command=["cat", "/data/config.txt"])
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo("data/config.txt")
        payload = b"configured\n"
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    c.put("/", buffer.getvalue())
    c.start()
    assert c.wait(timeout=30) == 0
    assert c.logs() == b"configured\n"
    archive = c.get("/data/config.txt")
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        member = tar.extractfile("config.txt")
        assert member is not None and member.read() == b"configured\n"
    c.remove()
    assert leftovers(c.id) == []


def test_get_while_running_stays_in_the_container(engine: ck.Engine) -> None:
    c = run(engine, "ln -s /etc /tmp/escape; echo secret > /etc/only-here; sleep 60")
    _wait_for(lambda: c.exec(["test", "-e", "/etc/only-here"]).exit_code == 0)
    archive = c.get("/tmp/escape/only-here")  # resolved inside the container, not on the host
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        member = tar.extractfile("only-here")
        assert member is not None and member.read() == b"secret\n"
    c.remove(force=True)


def test_stats_and_top(engine: ck.Engine) -> None:
    c = run(engine, ["sleep", "60"], resources=ck.Resources(memory="64m", pids=50))
    stats = c.stats()
    assert stats.memory_usage > 0
    assert stats.memory_limit == 64 * 1024 * 1024
    assert stats.pids == 1 and stats.pids_limit == 50
    top = c.top()
    assert "PID" in top["Titles"]
    assert any("sleep" in " ".join(row) for row in top["Processes"])
    # An exec shows as its own command, never as the helper that waits for it.
    running = c.exec(["sh", "-c", "exec sleep 31"], stream=True)
    try:
        deadline = time.monotonic() + 10
        while not any("sleep 31" in row[-1] for row in c.top()["Processes"]):
            assert time.monotonic() < deadline, c.top()
            time.sleep(0.02)
        assert not any("python" in row[-1] or "containerkit" in row[-1] for row in c.top()["Processes"])
    finally:
        running.close()
        c.remove(force=True)


def test_memory_limit_oom_killed(engine: ck.Engine) -> None:
    # busybox's `head -c` into a shell variable needs the memory; 24m cannot hold 100 MB.
    c = run(
        engine, 'x="$(head -c 100000000 /dev/zero | tr "\\0" a)"; echo survived', resources={"memory": "24m"}
    )
    assert c.wait(timeout=60) == 137
    assert c.oom_killed is True
    c.remove()


def test_pids_limit(engine: ck.Engine) -> None:
    c = finished(
        engine, "for i in 1 2 3 4 5 6 7 8 9 10; do sleep 5 & done 2>&1; echo done", resources={"pids": 5}
    )
    assert b"can't fork" in c.logs() or b"Resource temporarily unavailable" in c.logs()
    c.remove()


def test_read_only_root_with_tmpfs(engine: ck.Engine) -> None:
    c = finished(
        engine,
        "touch /x 2>/dev/null && echo rw || echo ro; touch /scratch/y && echo tmpfs-ok",
        read_only=True,
        mounts=[ck.Mount(type="tmpfs", target="/scratch")],
    )
    assert c.logs() == b"ro\ntmpfs-ok\n"
    c.remove()


def test_volume_outlives_container(engine: ck.Engine) -> None:
    c = finished(engine, "echo kept > /vol/file", mounts=["ckvol-test:/vol"])
    c.remove()
    c = finished(engine, "cat /vol/file", mounts=["ckvol-test:/vol"])
    assert c.logs() == b"kept\n"
    c.remove()
    engine.volumes.remove("ckvol-test")
    with pytest.raises(ck.NotFound):
        engine.volumes.get("ckvol-test")


def test_bind_mount_read_only(engine: ck.Engine, tmp_path: object) -> None:
    from pathlib import Path

    host = Path(str(tmp_path))
    (host / "in.txt").write_text("from host\n")
    c = finished(engine, "cat /h/in.txt; touch /h/new 2>/dev/null || echo denied", mounts=[f"{host}:/h:ro"])
    assert c.logs() == b"from host\ndenied\n"
    c.remove()


def test_init_reaps_and_forwards(engine: ck.Engine) -> None:
    c = run(engine, "trap 'exit 9' TERM; sh -c 'sleep 0.1 &' ; while true; do sleep 0.1; done", init=True)
    time.sleep(0.5)
    zombies = c.exec(["sh", "-c", "grep -l '^State:.*Z' /proc/[0-9]*/status | wc -l"]).stdout
    assert zombies.strip() == b"0"
    c.stop(timeout=10)
    assert c.exit_code == 9
    c.remove()


def test_tty_logs_hold_terminal_output(engine: ck.Engine) -> None:
    c = finished(engine, "test -t 1 && echo is-a-tty", tty=True)
    assert c.logs() == b"is-a-tty\r\n"
    c.remove()


def test_resize_tty(engine: ck.Engine) -> None:
    """The pty master is the shim's: a resize reaches it, and the kernel sends SIGWINCH."""
    c = run(engine, "trap 'stty size' WINCH; echo ready; while sleep 0.05; do :; done", tty=True)
    deadline = time.monotonic() + 10
    while b"ready" not in c.logs() and time.monotonic() < deadline:
        time.sleep(0.05)
    c.resize(50, 120)
    while b"50 120" not in c.logs() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert b"50 120\r\n" in c.logs()  # printed by the trap: the container got SIGWINCH
    c.resize(24, 80)
    deadline = time.monotonic() + 10
    while c.exec("stty size </dev/console").stdout != b"24 80\n" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert c.exec("stty size </dev/console").stdout == b"24 80\n"
    with pytest.raises(ck.InvalidArgument):
        c.resize(-1, 80)
    c.remove(force=True)


def test_resize_needs_a_running_tty_container(engine: ck.Engine) -> None:
    plain = run(engine, ["sleep", "60"])
    with pytest.raises(ck.InvalidArgument):
        plain.resize(24, 80)
    plain.remove(force=True)
    tty = finished(engine, ["true"], tty=True)
    with pytest.raises(ck.NotRunning):
        tty.resize(24, 80)
    tty.remove()


def test_auto_remove(engine: ck.Engine) -> None:
    c = run(engine, ["true"], auto_remove=True)
    assert c.wait(timeout=30) == 0
    with pytest.raises(ck.NotFound):
        engine.containers.get(c.id)
    assert leftovers(c.id) == []


def test_list_filters_and_prune(engine: ck.Engine) -> None:
    running = run(engine, ["sleep", "60"], labels={"suite": "list"})
    done = finished(engine, ["true"], labels={"suite": "list"})
    ids = {c.id for c in engine.containers.list(filters={"label": "suite=list"})}
    assert ids == {running.id}
    ids = {c.id for c in engine.containers.list(all=True, filters={"label": "suite=list"})}
    assert ids == {running.id, done.id}
    exited = engine.containers.list(all=True, filters={"status": "exited", "label": "suite=list"})
    assert [c.id for c in exited] == [done.id]
    pruned = engine.containers.prune(filters={"label": "suite=list"})
    assert done.id in pruned and running.id not in pruned
    running.remove(force=True)


def _wait_for_log(container: ck.Container, needle: bytes, timeout: float = 10) -> None:
    _wait_for(lambda: needle in container.logs(), timeout)


def _wait_for(check: object, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError(f"condition not met within {timeout}s")


def test_volume_in_use_is_not_removed(engine: ck.Engine) -> None:
    c = engine.containers.run(
        IMAGE, ["sh", "-c", "echo precious > /vol/f; echo ready; sleep 60"], mounts=["ckvol-busy:/vol"]
    )
    try:
        deadline = time.monotonic() + 10
        while b"ready" not in c.logs() and time.monotonic() < deadline:
            time.sleep(0.02)
        for force in (False, True):  # dockerd refuses an in-use volume even with force
            with pytest.raises(ck.Conflict, match=c.name):
                engine.volumes.remove("ckvol-busy", force=force)
        c.stop(timeout=0)
        with pytest.raises(ck.Conflict):  # a stopped container still uses it
            engine.volumes.remove("ckvol-busy")
        reader = engine.containers.run(IMAGE, ["cat", "/vol/f"], mounts=["ckvol-busy:/vol"])
        assert reader.wait(timeout=30) == 0 and reader.logs() == b"precious\n"
    finally:
        for other in engine.containers.list(all=True):
            if "ckvol-busy" in other.volume_names:
                other.remove(force=True)
    engine.volumes.remove("ckvol-busy")
    engine.volumes.remove("ckvol-busy", force=True)  # missing: no error with force
    with pytest.raises(ck.NotFound):
        engine.volumes.remove("ckvol-busy")


@pytest.mark.parametrize("backend", ["builtin", "runc"])
def test_exec_edges(engine: ck.Engine, backend: str) -> None:
    from containerkit.runtime import runc

    if backend != "builtin" and not runc.available(backend):
        pytest.skip(f"{backend}: {runc.unavailable_reason(backend)}")
    c = engine.containers.run(IMAGE, ["sleep", "60"], runtime=backend)
    try:
        missing = c.exec(["nosuchcommand"])
        assert missing.exit_code == 126  # as docker exec: the exec could not start
        assert c.exec(["/etc/passwd"]).exit_code == 126
        assert b"executable file not found in $PATH" in missing.stderr
        # A background child keeps the exec's stdout open: the exec still ends with its command.
        started = time.monotonic()
        result = c.exec(["sh", "-c", "sleep 30 & echo started"])
        assert result.exit_code == 0 and result.stdout == b"started\n"
        assert time.monotonic() - started < 5
        c.exec(["sh", "-c", "sleep 0.2; echo detached > /tmp/d"], detach=True)
        deadline = time.monotonic() + 10
        while c.exec(["cat", "/tmp/d"]).stdout != b"detached\n":
            assert time.monotonic() < deadline, "the detached exec never ran"
            time.sleep(0.05)
        started = time.monotonic()
        with pytest.raises(ck.Timeout):
            c.exec(["sleep", "5"], timeout=0.3)
        assert time.monotonic() - started < 3
    finally:
        c.remove(force=True)
