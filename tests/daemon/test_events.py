"""``GET /events`` streams the engine root's durable log: what an in-process Engine on the
daemon's root does shows up for docker-py and the docker CLI, with since/until/filters, and the
history outlives a daemon restart."""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import containerkit as ck

from .conftest import IMAGE, Daemon


@pytest.fixture
def local(daemon: Daemon) -> Iterator[ck.Engine]:
    """An in-process Engine on the daemon's root (another process's view of the same root)."""
    with ck.Engine(root=daemon.root, forkserver=False) as engine:
        yield engine


def _in_process_actions(engine: ck.Engine) -> tuple[str, str]:
    """Do one of everything cheap in-process; the container id and the volume name."""
    engine.volumes.create("dev-vol")
    c = engine.containers.run(
        IMAGE, ["sh", "-c", "exit 3"], name="dev-ev", labels={"team": "ev"}, network="none"
    )
    c.wait(timeout=30)
    c.remove()
    engine.volumes.remove("dev-vol")
    engine.images.tag(IMAGE, "example/dev-ev:tagged")
    engine.images.remove("example/dev-ev:tagged")
    return c.id, "dev-vol"


def test_docker_py_sees_in_process_actions_with_docker_shapes(client: Any, local: ck.Engine) -> None:
    since = time.time()
    container_id, volume = _in_process_actions(local)
    until = time.time()
    events = list(client.events(since=since, until=until, decode=True))
    mine = [e for e in events if e["Actor"]["ID"] in (container_id, volume) or e["Type"] == "image"]
    assert [(e["Type"], e["Action"]) for e in mine] == [
        ("volume", "create"),
        ("container", "create"),
        ("container", "start"),
        ("container", "die"),
        ("container", "destroy"),
        ("volume", "destroy"),
        ("image", "tag"),
        ("image", "untag"),
    ]
    die = mine[3]
    assert die["Actor"]["Attributes"] == {"exitCode": "3", "image": IMAGE, "name": "dev-ev", "team": "ev"}
    assert (die["status"], die["id"], die["from"], die["scope"]) == ("die", container_id, IMAGE, "local")
    assert die["time"] == die["timeNano"] // 10**9 and since * 1e9 <= die["timeNano"] <= until * 1e9
    # the same through docker-py's filters
    only = client.events(
        since=since, until=until, decode=True, filters={"container": container_id, "event": "die"}
    )
    assert [e["Action"] for e in only] == ["die"]
    labelled = client.events(since=since, until=until, decode=True, filters={"label": "team=ev"})
    assert [e["Action"] for e in labelled] == ["create", "start", "die", "destroy"]


def test_a_container_through_the_daemon_is_recorded_once(client: Any) -> None:
    since = time.time()
    c = client.containers.run(IMAGE, ["sh", "-c", "exit 2"], detach=True)
    assert c.wait(timeout=30)["StatusCode"] == 2
    c.stop()  # not running: nothing to record
    c.remove()
    actions = [
        e["Action"]
        for e in client.events(since=since, until=time.time(), decode=True, filters={"container": c.id})
    ]
    assert actions == ["create", "start", "die", "destroy"]


def test_a_follower_sees_in_process_actions_as_they_happen(client: Any, local: ck.Engine) -> None:
    stream = client.events(decode=True, filters={"type": "volume", "volume": "dev-live"})
    seen: queue.Queue[dict[str, Any]] = queue.Queue()

    def read() -> None:
        try:
            for event in stream:
                seen.put(event)
        except Exception:  # closed below
            pass

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        local.volumes.create("dev-live")
        first = seen.get(timeout=10)
        local.volumes.remove("dev-live")
        second = seen.get(timeout=10)
    finally:
        stream.close()
    assert (first["Action"], second["Action"]) == ("create", "destroy")
    assert first["Actor"] == {"ID": "dev-live", "Attributes": {"driver": "local"}}


def test_the_docker_cli_filters_and_formats(cli: Any, local: ck.Engine) -> None:
    since = f"{time.time():.9f}"
    _in_process_actions(local)
    until = f"{time.time():.9f}"
    out = cli(
        "events",
        "--since",
        since,
        "--until",
        until,
        "--filter",
        "type=volume",
        "--filter",
        "volume=dev-vol",
        "--format",
        "{{json .}}",
    ).stdout
    lines = [json.loads(line) for line in out.splitlines() if line.strip()]
    assert [(e["Type"], e["Action"], e["Actor"]["ID"]) for e in lines] == [
        ("volume", "create", "dev-vol"),
        ("volume", "destroy", "dev-vol"),
    ]
    plain = cli("events", "--since", since, "--until", until, "--filter", "event=die").stdout
    assert plain.count(" container die ") == 1 and "exitCode=3" in plain and "name=dev-ev" in plain
    # the docker CLI sends a duration as whole seconds before now (GetTimestamp truncates): an
    # "until 0s" in the same second as the exit would end before it
    time.sleep(1.1)
    relative = cli("events", "--since", "10m", "--until", "0s", "--filter", "event=die").stdout
    assert "name=dev-ev" in relative


def test_bad_arguments_are_a_400(daemon: Daemon) -> None:
    status, _headers, body = daemon.request("GET", '/events?filters={"colour":["red"]}')
    assert (status, json.loads(body)["message"]) == (400, "invalid filter 'colour'")
    status, _headers, body = daemon.request("GET", "/events?since=soon")
    assert status == 400 and "since" in json.loads(body)["message"]


def test_history_outlives_a_daemon_restart(daemon: Daemon, client: Any, local: ck.Engine) -> None:
    since = time.time()
    local.volumes.create("dev-restart")
    local.volumes.remove("dev-restart")
    daemon.stop()
    daemon.start()
    events = client.events(since=since, until=time.time(), decode=True, filters={"volume": "dev-restart"})
    assert [e["Action"] for e in events] == ["create", "destroy"]


def test_the_cli_run_rm_and_stop_are_each_recorded_once(cli: Any, client: Any) -> None:
    since = time.time()
    assert cli("run", "--rm", "--name", "dev-rm", IMAGE, "echo", "hi").stdout == "hi\n"
    cid = cli("run", "-d", "--name", "dev-stop", IMAGE, "sleep", "60").stdout.strip()
    cli("stop", "-t", "1", cid)
    cli("rm", cid)
    until = time.time()
    by_name: dict[str, list[str]] = {}
    for e in client.events(since=since, until=until, decode=True, filters={"type": "container"}):
        by_name.setdefault(e["Actor"]["Attributes"].get("name", ""), []).append(e["Action"])
    assert by_name["dev-rm"] == ["create", "start", "die", "destroy"]
    assert by_name["dev-stop"] == ["create", "start", "kill", "kill", "die", "stop", "destroy"]
