"""Waiting for a link to go sleeps until the kernel says a link changed (no polling)."""

from __future__ import annotations

import subprocess
import threading
import types
from typing import Any

import pytest

from containerkit.network import rtnl, veth


@pytest.fixture
def pair(uid: str) -> Any:
    name = f"ckd{uid}g"  # a veth pair (this kernel has no dummy links); its peer goes with it
    subprocess.run(["ip", "link", "add", name, "type", "veth", "peer", "name", f"ckd{uid}h"], check=True)
    yield name
    subprocess.run(["ip", "link", "del", name], capture_output=True)


def test_link_events_wake_on_a_change(pair: str) -> None:
    with rtnl.LinkEvents() as events:
        subprocess.run(["ip", "link", "set", pair, "up"], check=True)
        assert events.wait(30) is True


def test_wait_gone_returns_when_someone_else_deletes_the_link(
    pair: str, link_names: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(name: str) -> None:
        raise AssertionError(f"wait_gone deleted {name} itself: no link event woke it")

    monkeypatch.setattr(veth, "detach", refuse)
    deleter = threading.Timer(0.2, lambda: subprocess.run(["ip", "link", "del", pair], check=True))
    deleter.start()
    try:
        veth.wait_gone([pair], timeout=60)
    finally:
        deleter.join()
    assert pair not in link_names()


def test_retire_takes_the_link_away_without_waiting_for_the_kernel(
    pair: str, link_names: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(name: str) -> None:
        raise AssertionError(f"wait_gone deleted {name} itself: retire did not")

    monkeypatch.setattr(veth, "detach", refuse)
    veth.retire(pair)
    veth.wait_gone([pair], timeout=60)
    assert pair not in link_names()


def test_retire_deletes_the_link_it_found_not_a_new_one_under_its_name(
    pair: str, link_names: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A restart makes the pair again under the same name: a deletion that runs late (its
    thread scheduled after the new pair exists) must not take the new one."""
    late: list[tuple[Any, tuple[Any, ...]]] = []

    class Late:  # a thread that is only recorded: run below, after the pair is made again
        def __init__(self, target: Any, args: tuple[Any, ...], **_kw: Any) -> None:
            late.append((target, args))

        def start(self) -> None:
            pass

    monkeypatch.setattr(veth, "threading", types.SimpleNamespace(Thread=Late))
    veth.retire(pair)
    assert len(late) == 1  # looked up, its deletion not run yet
    subprocess.run(["ip", "link", "del", pair], check=True)
    subprocess.run(["ip", "link", "add", pair, "type", "veth", "peer", "name", pair[:-1] + "h"], check=True)
    function, args = late[0]
    function(*args)
    assert pair in link_names()
