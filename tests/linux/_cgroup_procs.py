"""Processes for real cgroup tests: started with subprocess, never the pytest process itself."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable

BUSY = "while True: pass"


class Spawner:
    """Starts processes and, on exit, kills and reaps every one of them."""

    def __init__(self) -> None:
        self.started: list[subprocess.Popen[str]] = []

    def __call__(self, *argv: str, python: str | None = None, stdin: bool = False) -> subprocess.Popen[str]:
        args = [sys.executable, "-c", python] if python is not None else list(argv)
        proc = subprocess.Popen(
            args,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.started.append(proc)
        return proc

    def __enter__(self) -> Spawner:
        return self

    def __exit__(self, *_exc: object) -> None:
        for proc in self.started:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)
            for stream in (proc.stdin, proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()


def go(proc: subprocess.Popen[str]) -> None:
    """Release a child that waits on stdin (so it acts only once it is in the cgroup)."""
    assert proc.stdin is not None
    proc.stdin.write("\n")
    proc.stdin.flush()


def eventually(check: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def proc_state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rpartition(")")[2].split()[0]
