"""``containerkit build`` as a real process: docker's output, -q, and a SIGKILL mid-build."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import containerkit as ck
from containerkit.engine.builder import BUILD_OWNER_LABEL

BASE = "example/busybox:latest"


def _ck(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "containerkit.cli", "--root", str(root), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_build_prints_docker_lines_and_quiet_prints_the_id(
    build_engine: ck.Engine, tmp_path: Path
) -> None:
    (tmp_path / "Dockerfile").write_text(f"FROM {BASE}\nARG GREETING\nRUN echo $GREETING > /g\nLABEL a=b\n")
    other = tmp_path / "other.Dockerfile"
    other.write_text(f"FROM {BASE}\nRUN echo other > /o\n")
    result = _ck(
        build_engine.root,
        "build",
        "-t",
        "cli/built:1",
        "--build-arg",
        "GREETING=hi",
        "--label",
        "x=y",
        str(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"Step 1/5 : FROM {BASE}"
    assert "Step 3/5 : RUN echo $GREETING > /g" in lines
    assert any(line.startswith(" ---> Running in ") for line in lines)
    assert lines[-1] == "Successfully tagged cli/built:1"
    image = build_engine.images.get("cli/built:1")
    assert dict(image.config.labels) == {"a": "b", "x": "y"}
    quiet = _ck(build_engine.root, "build", "-q", "-f", str(other), str(tmp_path))
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stdout.strip().startswith("sha256:") and len(quiet.stdout.strip()) == 71
    failed = _ck(build_engine.root, "build", "-f", str(tmp_path / "missing"), str(tmp_path))
    assert failed.returncode != 0 and "Cannot locate specified Dockerfile" in failed.stderr


def test_sigkill_mid_build_leaves_nothing_and_keeps_finished_steps(
    build_engine: ck.Engine, tmp_path: Path
) -> None:
    (tmp_path / "Dockerfile").write_text(
        f"FROM {BASE}\nRUN echo first > /first\nRUN echo started; sleep 60\nRUN echo never\n"
    )
    images_before = {i.id for i in build_engine.images.list(all=True)}
    process = subprocess.Popen(
        [sys.executable, "-m", "containerkit.cli", "--root", str(build_engine.root), "build", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    seen = []
    for line in process.stdout:
        seen.append(line)
        if line == "started\n":
            break
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert "started\n" in seen, seen
    # the killed build's container still runs until recovery removes it
    assert build_engine.containers.list(all=True, filters={"label": [BUILD_OWNER_LABEL]}) != []
    with ck.Engine(root=build_engine.root) as fresh:
        fresh.recover()
        assert fresh.containers.list(all=True, filters={"label": [BUILD_OWNER_LABEL]}) == []
        known = {c.id for c in fresh.containers.list(all=True)}
        assert [s for s in fresh.snapshots.list_snapshots() if s not in known] == []
    # only the finished RUN's image is new, and it is the cache of the next build
    new = {i.id for i in build_engine.images.list(all=True)} - images_before
    assert len(new) == 1
    (tmp_path / "Dockerfile").write_text(f"FROM {BASE}\nRUN echo first > /first\nRUN echo second\n")
    events: list[ck.BuildEvent] = []
    build_engine.images.build(tmp_path, progress=events.append)
    assert [e.kind for e in events].count("cache") == 1


def test_cli_build_on_a_terminal_styles_the_lines(build_engine: ck.Engine, tmp_path: Path) -> None:
    import pty

    (tmp_path / "Dockerfile").write_text(f"FROM {BASE}\nRUN echo to-err >&2\n")
    _ck(build_engine.root, "build", str(tmp_path))  # cached for the second run
    main, child = pty.openpty()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "containerkit.cli",
            "--root",
            str(build_engine.root),
            "build",
            "--no-cache",
            str(tmp_path),
        ],
        stdout=child,
        stderr=child,
    )
    os.close(child)
    output = b""
    while True:
        try:
            chunk = os.read(main, 65536)
        except OSError:  # EIO: the child side closed
            break
        if not chunk:
            break
        output += chunk
    os.close(main)
    assert process.wait(timeout=60) == 0
    text = output.decode()
    assert f"\x1b[1mStep 1/2 : FROM {BASE}\x1b[0m" in text
    assert "\x1b[91mto-err\x1b[0m" in text
