"""Bridge networking under a foreign firewall, run inside a throwaway network namespace.

Not collected on its own (no ``test_`` prefix): ``test_docker_firewall.py`` runs it with
``tests/engine/test_networking.py`` in a namespace of its own, once with Docker's firewall
state recreated there (``CK_TEST_FIREWALL=docker``) and once without (``plain``). There the
process's namespace stands for "the host": its ``eth0`` is a veth with an address, "the outside" is
another namespace reached through NAT. Containers talk over busybox ``httpd``, ``ping`` and
``nc`` (HTTP GETs are sent with ``nc``: this static busybox's ``wget`` segfaults).
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import containerkit as ck
from containerkit.network import bridge as bridge_mod
from containerkit.network import foreign_firewall
from containerkit.network.netns import netns_socket
from tests.engine.conftest import IMAGE
from tests.engine.test_networking import HTTPD, Greeter, _http_get
from tests.network import dockerfw
from tests.network.conftest import Outside, free_subnet

MODE = os.environ.get("CK_TEST_FIREWALL")
HOST_IP = os.environ.get("CK_TEST_HOST_IP", "")

pytestmark = pytest.mark.skipif(
    MODE not in ("docker", "plain"), reason="run by test_docker_firewall.py inside a network namespace"
)


@pytest.fixture(scope="module")
def fw_engine(tmp_path_factory: pytest.TempPathFactory, busybox_rootfs_tar: Path) -> Iterator[ck.Engine]:
    engine = ck.Engine(root=tmp_path_factory.mktemp("fw-engine"))
    engine.images.import_rootfs(busybox_rootfs_tar, IMAGE, config={"Cmd": ["sh"]})
    try:
        yield engine
    finally:
        for container in engine.containers.list(all=True):
            container.remove(force=True)
        engine.networks.prune()
        engine.close()


@pytest.fixture
def network(fw_engine: ck.Engine) -> Iterator[Callable[[str], ck.Network]]:
    made: list[ck.Network] = []

    def make(name: str) -> ck.Network:
        made.append(fw_engine.networks.create(name, subnet=str(free_subnet())))
        return made[-1]

    yield make
    for net in made:
        for container in net.containers:
            container.remove(force=True)
        net.remove()


def sh(c: ck.Container, command: str) -> ck.ExecResult:
    result: ck.ExecResult = c.exec(["sh", "-c", command])
    return result


def _ours_for(bridge: str) -> list[str]:
    return [line for line in dockerfw.ours(dockerfw.snapshot()) if f"containerkit:{bridge}" in line]


def test_firewall_state_is_the_one_asked_for() -> None:
    snap = dockerfw.snapshot()
    if MODE == "docker":
        assert ":FORWARD DROP" in snap and "-A FORWARD -j DOCKER-USER" in snap
        assert dockerfw.BR_NF_CALL_IPTABLES.read_text().strip() == "1"
    else:
        assert "DOCKER" not in snap
    assert HOST_IP, "the namespace's eth0 address is passed in CK_TEST_HOST_IP"


def test_containers_talk_on_a_user_network_and_the_default_bridge(
    fw_engine: ck.Engine, network: Callable[[str], ck.Network]
) -> None:
    user = network(f"fw-{secrets.token_hex(3)}")
    for net_name in (user.name, "bridge"):
        server = fw_engine.containers.run(IMAGE, HTTPD, network=net_name)
        client = fw_engine.containers.run(IMAGE, ["sleep", "60"], network=net_name)
        try:
            bridge = fw_engine.networks.get(net_name).bridge
            if MODE == "docker":
                assert len(_ours_for(bridge)) == 3
                assert all(line.startswith("-A DOCKER-USER ") for line in _ours_for(bridge))
            else:
                assert _ours_for(bridge) == []
            assert sh(client, f"ping -c1 -W2 {server.ip_address}").exit_code == 0
            # an HTTP GET with nc: this static busybox's wget crashes in getaddrinfo
            get = f"printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {server.ip_address} 80"
            got = sh(
                client, f"for i in 1 2 3 4 5; do {get} | grep -q served && exit; sleep 0.2; done; exit 1"
            )
            assert got.exit_code == 0, got
            if net_name == user.name:  # by name, as compose users do
                assert sh(client, f"ping -c1 -W2 {server.name}").exit_code == 0
        finally:
            server.remove(force=True)
            client.remove(force=True)


def test_container_reaches_the_host(fw_engine: ck.Engine) -> None:
    host = Greeter(socket.socket(), HOST_IP)
    c = fw_engine.containers.run(IMAGE, ["sleep", "60"])
    try:
        gateway = fw_engine.networks.get("bridge").gateway
        assert sh(c, f"ping -c1 -W2 {gateway} && ping -c1 -W2 {HOST_IP}").exit_code == 0
        assert sh(c, f"nc {HOST_IP} {host.port}").stdout == b"hello-from-outside\n"
    finally:
        host.close()
        c.remove(force=True)


def test_container_reaches_the_outside_through_nat(fw_engine: ck.Engine, outside: Outside) -> None:
    server = Greeter(netns_socket(outside.netns), outside.ip)
    c = fw_engine.containers.run(IMAGE, ["sleep", "60"])
    try:
        assert sh(c, f"ping -c1 -W2 {outside.ip}").exit_code == 0
        assert sh(c, f"nc {outside.ip} {server.port}").stdout == b"hello-from-outside\n"
        assert set(server.peers) == {outside.host_ip}  # masqueraded to the host's address
    finally:
        server.close()
        c.remove(force=True)


def test_published_port_from_the_host_and_another_netns(fw_engine: ck.Engine, outside: Outside) -> None:
    c = fw_engine.containers.run(IMAGE, HTTPD, ports={"80/tcp": None})
    try:
        ((_, port),) = c.ports["80/tcp"]
        assert _http_get("127.0.0.1", port) == b"served\n"
        assert _http_get(HOST_IP, port) == b"served\n"
        assert _http_get(outside.host_ip, port, outside.netns) == b"served\n"  # forwarded, DNAT
    finally:
        c.remove(force=True)


def test_rules_go_with_the_network_and_docker_is_untouched(fw_engine: ck.Engine) -> None:
    fw_engine.networks.release_idle()
    before = dockerfw.snapshot()
    net = fw_engine.networks.create(f"fw-{secrets.token_hex(3)}", subnet=str(free_subnet()))
    during = dockerfw.snapshot()
    assert len(_ours_for(net.bridge)) == (3 if MODE == "docker" else 0)
    assert dockerfw.without_ours(during) == before  # Docker's chains, rules and policy as they were
    net.remove()
    assert dockerfw.snapshot() == before


def test_leftover_rules_of_a_vanished_root_are_swept(tmp_path: Path) -> None:
    """What a crash leaves (a bridge and its accept rules, no root registered) goes with the
    next Engine's sweep, as the bridge does."""
    prefix = "ck" + secrets.token_hex(3)[:5]
    name = f"{prefix}b{secrets.token_hex(4)[:7]}"
    net = free_subnet()
    bridge_mod.ensure_bridge(name, f"{net.network_address + 1}/{net.prefixlen}")
    try:
        chain = foreign_firewall.allow_bridge(name)
        assert chain == ("DOCKER-USER" if MODE == "docker" else None)
        assert len(_ours_for(name)) == (3 if MODE == "docker" else 0)
        assert foreign_firewall.allow_bridge(name) == chain  # idempotent
        assert len(_ours_for(name)) == (3 if MODE == "docker" else 0)
        with ck.Engine(root=tmp_path / "root"):  # opening a root sweeps what no root owns
            pass
        assert not bridge_mod.bridge_exists(name)
        assert _ours_for(name) == []
    finally:
        foreign_firewall.forget_bridge(name)
        bridge_mod.remove_bridge(name)


def test_leftover_rules_without_their_bridge_are_swept(tmp_path: Path) -> None:
    """Accept rules whose bridge and nft table are gone already (a crash, a bridge deleted by
    hand) are found in the firewall itself and swept by the next Engine."""
    name = f"ck{secrets.token_hex(3)[:5]}b{secrets.token_hex(4)[:7]}"
    if MODE == "plain":  # no iptables filter table: nothing added, nothing to find
        assert foreign_firewall.allow_bridge(name) is None
        assert foreign_firewall.interfaces_in_forward() == set()
        return
    try:
        assert foreign_firewall.allow_bridge(name) == "DOCKER-USER"  # no such link: fine
        assert name in foreign_firewall.interfaces_in_forward()
        with ck.Engine(root=tmp_path / "root"):
            pass
        assert _ours_for(name) == []
    finally:
        foreign_firewall.forget_bridge(name)


def test_rules_of_others_are_never_touched(fw_engine: ck.Engine) -> None:
    """A rule someone else put in the chain we use, with a comment too, survives our network
    coming and going. Plain mode: a filter table without Docker's chains, so ours go to the
    top of FORWARD."""
    chain = "DOCKER-USER" if MODE == "docker" else "FORWARD"
    rule = [chain, "-i", "someonesbr", "-m", "comment", "--comment", "not-containerkit", "-j", "ACCEPT"]
    subprocess.run(["iptables", "-w", "-I", *rule], check=True)
    try:
        net = fw_engine.networks.create(f"fw-{secrets.token_hex(3)}", subnet=str(free_subnet()))
        ours = _ours_for(net.bridge)
        net.remove()
        assert len(ours) == 3 and all(line.startswith(f"-A {chain} ") for line in ours), ours
        assert "not-containerkit" in dockerfw.snapshot() and _ours_for(net.bridge) == []
    finally:
        subprocess.run(["iptables", "-w", "-D", *rule], check=True)
        if MODE == "plain":  # the filter table this test made
            subprocess.run(["nft", "delete", "table", "ip", "filter"], check=True)


def test_legacy_backend_is_detected_and_used(tmp_path: Path) -> None:
    """A host whose ``iptables`` is iptables-legacy (Docker's rules are then in the legacy
    tables): found from where the command leads, and the rules go there."""
    if not os.path.exists("/usr/sbin/xtables-legacy-multi"):
        pytest.skip("iptables-legacy is not installed")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("iptables", "iptables-restore"):
        (bin_dir / name).symlink_to("/usr/sbin/xtables-legacy-multi")
    path = os.environ["PATH"]
    os.environ["PATH"] = f"{bin_dir}:{path}"
    try:
        fw = foreign_firewall.detect()
    finally:
        os.environ["PATH"] = path
    assert fw is not None and fw.backend == "legacy" and fw.restore == str(bin_dir / "iptables-restore")
    version = subprocess.run(["iptables", "-V"], capture_output=True, text=True, check=True).stdout
    host = foreign_firewall.detect()
    assert host is not None and host.backend == ("legacy" if "legacy" in version else "nft"), version
    subprocess.run(["iptables-legacy-restore", "-w"], input=dockerfw.DOCKER_RULES, text=True, check=True)
    name = f"ck{secrets.token_hex(3)[:5]}b{secrets.token_hex(4)[:7]}"
    try:
        assert foreign_firewall.allow_bridge(name, fw) == "DOCKER-USER"
        listed = subprocess.run(
            ["iptables-legacy", "-w", "-S", "DOCKER-USER"], capture_output=True, text=True
        )
        assert listed.stdout.count(f"containerkit:{name}") == 3, listed.stdout
        assert foreign_firewall.bridges_with_rules(fw) == {name}
        assert _ours_for(name) == []  # nothing of ours in the nft-backed tables
        assert foreign_firewall.forget_bridge(name, fw) == 3
        assert foreign_firewall.bridges_with_rules(fw) == set()
    finally:
        foreign_firewall.forget_bridge(name, fw)
        for table in ("filter", "nat"):  # the legacy tables this test filled, emptied again
            subprocess.run(["iptables-legacy", "-w", "-t", table, "-F"], check=True)
            subprocess.run(["iptables-legacy", "-w", "-t", table, "-X"], check=True)
        subprocess.run(["iptables-legacy", "-w", "-P", "FORWARD", "ACCEPT"], check=True)
