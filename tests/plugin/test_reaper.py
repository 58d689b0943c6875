"""The sweep: a dead or recycled owner's things go, a live owner's stay whatever their expiry."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
from typing import Any

import pytest

from containerkit import _reaper
from containerkit.errors import NotFound
from containerkit.linux import proc

NOW = 1_700_000_000.0


def dead_owner() -> dict[str, str]:
    child = subprocess.Popen(["sleep", "30"])
    start = proc.start_time(child.pid)
    child.kill()
    child.wait()
    labels = _reaper.owner_labels("dead-session", ttl=3600)
    labels[_reaper.LABEL_OWNER_PID] = str(child.pid)
    labels[_reaper.LABEL_OWNER_START] = str(start)
    return labels


def test_live_owner_is_kept_even_when_expired() -> None:
    labels = _reaper.owner_labels("me", ttl=-10)
    assert _reaper.owner_alive(labels) is True
    assert not _reaper.should_reap(labels)


def test_dead_owner_is_reaped_before_expiry() -> None:
    labels = dead_owner()
    assert _reaper.owner_alive(labels) is False
    assert _reaper.should_reap(labels)


def test_recycled_pid_is_not_the_owner() -> None:
    labels = _reaper.owner_labels("me", ttl=3600)
    labels[_reaper.LABEL_OWNER_START] = str(int(labels[_reaper.LABEL_OWNER_START]) - 1)
    assert _reaper.should_reap(labels)


@pytest.mark.parametrize(("expires", "reaped"), [(NOW - 1, True), (NOW + 60, False)])
def test_owner_on_another_host_counts_by_expiry(expires: float, reaped: bool) -> None:
    labels = {
        _reaper.LABEL_SESSION: "s",
        _reaper.LABEL_OWNER_PID: str(os.getpid()),
        _reaper.LABEL_OWNER_HOST: socket.gethostname() + "-elsewhere",
        _reaper.LABEL_EXPIRES: str(int(expires)),
    }
    assert _reaper.owner_alive(labels) is None
    assert _reaper.should_reap(labels, now=NOW) is reaped


def test_unlabelled_things_are_never_touched() -> None:
    assert not _reaper.should_reap({"containerkit.expires": "0"})
    assert not _reaper.should_reap({_reaper.LABEL_SESSION: "s", _reaper.LABEL_OWNER_HOST: "elsewhere"})


def test_reap_expired_on_an_engine(containerkit_engine: Any, busybox: str) -> None:
    engine = containerkit_engine
    dead = dead_owner()
    gone = engine.containers.run(busybox, ["sleep", "30"], labels=dead)
    created = engine.containers.create(image=busybox, labels=dead)
    mine = engine.containers.create(image=busybox, labels=_reaper.owner_labels("mine", ttl=-1))
    plain = engine.containers.create(image=busybox)
    volume = engine.volumes.create(labels=dead)
    network = engine.networks.create(f"reap-{os.getpid()}", labels=dead)
    try:
        removed = _reaper.reap_expired(engine, now=time.time())
        assert set(removed) == {gone.id, created.id, volume.name, network.name}
        assert network.name not in {n.name for n in engine.networks.list()}
        left = {c.id for c in engine.containers.list(all=True)}
        assert {mine.id, plain.id} <= left
        assert not {gone.id, created.id} & left
        assert volume.name not in {v.name for v in engine.volumes.list()}
        assert _reaper.reap_session(engine, "mine") == [mine.id]
    finally:
        for container in (gone, created, mine, plain):
            with contextlib.suppress(NotFound):
                container.remove(force=True)
