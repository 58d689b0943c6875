"""Deleting directories that are already unreachable, off the caller's path.

A removal renames what it removes into the store's ``tmp/`` under a ``trash-`` name (atomic:
nothing reaches it any more) and hands it to a :class:`Trash`, whose one background thread
unlinks the files. On a busy disk the unlinks of a container's state dir and snapshot cost
milliseconds (up to tens of them), which ``remove()`` no longer waits for. A process that dies
first leaves the trash dir, which recovery removes (``SnapshotStore.reap_staging``);
:meth:`Trash.drain` waits for the deletions (``Engine.close`` does).
"""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

__all__ = ["Trash"]


class Trash:
    """A queue of trash dirs and the thread that deletes them (started when there is work,
    gone once the queue is empty)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._queue: list[Path] = []
        self._thread: threading.Thread | None = None
        self._last: threading.Thread | None = None  # one that emptied the queue, to be joined

    def delete(self, path: Path) -> None:
        """Delete ``path`` (a directory nothing refers to any more) in the background."""
        with self._lock:
            self._queue.append(path)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="containerkit-trash", daemon=True)
                self._thread.start()

    def drain(self) -> None:
        """Return once every queued directory is deleted (and the thread is gone)."""
        with self._lock:
            while self._thread is not None:
                self._idle.wait()
            last, self._last = self._last, None
        if last is not None:
            last.join()

    def _run(self) -> None:
        while True:
            with self._lock:
                if not self._queue:
                    self._thread, self._last = None, threading.current_thread()
                    self._idle.notify_all()
                    return
                path = self._queue.pop(0)
            shutil.rmtree(path, ignore_errors=True)
