"""The network tests beside a real dockerd (Debian's ``docker.io``), where it is installed.

``test_docker_firewall.py`` recreates Docker's firewall by hand; this runs the daemon itself,
in the same kind of throwaway network namespace (so the host's firewall and the tests running
at the same time are untouched): dockerd turns IP forwarding on and sets the FORWARD policy to
DROP there, loads its chains and br_netfilter's ``bridge-nf-call-iptables=1``, and the same
inner test run must pass beside it. Skipped where ``dockerd`` is not installed.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.network import dockerfw
from tests.network.test_docker_firewall import _run_inside, netns

__all__ = ["netns"]  # the fixture, shared with test_docker_firewall


@pytest.fixture
def dockerd(netns: tuple[str, str], tmp_path: Path) -> Iterator[str]:
    """A dockerd in the namespace, with its own data root, exec root and socket under tmp_path;
    stopped (and its mount namespace gone with it) after the test."""
    binary = shutil.which("dockerd")
    if binary is None:
        pytest.skip("dockerd is not installed (Debian's docker.io)")
    name, _host_ip = netns
    # A fresh host: forwarding off, so dockerd turns it on and sets the DROP policy, as it does at boot.
    subprocess.run(["ip", "netns", "exec", name, "sysctl", "-qw", "net.ipv4.ip_forward=0"], check=True)
    # Outside pytest's temp tree: its boltdb files are no engine roots for the session's sweep.
    base = Path(tempfile.mkdtemp(prefix="ck-test-dockerd-"))
    sock = base / "docker.sock"
    log = (base / "dockerd.log").open("wb")
    process = subprocess.Popen(
        [
            *("nsenter", f"--net=/run/netns/{name}", "unshare", "--mount", "--propagation", "slave"),
            binary,
            *("--data-root", str(base / "data"), "--exec-root", str(base / "exec")),
            *("--pidfile", str(base / "dockerd.pid"), "-H", f"unix://{sock}"),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        # Serving, and its firewall settled (two equal snapshots in a row).
        previous: str | None = None
        while True:
            current = dockerfw.snapshot(name) if sock.exists() else None
            if current is not None and current == previous and ":FORWARD DROP" in current:
                break
            previous = current
            if process.poll() is not None or time.monotonic() > deadline:
                log_text = (base / "dockerd.log").read_text()[-2000:]
                pytest.fail(f"dockerd did not set up its firewall: {log_text}")
            time.sleep(0.3)
        yield name
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        log.close()
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.slow
def test_network_tests_pass_beside_a_real_dockerd(
    netns: tuple[str, str], dockerd: str, tmp_path: Path
) -> None:
    name, host_ip = netns
    before = dockerfw.snapshot(name)
    assert "-A FORWARD -j DOCKER-USER" in before
    done = _run_inside(name, host_ip, "docker", tmp_path)
    summary = done.stdout.strip().splitlines()[-1:] or [done.stderr]
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    assert "skipped" not in summary[0], done.stdout[-3000:]
    assert dockerfw.snapshot(name) == before  # dockerd's chains as it made them; none of ours left
