"""Run the built-in runtime the way the shim does, in its own process, for the tests.

    python _builtin_harness.py run BUNDLE ERROR_FILE [PIDFILE]
    python _builtin_harness.py exec TARGET_PID PROCESS_JSON ERROR_FILE

Exits with the container's (or the exec's) exit code; a runtime error report read from
``error_fd`` is written to ERROR_FILE. The pytest process itself never changes namespaces.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from containerkit.linux._libc import CLONE_NEWPID, libc
from containerkit.runtime.builtin import exec_in_container, run_container_init


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    os.close(fd)
    return b"".join(chunks)


def _finish(pid: int, read_fd: int, error_file: str) -> None:
    report = _read_all(read_fd)
    if report:
        Path(error_file).write_bytes(report)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    sys.stdout.flush()
    os._exit(128 - code if code < 0 else code)


def main(argv: list[str]) -> None:
    read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
    if argv[0] == "run":
        bundle, error_file = Path(argv[1]), argv[2]
        config = json.loads((bundle / "config.json").read_text())
        libc.unshare(CLONE_NEWPID)
        pid = os.fork()
        if pid == 0:
            os.close(read_fd)
            run_container_init(bundle, config, error_fd=write_fd)
        if len(argv) > 3:
            Path(argv[3]).write_text(str(pid))
    else:
        target, process, error_file = int(argv[1]), json.loads(Path(argv[2]).read_text()), argv[3]
        pid = os.fork()
        if pid == 0:
            os.close(read_fd)
            exec_in_container(target, process, error_fd=write_fd)
    os.close(write_fd)
    _finish(pid, read_fd, error_file)


if __name__ == "__main__":
    main(sys.argv[1:])
