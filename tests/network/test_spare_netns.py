"""A network namespace made ahead (SpareNetns) is fresh, handed out once, pinned where asked,
and freed when the spare is closed: nothing outlives it but what a container took."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from containerkit.errors import Conflict
from containerkit.network.netns import SpareNetns, iproute, is_netns, remove_netns


def _made(spares: SpareNetns, timeout: float = 10.0) -> None:
    """Wait until the background thread has made the spare (no fixed sleep: the lock's state)."""
    deadline = time.monotonic() + timeout
    while spares._ready is None:  # the one thing the test must look inside for
        if time.monotonic() > deadline:
            raise AssertionError("no spare network namespace was made in the background")
        time.sleep(0.001)


def _open_namespaces() -> set[str]:
    found = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            found.add(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            continue
    return {target for target in found if target.startswith("net:")}


def _links(path: Path) -> list[tuple[str, int]]:
    with iproute(path) as ipr:
        return [(str(link.get("ifname")), link["flags"] & 1) for link in ipr.get_links()]


def test_a_spare_is_fresh_pinned_once_and_made_again(netns_dir: Path, uid: str) -> None:
    spares = SpareNetns()
    try:
        first = netns_dir / f"first-{uid}"
        with spares.take(first) as inside:  # no spare yet: made now
            assert inside.link_index("lo") is not None
        spares.refill()
        _made(spares)
        spare_ino = os.fstat(spares._ready[0]).st_ino  # type: ignore[index]
        second = netns_dir / f"second-{uid}"
        with spares.take(second) as inside:
            assert inside.link_index("eth0") is None
        assert is_netns(second)
        assert os.stat(second).st_ino == spare_ino  # the spare itself, pinned at the path
        assert os.stat(second).st_ino != os.stat(first).st_ino
        assert os.stat(second).st_ino != os.stat("/proc/self/ns/net").st_ino
        assert _links(second) == [("lo", 1)]
        assert spares._ready is None  # handed out once: the next take makes or waits for another
        spares.refill()
        _made(spares)
        third = netns_dir / f"third-{uid}"
        with spares.take(third):
            pass
        assert os.stat(third).st_ino not in (os.stat(first).st_ino, os.stat(second).st_ino)
    finally:
        spares.close()
    for path in netns_dir.iterdir():
        remove_netns(path)


def test_a_taken_spare_on_an_existing_path_is_a_conflict_and_leaves_it(netns_dir: Path, uid: str) -> None:
    spares = SpareNetns()
    try:
        spares.refill()
        _made(spares)
        taken = netns_dir / f"taken-{uid}"
        netns_dir.mkdir(exist_ok=True)
        taken.write_text("someone's")
        with pytest.raises(Conflict, match=str(taken)):
            spares.take(taken)
        assert taken.read_text() == "someone's"
    finally:
        spares.close()


def test_close_frees_the_spare_and_makes_no_more(netns_dir: Path, uid: str) -> None:
    spares = SpareNetns()
    spares.refill()
    _made(spares)
    held = f"net:[{os.fstat(spares._ready[0]).st_ino}]"  # type: ignore[index]
    assert held in _open_namespaces()
    spares.close()
    assert held not in _open_namespaces()  # the namespace goes with its last reference
    spares.refill()
    assert spares._ready is None and not spares._making
    path = netns_dir / f"after-{uid}"
    with spares.take(path):  # still works, made on the spot
        pass
    assert is_netns(path)
    remove_netns(path)
