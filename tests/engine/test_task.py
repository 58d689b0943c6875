"""The engine's pure exit wait and the front-end's column, over the container's Task."""

from __future__ import annotations

import contextlib

import pytest

import containerkit as ck

from .conftest import IMAGE, leftovers


def test_wait_exit_only_waits(engine: ck.Engine) -> None:
    """wait_exit() returns the exit record's code and removes nothing itself: an auto-remove
    container is removed by its shim's exit command, which the wait covers (the shim exits
    after it), and the code stays readable after the removal."""
    c = engine.containers.run(IMAGE, ["sh", "-c", "exit 3"], auto_remove=True)
    try:
        assert c.wait_exit(timeout=30) == 3
        with pytest.raises(ck.NotFound):
            engine.containers.get(c.id)
        assert c.wait(timeout=30) == 3
    finally:
        with contextlib.suppress(ck.NotFound):
            c.remove(force=True)
    assert leftovers(c.id) == []


def test_wait_exit_of_a_created_container_is_refused(engine: ck.Engine) -> None:
    c = engine.containers.create(image=IMAGE, command=["true"])
    try:
        with pytest.raises(ck.NotRunning):
            c.wait_exit(timeout=1)
    finally:
        c.remove(force=True)


def test_extra_is_kept_with_the_record(engine: ck.Engine) -> None:
    """What a front-end keeps with a container is in the metadata, seen by another Engine on
    the root, and goes with the container."""
    c = engine.containers.create(image=IMAGE, command=["true"])
    try:
        assert c.extra == {}
        c.set_extra({"HostConfig": {"Privileged": False}, "Cmd": ["true"]})
        with ck.Engine(root=engine.root) as other:
            assert other.containers.get(c.id).extra == {"HostConfig": {"Privileged": False}, "Cmd": ["true"]}
        assert not any(p.name.endswith(".json") and p.name != "userns.json" for p in c.state_dir.iterdir())
    finally:
        c.remove(force=True)
    assert leftovers(c.id) == []


def test_extra_given_at_create_is_in_the_record(engine: ck.Engine) -> None:
    """The daemon keeps docker's create body with the create's own record (no second commit)."""
    body = {"Cmd": ["true"], "HostConfig": {"AutoRemove": True}}
    c = engine.container_service.create(ck.ContainerSpec(image=IMAGE, command=["true"]), extra=body)
    try:
        assert c.extra == body
        with ck.Engine(root=engine.root) as other:
            assert other.containers.get(c.id).extra == body
    finally:
        c.remove(force=True)
    assert leftovers(c.id) == []


def test_process_args_and_log_path(engine: ck.Engine) -> None:
    c = engine.containers.run(IMAGE, ["echo", "hi"])
    try:
        assert c.wait(timeout=30) == 0
        assert c.process_args() == ["echo", "hi"]
        assert [(e.stream, e.data) for e in c.log_entries()] == [("stdout", b"hi\n")]
        assert c.log_path.startswith(str(engine.root))
        cursor = c.log_cursor()
        assert cursor.read_new() == ["hi"]
        assert cursor.read_new() == []
    finally:
        c.remove(force=True)
