from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from containerkit.errors import Conflict, NotFound
from containerkit.network.netns import (
    create_netns,
    iproute,
    is_netns,
    list_netns,
    remove_netns,
    run_in_netns,
)


def test_create_list_remove(netns_dir: Path, uid: str) -> None:
    path = netns_dir / f"a-{uid}"
    create_netns(path)
    assert is_netns(path)
    assert list_netns(netns_dir) == [path]
    host_ino = os.stat("/proc/self/ns/net").st_ino
    assert os.stat(path).st_ino != host_ino
    with iproute(path) as ipr:
        links = ipr.get_links()
    assert [(link.get("ifname"), link["flags"] & 1) for link in links] == [("lo", 1)]
    with pytest.raises(Conflict, match=str(path)):
        create_netns(path)
    remove_netns(path)
    remove_netns(path)  # idempotent
    assert not path.exists()
    assert list_netns(netns_dir) == []


def test_run_in_netns_leaves_caller_alone(make_netns: object) -> None:
    path = make_netns("b")  # type: ignore[operator]
    host_ino = os.stat("/proc/thread-self/ns/net").st_ino
    inside = run_in_netns(path, lambda: os.stat("/proc/thread-self/ns/net").st_ino)
    assert inside == os.stat(path).st_ino
    assert os.stat("/proc/thread-self/ns/net").st_ino == host_ino


def test_missing_netns_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="nope"):
        run_in_netns(tmp_path / "nope", lambda: None)


def test_create_from_many_threads(netns_dir: Path, uid: str) -> None:
    host_ino = os.stat("/proc/self/ns/net").st_ino
    paths = [netns_dir / f"t{i}-{uid}" for i in range(8)]
    errors: list[BaseException] = []

    def make(p: Path) -> None:
        try:
            create_netns(p)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=make, args=(p,)) for p in paths]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    inodes = {os.stat(p).st_ino for p in paths}
    assert len(inodes) == 8
    assert os.stat("/proc/self/ns/net").st_ino == host_ino
    for p in paths:
        remove_netns(p)
    assert list_netns(netns_dir) == []
