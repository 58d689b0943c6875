"""containerkitd and dockerd side by side, through the same clients, in one run.

    python3 benchmarks/bench_daemon.py [--runs 20]

Starts containerkitd on a temp root and socket and a dockerd in a throwaway network namespace
(``_peers.throwaway_dockerd``: its own data root, busybox imported from the same static
binary), then times, the two daemons sampled in turn: the docker CLI's ``docker run --rm``
(network none and the default bridge), docker-py's ``exec_run("true")``, ``exec_run("echo
x")`` (output checked) and ``containers.run("true")``, ``/_ping`` and ``GET /containers/json``
round trips (keep-alive) and 200 concurrent API requests; then each daemon's idle resident
memory. Each row prints both medians and containerkitd/dockerd (below 1 is faster).

``daemon_rows(ckd_socket, docker_socket, runs)`` is the side-by-side part for other scripts.
"""

from __future__ import annotations

import argparse
import http.client
import shutil
import socket
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _peers import containerkitd, throwaway_dockerd

import containerkit as ck
from containerkit.images.busybox import write_busybox_rootfs

IMAGE = "busybox:latest"
SLEEP = ["sleep", "3600"]

Row = tuple[str, float, "float | str"]  # what, containerkitd, dockerd (or why not)


class _Conn(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=60)
        self._path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(self._path)


def in_turn(contenders: dict[str, Callable[[], object]], runs: int, warmup: int = 2) -> dict[str, float]:
    """Median milliseconds of each contender, sampled round-robin: a load that comes and goes
    on a shared machine weighs on all of them alike."""
    for fn in contenders.values():
        for _ in range(warmup):
            fn()
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(runs):
        for name, fn in contenders.items():
            start = time.perf_counter()
            fn()
            samples[name].append((time.perf_counter() - start) * 1000)
    return {name: statistics.median(values) for name, values in samples.items()}


def _rss_kib(pid: int, children: bool = True) -> int:
    pids = [pid]
    if children:
        for task in Path(f"/proc/{pid}/task").iterdir():
            pids += [int(p) for p in (task / "children").read_text().split()]
    total = 0
    for p in pids:
        for line in Path(f"/proc/{p}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total


def _cli_run(sock: str, *args: str) -> Callable[[], None]:
    cli = shutil.which("docker") or "docker"
    argv = [cli, "-H", f"unix://{sock}", "run", "--rm", *args, IMAGE, "true"]
    return lambda: subprocess.run(argv, check=True, capture_output=True)


def _concurrent(sock: str, count: int = 200) -> float:
    def one() -> None:
        c = _Conn(sock)
        c.request("GET", "/containers/json?all=1")
        assert c.getresponse().status == 200
        c.close()

    threads = [threading.Thread(target=one) for _ in range(count)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return (time.perf_counter() - start) * 1000


def daemon_rows(ckd: str, dockerd: str | None, runs: int, why_not: str = "") -> list[Row]:
    """The side-by-side rows: containerkitd at ``ckd``, dockerd at ``dockerd`` (None: ``why_not``)."""
    import docker

    socks = {"ckd": ckd} | ({"dockerd": dockerd} if dockerd else {})
    clients = {name: docker.DockerClient(base_url=f"unix://{s}") for name, s in socks.items()}
    rows: list[Row] = []

    def row(what: str, make: Callable[[str, Any], Callable[[], object]], n: int = runs) -> None:
        figures = in_turn({name: make(name, clients[name]) for name in socks}, n)
        rows.append((what, figures["ckd"], figures.get("dockerd", why_not)))

    targets: dict[str, Any] = {}
    try:
        row(
            "docker run --rm --network none IMG true (CLI)",
            lambda n, _c: _cli_run(socks[n], "--network", "none"),
        )
        row("docker run --rm IMG true (CLI, default bridge)", lambda n, _c: _cli_run(socks[n]))
        for name, client in clients.items():
            targets[name] = client.containers.run(IMAGE, SLEEP, network_mode="none", detach=True)

        def echo(target: Any) -> Callable[[], None]:
            def call() -> None:
                result = target.exec_run("echo x")
                if (result.exit_code, result.output) != (0, b"x\n"):
                    raise RuntimeError(f"exec_run('echo x') answered {result!r}")

            return call

        row('docker-py exec_run("true")', lambda n, _c: lambda: targets[n].exec_run("true"))
        row('docker-py exec_run("echo x"), output checked', lambda n, _c: echo(targets[n]))
        row(
            'docker-py containers.run("true", remove=True)',
            lambda _n, c: lambda: c.containers.run(IMAGE, ["true"], network_mode="none", remove=True),
        )
        conns = {name: _Conn(s) for name, s in socks.items()}

        def get(name: str, path: str) -> Callable[[], None]:
            def call() -> None:
                conns[name].request("GET", path)
                conns[name].getresponse().read()

            return call

        row("/_ping round trip (keep-alive)", lambda n, _c: get(n, "/_ping"), 200)
        row(
            "GET /containers/json round trip (keep-alive)",
            lambda n, _c: get(n, "/containers/json?all=1"),
            200,
        )
        concurrent = {name: _concurrent(s) for name, s in socks.items()}
        rows.append(
            (
                "200 concurrent GET /containers/json (total)",
                concurrent["ckd"],
                concurrent.get("dockerd", why_not),
            )
        )
    finally:
        for target in targets.values():
            target.remove(force=True)
        for client in clients.values():
            client.close()
    return rows


def print_rows(rows: list[Row]) -> None:
    print(f"\n{'':52s} {'containerkitd':>14s} {'dockerd':>10s}   ckd/dockerd")
    for what, ours, theirs in rows:
        if isinstance(theirs, str):
            print(f"{what:52s} {ours:11.1f} ms {'n/a':>10s}   {theirs}")
        else:
            speed = f"({theirs / ours:.1f}x as fast)"
            print(f"{what:52s} {ours:11.1f} ms {theirs:7.1f} ms   {ours / theirs:5.2f}x {speed}")


def _daemon_pid(sock: str) -> int | None:
    """The pid listening on ``sock`` (from /proc/net/unix inodes and /proc/*/fd)."""
    inodes = set()
    for line in Path("/proc/net/unix").read_text().splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 8 and fields[-1] == sock:
            inodes.add(f"socket:[{fields[6]}]")
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            for fd in (proc / "fd").iterdir():
                if fd.readlink().name in inodes:
                    return int(proc.name)
        except OSError:
            continue
    return None


def _pidfile(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-ckd-") as tmp:
        work = Path(tmp)
        root = work / "root"
        tar = write_busybox_rootfs(work / "rootfs.tar")
        with ck.Engine(root=root) as engine:
            engine.images.import_rootfs(tar, IMAGE, config={"Cmd": ["sh"]})
        with containerkitd(root, work) as ckd, throwaway_dockerd(tar) as dockerd:
            docker_sock = None if isinstance(dockerd, str) else dockerd[0]
            why_not = dockerd if isinstance(dockerd, str) else ""
            time.sleep(1)  # both idle before the memory figure
            memory: list[tuple[str, int | None]] = [
                ("containerkitd + its fork server", _daemon_pid(ckd)),
                (
                    "dockerd + containerd",
                    _pidfile(Path(docker_sock).parent / "dockerd.pid") if docker_sock else None,
                ),
            ]
            idle = [(what, _rss_kib(pid) / 1024 if pid else None) for what, pid in memory]
            rows = daemon_rows(ckd, docker_sock, args.runs, why_not)
        with ck.Engine(root=root):  # takes the default bridge down again
            pass
    print_rows(rows)
    print("\nidle resident memory at start (MiB):")
    for what, mib in idle:
        print(f"  {what:40s} {'n/a' if mib is None else f'{mib:8.1f}'}")


if __name__ == "__main__":
    main()
