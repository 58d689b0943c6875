"""Process listings from /proc, in the shape of ``ps -ef`` (what ``docker top`` shows)."""

from __future__ import annotations

import os
import pwd
import time

__all__ = ["PROCESS_TITLES", "pid_namespace", "process_row"]

PROCESS_TITLES = ("UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD")

_TICKS = os.sysconf("SC_CLK_TCK")


def _user(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _boot_time() -> float:
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("btime "):
                return float(line.split()[1])
    return 0.0


def process_row(pid: int, *, proc: str = "/proc") -> list[str] | None:
    """One ``ps -ef`` row for ``pid`` (host view), or None when it is gone."""
    try:
        with open(f"{proc}/{pid}/stat") as f:
            stat = f.read()
        with open(f"{proc}/{pid}/cmdline", "rb") as f:
            cmdline = f.read().replace(b"\0", b" ").strip().decode(errors="replace")
        uid = os.stat(f"{proc}/{pid}").st_uid
    except (FileNotFoundError, ProcessLookupError):
        return None
    name = stat[stat.index("(") + 1 : stat.rindex(")")]
    fields = stat[stat.rindex(")") + 2 :].split()
    ppid = fields[1]
    cpu_seconds = (int(fields[11]) + int(fields[12])) // _TICKS
    started = _boot_time() + int(fields[19]) / _TICKS
    return [
        _user(uid),
        str(pid),
        ppid,
        "0",
        time.strftime("%H:%M", time.localtime(started)),
        "?",
        time.strftime("%H:%M:%S", time.gmtime(cpu_seconds)),
        cmdline or f"[{name}]",
    ]


def pid_namespace(pid: int, *, proc: str = "/proc") -> str | None:
    """``pid:[inode]`` of the pid namespace ``pid`` lives in, or None when it is gone."""
    try:
        return os.readlink(f"{proc}/{pid}/ns/pid")
    except (FileNotFoundError, ProcessLookupError):
        return None
