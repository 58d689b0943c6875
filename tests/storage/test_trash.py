"""The trash's deleting thread: one for a run of removals, gone at the drain."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from containerkit.storage.trash import Trash


def _trash_threads(trash: Trash) -> list[threading.Thread]:
    """This trash's deleting thread, if alive (other tests' trashes may have lingering ones)."""
    worker = trash.worker
    return [worker] if worker is not None and worker.is_alive() else []


def _tree(path: Path) -> Path:
    (path / "a" / "b").mkdir(parents=True)
    (path / "a" / "b" / "f").write_text("x")
    return path


def test_removals_in_a_row_share_one_thread_that_the_drain_ends(tmp_path: Path) -> None:
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
