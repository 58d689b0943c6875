"""Progress for long operations: a rich bar on a terminal, plain lines otherwise."""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Callable, Iterator

__all__ = ["progress"]


@contextlib.contextmanager
def progress(
    description: str, *, total: int | None = None, measure: Callable[[], int] | None = None
) -> Iterator[None]:
    """Show ``description`` while the block runs.

    On a terminal (stderr) a rich progress bar: ``measure()`` polled against ``total`` bytes
    when both are given, otherwise a pulsing bar with the elapsed time. Elsewhere one line
    before and nothing after, so logs stay clean.
    """
    if not sys.stderr.isatty():
        print(f"{description}...", file=sys.stderr, flush=True)
        yield
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    columns = [SpinnerColumn(), TextColumn("{task.description}"), BarColumn()]
    columns += [DownloadColumn()] if total and measure else []
    columns += [TimeElapsedColumn()]
    stop = threading.Event()
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(description, total=total if measure else None)

        def poll() -> None:
            while not stop.wait(0.1):
                if measure is not None:
                    with contextlib.suppress(OSError):
                        bar.update(task, completed=min(measure(), total or 0))

        watcher = threading.Thread(target=poll, daemon=True)
        watcher.start()
        try:
            yield
        finally:
            stop.set()
            watcher.join()
