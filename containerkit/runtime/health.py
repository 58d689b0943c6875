"""A container's health check, run beside its shim so it goes on while no Engine or daemon runs.

The shim forks one checker process per run of a container whose spec (or image) has a health
check. The checker runs the check as an exec in the container (:func:`~containerkit.runtime.
exec.start_exec`, a fresh single-threaded helper each time) with docker's timing: the first
check one interval after the start (``start_interval`` during the start period), a check that
outlives ``timeout`` is killed and fails with exit code -1, failures in the start period do not
count, ``retries`` failures in a row make the container ``unhealthy``, any success makes it
``healthy``. Each result goes into ``health.json`` in the state dir (written atomically; read
by :meth:`~containerkit.runtime.task.Task.health`): the status, the failing streak, the last
five results (output capped at 4 KiB, as docker) and the last status changes with their
times, from which the engine records ``health_status`` events when it observes them.

The checker ends when the container's init exits (it polls the init's pidfd between checks)
or when the shim kills it at the exit.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import time
from pathlib import Path
from typing import Any

import attrs

from containerkit.errors import ContainerkitError, Timeout
from containerkit.linux import _libc, proc
from containerkit.runtime import logs, state
from containerkit.spec import HEALTH_LOG_KEEP, HEALTH_OUTPUT_MAX, Healthcheck

__all__ = ["HEALTH_FILE", "HealthChecker", "read_health", "run_checker", "write_starting"]

HEALTH_FILE = "health.json"
_REAP_EVERY = 0.1
"""While it waits, how often the checker collects orphans (see :func:`_wait_reaping`)."""
_TRANSITIONS_KEEP = 8
"""Status changes kept in the file, so an observer that looks seldom still sees each one."""


def write_starting(state_dir: Path) -> None:
    """The first record of a run, written by the shim before it reports the start: a container
    whose state dir has none has no health check."""
    HealthChecker(state_dir, 0, None, Healthcheck(), {})._change("starting")


def read_health(state_dir: Path) -> dict[str, Any] | None:
    """The checker's record, None when there is none (no check, or none written yet)."""
    return state.read_json(Path(state_dir) / HEALTH_FILE)


@attrs.define
class HealthChecker:
    """Runs ``check`` in the container whose init is ``pid`` and keeps the record in ``state_dir``.

    ``process``: the OCI process of the check (the container's own, with the test as argv).
    """

    state_dir: Path
    pid: int
    pid_start_time: int | None
    check: Healthcheck
    process: dict[str, Any]
    status: str = "starting"
    failing_streak: int = 0
    log: list[dict[str, Any]] = attrs.field(factory=list)
    transitions: list[dict[str, Any]] = attrs.field(factory=list)
    seq: int = 0

    def run(self) -> None:
        """Check until the container's init exits."""
        check = self.check.effective()
        started = time.monotonic()
        self._change("starting")
        pidfd = proc.open_pidfd(self.pid, self.pid_start_time)
        if pidfd is None:
            return
        try:
            while True:
                in_start_period = time.monotonic() - started < check.start_period
                starting = in_start_period and self.status == "starting"
                if _wait_reaping(pidfd, check.start_interval if starting else check.interval):
                    return  # the container exited
                in_start_period = time.monotonic() - started < check.start_period
                self.probe(check, in_start_period=in_start_period)
        finally:
            os.close(pidfd)

    def probe(self, check: Healthcheck, *, in_start_period: bool) -> None:
        """One check, its result recorded (docker's ``handleProbeResult``)."""
        start = time.time_ns()
        exit_code, output = self._run_check(check.timeout)
        end = time.time_ns()
        self.log.append(
            {
                "start": logs.format_time(start),
                "end": logs.format_time(end),
                "exit_code": exit_code,
                "output": output,
            }
        )
        del self.log[:-HEALTH_LOG_KEEP]
        if exit_code == 0:
            self.failing_streak = 0
            self._change("healthy", end)
        elif not (in_start_period and self.status == "starting"):
            self.failing_streak += 1
            if self.failing_streak >= check.retries:
                self._change("unhealthy", end)
        self._write()

    def _run_check(self, timeout: float) -> tuple[int, str]:
        from containerkit.runtime.exec import start_exec

        try:
            process = start_exec(self.pid, self.process, tty=False, stdin=False)
        except (ContainerkitError, OSError) as exc:
            return -1, str(exc)[:HEALTH_OUTPUT_MAX]
        with process:
            chunks: list[bytes] = []
            size = 0
            try:
                for _stream, chunk in process.stream(deadline=time.monotonic() + timeout):
                    if size < HEALTH_OUTPUT_MAX:
                        chunks.append(chunk)
                        size += len(chunk)
                code = process.wait(max(0.0, timeout))
            except Timeout:
                with contextlib.suppress(OSError):
                    os.kill(process.pid, signal.SIGKILL)
                with contextlib.suppress(ContainerkitError):
                    process.wait(5)
                _kill_orphans()  # the check's command, left to this subreaper by its helper
                return -1, f"Health check exceeded timeout ({_seconds(timeout)})"
            output = b"".join(chunks)[:HEALTH_OUTPUT_MAX].decode(errors="replace")
            if process.error is not None and not output:
                output = process.error.message
            return code, output

    def _change(self, status: str, when: int | None = None) -> None:
        if status == self.status and self.seq:
            return
        self.status = status
        self.seq += 1
        self.transitions.append({"seq": self.seq, "status": status, "time_nano": when or time.time_ns()})
        del self.transitions[:-_TRANSITIONS_KEEP]
        self._write()

    def _write(self) -> None:
        state.write_json_atomic(
            self.state_dir / HEALTH_FILE,
            {
                "status": self.status,
                "failing_streak": self.failing_streak,
                "log": self.log,
                "transitions": self.transitions,
            },
        )


def _seconds(value: float) -> str:
    return f"{value:g}s"


def _readable(fd: int, timeout: float) -> bool:
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(max(0, int(timeout * 1000))))


def _wait_reaping(pidfd: int, timeout: float) -> bool:
    """Wait up to ``timeout`` for the init's exit, reaping orphans meanwhile: a check's process
    left to this subreaper lives in the container's pid namespace, whose init cannot finish
    exiting while it is unreaped. Whether the init exited."""
    deadline = time.monotonic() + timeout
    while True:
        _reap()
        remaining = deadline - time.monotonic()
        if _readable(pidfd, min(max(remaining, 0.0), _REAP_EVERY)):
            _reap()
            return True
        if remaining <= 0:
            return False


def _reap() -> None:
    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _kill_orphans() -> None:
    """SIGKILL this process's children (after a check's helper was killed: its command)."""
    for task in Path("/proc/self/task").iterdir():
        with contextlib.suppress(OSError, ValueError):
            for pid in (task / "children").read_text().split():
                with contextlib.suppress(OSError):
                    os.kill(int(pid), signal.SIGKILL)
    _reap()


def run_checker(state_dir: Path, pid: int, pid_start_time: int | None, config: dict[str, Any]) -> None:
    """The checker's body in a process forked by the shim (never returns to the shim's code)."""
    code = 0
    try:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
        _libc.libc.prctl(_libc.PR_SET_CHILD_SUBREAPER, 1)  # the orphans of a killed check
        check = Healthcheck(**config["check"])
        HealthChecker(state_dir, pid, pid_start_time, check, dict(config["process"])).run()
    except BaseException:
        import traceback  # here: ~3 ms of import off every start

        traceback.print_exc()
        code = 1
    os._exit(code)
