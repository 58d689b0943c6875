"""``system prune --expired``, ``system info`` and the real entry point."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from containerkit._reaper import LABEL_EXPIRES as EXPIRES_LABEL
from containerkit._reaper import LABEL_OWNER_HOST as OWNER_HOST_LABEL
from containerkit._reaper import LABEL_OWNER_PID as OWNER_PID_LABEL
from containerkit._reaper import LABEL_SESSION as SESSION_LABEL
from tests.cli.conftest import IMAGE, Ck, subprocess_ck


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_system_prune_expired_keeps_live_sessions(ck: Ck) -> None:
    def labels(**values: str) -> list[str]:
        return [arg for key, value in values.items() for arg in ("--label", f"{key}={value}")]

    past, future = str(int(time.time()) - 10), str(int(time.time()) + 600)
    # an owner on another host cannot be checked here: its expiry decides
    expired = {SESSION_LABEL: "old", OWNER_HOST_LABEL: "elsewhere", OWNER_PID_LABEL: "1", EXPIRES_LABEL: past}
    orphaned = {SESSION_LABEL: "dead", OWNER_PID_LABEL: str(_dead_pid()), EXPIRES_LABEL: future}
    live = {SESSION_LABEL: "live", OWNER_PID_LABEL: str(os.getpid()), EXPIRES_LABEL: future}
    ids = {}
    for name, label_set in (("expired", expired), ("orphaned", orphaned), ("live", live), ("plain", {})):
        result = ck(
            "run",
            "-d",
            "--name",
            f"cli-reap-{name}",
            "--network",
            "none",
            *labels(**label_set),
            IMAGE,
            "sleep",
            "60",
        )
        ids[name] = result.stdout.strip()
    ck("volume", "create", *labels(**expired), "cli-reap-vol")
    ck("volume", "create", *labels(**live), "cli-reap-live-vol")

    pruned = ck("system", "prune", "--expired")
    assert pruned.exit_code == 0, pruned.output
    assert ids["expired"] in pruned.stdout and ids["orphaned"] in pruned.stdout
    assert "cli-reap-vol" in pruned.stdout
    remaining = set(ck("ps", "-a", "--format", "{{.Names}}").stdout.split())
    assert remaining == {"cli-reap-live", "cli-reap-plain"}
    assert ck("volume", "ls", "-q").stdout.split() == ["cli-reap-live-vol"]
    ck("volume", "rm", "cli-reap-live-vol")


def test_system_prune_and_info(ck: Ck) -> None:
    ck("create", "--name", "cli-stopped", "--network", "none", IMAGE)
    pruned = ck("system", "prune", "-f")
    assert pruned.exit_code == 0 and "Deleted Containers:" in pruned.stdout
    assert ck("ps", "-aq").stdout == ""
    info = json.loads(ck("system", "info", "--format", "json").stdout)
    assert info["Images"] >= 1 and info["Containers"] == 0 and info["KernelVersion"]
    assert "Kernel Version:" in ck("system", "info").stdout
    refused = ck("system", "prune", input="n\n")
    assert refused.exit_code != 0 and "Are you sure" in refused.stdout


def test_entry_point_as_a_process(cli_root: Path) -> None:
    ran = subprocess_ck(cli_root, "run", "--rm", "--network", "none", IMAGE, "sh", "-c", "echo real; exit 7")
    assert (ran.returncode, ran.stdout) == (7, "real\n")
    piped = subprocess_ck(cli_root, "run", "-i", "--rm", "--network", "none", IMAGE, "cat", input="in\nout\n")
    assert (piped.returncode, piped.stdout) == (0, "in\nout\n")  # our EOF closed the container's stdin
    failed = subprocess_ck(cli_root, "inspect", "no-such-thing")
    assert failed.returncode == 1
    assert failed.stderr == "containerkit: No such object: no-such-thing\n"
    bad_root = subprocess_ck(Path("/proc/no-such/root"), "ps")
    assert bad_root.returncode == 1 and bad_root.stderr.startswith("containerkit: cannot open root")
