"""The plugin seen from a user's test run: inner pytest sessions in subprocesses on one root."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from containerkit import _reaper
from containerkit.errors import NotFound
from tests.plugin.conftest import session_containers

HEADER = """
import os, signal, time
import containerkit.wait as wait
IMAGE = "example/busybox:latest"
"""


def test_fixtures_are_registered(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("--fixtures", "-p", "no:cacheprovider")
    for name in (
        "containerkit_engine",
        "containerkit_session",
        "containerkit_run",
        "containerkit_image",
        "containerkit_busybox",
    ):
        result.stdout.fnmatch_lines([f"{name}*"])
    result = pytester.runpytest_subprocess("--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.containerkit:*"])


def test_failing_test_reports_container_logs_and_leaves_nothing(
    pytester: pytest.Pytester, inner: Any, containerkit_engine: Any
) -> None:
    pytester.makepyfile(
        HEADER
        + """
def test_fails(containerkit_run):
    containerkit_run(IMAGE, "echo hello-from-the-container; sleep 30", wait=wait.log("hello-from"))
    containerkit_run(IMAGE, "echo second >&2; exit 4", name="second-one")
    time.sleep(0.5)
    assert False, "the test itself failed"

def test_passes(containerkit_run):
    containerkit_run(IMAGE, "echo quiet-on-success; sleep 30")
"""
    )
    result = inner()
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*- containerkit logs: * (*), running, last 50 lines -*",
            "hello-from-the-container",
            "*- containerkit logs: second-one (*), exited, exit status 4, last 50 lines -*",
            "second",
        ]
    )
    assert "quiet-on-success" not in result.stdout.str()
    assert session_containers(containerkit_engine) == []


def test_wait_failure_in_a_test_shows_what_was_waited_for(pytester: pytest.Pytester, inner: Any) -> None:
    pytester.makepyfile(
        HEADER
        + """
def test_never_ready(containerkit_run):
    containerkit_run(IMAGE, "echo still-booting; sleep 30", wait=wait.log("ready"), wait_timeout=0.5)
"""
    )
    result = inner()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*WaitTimeout: timed out after 0.5 s waiting for a log line matching 'ready'*", "*still-booting*"]
    )


def test_killed_session_is_reaped_by_the_next(
    pytester: pytest.Pytester, inner: Any, containerkit_engine: Any
) -> None:
    pytester.makepyfile(
        test_killed=HEADER
        + """
def test_dies(containerkit_run, tmp_path_factory):
    c = containerkit_run(IMAGE, ["sleep", "300"])
    with open(os.environ["ID_FILE"], "w") as f:
        f.write(c.id)
    os.kill(os.getpid(), signal.SIGKILL)
"""
    )
    id_file = pytester.path / "id"
    os.environ["ID_FILE"] = str(id_file)
    try:
        killed = inner("test_killed.py")
    finally:
        del os.environ["ID_FILE"]
    assert killed.ret == -9
    orphan = containerkit_engine.containers.get(id_file.read_text())
    assert orphan.status == "running"
    assert _reaper.owner_alive(orphan.labels) is False

    pytester.makepyfile(
        test_next="""
def test_next(containerkit_session):
    assert containerkit_session.reaped
"""
    )
    inner("test_next.py").assert_outcomes(passed=1)
    with pytest.raises(NotFound):
        containerkit_engine.containers.get(orphan.id)


def test_concurrent_sessions_keep_their_containers(
    pytester: pytest.Pytester, inner: Any, containerkit_engine: Any, plugin_root: Path
) -> None:
    """Session A holds a container while session B starts (and sweeps) and ends."""
    go, id_file = pytester.path / "go", pytester.path / "a-id"
    pytester.makepyfile(
        test_a=HEADER
        + f"""
def test_a(containerkit_run):
    c = containerkit_run(IMAGE, ["sleep", "300"])
    open({str(id_file)!r}, "w").write(c.id)
    deadline = time.monotonic() + 60
    while not os.path.exists({str(go)!r}) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert c.status == "running"
""",
        test_b=HEADER
        + f"""
def test_b(containerkit_run, containerkit_engine):
    mine = containerkit_run(IMAGE, ["sleep", "300"])
    other = containerkit_engine.containers.get(open({str(id_file)!r}).read())
    assert other.status == "running"
    assert mine.labels["containerkit.session"] != other.labels["containerkit.session"]
""",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["CONTAINERKIT_ROOT"] = str(plugin_root)
    session_a = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_a.py"],
        cwd=pytester.path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not id_file.exists() or not id_file.read_text():
            assert session_a.poll() is None, session_a.communicate()[0]
            assert time.monotonic() < deadline
            time.sleep(0.05)
        inner("test_b.py").assert_outcomes(passed=1)
        assert containerkit_engine.containers.get(id_file.read_text()).status == "running"
    finally:
        go.touch()
        output = session_a.communicate(timeout=60)[0]
    assert session_a.returncode == 0, output
    assert session_containers(containerkit_engine) == []


def test_xdist_workers_stay_apart(pytester: pytest.Pytester, inner: Any, containerkit_engine: Any) -> None:
    pytester.makepyfile(
        HEADER
        + """
import pytest

@pytest.mark.parametrize("n", range(4))
def test_worker(containerkit_run, containerkit_session, containerkit_engine, n):
    c = containerkit_run(IMAGE, ["sleep", "300"])
    assert c.labels["containerkit.session"] == containerkit_session.id
    assert os.environ["PYTEST_XDIST_WORKER"] in containerkit_session.id
    time.sleep(0.3)  # overlap with the other worker's session start and end
    assert c.status == "running"
"""
    )
    inner("-n", "2").assert_outcomes(passed=4)
    assert session_containers(containerkit_engine) == []


UNPRIVILEGED = """
import os
os.geteuid = lambda: 1000
"""


def test_no_runtime_skips_with_one_reason(pytester: pytest.Pytester, inner: Any) -> None:
    pytester.makeconftest(UNPRIVILEGED)
    pytester.makepyfile(
        """
import pytest

def test_uses_fixture(containerkit_run):
    pass

@pytest.mark.containerkit
def test_marked():
    pass

def test_plain():
    pass
"""
    )
    result = inner("-rs")
    result.assert_outcomes(passed=1, skipped=2)
    result.stdout.fnmatch_lines(["*containers cannot run: containerkit needs root*uid 1000*"])
    required = inner("--containerkit-require")
    required.assert_outcomes(passed=1, errors=2)
    assert "During handling" not in required.stdout.str()
    required.stdout.fnmatch_lines(["*containers cannot run: containerkit needs root*"])


def test_image_fixture_from_the_test_directory(
    pytester: pytest.Pytester, inner: Any, busybox_rootfs_tar: Path
) -> None:
    (pytester.path / "images").mkdir()
    (pytester.path / "images" / "base.tar").write_bytes(busybox_rootfs_tar.read_bytes())
    pytester.makepyfile(
        HEADER
        + """
def test_image(containerkit_image, containerkit_run):
    image = containerkit_image("images/base.tar", config={"Cmd": ["echo", "from-the-test-dir"]})
    assert containerkit_image("images/base.tar", config={"Cmd": ["echo", "from-the-test-dir"]}).id == image.id
    c = containerkit_run(image.tags[0])
    assert c.wait(timeout=10) == 0
    assert c.logs() == b"from-the-test-dir\\n"
"""
    )
    inner().assert_outcomes(passed=1)


def test_documented_example_runs_on_a_fresh_root(
    pytester: pytest.Pytester, inner: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The docs' first example, as a new user types it: no image imported beforehand, and the
    # Image object a fixture returns is accepted by containerkit_run.
    monkeypatch.setenv("CONTAINERKIT_ROOT", str(pytester.path / "fresh-root"))
    pytester.makepyfile(
        """
import urllib.request
import containerkit.wait as wait

def test_http(containerkit_run, containerkit_busybox):
    web = containerkit_run(
        containerkit_busybox,
        ["sh", "-c", "mkdir -p /www && echo ok > /www/index.html && exec httpd -f -p 80 -h /www"],
        ports={"80/tcp": None},
        wait=wait.http("/", port=80),
    )
    host, port = wait.host_address(web, 80)
    assert urllib.request.urlopen(f"http://{host}:{port}/").read() == b"ok\\n"
"""
    )
    inner().assert_outcomes(passed=1)
