"""One test-fixture cycle: start busybox ``httpd`` with a published port, wait until it answers,
one HTTP GET, remove it. containerkit in-process (what ``containerkit_run`` does) against
testcontainers-python, in the same run: on dockerd where one answers, and on containerkitd
(the same client code over the Docker API).

    python3 benchmarks/bench_fixture.py [--runs 15]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from _common import IMAGE, ensure_image, median, peer_available, report, timed

import containerkit as ck
from containerkit import wait

HTTPD = ["sh", "-c", "mkdir -p /www && echo ok > /www/index.html && exec httpd -f -p 80 -h /www"]


def _engine_cycle(engine: ck.Engine) -> None:
    container = engine.containers.run(IMAGE, HTTPD, ports={"80/tcp": None})
    try:
        wait.until(container, wait.http("/", port=80), timeout=30)
        host, port = wait.host_address(container, 80)
        with urllib.request.urlopen(f"http://{host}:{port}/", timeout=10) as response:
            assert response.read() == b"ok\n"
    finally:
        container.remove(force=True)


def _testcontainers_cycle(docker_host: str, image: str) -> None:
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.waiting_utils import wait_for_logs

    os.environ["DOCKER_HOST"] = docker_host
    os.environ["TESTCONTAINERS_RYUK_DISABLED"] = "true"
    container = DockerContainer(image).with_command(HTTPD).with_exposed_ports(80)
    with container:
        wait_for_logs(container, "", timeout=30)  # httpd -f logs nothing: poll the port instead
        port = int(container.get_exposed_port(80))
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as response:
                    assert response.read() == b"ok\n"
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.01)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    rows: list[tuple[str, float | None, str]] = []
    with tempfile.TemporaryDirectory(prefix="ck-bench-fixture-") as tmp:
        root = Path(tmp) / "root"
        with ck.Engine(root=root) as engine:
            ensure_image(engine, Path(tmp))
            engine.images.tag(IMAGE, "busybox:latest")
            rows.append(
                ("containerkit in-process", median(timed(lambda: _engine_cycle(engine), args.runs)), "")
            )
        socket_path = Path(tmp) / "ckd.sock"
        daemon = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "containerkit.daemon",
                "--root",
                str(root),
                "--host",
                f"unix://{socket_path}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 30
            while not socket_path.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            samples = timed(
                lambda: _testcontainers_cycle(f"unix://{socket_path}", "busybox:latest"), args.runs
            )
            rows.append(("testcontainers on containerkitd", median(samples), ""))
        finally:
            daemon.terminate()
            daemon.wait(30)
        if peer_available("docker", ["docker", "info"]):
            samples = timed(
                lambda: _testcontainers_cycle("unix:///var/run/docker.sock", "busybox:latest"), args.runs
            )
            rows.append(("testcontainers on dockerd", median(samples), ""))
        else:
            rows.append(("testcontainers on dockerd", 335.0, "no dockerd here: the issue's recorded figure"))
        with ck.Engine(root=root):  # takes the default bridge down again
            pass
    report("fixture cycle: httpd, wait, GET, remove (median)", rows, reference="testcontainers on dockerd")


if __name__ == "__main__":
    main()
