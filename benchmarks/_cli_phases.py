"""Run the console script's ``main()`` with timestamps at each phase of a ``containerkit run``.

``bench_cli.py --phases`` execs this file with the interpreter under test (as the console
script would run) and ``CK_PHASES_T0`` set to the wall-clock time just before the exec; the
timeline goes to the file named by ``CK_PHASES_OUT`` as JSON lines ``[phase, seconds since T0]``.

The hooks wrap functions by name and only observe: a name that no longer exists is skipped
(its phase then merges into the next one), so a refactor never breaks the benchmark.
Importing the verb module and the engine happens where the command does it (inside the hooks),
so the import phases are the command's own.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

T0 = float(os.environ["CK_PHASES_T0"])
_marks: list[tuple[str, float]] = [("interpreter start + site", time.time())]


def mark(phase: str) -> None:
    _marks.append((phase, time.time()))


def _wrap(owner: Any, name: str, before: str | None, after: str) -> None:
    original: Callable[..., Any] | None = getattr(owner, name, None)
    if original is None:
        return

    def timed(*args: Any, **kwargs: Any) -> Any:
        if before is not None:
            mark(before)
        try:
            return original(*args, **kwargs)
        finally:
            mark(after)

    setattr(owner, name, timed)


def _hook_engine() -> None:
    """Called once the engine is imported: the create/start/wait/remove hooks."""
    from containerkit.engine import container_service, containers, exit_hook

    _wrap(containers.ContainerCollection, "create", "resolve image + build spec", "create")
    _wrap(container_service.ContainerService, "start", None, "start (shim forked, init exec'd)")
    _wrap(containers.Container, "wait_exit", None, "wait for the exit")
    _wrap(exit_hook, "handle_exit", None, "auto-remove (--rm)")
    _wrap(container_service.ContainerService, "close", "close: network, cgroup", "close: drain removals")


def main() -> None:
    import containerkit.cli.main as cli_main

    mark("import containerkit.cli.main")
    import containerkit.cli._backend as backend

    mark("import click + cli._backend")
    open_engine = backend.Backend._open_engine

    def opened(self: Any) -> Any:
        mark("import cli._root, parse, import the verb")
        from containerkit.engine import Engine  # noqa: F401  (the package loads it on first use)

        mark("import the engine")
        _hook_engine()
        engine = open_engine(self)
        mark("Engine open (database, recovery)")
        return engine

    backend.Backend._open_engine = opened  # type: ignore[method-assign]
    _wrap(backend.Backend, "close", None, "close: database")

    import atexit

    def write() -> None:
        mark("exit handlers")
        with open(os.environ["CK_PHASES_OUT"], "a") as out:
            out.write(json.dumps([(phase, at - T0) for phase, at in _marks]) + "\n")

    atexit.register(write)
    sys.argv[0] = "containerkit"
    cli_main.main()


if __name__ == "__main__":
    main()
