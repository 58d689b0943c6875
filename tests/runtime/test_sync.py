"""The one error report between a forked child and its parent, and the exit code rule."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest

from containerkit.errors import CommandNotFound, InvalidArgument, RuntimeFailure, Timeout
from containerkit.runtime import _sync


@pytest.fixture
def pipe() -> Iterator[list[int]]:
    read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
    fds = [read_fd, write_fd]
    yield fds
    for fd in fds:
        if fd != -1:
            os.close(fd)


def _close(fds: list[int], index: int) -> None:
    os.close(fds[index])
    fds[index] = -1


@pytest.mark.parametrize(
    ("error", "cls", "code"),
    [
        (CommandNotFound('exec: "nope": executable file not found in $PATH'), CommandNotFound, 127),
        (InvalidArgument("bad mount"), InvalidArgument, 128),
        (OSError(5, "Input/output error"), RuntimeFailure, 128),
    ],
)
def test_a_report_crosses_the_pipe_as_the_same_error(
    pipe: list[int], error: Exception, cls: type, code: int
) -> None:
    _sync.report(pipe[1], error, context="init")
    _close(pipe, 1)
    got = _sync.read_report(pipe[0], 5)
    assert type(got) is cls
    assert got is not None and str(got) == (str(error) if cls is not RuntimeFailure else f"init: {error}")
    assert _sync.exit_code_for(error) == _sync.exit_code_for(got) == code


def test_permission_denied_crosses_with_runtime_failures_kind(pipe: list[int]) -> None:
    """The child exits 126 for it; the reader gets the kind (and the code from the status)."""
    error = _sync.PermissionDenied('exec: "/etc": permission denied')
    assert _sync.exit_code_for(error) == 126
    _sync.report(pipe[1], error)
    _close(pipe, 1)
    got = _sync.read_report(pipe[0], 5)
    assert type(got) is RuntimeFailure and got.message == error.message
    assert _sync.exit_code_for(got, otherwise=126) == 126


def test_eof_without_a_report_is_no_error(pipe: list[int]) -> None:
    _close(pipe, 1)
    assert _sync.read_report(pipe[0], 5) is None


def test_a_silent_child_times_out_naming_it(pipe: list[int]) -> None:
    started = time.monotonic()
    with pytest.raises(Timeout, match=r"shim of container c1 did not report within 0\.2 s"):
        _sync.read_report(pipe[0], 0.2, what="shim of container c1")
    assert time.monotonic() - started < 2


def test_exit_code_otherwise_is_the_callers() -> None:
    assert _sync.exit_code_for(RuntimeFailure("x"), otherwise=125) == 125
    assert _sync.exit_code_for(CommandNotFound, otherwise=125) == 127
    assert _sync.exit_code_for(_sync.PermissionDenied, otherwise=125) == 126


def test_garbage_is_a_runtime_failure_with_its_text() -> None:
    got = _sync.decode(b"not json at all")
    assert type(got) is RuntimeFailure and got.message == "not json at all"


@pytest.mark.parametrize(
    ("argv", "code"), [(["sh", "-c", "exit 3"], 3), (["sh", "-c", "kill -KILL $$"], 137)]
)
def test_a_wait_status_becomes_a_shells_exit_code(argv: list[str], code: int) -> None:
    pid = os.posix_spawnp(argv[0], argv, dict(os.environ))
    _pid, status = os.waitpid(pid, 0)
    assert _sync.status_exit_code(status) == code
