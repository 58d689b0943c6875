"""Durable events: every action of an in-process Engine is recorded in its root, read back with
docker's since/until/filters, by this engine or by another one on the same root."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import containerkit as ck
from containerkit.engine.events import event_filters, event_time_ns
from containerkit.engine.frontend import nftables_missing
from containerkit.spec import Event

from .conftest import IMAGE, leftovers


def _past(engine: ck.Engine, since: float, **filters: str) -> list[Event]:
    """What was recorded from ``since`` to now (the stream ends at ``until``)."""
    return list(engine.events(since=since, until=time.time(), filters=filters or None))


def _actions(events: list[Event]) -> list[str]:
    return [e.action for e in events]


def test_a_container_life_is_recorded_in_order_with_docker_attributes(engine: ck.Engine) -> None:
    since = time.time()
    c = engine.containers.run(IMAGE, ["sleep", "60"], name="ev-life", labels={"tier": "test"}, network="none")
    try:
        c.pause()
        c.unpause()
        c.rename("ev-life2")
        assert c.exec(["sh", "-c", "exit 3"]).exit_code == 3
        c.stop(timeout=1)  # SIGTERM, ignored by pid 1, then SIGKILL
    finally:
        c.remove(force=True)
    events = _past(engine, since, container=c.id)
    assert _actions(events) == [
        "create",
        "start",
        "pause",
        "unpause",
        "rename",
        "exec_create: sh -c exit 3",
        "exec_start: sh -c exit 3",
        "exec_die",
        "kill",
        "kill",
        "die",
        "stop",
        "destroy",
    ]
    by_action = {e.action: e for e in events}
    assert all(e.type == "container" and e.actor_id == c.id and e.scope == "local" for e in events)
    assert by_action["create"].attributes == {"image": IMAGE, "name": "ev-life", "tier": "test"}
    assert by_action["rename"].attributes["oldName"] == "/ev-life"
    assert by_action["destroy"].attributes["name"] == "ev-life2"
    assert by_action["exec_die"].attributes["exitCode"] == "3"
    assert [e.attributes["signal"] for e in events if e.action == "kill"] == ["15", "9"]
    assert by_action["die"].attributes["exitCode"] == "137"
    times = [e.time_nano for e in events]
    assert times == sorted(times) and times[0] >= int(since * 1e9)
    # docker's message shape, both ways
    message = by_action["die"].to_docker()
    assert message["status"] == "die" and message["id"] == c.id and message["from"] == IMAGE
    assert Event.from_docker(message) == by_action["die"]


def test_a_die_nobody_waits_for_is_recorded_once_with_the_exit_time(engine: ck.Engine) -> None:
    since = time.time()
    c = engine.containers.run(IMAGE, ["sh", "-c", "exit 4"], network="none")
    try:
        deadline = time.monotonic() + 30
        while c.task.state().status != "exited":  # the runtime's view: no engine observes it
            assert time.monotonic() < deadline
            time.sleep(0.05)
        finished = c.task.state().finished_at
        time.sleep(0.3)
        # the reader itself scans the root's containers for exits nobody recorded
        dies = _past(engine, since, container=c.id, event="die")
        assert [e.attributes["exitCode"] for e in dies] == ["4"]
        assert dies[0].time_nano < time.time_ns() - 200_000_000
        assert dies[0].datetime.isoformat()[:19] == (finished or "")[:19]
        # observing it again (inspect, wait, list) records nothing more
        assert c.status == "exited" and c.wait(timeout=5) == 4
        engine.containers.list(all=True)
        c.start()
        assert c.wait(timeout=30) == 4  # a second run is a second die
    finally:
        c.remove()
    assert _actions(_past(engine, since, container=c.id)) == [
        "create",
        "start",
        "die",
        "start",
        "die",
        "destroy",
    ]
    assert leftovers(c.id) == []


def test_oom_is_recorded_before_die(engine: ck.Engine) -> None:
    since = time.time()
    c = engine.containers.run(
        IMAGE, 'x="$(head -c 100000000 /dev/zero | tr "\\0" a)"', resources={"memory": "24m"}, network="none"
    )
    try:
        assert c.wait(timeout=60) == 137
    finally:
        c.remove()
    assert _actions(_past(engine, since, container=c.id)) == ["create", "start", "oom", "die", "destroy"]


def test_volume_image_events_and_filters(engine: ck.Engine) -> None:
    since = time.time()
    engine.volumes.create("ev-vol", labels={"k": "v"})
    c = engine.containers.run(IMAGE, ["true"], mounts=["ev-vol:/data"], network="none")
    c.wait(timeout=30)
    c.remove()
    engine.volumes.remove("ev-vol")
    engine.images.tag(IMAGE, "example/ev:one")
    image_id = engine.images.get(IMAGE).id
    engine.images.remove("example/ev:one")
    volume = _past(engine, since, type="volume")
    assert [(e.action, e.actor_id) for e in volume] == [
        ("create", "ev-vol"),
        ("mount", "ev-vol"),
        ("unmount", "ev-vol"),
        ("destroy", "ev-vol"),
    ]
    assert volume[1].attributes == {"container": c.id, "destination": "/data", "driver": "local"}
    image = _past(engine, since, type="image")
    assert [(e.action, e.actor_id, e.attributes["name"]) for e in image] == [
        ("tag", image_id, "example/ev:one"),
        ("untag", image_id, "example/ev:one"),
    ]
    # docker's filter rules: keys AND, values OR; image by name with or without its tag
    assert _actions(_past(engine, since, image="example/ev")) == ["tag", "untag"]
    assert len(_past(engine, since, type="volume", event="mount")) == 1
    both = list(engine.events(since=since, until=time.time(), filters={"event": ["create", "destroy"]}))
    assert {(e.type, e.action) for e in both} == {
        ("volume", "create"),
        ("volume", "destroy"),
        ("container", "create"),
        ("container", "destroy"),
    }
    assert _past(engine, since, volume="ev-vol", event="tag") == []
    labelled = list(engine.events(since=since, until=time.time(), filters={"label": ["nope"]}))
    assert labelled == []


def test_network_events(engine: ck.Engine) -> None:
    if nftables_missing():
        pytest.skip(nftables_missing() or "")
    since = time.time()
    net = engine.networks.create("ev-net")
    try:
        c = engine.containers.create(image=IMAGE, command=["true"])  # never started
        try:
            net.connect(c)
            net.disconnect(c)
        finally:
            c.remove()
        # a container on the network: connected at its start, disconnected after its exit
        on = engine.containers.run(IMAGE, ["true"], network="ev-net")
        try:
            assert on.wait(timeout=30) == 0
        finally:
            on.remove()
    finally:
        net.remove()
    events = _past(engine, since, network=net.id)
    assert [(e.action, e.attributes.get("container")) for e in events] == [
        ("create", None),
        ("connect", c.id),
        ("disconnect", c.id),
        ("connect", on.id),
        ("disconnect", on.id),
        ("destroy", None),
    ]
    assert events[0].attributes["name"] == "ev-net" and events[0].attributes["type"] == "bridge"


@pytest.fixture
def second_engine(engine: ck.Engine) -> Iterator[ck.Engine]:
    with ck.Engine(root=engine.root, forkserver=False) as other:
        yield other


def test_a_follower_on_another_engine_sees_new_events_as_they_happen(
    engine: ck.Engine, second_engine: ck.Engine
) -> None:
    seen: list[Event] = []
    stream = second_engine.events(filters={"type": "volume", "volume": "ev-live"})

    def follow() -> None:
        for event in stream:
            seen.append(event)
            if event.action == "destroy":
                return

    reader = threading.Thread(target=follow, daemon=True)
    reader.start()
    time.sleep(0.3)  # a follower without since sees only what happens after it started
    engine.volumes.create("ev-live")
    engine.volumes.remove("ev-live")
    reader.join(timeout=10)
    assert not reader.is_alive()
    assert [e.action for e in seen] == ["create", "destroy"]
    # the same events, in the past, by the first engine
    assert _actions(_past(engine, time.time() - 60, volume="ev-live")) == ["create", "destroy"]


def test_until_in_the_future_follows_then_ends(engine: ck.Engine) -> None:
    since = time.time()
    until = since + 1.5
    timer = threading.Timer(0.5, lambda: engine.volumes.create("ev-until"))
    timer.start()
    try:
        events = list(engine.events(since=since, until=until, filters={"type": "volume"}))
    finally:
        timer.join()
        engine.volumes.remove("ev-until")
    assert time.time() >= until
    assert [(e.action, e.actor_id) for e in events] == [("create", "ev-until")]


def test_times_as_docker_takes_them() -> None:
    now = time.time_ns()
    assert event_time_ns(None, field="since") is None
    assert event_time_ns(1700000000, field="since") == 1700000000 * 10**9
    assert event_time_ns("1700000000.5", field="since") == 1700000000_500000000
    assert event_time_ns("1700000000.000000001", field="since") == 1700000000_000000001
    assert event_time_ns("2023-11-14T22:13:20.25Z", field="since") == 1700000000_250000000
    assert event_time_ns("2023-11-14T23:13:20+01:00", field="since") == 1700000000 * 10**9
    assert event_time_ns("2023-11-14", field="since") == 1699920000 * 10**9
    assert event_time_ns(dt.datetime.fromtimestamp(1700000000, dt.UTC), field="since") == 1700000000 * 10**9
    ten_minutes = event_time_ns("10m", field="since")
    assert ten_minutes is not None and abs(now - 600 * 10**9 - ten_minutes) < 5 * 10**9
    hours = event_time_ns("1h30m", field="since")
    assert hours is not None and abs(now - 5400 * 10**9 - hours) < 5 * 10**9
    with pytest.raises(ck.InvalidArgument, match=r"until: .*'yesterday'"):
        event_time_ns("yesterday", field="until")


def test_filters_are_checked_as_docker_does() -> None:
    assert event_filters({"type": "container", "event": ["die", "stop"], "label": {"a=b": True}}) == {
        "type": ["container"],
        "event": ["die", "stop"],
        "label": ["a=b"],
    }
    with pytest.raises(ck.InvalidArgument, match="invalid filter 'colour'"):
        event_filters({"colour": "red"})
    with pytest.raises(ck.InvalidArgument, match="invalid filter 'type=box'"):
        event_filters({"type": "box"})


def test_bad_arguments_fail_at_the_call(engine: ck.Engine) -> None:
    with pytest.raises(ck.InvalidArgument, match="since"):
        engine.events(since="soon")


def test_the_log_survives_the_engine(engine_root: Path, engine: ck.Engine) -> None:
    since = time.time()
    engine.volumes.create("ev-durable")
    engine.volumes.remove("ev-durable")
    with ck.Engine(root=engine_root, forkserver=False) as reopened:
        assert _actions(_past(reopened, since, volume="ev-durable")) == ["create", "destroy"]


def test_a_list_records_the_exit_it_is_first_to_see(engine: ck.Engine) -> None:
    c = engine.containers.run(IMAGE, ["sh", "-c", "exit 6"], network="none")
    try:
        deadline = time.monotonic() + 30
        while c.task.state().status != "exited":  # the runtime's view: no engine observes it
            assert time.monotonic() < deadline
            time.sleep(0.05)
        head = engine.metadata.events.last_seq()
        assert [x.status for x in engine.containers.list(all=True) if x.id == c.id] == ["exited"]
        # read from the store itself: a reader of the log would scan for exits on its own
        recorded = [
            (e.action, e.attributes.get("exitCode")) for _s, e in engine.metadata.events.read(after_seq=head)
        ]
        assert ("die", "6") in recorded
    finally:
        c.remove()
