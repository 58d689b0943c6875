"""Container verbs through the entry point: exit codes, output formats, options that reach the container."""

from __future__ import annotations

import io
import json
import tarfile
import time
from pathlib import Path

from tests.cli.conftest import IMAGE, Ck


def test_help_lists_verbs_and_version(ck: Ck) -> None:
    result = ck("--help")
    assert result.exit_code == 0
    for verb in ("run", "ps", "exec", "logs", "images", "volume", "network", "system"):
        assert f"  {verb} " in result.stdout
    assert ck("version").stdout.startswith("Client: containerkit")
    assert json.loads(ck("version", "--format", "json").stdout)["Client"]["Version"]


def test_run_streams_output_and_exits_with_the_container_code(ck: Ck) -> None:
    result = ck("run", "--rm", "--network", "none", IMAGE, "sh", "-c", "echo out; echo err >&2; exit 3")
    assert result.exit_code == 3
    assert result.stdout == "out\n"
    assert result.stderr == "err\n"
    assert ck("ps", "-aq").stdout == ""  # --rm removed it


def test_run_failures_map_to_docker_exit_codes(ck: Ck) -> None:
    cases = [
        (["run", "--rm", IMAGE, "no-such-command"], 127, "executable file not found"),
        (["run", "--rm", IMAGE, "/etc/passwd"], 126, "permission denied"),
        # --pull never: a missing image is not looked up in a registry (none is reachable here)
        (["run", "--rm", "--pull", "never", "no/such-image", "true"], 125, "No such image"),
        (["run", "--no-such-flag", IMAGE], 125, "No such option"),
        (["run", "--rm", "-p", "x:y", IMAGE, "true"], 125, "invalid publish spec"),
    ]
    for args, code, message in cases:
        result = ck(*args)
        assert result.exit_code == code, (args, result.output)
        assert result.stderr.startswith("containerkit: ") and message in result.stderr
        assert result.stderr.count("\n") == 1, result.stderr  # one line, no traceback
    assert ck("ps", "-aq").stdout == ""
    assert ck("rm", "no-such-container").exit_code == 1


def test_run_options_reach_the_container(ck: Ck, tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("bound\n")
    tmp_path.chmod(0o755)  # readable by uid 1000 in the container
    script = "echo $FOO; pwd; id -u; hostname; cat /host/in.txt; touch /x"
    result = ck(
        "run", "--rm", "--network", "none",
        "-e", "FOO=bar", "-w", "/tmp", "-u", "1000", "--hostname", "box",
        "-v", f"{tmp_path}:/host:ro", "--memory", "64m", "--read-only",
        "--label", "purpose=test", IMAGE, "sh", "-c", script,
    )  # fmt: skip
    lines = result.stdout.splitlines()
    assert lines[:5] == ["bar", "/tmp", "1000", "box", "bound"], result.output
    assert result.exit_code == 1  # touch on a read-only root fails
    assert "Read-only file system" in result.stderr
    entry = ck("run", "--rm", "--network", "none", "--entrypoint", "echo", IMAGE, "via", "entrypoint")
    assert entry.stdout == "via entrypoint\n"


def test_detached_container_lifecycle(ck: Ck) -> None:
    run = ck(
        "run", "-d", "--name", "cli-life", "--network", "none", "-l", "app=x", IMAGE,
        "sh", "-c", "echo first; echo second; trap 'exit 0' TERM; while true; do sleep 0.1; done",
    )  # fmt: skip
    assert run.exit_code == 0, run.output
    cid = run.stdout.strip()
    assert len(cid) == 64
    table = ck("ps").stdout.splitlines()
    assert table[0].split() == ["CONTAINER", "ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"]
    assert cid[:12] in table[1] and "cli-life" in table[1] and "Up " in table[1]
    record = json.loads(ck("ps", "--format", "json").stdout.splitlines()[0])
    assert record["Names"] == "cli-life" and record["State"] == "running" and record["Labels"] == "app=x"
    assert ck("ps", "--filter", "label=app=x", "-q").stdout.split() == [cid[:12]]
    assert ck("ps", "--filter", "label=app=y", "-q").stdout == ""
    assert ck("ps", "--format", "{{.Names}}:{{.State}}").stdout == "cli-life:running\n"

    deadline = time.monotonic() + 5
    while "second" not in ck("logs", "cli-life").stdout and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ck("logs", "cli-life").stdout == "first\nsecond\n"
    assert ck("logs", "--tail", "1", "cli-life").stdout == "second\n"
    assert ck("logs", "-t", "cli-life").stdout.split("\n")[0].endswith("Z first")

    exec_ = ck(
        "exec",
        "-e",
        "A=1",
        "-w",
        "/etc",
        "-u",
        "1000",
        "cli-life",
        "sh",
        "-c",
        "echo $A $(pwd) $(id -u); exit 4",
    )
    assert (exec_.exit_code, exec_.stdout) == (4, "1 /etc 1000\n")
    missing = ck("exec", "cli-life", "no-such-command")
    # docker's exit for an exec that cannot start is 126 (only run's missing command is 127)
    assert missing.exit_code == 126 and missing.stderr.startswith("containerkit: ")

    top = ck("top", "cli-life").stdout.splitlines()
    assert top[0].split()[:3] == ["UID", "PID", "PPID"] and any("sh -c" in line for line in top[1:])
    stats = ck("stats", "--no-stream", "cli-life").stdout.splitlines()
    assert stats[0].startswith("CONTAINER ID") and "cli-life" in stats[1]

    doc = json.loads(ck("inspect", "cli-life").stdout)[0]
    assert doc["Id"] == cid and doc["Name"] == "/cli-life" and doc["State"]["Running"] is True
    assert doc["Config"]["Labels"] == {"app": "x"} and doc["Config"]["Image"] == IMAGE
    assert ck("inspect", "-f", "{{.State.Status}} {{.Config.Cmd}}", "cli-life").stdout.startswith("running ")

    assert ck("pause", "cli-life").exit_code == 0
    assert "(Paused)" in ck("ps").stdout
    assert ck("unpause", "cli-life").exit_code == 0
    assert ck("stop", "-t", "5", "cli-life").stdout == "cli-life\n"
    assert ck("wait", "cli-life").stdout == "0\n"
    assert "Exited (0)" in ck("ps", "-a").stdout
    assert ck("ps", "-q").stdout == ""
    assert ck("restart", "cli-life").exit_code == 0
    assert ck("kill", "-s", "KILL", "cli-life").exit_code == 0
    assert ck("wait", "cli-life").stdout == "137\n"
    assert ck("rename", "cli-life", "cli-renamed").exit_code == 0
    assert ck("rm", "cli-renamed").stdout == "cli-renamed\n"
    assert ck("ps", "-aq").stdout == ""


def test_create_then_start_attached(ck: Ck) -> None:
    created = ck(
        "create", "--name", "cli-created", "--network", "none", IMAGE, "sh", "-c", "echo hello; exit 5"
    )
    assert created.exit_code == 0
    assert "Created" in ck("ps", "-a").stdout
    started = ck("start", "-a", "cli-created")
    assert (started.exit_code, started.stdout) == (5, "hello\n")


def test_detached_rm_removes_the_container_when_it_exits(ck: Ck) -> None:
    cid = ck("run", "-d", "--rm", "--network", "none", IMAGE, "sleep", "0.2").stdout.strip()
    deadline = time.monotonic() + 10
    while ck("ps", "-aq").stdout and time.monotonic() < deadline:
        time.sleep(0.1)
    assert ck("ps", "-aq").stdout == "", f"{cid} was not removed"


def test_cp_both_directions(ck: Ck, tmp_path: Path) -> None:
    ck("run", "-d", "--name", "cli-cp", "--network", "none", IMAGE, "sleep", "60")
    (tmp_path / "hello.txt").write_text("hi there\n")
    (tmp_path / "tree").mkdir()
    (tmp_path / "tree" / "a.txt").write_text("a\n")
    assert ck("cp", str(tmp_path / "hello.txt"), "cli-cp:/tmp/").exit_code == 0
    assert ck("cp", str(tmp_path / "tree"), "cli-cp:/tmp/tree").exit_code == 0
    assert ck("exec", "cli-cp", "cat", "/tmp/hello.txt", "/tmp/tree/a.txt").stdout == "hi there\na\n"

    out = tmp_path / "out"
    out.mkdir()
    assert ck("cp", "cli-cp:/etc/passwd", str(out)).exit_code == 0
    assert (out / "passwd").read_text().startswith("root:")
    assert ck("cp", "cli-cp:/tmp/tree", str(out / "copied")).exit_code == 0
    assert (out / "copied" / "a.txt").read_text() == "a\n"
    assert ck("cp", "cli-cp:/etc/os-release", str(out / "renamed")).exit_code == 0
    assert "busybox" in (out / "renamed").read_text()

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        data = b"from a stream\n"
        info = tarfile.TarInfo("streamed.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    assert ck("cp", "-", "cli-cp:/tmp", input=buffer.getvalue()).exit_code == 0
    assert ck("exec", "cli-cp", "cat", "/tmp/streamed.txt").stdout == "from a stream\n"
    missing = ck("cp", "cli-cp:/no/such/file", str(out))
    assert missing.exit_code == 1 and "Could not find" in missing.stderr
