"""``run -it`` and ``exec -it`` driven through a real pseudo-terminal."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import struct
import sys
import termios
import time
from pathlib import Path

from tests.cli.conftest import IMAGE, Ck


def _drive(root: Path, args: list[str], typed: bytes, *, timeout: float = 15) -> tuple[int, bytes]:
    """Run the CLI on a pty sized 40x100, type ``typed`` once it is up; (exit code, all output)."""
    pid, fd = pty.fork()
    if pid == 0:  # pragma: no cover - the child execs at once
        os.execv(sys.executable, [sys.executable, "-m", "containerkit.cli", "--root", str(root), *args])
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 100, 0, 0))
    output = b""
    deadline = time.monotonic() + timeout
    typed_at = time.monotonic() + 1.0  # give the CLI time to start the container and go raw
    sent = False
    try:
        while time.monotonic() < deadline:
            if not sent and time.monotonic() >= typed_at:
                os.write(fd, typed)
                sent = True
            ready, _, _ = select.select([fd], [], [], 0.05)
            if not ready:
                continue
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # EIO: the CLI closed the terminal (it exited)
                break
            if not chunk:
                break
            output += chunk
        else:
            os.kill(pid, signal.SIGKILL)
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    return os.waitstatus_to_exitcode(status), output


def test_exec_it_gives_an_interactive_shell(ck: Ck, cli_root: Path) -> None:
    ck("run", "-d", "--name", "cli-tty", "--network", "none", IMAGE, "sleep", "60")
    code, output = _drive(cli_root, ["exec", "-it", "cli-tty", "sh"], b"echo hi; stty size; exit 3\r")
    assert code == 3, output
    assert b"\r\nhi\r\n" in output  # the command's output, after the echoed input line
    assert b"40 100" in output  # the terminal's size reached the container


def test_run_it_gives_an_interactive_shell(ck: Ck, cli_root: Path) -> None:
    code, output = _drive(
        cli_root,
        ["run", "-it", "--rm", "--network", "none", IMAGE, "sh"],
        b"echo hi; stty size; exit 3\r",
        timeout=6,
    )
    try:
        assert code == 3, output
        assert b"\r\nhi\r\n" in output
        assert b"40 100" in output
    finally:
        ids = ck("ps", "-aq").stdout.split()
        if ids:
            ck("rm", "-f", *ids)
    assert ck("ps", "-aq").stdout == ""


def test_interactive_without_a_terminal_is_refused(ck: Ck) -> None:
    result = ck("run", "-it", "--rm", IMAGE, "sh")
    assert result.exit_code == 1 and "not a TTY" in result.stderr
