"""Timestamps of a container's start and exit, for the benchmarks' per-phase breakdown.

Off unless ``CONTAINERKIT_TRACE`` names a file when a process starts (read once, at import):
then every process on the path (the engine, the fork server, the shim, the container's init)
appends ``<CLOCK_MONOTONIC ns> <pid> <phase>`` lines to it. The clock is the same in every
process and pid namespace, so the lines of one start merge into one timeline
(``benchmarks/bench_start.py`` prints it). Off, :func:`mark` is one global check.
"""

from __future__ import annotations

import os
import time

__all__ = ["ENV", "disable", "enable", "enabled", "hold", "mark"]

ENV = "CONTAINERKIT_TRACE"

_path: str | None = os.environ.get(ENV) or None
_held: tuple[int, int] | None = None  # (pid, fd) of a process that keeps the file open


def enabled() -> bool:
    return _path is not None


def enable(path: str) -> None:
    """Trace this process, and the processes it starts from now on (the environment)."""
    global _path
    _path = path
    os.environ[ENV] = path


def disable() -> None:
    global _path
    _path = None
    os.environ.pop(ENV, None)


def hold() -> None:
    """Keep the file open in this process: the container's init calls it before its root
    moves, after which the file's path is out of its reach. Close-on-exec."""
    global _held
    if _path is None:
        return
    try:
        _held = (os.getpid(), os.open(_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600))
    except OSError:
        _held = None


def mark(phase: str) -> None:
    """Append one timestamped ``phase`` line (nothing when tracing is off; never raises)."""
    if _path is None:
        return
    line = f"{time.monotonic_ns()} {os.getpid()} {phase}\n".encode()
    try:
        if _held is not None and _held[0] == os.getpid():
            os.write(_held[1], line)
            return
        fd = os.open(_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
    except OSError:
        pass
