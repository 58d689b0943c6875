"""The trash's deleting thread: one for a run of removals, gone at the drain."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from containerkit.storage.trash import Trash


def _trash_threads(trash: Trash) -> list[threading.Thread]:
    """This trash's deleting thread, if alive (other tests' trashes may have lingering ones)."""
    worker = trash.worker
    return [worker] if worker is not None and worker.is_alive() else []


def _tree(path: Path) -> Path:
    (path / "a" / "b").mkdir(parents=True)
    (path / "a" / "b" / "f").write_text("x")
    return path


@pytest.fixture
def another_thread() -> Iterator[None]:
    """A thread besides the main one for the test's length: the deleting thread lingers only in
    a process where others run (an xdist worker has some already; a plain pytest has none)."""
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait, name="test-other")
    thread.start()
    yield
    stop.set()
    thread.join()


def test_removals_in_a_row_share_one_thread_that_the_drain_ends(tmp_path: Path, another_thread: None) -> None:
    trash = Trash()
    try:
        trash.delete(_tree(tmp_path / "one"))
        trash.drain()  # the first deletion done, the thread gone
        assert not (tmp_path / "one").exists() and _trash_threads(trash) == []
        trash.delete(_tree(tmp_path / "two"))
        first = _trash_threads(trash)
        assert len(first) == 1
        deadline = time.monotonic() + 30
        while (tmp_path / "two").exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        # the thread deleted "two" and now lingers, waiting for more (not ended, not restarted)
        trash.delete(_tree(tmp_path / "three"))
        assert _trash_threads(trash) == first
    finally:
        trash.drain()
    assert not (tmp_path / "two").exists() and not (tmp_path / "three").exists()
    assert _trash_threads(trash) == []


_SINGLE = """
import sys, threading, time
from pathlib import Path
from containerkit.storage.trash import Trash
trash = Trash()
for name in ("one", "two"):
    path = Path(sys.argv[1]) / name
    (path / "a").mkdir(parents=True)
    trash.delete(path)
    deadline = time.monotonic() + 30
    while threading.active_count() > 1 and time.monotonic() < deadline:
        time.sleep(0.005)
    print(threading.active_count(), path.exists())
"""


def test_in_a_single_threaded_process_the_thread_ends_with_its_work(tmp_path: Path) -> None:
    """No drain: once the queue is empty the thread ends by itself, so the process is
    single-threaded again (it forks its shims then, instead of starting interpreters)."""
    out = subprocess.run(
        [sys.executable, "-c", _SINGLE, str(tmp_path)], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.split("\n")[:2] == ["1 False", "1 False"]
