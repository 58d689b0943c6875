"""Deleting directories that are already unreachable, off the caller's path.

A removal renames what it removes into the store's ``tmp/`` under a ``trash-`` name (atomic:
nothing reaches it any more) and hands it to a :class:`Trash`, whose one background thread
unlinks the files. On a busy disk the unlinks of a container's state dir and snapshot cost
milliseconds (up to tens of them), which ``remove()`` no longer waits for. A process that dies
first leaves the trash dir, which recovery removes (``SnapshotStore.reap_staging``);
:meth:`Trash.drain` waits for the deletions (``Engine.close`` does).

The thread waits a while (:data:`LINGER`) for the next removal before it ends: starting a
thread waits until it runs, which cost a daemon's auto-removal (and the ``docker run --rm``
waiting for it) 0.1 ms quiet and several ms on a loaded machine, once per removal. It lingers
only where other threads run besides the main one (a daemon): a single-threaded process (a
command line, a script) must become single-threaded again, since only then does it fork its
shims and forkserver instead of starting an interpreter for them; when it wants to fork and
the trash's threads are all that run besides it, they are drained first (:mod:`containerkit._forkready`).
"""

from __future__ import annotations

import shutil
import threading
import weakref
from pathlib import Path

from containerkit import _forkready

__all__ = ["LINGER", "Trash"]

LINGER = 30.0
"""Seconds an idle deleting thread waits for more work before it ends (where other threads run)."""

_THREAD_NAME = "containerkit-trash"
_live: weakref.WeakSet[Trash] = weakref.WeakSet()


def _drain_for_fork() -> None:
    """Drain every trash when their threads are the only ones besides the main thread (a fork
    is possible then); where other threads run, leave them (it is not)."""
    others = [t for t in threading.enumerate() if t is not threading.main_thread()]
    if others and all(t.name == _THREAD_NAME for t in others):
        for trash in list(_live):
            trash.drain()


_forkready.on_fork_wanted(_drain_for_fork)


class Trash:
    """A queue of trash dirs and the thread that deletes them (started when there is work,
    gone once the queue stayed empty for :data:`LINGER` seconds, or at :meth:`drain`)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._work = threading.Condition(self._lock)  # the lingering thread waits on it
        self._queue: list[Path] = []
        self._thread: threading.Thread | None = None
        self._last: threading.Thread | None = None  # one that emptied the queue, to be joined
        self._draining = 0  # drains under way: the thread ends once the queue is empty
        _live.add(self)

    @property
    def worker(self) -> threading.Thread | None:
        """The deleting thread now, if one runs or lingers (each trash has its own)."""
        with self._lock:
            return self._thread

    def delete(self, path: Path) -> None:
        """Delete ``path`` (a directory nothing refers to any more) in the background."""
        with self._lock:
            self._queue.append(path)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=_THREAD_NAME, daemon=True)
                self._thread.start()
            else:
                self._work.notify()

    def drain(self) -> None:
        """Return once every queued directory is deleted (and the thread is gone)."""
        with self._lock:
            self._draining += 1
            self._work.notify()
            try:
                while self._thread is not None:
                    self._idle.wait()
            finally:
                self._draining -= 1
            last, self._last = self._last, None
        if last is not None:
            last.join()

    def _run(self) -> None:
        while True:
            with self._lock:
                if not self._queue and not self._draining and threading.active_count() > 2:
                    self._work.wait(LINGER)
                if not self._queue:
                    self._thread, self._last = None, threading.current_thread()
                    self._idle.notify_all()
                    return
                path = self._queue.pop(0)
            shutil.rmtree(path, ignore_errors=True)
