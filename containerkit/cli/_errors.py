"""How failures leave the command line: one line on stderr and docker's exit codes."""

from __future__ import annotations

import sys

__all__ = ["ENGINE_ERROR", "USAGE_ERROR", "CliError", "exit_code_for", "print_error"]

USAGE_ERROR = 125
"""docker's code for a bad flag or an error before the container ran (``run``, ``create``)."""

ENGINE_ERROR = 1
"""docker's code for a failed request in the other verbs (``rm``, ``inspect``, ``start``...)."""


class CliError(Exception):
    """A failure to report as ``containerkit: <message>`` with ``exit_code``."""

    def __init__(self, message: str, exit_code: int = ENGINE_ERROR) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


def exit_code_for(exc: BaseException, default: int = ENGINE_ERROR) -> int:
    """126 when a command cannot be invoked, 127 when it does not exist, else ``default``."""
    from containerkit.errors import CommandNotFound

    if isinstance(exc, CliError):
        return exc.exit_code
    if isinstance(exc, CommandNotFound):
        return 127
    return default


def print_error(message: str) -> None:
    first = message.strip().splitlines()[0] if message.strip() else "error"
    print(f"containerkit: {first}", file=sys.stderr, flush=True)
