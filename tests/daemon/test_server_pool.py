"""The server's worker pools: a thread is kept for the next request (a thread's start waits
until it runs), an item never waits behind a busy thread while there is room for another, and
idle threads of a lingering pool end. Plain threads and callables: no daemon is needed."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from typing import Any, cast

from containerkit.daemon.server import _Pool

NO_CONN = cast(Any, None)  # the pool hands its item's connection on untouched


def _until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.001)


def test_a_thread_is_reused_and_two_items_never_share_one() -> None:
    pool = _Pool(8, "test-pool", linger=30.0)
    idents: queue.SimpleQueue[int] = queue.SimpleQueue()
    try:
        pool.submit(lambda _conn: idents.put(threading.get_ident()), NO_CONN)
        first = idents.get(timeout=10)
        _until(lambda: pool._idle == 1)  # done, and waiting for the next item
        # Two at once, as a docker run's attach and wait: the first returns only once the
        # second runs, so the second must not queue behind the first on the idle thread.
        both = threading.Barrier(2, timeout=10)

        def pair(_conn: Any) -> None:
            idents.put(threading.get_ident())
            both.wait()

        pool.submit(pair, NO_CONN)
        pool.submit(pair, NO_CONN)
        served = {idents.get(timeout=10), idents.get(timeout=10)}
        assert len(served) == 2
        assert first in served
        _until(lambda: pool._idle == 2)
        assert pool._threads == 2
    finally:
        pool.stop()


def test_idle_threads_of_a_lingering_pool_end() -> None:
    pool = _Pool(4, "test-pool", linger=0.05)
    done = threading.Event()
    pool.submit(lambda _conn: done.set(), NO_CONN)
    assert done.wait(10)
    _until(lambda: pool._threads == 0)
    assert pool._idle == 0
    again = threading.Event()  # a new item after that gets a new thread
    pool.submit(lambda _conn: again.set(), NO_CONN)
    assert again.wait(10)
    pool.stop()
