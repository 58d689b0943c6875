"""The shim end to end: real containers through the builtin runtime and runc."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import attrs
import pytest

from containerkit.errors import CommandNotFound, RuntimeFailure
from containerkit.linux import proc
from containerkit.runtime import state
from containerkit.runtime.logs import read_logs
from containerkit.runtime.shim import ShimRequest, start_container
from containerkit.runtime.spawner import Spawner
from containerkit.spec import Resources
from tests.runtime._shim_harness import RUNTIMES, Boxes, boxes_fixture  # noqa: F401 - the boxes fixture

TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$")


@pytest.fixture(scope="module")
def spawner() -> Spawner:
    with Spawner() as s:
        yield s  # type: ignore[misc]


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_logs_and_exit_code(boxes: Boxes, spawner: Spawner, runtime: str) -> None:
    request = boxes.request(["sh", "-c", "echo out1; echo err1 >&2; printf partial; exit 3"], runtime=runtime)
    started = start_container(request, spawner=spawner)
    assert started.pid != started.shim_pid
    assert state.wait_for_exit(request.state_dir, timeout=10) == 3
    records = [json.loads(line) for line in (request.state_dir / state.LOG_FILE).read_text().splitlines()]
    assert {(r["stream"], r["log"]) for r in records} == {
        ("stdout", "out1\n"),
        ("stderr", "err1\n"),
        ("stdout", "partial"),
    }
    assert all(TIME_RE.match(r["time"]) for r in records)
    log = request.state_dir / state.LOG_FILE
    assert read_logs(log, stderr=False) == b"out1\npartial"
    assert read_logs(log, stdout=False) == b"err1\n"
    final = state.read_state(request.state_dir)
    assert (final.status, final.exit_code, final.oom_killed, final.error) == ("exited", 3, False, None)
    assert final.started_at and final.finished_at and final.started_at <= final.finished_at


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_signal_exit_is_128_plus_n(boxes: Boxes, spawner: Spawner, runtime: str) -> None:
    request = boxes.request(["sleep", "30"], runtime=runtime)
    started = start_container(request, spawner=spawner)
    assert state.read_state(request.state_dir).status == "running"
    assert proc.send_signal(started.pid, signal.SIGKILL, started.pid_start_time)
    assert state.wait_for_exit(request.state_dir, timeout=10) == 137


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_command_not_found_leaves_nothing(boxes: Boxes, spawner: Spawner, runtime: str) -> None:
    request = boxes.request(["no-such-command"], runtime=runtime)
    with pytest.raises(CommandNotFound, match="no-such-command"):
        start_container(request, spawner=spawner)
    final = state.read_state(request.state_dir)
    assert final.status == "exited"
    assert final.exit_code == 127
    assert final.error and "no-such-command" in final.error
    assert not proc.is_alive(final.shim_pid, final.shim_start_time)  # teardown checks mounts, cgroups


def test_bad_bundle_is_reported(boxes: Boxes, spawner: Spawner) -> None:
    request = boxes.request(["true"])
    (request.bundle / "config.json").write_text("{not json")
    with pytest.raises(Exception, match=r"config\.json"):
        start_container(request, spawner=spawner)
    assert state.read_state(request.state_dir).exit_code == 125


def test_survives_the_process_that_started_it(boxes: Boxes) -> None:
    request = boxes.request(["sh", "-c", "read line < /dev/stdin; echo got $line"], stdin_open=True)
    starter = """
import json, sys
from containerkit.runtime.shim import ShimRequest, start_container
from containerkit.runtime.spawner import Spawner
with Spawner() as spawner:
    started = start_container(ShimRequest.from_dict(json.loads(sys.argv[1])), spawner=spawner)
print(started.shim_pid)
"""
    result = subprocess.run(
        [sys.executable, "-c", starter, json.dumps(request.to_dict())],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    shim_pid = int(result.stdout)
    # The starter and its spawner are gone; the container is found again from the state dir.
    found = state.read_state(request.state_dir)
    assert found.status == "running" and found.shim_pid == shim_pid and found.pid_alive
    with open(request.state_dir / state.STDIN_FIFO, "wb") as fifo:
        fifo.write(b"hello\n")
    assert state.wait_for_exit(request.state_dir, timeout=10) == 0
    assert read_logs(request.state_dir / state.LOG_FILE) == b"got hello\n"


def test_fresh_process_path(boxes: Boxes) -> None:
    request = boxes.request(["echo", "no forkserver"])
    start_container(request, spawner=None)
    assert state.wait_for_exit(request.state_dir, timeout=10) == 0
    assert read_logs(request.state_dir / state.LOG_FILE) == b"no forkserver\n"


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_tty_output_is_logged_as_stdout(boxes: Boxes, spawner: Spawner, runtime: str) -> None:
    request = boxes.request(["sh", "-c", "tty; echo to-stderr >&2"], runtime=runtime, tty=True)
    start_container(request, spawner=spawner)
    assert state.wait_for_exit(request.state_dir, timeout=10) == 0
    log = request.state_dir / state.LOG_FILE
    assert read_logs(log, stdout=False) == b""
    out = read_logs(log)
    assert re.match(rb"^/dev/(console|pts/\d+)\r\nto-stderr\r\n$", out), out


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_stdin_once_closes_container_stdin(boxes: Boxes, spawner: Spawner, runtime: str) -> None:
    request = boxes.request(["sh", "-c", "cat; echo done"], runtime=runtime, stdin_open=True, stdin_once=True)
    start_container(request, spawner=spawner)
    with open(request.state_dir / state.STDIN_FIFO, "wb") as fifo:
        fifo.write(b"line1\nline2\n")
    assert state.wait_for_exit(request.state_dir, timeout=10) == 0
    assert read_logs(request.state_dir / state.LOG_FILE) == b"line1\nline2\ndone\n"


def test_oom_kill_is_recorded(boxes: Boxes, spawner: Spawner) -> None:
    request = boxes.request(
        ["sh", "-c", "x=a; while true; do x=$x$x; done"], resources=Resources(memory="8m", memory_swap="8m")
    )
    start_container(request, spawner=spawner)
    code = state.wait_for_exit(request.state_dir, timeout=30)
    final = state.read_state(request.state_dir)
    assert final.oom_killed, final
    assert code == 137


def test_start_without_shim_report_is_runtime_failure(tmp_path: Path) -> None:
    request = ShimRequest(container_id="x", bundle=tmp_path / "nope", state_dir=tmp_path / "state")

    class DeadSpawner:
        def spawn_shim(self, _request: ShimRequest, *, ready_fd: int) -> int:
            return 0  # pretends to fork, never writes to ready_fd

    with pytest.raises(RuntimeFailure, match="exited without reporting"):
        start_container(request, spawner=DeadSpawner())  # type: ignore[arg-type]
    assert state.read_state(tmp_path / "state").exit_code == 125


def test_request_round_trips_as_json(tmp_path: Path) -> None:
    request = ShimRequest(
        container_id="c",
        bundle=tmp_path,
        state_dir=tmp_path / "s",
        runtime="runc",
        resources=Resources(memory="64m", pids=10),
        runc_root=tmp_path / "r",
    )
    assert ShimRequest.from_dict(json.loads(json.dumps(request.to_dict()))) == request


def test_wait_from_many_processes(boxes: Boxes, spawner: Spawner) -> None:
    request = boxes.request(["sleep", "0.3"])
    start_container(request, spawner=spawner)
    waiter = (
        "from containerkit.runtime.state import wait_for_exit; "
        f"print(wait_for_exit({str(request.state_dir)!r}, 10))"
    )
    children = [subprocess.Popen([sys.executable, "-c", waiter], stdout=subprocess.PIPE) for _ in range(2)]
    t0 = time.monotonic()
    assert state.wait_for_exit(request.state_dir, timeout=10) == 0
    assert [c.communicate(timeout=10)[0].strip() for c in children] == [b"0", b"0"]
    assert time.monotonic() - t0 < 5


def test_in_its_cgroup_and_namespace_before_the_command_runs(boxes: Boxes, spawner: Spawner) -> None:
    """The shim moves the init while it sets up; the command sees the container's cgroup as its
    namespace root in every managed hierarchy, with the limits already set."""
    request = boxes.request(
        ["sh", "-c", "cat /proc/self/cgroup; cat /sys/fs/cgroup/pids/pids.max"], resources=Resources(pids=9)
    )
    start_container(request, spawner=spawner)
    assert state.wait_for_exit(request.state_dir, timeout=10) == 0
    out = read_logs(request.state_dir / state.LOG_FILE).decode()
    lines = dict(line.split(":", 2)[1:] for line in out.splitlines() if line.count(":") >= 2)
    for controller in ("memory", "pids", "freezer", "cpu"):
        assert lines[controller] == "/", out
    assert out.splitlines()[-1] == "9"


def test_shim_log_only_when_the_shim_has_something_to_say(boxes: Boxes, spawner: Spawner) -> None:
    request = boxes.request(["true"])
    start_container(request, spawner=spawner)
    assert state.wait_for_exit(request.state_dir, timeout=10) == 0
    assert not (request.state_dir / "shim.log").exists()
    assert (request.state_dir / state.LOG_FILE).exists()
    assert sorted(p.name for p in request.state_dir.iterdir() if p.name.endswith(".tmp")) == []


def test_shim_log_is_created_on_first_write(tmp_path: Path) -> None:
    script = f"""
import os, sys, traceback
from pathlib import Path
from containerkit.runtime import shim
shim._redirect_stdio(Path({str(tmp_path)!r}))
assert not Path({str(tmp_path)!r}, "shim.log").exists()
try:
    raise ValueError("boom")
except ValueError:
    traceback.print_exc()
os.write(2, b"from fd 2\\n")
"""
    subprocess.run([sys.executable, "-c", script], check=True, timeout=30)
    text = (tmp_path / "shim.log").read_text()
    assert "ValueError: boom" in text
    assert text.endswith("from fd 2\n")


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_the_kept_ready_pipe_reads_eof_once_the_exit_is_recorded(
    boxes: Boxes, spawner: Spawner, runtime: str
) -> None:
    """A starter may keep the pipe the shim reported on: its EOF says the exit is recorded, and
    a wait given it returns the code without waiting for the shim's process to be gone."""
    request = boxes.request(["sh", "-c", "sleep 0.2; exit 5"], runtime=runtime)
    started = start_container(request, spawner=spawner, keep_exit_fd=True)
    assert started.exit_fd is not None
    try:
        assert os.read(started.exit_fd, 1) == b""  # blocks until the shim lets go of it
        exited = state.read_exit(request.state_dir)
        assert exited is not None and exited["exit_code"] == 5
        assert state.wait_for_exit(request.state_dir, timeout=10, exit_fd=started.exit_fd) == 5
    finally:
        os.close(started.exit_fd)


def test_the_kept_ready_pipe_stays_open_while_the_exit_command_runs(
    boxes: Boxes, spawner: Spawner, tmp_path: Path
) -> None:
    """With an exit command due, the exit is handled only once the command is done."""
    handled = tmp_path / "handled"
    request = attrs.evolve(boxes.request(["true"]), exit_command=("sh", "-c", f"sleep 0.2; touch {handled}"))
    started = start_container(request, spawner=spawner, keep_exit_fd=True)
    assert started.exit_fd is not None
    try:
        assert os.read(started.exit_fd, 1) == b""
        assert handled.exists()
    finally:
        os.close(started.exit_fd)


def test_no_pipe_is_kept_for_a_start_that_failed_or_when_not_asked(boxes: Boxes, spawner: Spawner) -> None:
    before = set(os.listdir("/proc/self/fd"))
    with pytest.raises(CommandNotFound):
        start_container(boxes.request(["no-such-command"]), spawner=spawner, keep_exit_fd=True)
    request = boxes.request(["true"])
    assert start_container(request, spawner=spawner).exit_fd is None
    assert state.wait_for_exit(request.state_dir, timeout=10) == 0
    assert set(os.listdir("/proc/self/fd")) <= before
