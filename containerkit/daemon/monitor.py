"""Container exits as the daemon sees them, for the three wait conditions.

A watcher thread per running container blocks on the shim (``Container.wait_exit``: a pidfd;
the shim exits once its exit command has run, so an ``AutoRemove`` container is gone by then:
the engine's exit command removes it, not the daemon) and counts the exit. Waiters read the
exit counter *before* the caller answers (so an exit between ``wait`` and ``start`` is never
missed: docker's ``run`` sends wait first) and block on one condition variable. Exit codes
outlive removal, for ``wait?condition=removed``. An attach stream holds the container's output
(:meth:`Monitor.reading`) so that the exit command removes it only once the stream has sent it.

A waiter already blocked on a container takes the watch of its next run itself (docker's
``run`` sends wait before start): the thread that answers the wait then counts the exit and
does the removal, so no thread is started for the run and no hand-off lies between the removal
and the answer. A waiter that leaves with a watch it has not begun hands it to a thread.
A watch holds its waiter's stream thread until the container exits, even when the client left
(``docker run -d`` abandons its wait): at most :data:`ADOPT_MAX` are held that way at once, the
rest get threads of their own, so abandoned waits never take the stream threads' cap.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from containerkit.daemon.events import EventBus
from containerkit.errors import ContainerkitError, InvalidArgument, NotFound

if TYPE_CHECKING:
    from containerkit.engine import Container, Engine

__all__ = ["ClientGone", "Monitor", "Waiter"]

log = logging.getLogger("containerkit.daemon")

CONDITIONS = ("not-running", "next-exit", "removed")
_KEEP = 4096
ADOPT_MAX = 32
"""Watches run by waiters' stream threads at once (of the server's 1024 stream threads)."""


class ClientGone(Exception):
    """The client of a long request hung up; nothing to answer."""


class Waiter:
    """A registered wait: the exit count at registration, so a later exit is never missed."""

    def __init__(self, monitor: Monitor, container_id: str, condition: str) -> None:
        self.monitor = monitor
        self.container_id = container_id
        self.condition = condition
        self.job: tuple[Container, tuple[str, str]] | None = None  # a watch handed to this waiter
        with monitor._cond:
            self.exits_seen = monitor._exits.get(container_id, 0)

    def wait(self, container: Container, gone: Callable[[], bool]) -> int:
        return self.monitor._wait(self, container, gone)


class Monitor:
    def __init__(self, engine: Engine, events: EventBus) -> None:
        self._engine = engine
        self._events = events
        self._cond = threading.Condition()
        self._exits: dict[str, int] = {}
        self._codes: collections.OrderedDict[str, int] = collections.OrderedDict()
        self._removed: collections.OrderedDict[str, bool] = collections.OrderedDict()
        self._runs: set[tuple[str, str]] = set()  # (id, started_at) watched or counted
        self._idle: dict[str, list[Waiter]] = {}  # blocked waiters by container id: they take watches
        self._adopted = 0  # watches handed to waiters, not yet finished

    # -- watching ---------------------------------------------------------------------------

    def recover(self) -> None:
        """After a daemon restart: watch what runs (what exited meanwhile, its shim handled)."""
        for container in self._engine.containers.list(all=True):
            try:
                if container.runtime_state().status == "running":
                    self.watch(container)
            except ContainerkitError as exc:
                log.warning("recover %s: %s", container.id[:12], exc)

    def watch(self, container: Container) -> None:
        """Start watching the current run of ``container`` (once per run)."""
        state = container.runtime_state()
        if state.started_at is None or state.status == "created":
            return
        run = (container.id, state.started_at)
        with self._cond:
            if run in self._runs:
                return
            self._runs.add(run)
            for waiter in self._idle.get(container.id, ()) if self._adopted < ADOPT_MAX else ():
                if waiter.job is None:  # it runs the watch as soon as it wakes (see _wait)
                    waiter.job = (container, run)
                    self._adopted += 1
                    self._cond.notify_all()
                    return
        self._spawn(container, run)

    def _spawn(self, container: Container, run: tuple[str, str]) -> None:
        thread = threading.Thread(
            target=self._watch,
            args=(container, run),
            name=f"watch-{container.id[:12]}",
            daemon=True,
        )
        thread.start()

    def _watch(self, container: Container, run: tuple[str, str]) -> None:
        container_id = container.id
        try:
            # an AutoRemove container is removed here, holding its exit claim (see the start
            # route); otherwise its exit command (a restart policy) ran before the shim exited
            wait = container.wait if container.spec.auto_remove else container.wait_exit
            code = wait(None)
        except ContainerkitError:  # removed meanwhile: the code its removal kept, if any
            kept = self._engine.container_service.removed_exit_code(container_id)
            code = kept if kept is not None else container.runtime_state().exit_code or 0
        except OSError as exc:
            log.warning("watching %s failed: %s", container_id[:12], exc)
            return
        # looked up first, so that the exit and a removal wake the waiters once, together
        # (docker run --rm waits for the removal: a second wake-up is a second thread switch)
        removed = False
        try:
            self._engine.containers.get(container_id)
        except NotFound:
            removed = True
        with self._cond:
            self._exits[container_id] = self._exits.get(container_id, 0) + 1
            self._codes[container_id] = code
            self._trim(self._codes)
            self._runs.discard(run)
            if removed:
                self._removed[container_id] = True
                self._trim(self._removed)
            self._cond.notify_all()

    def mark_removed(self, container_id: str, name: str = "", image: str = "") -> None:
        """Record a removal (idempotent; the engine records its ``destroy`` event)."""
        with self._cond:
            if self._removed.get(container_id):
                return
            self._removed[container_id] = True
            self._trim(self._removed)
            self._cond.notify_all()

    # -- readers of a container's output ------------------------------------------------------

    @contextlib.contextmanager
    def reading(self, container: Container) -> collections.abc.Iterator[None]:
        """Held by an attach stream: the container's exit command removes an auto-remove
        container only once the stream has sent everything (it waits for this hold, bounded).
        A container removed meanwhile holds nothing."""
        with container.task.hold_output():
            yield

    def removed_exit_code(self, container_id: str) -> int | None:
        """The last exit code of a container removed lately (by full id), else None."""
        kept = self._engine.container_service.removed_exit_code(container_id)
        if kept is not None:
            return kept
        with self._cond:
            return self._codes.get(container_id, 0) if self._removed.get(container_id) else None

    def _removed_code(self, container_id: str) -> int:
        """The exit code of a removed container: the one its exit command kept (the watcher
        may not have counted that exit yet: the removal comes before its shim exits)."""
        kept = self._engine.container_service.removed_exit_code(container_id)
        if kept is not None:
            return kept
        with self._cond:
            return self._codes.get(container_id, 0)

    def exits(self, container_id: str) -> int:
        with self._cond:
            return self._exits.get(container_id, 0)

    # -- waiting ----------------------------------------------------------------------------

    def waiter(self, container_id: str, condition: str | None) -> Waiter:
        condition = condition or "not-running"
        if condition not in CONDITIONS:
            raise InvalidArgument(f"invalid wait condition {condition!r} (expected {', '.join(CONDITIONS)})")
        return Waiter(self, container_id, condition)

    def _wait(self, waiter: Waiter, container: Container, gone: Callable[[], bool]) -> int:
        cid = waiter.container_id
        if waiter.condition == "not-running":
            state = container.runtime_state()
            if state.status in ("created", "exited", "dead"):
                return state.exit_code or 0
        with self._cond:
            self._idle.setdefault(cid, []).append(waiter)
        try:
            return self._wait_idle(waiter, container, gone)
        finally:
            with self._cond:
                waiters = self._idle.get(cid, [])
                with contextlib.suppress(ValueError):
                    waiters.remove(waiter)
                if not waiters:
                    self._idle.pop(cid, None)
                job, waiter.job = waiter.job, None
                if job is not None:
                    self._adopted -= 1
            if job is not None:  # handed over while this wait ended: watched all the same
                self._spawn(*job)

    def _wait_idle(self, waiter: Waiter, container: Container, gone: Callable[[], bool]) -> int:
        cid = waiter.container_id
        while True:
            removed = False
            with self._cond:
                if waiter.job is None:
                    removed = bool(self._removed.get(cid))
                    counted = self._exits.get(cid, 0) > waiter.exits_seen
                    if counted and (removed or waiter.condition != "removed"):
                        return self._codes.get(cid, 0)  # the exit waited for (and its removal, if asked)
                    if not removed:
                        self._cond.wait(0.25)
                job, waiter.job = waiter.job, None
            if job is not None:
                # this thread is the run's watcher: the exit is counted (and an auto-remove
                # container removed) when this returns, and the next look answers
                try:
                    self._watch(*job)
                except Exception:  # the run may be watched again by the next look (_poll)
                    log.warning("watching %s failed", cid[:12], exc_info=True)
                    with self._cond:
                        self._runs.discard(job[1])
                finally:
                    with self._cond:
                        self._adopted -= 1
                continue
            if removed:
                return self._removed_code(cid)
            if gone():
                raise ClientGone()
            try:
                self._poll(container, waiter)
            except Exception:  # a stream that raised would leave its client waiting for the rest
                log.warning("wait for %s: looking again failed", cid[:12], exc_info=True)

    def _poll(self, container: Container, waiter: Waiter) -> None:
        """Notice what happened without the daemon (a start or removal by another process)."""
        try:
            container.reload()
        except NotFound:
            self.mark_removed(container.id)
            return
        if container.runtime_state().status == "running":
            self.watch(container)

    @staticmethod
    def _trim(mapping: collections.OrderedDict[str, Any]) -> None:
        while len(mapping) > _KEEP:
            mapping.popitem(last=False)
