"""The network tests, run again beside Docker's firewall, in a network namespace of their own.

dockerd sets the FORWARD policy to DROP and turns br_netfilter on; no dockerd runs here, so
``dockerfw.install`` recreates that state, in a throwaway network namespace so that the tests
running at the same time on the host are not affected (bridges, veths, nft and iptables rules
and br_netfilter's sysctls are all per namespace on this kernel). A pytest runs inside it:
``tests/engine/test_networking.py`` and ``dockerfw_checks.py``, once with Docker's state and
once plain. It gets the host's cgroup tree and a sysfs of its namespace in a mount namespace
of its own. Afterwards Docker's chains and policy must be exactly as they were.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.network import dockerfw
from tests.network.conftest import free_subnet

REPO = Path(__file__).resolve().parents[2]

# In a new mount namespace (slave: nothing propagates back to the host): a sysfs of the
# network namespace on /sys (the engine lists /sys/class/net), the host's cgroups kept on it.
_ENTER = """
cg=$(mktemp -d "$CK_TEST_TMP/cgroup.XXXXXX")
mount --rbind /sys/fs/cgroup "$cg"
mount -t sysfs sysfs /sys
mount --move "$cg" /sys/fs/cgroup
rmdir "$cg"
exec "$@"
"""


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


@pytest.fixture
def netns(uid: str) -> Iterator[tuple[str, str]]:
    """A named network namespace with ``lo`` up and an ``eth0`` standing for the host's
    own interface; deleted with everything in it, even when the test fails."""
    for tool in ("iptables-restore", "iptables-save", "nsenter", "unshare"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (scripts/install-system-deps installs it)")
    name = f"ck-fw-{uid}"
    _ip("netns", "add", name)
    try:
        host = free_subnet()
        host_ip = str(host.network_address + 1)
        ns = ("-n", name)
        _ip(*ns, "link", "set", "lo", "up")
        _ip(*ns, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0peer")  # no dummy module
        _ip(*ns, "addr", "add", f"{host_ip}/{host.prefixlen}", "dev", "eth0")
        _ip(*ns, "link", "set", "eth0peer", "up")
        _ip(*ns, "link", "set", "eth0", "up")
        yield name, host_ip
    finally:
        _ip("netns", "del", name)


def _run_inside(name: str, host_ip: str, mode: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env.update(CK_TEST_FIREWALL=mode, CK_TEST_HOST_IP=host_ip, CK_TEST_TMP=str(tmp_path))
    command = [
        *("nsenter", f"--net=/run/netns/{name}", "unshare", "--mount", "--propagation", "slave"),
        *("sh", "-ec", _ENTER, "sh"),
        *(sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider"),
        *("--basetemp", str(tmp_path / "inner"), "-o", "addopts=-ra --timeout=120"),
        "tests/engine/test_networking.py",
        "tests/network/dockerfw_checks.py",
        # the firewall plays no part there, and it runs on the host already
        "--deselect=tests/engine/test_networking.py::test_without_nftables_the_engine_and_daemon_start",
    ]
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=400)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["docker", "plain"])
def test_network_tests_pass_in_a_netns(netns: tuple[str, str], mode: str, tmp_path: Path) -> None:
    name, host_ip = netns
    if mode == "docker":
        dockerfw.install(name)
    before = dockerfw.snapshot(name)
    done = _run_inside(name, host_ip, mode, tmp_path)
    summary = done.stdout.strip().splitlines()[-1:] or [done.stderr]
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    assert "skipped" not in summary[0], done.stdout[-3000:]  # every check ran, in this mode
    after = dockerfw.snapshot(name)
    assert after == before  # Docker's chains and policy exactly as before; no rule of ours left
