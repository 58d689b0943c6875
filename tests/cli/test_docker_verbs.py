"""The docker verbs and flags users type: -h, --restart, -P, --health-*, --platform, exec -d, port."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Callable

import pytest

from containerkit.spec import Healthcheck, RestartPolicy
from tests.cli.conftest import IMAGE, Ck

WEB_IMAGE = "example/busybox-web"


def wait_for(what: str, check: Callable[[], bool], timeout: float = 30) -> None:
    """Polls ``check``; a bound against hanging, not a speed assertion."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not reached within {timeout} s")
        time.sleep(0.1)


def spec_of(name: str, cli_root: object) -> object:
    import containerkit as ck

    with ck.Engine(root=cli_root) as engine:  # type: ignore[arg-type]
        return engine.containers.get(name).spec


@pytest.mark.parametrize(
    "argv", [("ps", "-h"), ("volume", "ls", "-h"), ("network", "-h"), ("-h",), ("exec", "-h")]
)
def test_dash_h_is_help(ck: Ck, argv: tuple[str, ...]) -> None:
    result = ck(*argv)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("Usage: ") and "-h, --help" in result.stdout, result.stdout


def test_run_keeps_dash_h_for_the_hostname(ck: Ck) -> None:
    result = ck("run", "--rm", "-h", "myhost", IMAGE, "hostname")
    assert (result.exit_code, result.stdout) == (0, "myhost\n"), result.output


def test_restart_flag_sets_the_policy(ck: Ck, cli_root: object) -> None:
    assert ck("create", "--name", "cli-restart", "--restart", "on-failure:3", IMAGE, "true").exit_code == 0
    assert spec_of("cli-restart", cli_root).restart_policy == RestartPolicy(  # type: ignore[attr-defined]
        name="on-failure", maximum_retry_count=3
    )
    bad = ck("create", "--restart", "sometimes", IMAGE)
    assert bad.exit_code == 125 and "sometimes" in bad.stderr, bad.output
    both = ck("create", "--rm", "--restart", "always", IMAGE)
    assert both.exit_code == 125 and "AutoRemove" in both.stderr, both.output


def test_restart_always_restarts_an_exiting_container(ck: Ck, cli_root: object) -> None:
    import containerkit as ck_

    assert (
        ck("run", "-d", "--name", "cli-always", "--restart", "always", IMAGE, "sh", "-c", "exit 3").exit_code
        == 0
    )
    with ck_.Engine(root=cli_root) as engine:  # type: ignore[arg-type]
        container = engine.containers.get("cli-always")
        wait_for("a restart by the policy", lambda: container.reload().restart_count >= 2)
    assert ck("stop", "-t", "1", "cli-always").exit_code == 0


def test_health_flags_build_the_check(ck: Ck, cli_root: object) -> None:
    created = ck(
        "create",
        "--name",
        "cli-health",
        "--health-cmd",
        "test -e /etc/passwd",
        "--health-interval",
        "1m30s",
        "--health-timeout",
        "500ms",
        "--health-start-period",
        "2s",
        "--health-retries",
        "4",
        IMAGE,
    )
    assert created.exit_code == 0, created.output
    assert spec_of("cli-health", cli_root).healthcheck == Healthcheck(  # type: ignore[attr-defined]
        test=("CMD-SHELL", "test -e /etc/passwd"), interval=90.0, timeout=0.5, start_period=2.0, retries=4
    )
    assert ck("create", "--name", "cli-nohealth", "--no-healthcheck", IMAGE).exit_code == 0
    assert spec_of("cli-nohealth", cli_root).healthcheck == Healthcheck(test=("NONE",))  # type: ignore[attr-defined]
    conflict = ck("create", "--no-healthcheck", "--health-cmd", "true", IMAGE)
    assert conflict.exit_code == 125 and "conflicts" in conflict.stderr, conflict.output
    bad = ck("create", "--health-interval", "ten", IMAGE)
    assert bad.exit_code == 125 and "--health-interval" in bad.stderr, bad.output


def test_a_failing_health_check_makes_the_container_unhealthy(ck: Ck, cli_root: object) -> None:
    import containerkit as ck_

    started = ck(
        "run",
        "-d",
        "--name",
        "cli-sick",
        "--health-cmd",
        "test -e /tmp/ok",
        "--health-interval",
        "200ms",
        "--health-retries",
        "1",
        IMAGE,
        "sleep",
        "60",
    )
    assert started.exit_code == 0, started.output
    with ck_.Engine(root=cli_root) as engine:  # type: ignore[arg-type]
        container = engine.containers.get("cli-sick")
        wait_for(
            "unhealthy", lambda: (h := container.reload().health) is not None and h.status == "unhealthy"
        )
        assert ck("exec", "cli-sick", "touch", "/tmp/ok").exit_code == 0
        wait_for("healthy", lambda: (h := container.reload().health) is not None and h.status == "healthy")
    assert "(healthy)" in ck("ps", "--filter", "name=cli-sick").stdout


def test_platform_must_match_the_image(ck: Ck) -> None:
    import platform

    machine = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    ok = ck("run", "--rm", "--platform", f"linux/{machine}", IMAGE, "true")
    assert ok.exit_code == 0, ok.output
    other = "arm64" if machine != "arm64" else "amd64"
    wrong = ck("run", "--rm", "--platform", f"linux/{other}", IMAGE, "true")
    assert wrong.exit_code == 125, wrong.output
    assert f"wanted linux/{other}, actual: linux/{machine}" in wrong.stderr
    assert ck("ps", "-aq").stdout == ""  # nothing was created


@pytest.fixture
def web_image(ck: Ck, busybox_rootfs_tar: object) -> str:
    """busybox with ``EXPOSE 8080`` and httpd serving /www on it."""
    result = ck(
        "import",
        "--change",
        "EXPOSE 8080",
        "--change",
        'CMD ["sh", "-c", "mkdir -p /www; echo published > /www/index.html; exec httpd -f -p 8080 -h /www"]',
        str(busybox_rootfs_tar),
        WEB_IMAGE,
    )
    assert result.exit_code == 0, result.output
    return WEB_IMAGE


def test_publish_all_and_port(ck: Ck, web_image: str) -> None:
    started = ck("run", "-d", "--name", "cli-web", "-P", "-p", "127.0.0.1::9000", web_image)
    assert started.exit_code == 0, started.output
    lines = ck("port", "cli-web").stdout.splitlines()
    assert [line.split(" -> ")[0] for line in lines] == ["8080/tcp", "9000/tcp"], lines
    address = ck("port", "cli-web", "8080").stdout.strip()
    host, _, port = address.rpartition(":")
    assert host == "0.0.0.0" and int(port) > 0, address
    assert lines[0] == f"8080/tcp -> {address}"
    assert ck("port", "cli-web", "9000/tcp").stdout.startswith("127.0.0.1:")

    def served() -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
                return bool(response.read() == b"published\n")
        except OSError:
            return False

    wait_for("httpd on the -P port", served)
    missing = ck("port", "cli-web", "81")
    assert missing.exit_code == 1 and "No public port '81/tcp' published for cli-web" in missing.stderr
    assert ck("port", "cli-web", "eighty").exit_code == 125


def test_exec_detach_returns_while_the_command_runs(ck: Ck) -> None:
    assert ck("run", "-d", "--name", "cli-execd", IMAGE, "sleep", "60").exit_code == 0
    # the command cannot end before /tmp/go exists: exec -d must return while it runs
    script = "until [ -e /tmp/go ]; do sleep 0.1; done; echo done > /tmp/marker; sleep 60"
    detached = ck("exec", "-d", "cli-execd", "sh", "-c", script)
    assert (detached.exit_code, detached.stdout) == (0, ""), detached.output
    assert ck("exec", "cli-execd", "touch", "/tmp/go").exit_code == 0
    wait_for(
        "the detached command's file",
        lambda: ck("exec", "cli-execd", "cat", "/tmp/marker").stdout == "done\n",
    )
    missing = ck("exec", "-d", "cli-execd", "no-such-command")
    assert missing.exit_code == 126, missing.output  # docker's exit for an exec that cannot start


def test_update_changes_limits_of_a_running_container(ck: Ck) -> None:
    assert ck("run", "-d", "--name", "cli-upd", IMAGE, "sleep", "60").exit_code == 0
    updated = ck("update", "--memory", "64m", "--pids-limit", "50", "--restart", "on-failure:2", "cli-upd")
    assert (updated.exit_code, updated.stdout) == (0, "cli-upd\n"), updated.output
    shown = ck(
        "inspect",
        "-f",
        "{{.HostConfig.Memory}} {{.HostConfig.PidsLimit}} {{.HostConfig.RestartPolicy.Name}}",
        "cli-upd",
    )
    assert shown.stdout == f"{64 * 1024 * 1024} 50 on-failure\n", shown.output
    # the running container's own cgroup has the new limits (v2 files, or v1's where the host has those)
    memory = "cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes"
    pids = "cat /sys/fs/cgroup/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids/pids.max"
    assert ck("exec", "cli-upd", "sh", "-c", memory).stdout == f"{64 * 1024 * 1024}\n"
    assert ck("exec", "cli-upd", "sh", "-c", pids).stdout == "50\n"
    none = ck("update", "cli-upd")
    assert none.exit_code == 125 and "one or more flags" in none.stderr
    bad = ck("update", "--restart", "sometimes", "cli-upd")
    assert bad.exit_code == 125 and "sometimes" in bad.stderr


def test_events_between_two_times(ck: Ck) -> None:
    since = f"{time.time() - 1:.3f}"
    assert ck("run", "--rm", "--name", "cli-events", IMAGE, "sh", "-c", "exit 3").exit_code == 3
    until = f"{time.time() + 1:.3f}"
    result = ck("events", "--since", since, "--until", until, "--filter", "container=cli-events")
    assert result.exit_code == 0, result.output
    actions = [line.split(" ")[2] for line in result.stdout.splitlines()]
    assert [a for a in actions if a in ("create", "start", "die", "destroy")] == [
        "create",
        "start",
        "die",
        "destroy",
    ]
    die = next(line for line in result.stdout.splitlines() if " container die " in line)
    assert "exitCode=3" in die and "name=cli-events" in die, die
    as_json = ck("events", "--since", since, "--until", until, "-f", "event=die", "--format", "json")
    assert '"Action":"die"' in as_json.stdout and "cli-events" in as_json.stdout
    template = ck(
        "events", "--since", since, "--until", until, "-f", "container=cli-events", "--format", "{{.Action}}"
    )
    assert template.stdout.splitlines()[:2] == ["create", "start"], template.output


def test_ps_size_counts_what_the_container_wrote(ck: Ck) -> None:
    assert ck("run", "-d", "--name", "cli-size", IMAGE, "sleep", "60").exit_code == 0
    before = ck("ps", "-s", "--format", "{{.Size}}", "--filter", "name=cli-size").stdout.strip()
    assert ck("exec", "cli-size", "sh", "-c", "head -c 3000000 /dev/zero > /big").exit_code == 0
    after = ck("ps", "-s", "--filter", "name=cli-size").stdout.splitlines()
    assert after[0].split()[-1] == "SIZE", after
    written, _, virtual = after[1].split("   ")[-1].partition(" (virtual ")
    assert written.endswith("MB") and float(written[:-2]) >= 3.0, after
    assert float(virtual.rstrip(")")[:-2]) > float(written[:-2]), after
    assert before != written and "(virtual " in before, (before, written)
