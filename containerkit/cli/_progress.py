"""Progress for long operations: a rich bar on a terminal, plain lines otherwise."""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from containerkit.spec import ProgressEvent

__all__ = ["LayerProgress", "progress"]


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


_BYTES_ACTIONS = frozenset({"Downloading", "Extracting", "Pushing"})


class LayerProgress:
    """A pull's or push's events as docker prints them: one line per layer with a bar on a
    terminal, the steps as plain ``<layer>: <action>`` lines otherwise (no byte counts, so logs
    stay short). Image-level lines (``Pulling from``, ``Digest:``, ``Status:``) are printed as is.

    Called from the engine's download threads: one lock around the output.
    """

    def __init__(self, out: IO[str] | None = None, *, tty: bool | None = None) -> None:
        self._out = out or sys.stdout
        self._tty = self._out.isatty() if tty is None else tty
        self._lock = threading.Lock()
        self._bar: Any = None
        self._tasks: dict[str, Any] = {}
        self._totals: dict[str, int] = {}

    def __enter__(self) -> LayerProgress:
        if self._tty:
            from rich.console import Console
            from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

            self._bar = Progress(
                TextColumn("{task.fields[layer]}: {task.description:<18}"),
                BarColumn(bar_width=50),
                DownloadColumn(),
                console=Console(file=self._out),
            )
            self._bar.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def line(self, text: str) -> None:
        """A line of its own (above the bars on a terminal)."""
        with self._lock:
            if self._bar is not None:
                self._bar.console.print(text, highlight=False, markup=False)
            else:
                print(text, file=self._out, flush=True)

    def __call__(self, event: ProgressEvent) -> None:
        if not event.id or event.action.startswith("Pulling from "):  # its id is the tag
            self.line(f"{event.id}: {event.action}" if event.id else event.action)
            return
        if self._bar is None:
            if event.action not in _BYTES_ACTIONS:
                self.line(f"{event.id}: {event.action}")
            return
        with self._lock:
            task = self._tasks.get(event.id)
            if task is None:
                task = self._tasks[event.id] = self._bar.add_task(event.action, layer=event.id, total=None)
            fields: dict[str, Any] = {"description": event.action}
            if event.action in _BYTES_ACTIONS:
                if event.total:
                    self._totals[event.id] = event.total
                fields["total"] = event.total
                fields["completed"] = event.current or 0
            elif event.action in ("Download complete", "Pull complete", "Pushed", "Already exists"):
                fields["completed"] = self._totals.get(event.id, 0)
            self._bar.update(task, **fields)
