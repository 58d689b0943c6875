"""Acceptance: Debian's docker-compose runs tests/compose/project against containerkitd.

The project has a web server with a published port, a database-like service with a health check and a
named volume, a worker that waits for the database to be healthy and reaches it by a network alias,
an env file and ``restart: unless-stopped``. Every step is the real ``docker-compose`` binary.
"""

from __future__ import annotations

import json
import select
import time
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.compose.conftest import Compose


def inspect(project: Compose, name: str) -> dict[str, Any]:
    status, _headers, body = project.daemon.request("GET", f"/containers/{name}/json")
    assert status == 200, (name, status, body)
    result: dict[str, Any] = json.loads(body)
    return result


def started_at(document: dict[str, Any]) -> tuple[str, int]:
    """``State.StartedAt`` in an order that holds whatever digits RFC 3339 nanoseconds keep."""
    text = str(document["State"]["StartedAt"]).rstrip("Z")
    whole, _, fraction = text.partition(".")
    return whole, int((fraction + "0" * 9)[:9])


def project_containers(project: Compose) -> list[dict[str, Any]]:
    label = json.dumps({"label": [f"com.docker.compose.project={project.name}"]})
    status, _headers, body = project.daemon.request(
        "GET", "/containers/json?all=1&filters=" + urllib.request.quote(label)
    )
    assert status == 200, body
    found: list[dict[str, Any]] = json.loads(body)
    return found


def wait_for(what: str, check: Callable[[], bool], timeout: float = 60) -> None:
    """Polls ``check`` until it holds; a bound against hanging, not a speed assertion."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not reached within {timeout} s")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def project(make_compose: Callable[[], Compose]) -> Iterator[Compose]:
    """The project brought up once (``up -d``) for the tests of this module."""
    running = make_compose()
    running("up", "-d")
    yield running


def test_up_runs_every_service_and_waits_for_the_healthy_database(project: Compose) -> None:
    db = inspect(project, f"{project.name}_db_1")
    worker = inspect(project, f"{project.name}_worker_1")
    # compose started the worker only once the database was healthy
    assert db["State"]["Health"]["Status"] == "healthy", db["State"].get("Health")
    assert started_at(worker) > started_at(db)
    ps = project("ps").stdout
    for service in ("web", "db", "worker"):
        line = next(row for row in ps.splitlines() if row.startswith(f"{project.name}_{service}_1"))
        assert " Up" in line, ps
    assert "(healthy)" in next(row for row in ps.splitlines() if "_db_1" in row), ps
    assert sorted(project("ps", "--services").stdout.split()) == ["db", "web", "worker"]


def test_published_port_serves_what_the_env_file_set(project: Compose) -> None:
    address = project("port", "web", "80").stdout.strip()
    assert address.startswith("127.0.0.1:"), address
    with urllib.request.urlopen(f"http://{address}/", timeout=10) as response:
        assert response.read().decode() == "hello from web\n"


def test_logs_follow_shows_the_worker_reaching_the_database_by_its_alias(project: Compose) -> None:
    follow = project.popen("logs", "-f", "--no-color", "--tail=5", "worker")
    assert follow.stdout is not None
    seen: list[str] = []
    deadline = time.monotonic() + 60
    try:
        while sum("got inventory ready" in line for line in seen) < 3 and time.monotonic() < deadline:
            ready, _, _ = select.select([follow.stdout], [], [], 1)
            if ready:
                line = follow.stdout.readline()
                if not line:
                    break
                seen.append(line)
        # still following: it did not end by itself
        assert follow.poll() is None, seen
    finally:
        follow.terminate()
        follow.wait(10)
    assert sum("got inventory ready" in line for line in seen) >= 3, seen
    assert all(line.startswith("worker_1  | ") for line in seen if "got" in line), seen


@pytest.mark.parametrize("through", ["docker CLI", "docker-py"])
def test_exec_without_a_tty(project: Compose, through: str) -> None:
    # docker-compose hands exec to the docker CLI unless COMPOSE_INTERACTIVE_NO_CLI is set
    env = {"COMPOSE_INTERACTIVE_NO_CLI": "1"} if through == "docker-py" else {}
    assert project("exec", "-T", "db", "cat", "/data/www/ready", env=env).stdout == "inventory ready\n"
    assert project("exec", "-T", "db", "sh", "-c", "exit 3", env=env, check=False).returncode == 3
    if through == "docker CLI":
        # through docker-py, compose never forwards stdin without a tty (its dockerpty pump is off)
        echoed = project("exec", "-T", "worker", "sh", "-c", "cat; echo $DB_NAME", input="from stdin\n")
        assert echoed.stdout == "from stdin\ninventory\n"
    else:
        assert project("exec", "-T", "worker", "sh", "-c", "echo $DB_NAME", env=env).stdout == "inventory\n"


def test_restart_starts_the_service_again(project: Compose) -> None:
    name = f"{project.name}_web_1"
    before = inspect(project, name)
    project("restart", "-t", "5", "web")
    after = inspect(project, name)
    assert after["Id"] == before["Id"]
    assert after["State"]["Running"] is True
    assert started_at(after) > started_at(before)
    address = project("port", "web", "80").stdout.strip()
    with urllib.request.urlopen(f"http://{address}/", timeout=10) as response:
        assert response.read() == b"hello from web\n"


def test_unless_stopped_restarts_a_service_whose_process_died(project: Compose) -> None:
    name = f"{project.name}_db_1"
    before = inspect(project, name)
    assert before["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
    # httpd's death ends the container's init, and with it the pid namespace: the kernel may kill
    # killall (an exec in that namespace) before it exits on its own, as under dockerd: 0 or 137
    killed = project("exec", "-T", "db", "killall", "httpd", check=False)
    assert killed.returncode in (0, 137), killed
    wait_for(
        "db restarted by its policy",
        lambda: (state := inspect(project, name))["RestartCount"] >= 1 and state["State"]["Running"],
    )
    after = inspect(project, name)
    assert after["Id"] == before["Id"]
    # the named volume kept the database's file across the restart
    assert project("exec", "-T", "db", "cat", "/data/www/ready").stdout == "inventory ready\n"


def test_scale_adds_a_second_worker(project: Compose) -> None:
    project("up", "-d", "--scale", "worker=2")
    workers = [
        c for c in project_containers(project) if c["Labels"]["com.docker.compose.service"] == "worker"
    ]
    assert sorted(c["Names"][0] for c in workers) == [
        f"/{project.name}_worker_1",
        f"/{project.name}_worker_2",
    ]
    assert all(c["State"] == "running" for c in workers), workers
    wait_for(
        "the second worker reaching the database",
        lambda: "got inventory ready" in project("logs", "--no-color", "worker").stdout.split("worker_2")[-1],
    )
    project("up", "-d", "--scale", "worker=1")
    assert [c["Names"][0] for c in project_containers(project) if "_worker_" in c["Names"][0]] == [
        f"/{project.name}_worker_1"
    ]


def test_down_v_leaves_no_container_network_or_volume(make_compose: Callable[[], Compose]) -> None:
    project = make_compose()
    project("up", "-d")
    assert len(project_containers(project)) == 3
    project("down", "-v", "-t", "5")
    assert project_containers(project) == []
    status, _headers, body = project.daemon.request("GET", "/networks")
    assert status == 200
    assert [n["Name"] for n in json.loads(body) if n["Name"].startswith(project.name)] == []
    status, _headers, body = project.daemon.request("GET", "/volumes")
    assert status == 200
    assert [v["Name"] for v in json.loads(body)["Volumes"] or [] if v["Name"].startswith(project.name)] == []
