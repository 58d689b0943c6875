"""Items made on a helper thread a few ahead of their consumer (decompressing a pulled layer,
compressing a pushed one): zlib, ISA-L and hashlib release the GIL, so the two overlap."""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Generator
from typing import TypeVar

__all__ = ["made_ahead"]

T = TypeVar("T")


def made_ahead(
    produce: Callable[[Callable[[T], bool]], None], *, depth: int, name: str
) -> Generator[T, None, None]:
    """What ``produce(put)`` puts, in order, while it runs on a thread ``depth`` items ahead.
    ``put`` answers False once the consumer went away (``produce`` should then return); an
    error ``produce`` raises is raised here after the items put before it; closing the
    generator early stops and joins the thread."""
    q: queue.Queue[tuple[T] | BaseException | None] = queue.Queue(depth)
    stop = threading.Event()

    def put(item: tuple[T] | BaseException | None) -> bool:
        while not stop.is_set():
            with contextlib.suppress(queue.Full):
                q.put(item, timeout=0.05)
                return True
        return False

    def run() -> None:
        try:
            produce(lambda item: put((item,)))
        except BaseException as err:  # handed to the consumer, which raises it
            put(err)
            return
        put(None)

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    try:
        while (got := q.get()) is not None:
            if isinstance(got, BaseException):
                raise got
            yield got[0]
    finally:
        stop.set()
        thread.join()
