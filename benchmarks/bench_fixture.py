"""One test-fixture cycle: start busybox ``httpd`` with a published port, wait until it answers,
one HTTP GET, remove it. containerkit in-process (what ``containerkit_run`` does) against
testcontainers-python, in the same run: on a dockerd started for the run in a throwaway network
namespace (``_peers.throwaway_dockerd``; the cycle runs inside that namespace, where its
published ports are), and on containerkitd (the same client code over the Docker API).

    python3 benchmarks/bench_fixture.py [--runs 15]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from _common import IMAGE, ensure_image, median, report, timed
from _peers import containerkitd, throwaway_dockerd

import containerkit as ck
from containerkit import wait
from containerkit.images.busybox import write_busybox_rootfs

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


_LOOP = """
import json, sys, time
sys.path.insert(0, sys.argv[1])
from bench_fixture import _testcontainers_cycle
host, runs = sys.argv[2], int(sys.argv[3])
_testcontainers_cycle(host, "busybox:latest")
out = []
for _ in range(runs):
    t = time.perf_counter(); _testcontainers_cycle(host, "busybox:latest")
    out.append((time.perf_counter() - t) * 1000)
print(json.dumps(out))
"""


def testcontainers_on_dockerd(ns: str, sock: str, runs: int) -> float | str:
    """Median ms of testcontainers' cycle on the throwaway dockerd at ``sock``, run inside its
    network namespace ``ns`` (where its published ports are); a string says why there is none."""
    done = subprocess.run(
        [
            *("nsenter", f"--net=/run/netns/{ns}", sys.executable, "-c", _LOOP),
            *(str(Path(__file__).parent), f"unix://{sock}", str(runs)),
        ],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        return "testcontainers on dockerd failed: " + (done.stderr.strip().splitlines() or ["?"])[-1][:80]
    return median(json.loads(done.stdout))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    rows: list[tuple[str, float | None, str]] = []
    with tempfile.TemporaryDirectory(prefix="ck-bench-fixture-") as tmp:
        work = Path(tmp)
        root = work / "root"
        tar = write_busybox_rootfs(work / "busybox.tar")
        with ck.Engine(root=root) as engine, throwaway_dockerd(tar) as dockerd:
            ensure_image(engine, work)
            engine.images.tag(IMAGE, "busybox:latest")
            rows.append(
                ("containerkit in-process", median(timed(lambda: _engine_cycle(engine), args.runs)), "")
            )
            with containerkitd(root, work) as ckd:
                samples = timed(lambda: _testcontainers_cycle(f"unix://{ckd}", "busybox:latest"), args.runs)
            rows.append(("testcontainers on containerkitd", median(samples), ""))
            if isinstance(dockerd, str):
                rows.append(("testcontainers on dockerd", None, dockerd))
            else:
                theirs = testcontainers_on_dockerd(dockerd[2], dockerd[0], args.runs)
                if isinstance(theirs, str):
                    rows.append(("testcontainers on dockerd", None, theirs))
                else:
                    rows.append(("testcontainers on dockerd", theirs, "a dockerd in a throwaway namespace"))
        with ck.Engine(root=root):  # takes the default bridge down again
            pass
    report("fixture cycle: httpd, wait, GET, remove (median)", rows, reference="testcontainers on dockerd")
    ours, theirs = rows[0][1], rows[-1][1]
    if ours and theirs:
        ratio = theirs / ours
        print(f"testcontainers on dockerd / containerkit in-process: {ratio:.1f}x (target: at least 10x)")


if __name__ == "__main__":
    main()
