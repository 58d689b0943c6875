"""One test-fixture cycle: start busybox ``httpd`` with a published port, wait until it answers,
one HTTP GET, remove it. containerkit in-process (what ``containerkit_run`` does) against
testcontainers-python, in the same run: on a dockerd started for the run in a throwaway network
namespace (``_peers.throwaway_dockerd``; the cycle runs inside that namespace, where its
published ports are), and on containerkitd (the same client code over the Docker API).
``--phases`` prints where one in-process cycle's milliseconds go instead (``CONTAINERKIT_TRACE``:
the engine, fork server, shim and init mark their phases; see :mod:`containerkit.runtime.trace`),
with the readiness wait's polls counted.

    python3 benchmarks/bench_fixture.py [--runs 15] [--phases]
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
from containerkit import api, wait
from containerkit.images.busybox import write_busybox_rootfs
from containerkit.runtime import trace

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


# What each mark of a traced cycle ends (who marks it: the benchmark, the engine, the fork
# server, the shim, the container's init); the rows are printed in the order the marks happen.
PHASES: dict[str, str] = {
    "bench.created": "create: record, snapshot, bundle, endpoint (engine)",
    "net.begin": "start: container lock, state checks",
    "net.addressed": "network: root lock, bridge up?, address (one transaction)",
    "net.published": "network: published port (one nft transaction)",
    "net.netns": "network: netns (the spare made ahead, pinned)",
    "net.plugged": "network: veth pair on the bridge, hairpin, peer up + address + route",
    "net.ready": "network: hosts file",
    "engine.shim_request": "start: marker, shim request",
    "shim.exec_seen": "start: spawn, shim, init (bench_start.py breaks it down), exec seen",
    "bench.started": "start returns (shim report, run record, events)",
    "bench.poll": "readiness: the first poll begins",
    "bench.ready": "readiness: polls (HTTP GET via the published port) until one answers 200",
    "bench.got": "the test: one HTTP GET through the published port",
    "engine.kill_sent": "remove: SIGKILL sent (state read, kill event)",
    "net.teardown": "remove: network teardown begins",
    "net.torn_down": "remove: veth retired, port rules, netns, endpoint, hosts; spare netns",
    "shim.exit_seen": "exit: httpd killed; the shim's IO pump sees it",
    "shim.cleaned_up": "exit: log close, OOM check, cgroup destroy (shim)",
    "shim.exit_recorded": "exit: exit.json (shim)",
    "engine.exit_seen": "exit: the ready pipe's EOF (or the shim gone) wakes the engine",
    "net.settled": "remove: die event, snapshot, state dir, record; the veth seen gone",
    "bench.removed": "remove returns",
}


class _CountedPolls(wait.Strategy):
    """``inner``, with a trace mark around each poll (how many, and when the first one began)."""

    def __init__(self, inner: wait.Strategy) -> None:
        self.inner = inner

    def describe(self) -> str:
        return self.inner.describe()

    def probe(self, container: api.ContainerHandle) -> wait.Probe:
        return _CountedProbe(self.inner.probe(container))


class _CountedProbe(wait.Probe):
    def __init__(self, inner: wait.Probe) -> None:
        self.inner = inner

    def ready(self, remaining: float) -> bool:
        trace.mark("bench.poll")
        return self.inner.ready(remaining)

    def close(self) -> None:
        self.inner.close()


def _traced_cycle(engine: ck.Engine) -> None:
    """:func:`_engine_cycle` in its steps, each marked for the trace."""
    trace.mark("bench.begin")
    container = engine.containers.create(image=IMAGE, command=HTTPD, ports={"80/tcp": None})
    trace.mark("bench.created")
    try:
        container.start()
        trace.mark("bench.started")
        wait.until(container, _CountedPolls(wait.http("/", port=80)), timeout=30)
        trace.mark("bench.ready")
        host, port = wait.host_address(container, 80)
        with urllib.request.urlopen(f"http://{host}:{port}/", timeout=10) as response:
            assert response.read() == b"ok\n"
        trace.mark("bench.got")
    finally:
        container.remove(force=True)
    trace.mark("bench.removed")


def phases(work: Path, runs: int) -> tuple[list[tuple[str, float, float]], list[int]]:
    """Rows of ``(what, phase ms, at ms)`` (medians over ``runs`` traced cycles, in the order
    the marks happen) and the number of readiness polls of each cycle, with a fresh Engine (and
    fork server) that traces."""
    path = work / "trace.log"
    trace.enable(str(path))
    try:
        with ck.Engine(root=work / "root") as engine:
            ensure_image(engine, work)
            for _ in range(3):
                _traced_cycle(engine)  # warm: the bridge, the fork server, a spare netns
            path.write_text("")
            for _ in range(runs):
                _traced_cycle(engine)
    finally:
        trace.disable()
    cycles: list[dict[str, int]] = []
    polls: list[int] = []
    for line in path.read_text().splitlines():
        stamp, _pid, mark = line.split()
        if mark == "bench.begin":
            cycles.append({})
            polls.append(0)
        if cycles:
            cycles[-1].setdefault(mark, int(stamp))
            polls[-1] += mark == "bench.poll"
    whole = [i for i, c in enumerate(cycles) if "bench.removed" in c]
    cycles, polls = [cycles[i] for i in whole], [polls[i] for i in whole]
    at = {
        mark: median([(c[mark] - c["bench.begin"]) / 1e6 for c in cycles if mark in c])
        for mark in PHASES
        if any(mark in c for c in cycles)
    }
    rows = []
    previous = "bench.begin"
    for mark in sorted(at, key=at.__getitem__):
        deltas = [(c[mark] - c[previous]) / 1e6 for c in cycles if mark in c and previous in c]
        rows.append((f"{PHASES[mark]} [{mark}]", median(deltas), at[mark]))
        previous = mark
    return rows, polls


def print_phases(runs: int) -> None:
    with tempfile.TemporaryDirectory(prefix="ck-bench-fixture-") as tmp:
        rows, polls = phases(Path(tmp), runs)
        with ck.Engine(root=Path(tmp) / "root"):  # takes the default bridge down again
            pass
    print(f"\n## where the milliseconds of one fixture cycle go (medians of {runs})")
    print(f"{'phase (ends at the mark)':<96} {'ms':>7} {'at ms':>8}")
    for what, delta, offset in rows:
        print(f"{what:<96} {delta:7.2f} {offset:8.2f}")
    counts = ", ".join(f"{n} poll{'s' * (n != 1)}: {polls.count(n)}" for n in sorted(set(polls)))
    delays = f"{wait._FIRST_DELAY * 1000:g} ms growing {wait._GROWTH:g}x to {wait._MAX_DELAY * 1000:g} ms"
    print(f"readiness polls per cycle: {counts} (the first as the start returns, then sleeps of {delays})")


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
    parser.add_argument("--phases", action="store_true", help="print one cycle's phases instead")
    args = parser.parse_args()
    if args.phases:
        print_phases(args.runs)
        return
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
