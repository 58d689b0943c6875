"""Network layer figures: setup costs, and TCP throughput host -> container through a published
port (DNAT, 127.0.0.1 and a host address) against the same transfer to the container's own IP.

Run as root: ``python benchmarks/bench_network.py [--mb 200] [--runs 3]``. Everything it makes
(netns, bridge, veth, nft table) carries a random suffix and is removed at the end.
"""

from __future__ import annotations

import argparse
import secrets
import socket
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from containerkit.network import bridge, veth
from containerkit.network.nat import NatTable
from containerkit.network.netns import create_netns, iproute, netns_socket, remove_netns
from containerkit.spec import PortBinding

CHUNK = 1 << 20


def _sink(server: socket.socket) -> None:
    """Accept connections forever; count each one's bytes and send the count back."""
    while True:
        try:
            conn, _ = server.accept()
        except OSError:
            return
        with conn:
            buf = bytearray(CHUNK)
            total = 0
            while n := conn.recv_into(buf):
                total += n
            conn.sendall(str(total).encode())


def _transfer(ip: str, port: int, size: int) -> float:
    """Seconds to push ``size`` bytes and get the receiver's count back."""
    data = b"x" * CHUNK
    start = time.perf_counter()
    with socket.create_connection((ip, port), timeout=30) as sock:
        sent = 0
        while sent < size:
            sock.sendall(data)
            sent += len(data)
        sock.shutdown(socket.SHUT_WR)
        assert int(sock.recv(64)) == sent
    return time.perf_counter() - start


def _host_address() -> str | None:
    """A host address other than loopback and our bridge (eth0's, typically)."""
    with iproute() as ipr:
        for addr in ipr.get_addr(family=socket.AF_INET):
            ip = addr.get("IFA_ADDRESS")
            if not ip.startswith("127.") and not ip.startswith("10.252.9."):
                return str(ip)
    return None


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    uid = secrets.token_hex(3)
    tmp = Path(tempfile.mkdtemp())
    ns = tmp / f"bench-{uid}"
    br = f"ckbench{uid}"
    nat = NatTable(f"ckbench{uid}", lock_path=tmp / "nat.lock")
    host_if = None
    try:
        setup = {
            "create_netns": _timed(lambda: create_netns(ns)),
            "ensure_bridge": _timed(lambda: bridge.ensure_bridge(br, "10.252.9.1/24")),
            "nat.ensure_network": _timed(lambda: nat.ensure_network(br, "10.252.9.0/24")),
        }
        made: list[str] = []
        setup["veth.attach"] = _timed(
            lambda: made.append(veth.attach(ns, br, address_cidr="10.252.9.2/24", gateway="10.252.9.1"))
        )
        host_if = made[0]
        ports = []
        setup["nat.publish"] = _timed(
            lambda: ports.append(nat.publish(PortBinding(container_port=9000), "10.252.9.2", owner="bench"))
        )
        port = ports[0].host_port
        server = netns_socket(ns)
        server.bind(("10.252.9.2", 9000))
        server.listen()
        threading.Thread(target=_sink, args=(server,), daemon=True).start()
        host_addr = _host_address() or "10.252.9.1"
        paths = {
            "direct 10.252.9.2:9000": ("10.252.9.2", 9000),
            f"published 127.0.0.1:{port}": ("127.0.0.1", port),
            f"published {host_addr}:{port}": (host_addr, port),
        }
        size = args.mb * CHUNK
        print("setup (ms):", ", ".join(f"{k} {v:.1f}" for k, v in setup.items()))
        for name, (ip, p) in paths.items():
            _transfer(ip, p, 16 * CHUNK)  # warm up
            times = [_transfer(ip, p, size) for _ in range(args.runs)]
            rate = args.mb / statistics.median(times)
            print(
                f"{name:36s} {args.mb} MB: median {statistics.median(times) * 1000:7.1f} ms  {rate:8.0f} MB/s"
            )
        server.close()
    finally:
        nat.remove_all()
        if host_if:
            veth.detach(host_if)
        bridge.remove_bridge(br)
        remove_netns(ns)


if __name__ == "__main__":
    main()
