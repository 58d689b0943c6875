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


def _drive(
    root: Path | None,
    args: list[str],
    typed: bytes,
    *,
    timeout: float = 15,
    resize: tuple[int, int] | None = None,
    then: bytes = b"",
    resize_after: bytes = b"",
    host: str | None = None,
) -> tuple[int, bytes]:
    """Run the CLI on a pty sized 40x100, type ``typed`` once it is up; (exit code, all output).

    With ``resize`` the pty is then set to that size (the CLI gets SIGWINCH), not before the
    output shows ``resize_after``, and ``then`` typed.
    ``host`` drives a daemon (``-H``) instead of the engine on ``root``.
    """
    target = ["-H", host] if host is not None else ["--root", str(root)]
    pid, fd = pty.fork()
    if pid == 0:  # pragma: no cover - the child execs at once
        os.execv(sys.executable, [sys.executable, "-m", "containerkit.cli", *target, *args])
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 100, 0, 0))
    output = b""
    deadline = time.monotonic() + timeout
    typed_at = time.monotonic() + 1.0  # give the CLI time to start the container and go raw
    steps: list[tuple[float, bytes | tuple[int, int], bytes]] = [(typed_at, typed, b"")]
    if resize is not None:
        steps += [(typed_at + 0.5, resize, resize_after), (typed_at + 1.0, then, b"")]
    try:
        while time.monotonic() < deadline:
            while steps and time.monotonic() >= steps[0][0] and steps[0][2] in output:
                step = steps.pop(0)[1]
                if isinstance(step, bytes):
                    os.write(fd, step)
                else:
                    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", *step, 0, 0))
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


def test_run_it_follows_the_terminal_size(ck: Ck, cli_root: Path) -> None:
    code, output = _drive(
        cli_root,
        ["run", "-it", "--rm", "--network", "none", IMAGE, "sh"],
        b"stty size\r",
        resize=(30, 90),
        resize_after=b"\r\n40 100\r\n",  # the first size was read before the resize
        then=b"stty size; exit 3\r",
        timeout=8,
    )
    assert code == 3, output
    assert b"\r\n40 100\r\n" in output  # at start
    assert b"\r\n30 90\r\n" in output  # after SIGWINCH
    assert ck("ps", "-aq").stdout == ""


def test_start_ai_gives_the_terminal_size(ck: Ck, cli_root: Path) -> None:
    container_id = ck("create", "-it", "--network", "none", IMAGE, "sh").stdout.strip()
    code, output = _drive(cli_root, ["start", "-ai", container_id], b"stty size; exit 4\r", timeout=8)
    assert code == 4, output
    assert b"\r\n40 100\r\n" in output


def test_interactive_without_a_terminal_is_refused(ck: Ck) -> None:
    result = ck("run", "-it", "--rm", IMAGE, "sh")
    assert result.exit_code == 1 and "not a TTY" in result.stderr
