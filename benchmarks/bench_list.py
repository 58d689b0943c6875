"""Listing cost with many running containers: ``engine.containers.list()`` in-process and
``GET /containers/json`` through containerkitd (docker-py's ``containers.list()`` request).

    python benchmarks/bench_list.py [--counts 0,10,100] [--runs 50]

A list must not read per-container files or ask the kernel per container: the figures should
grow far less than linearly with the number of running containers.
"""

from __future__ import annotations

import argparse
import http.client
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import containerkit as ck
from benchmarks._common import median, timed
from containerkit.images.busybox import write_busybox_rootfs

IMAGE = "busybox:latest"


class _Conn(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=60)
        self._path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(self._path)


def _answers(path: str) -> bool:
    try:
        conn = _Conn(path)
        conn.request("GET", "/_ping")
        return conn.getresponse().status == 200
    except OSError:
        return False


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--counts", default="0,10,100")
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()
    counts = [int(c) for c in args.counts.split(",")]
    rows: list[tuple[int, float, float]] = []
    with tempfile.TemporaryDirectory(prefix="bench-list-") as tmp:
        root, sock = Path(tmp) / "root", str(Path(tmp) / "d.sock")
        tar = write_busybox_rootfs(Path(tmp) / "rootfs.tar")
        with ck.Engine(root=root) as engine:
            engine.images.import_rootfs(tar, IMAGE, config={"Cmd": ["sh"]})
            daemon = subprocess.Popen(
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
            made: list[ck.Container] = []
            try:
                while not _answers(sock):
                    time.sleep(0.05)
                conn = _Conn(sock)

                def get() -> None:
                    conn.request("GET", "/containers/json")
                    response = conn.getresponse()
                    response.read()
                    assert response.status == 200

                for count in counts:
                    while len(made) < count:
                        made.append(engine.containers.run(IMAGE, ["sleep", "3600"], network="none"))
                    assert len(engine.containers.list()) == count
                    in_process = median(timed(engine.containers.list, args.runs))
                    through_daemon = median(timed(get, args.runs))
                    rows.append((count, in_process, through_daemon))
            finally:
                daemon.terminate()
                daemon.wait(30)
                failed = []
                for container in made:  # each one, even when another cannot be removed
                    try:
                        container.remove(force=True)
                    except Exception as exc:  # reported; the rest are still removed
                        failed.append(f"{container.id[:12]}: {exc}")
                if failed:
                    raise SystemExit("could not remove: " + "; ".join(failed))
    print(f"{'running containers':>20} {'engine list (ms)':>18} {'GET /containers/json (ms)':>27}")
    for count, in_process, through_daemon in rows:
        print(f"{count:>20} {in_process:>18.2f} {through_daemon:>27.2f}")


if __name__ == "__main__":
    main()
