"""One test-fixture cycle: start busybox ``httpd`` with a published port, wait until it answers,
one HTTP GET, remove it. containerkit in-process (what ``containerkit_run`` does) against
testcontainers-python, in the same run: on a dockerd started for the run in a throwaway network
namespace (``_peers.throwaway_dockerd``; the cycle runs inside that namespace, where its
published ports are; the two take turns of a few cycles, so the ratio holds on a machine
whose load comes and goes), and on containerkitd (the same client code over the Docker API).
``--phases`` prints where one in-process cycle's milliseconds go instead (``CONTAINERKIT_TRACE``:
the engine, fork server, shim and init mark their phases; see :mod:`containerkit.runtime.trace`),
with the readiness wait's polls counted.

    python3 benchmarks/bench_fixture.py [--runs 15] [--phases]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from _common import IMAGE, ensure_image, median, report, timed, traced_lines
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
    "engine.kill_sent": "remove: state and freezer read, SIGKILL, kill event",
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
    """Rows of ``(what, phase ms, at ms)`` (over ``runs`` traced cycles, in the order the marks
    happen) and the number of readiness polls of each cycle, with a fresh Engine (and fork
    server) that traces."""
    cycles: list[dict[str, int]] = []
    polls: list[int] = []
    for line in traced_lines(work, runs, _traced_cycle):
        stamp, _pid, mark = line.split()
        if mark == "bench.begin":
            cycles.append({})
            polls.append(0)
        if cycles:
            cycles[-1].setdefault(mark, int(stamp))
            polls[-1] += mark == "bench.poll"
    whole = [i for i, c in enumerate(cycles) if "bench.removed" in c]
    cycles, polls = [cycles[i] for i in whole], [polls[i] for i in whole]
    # Some marks come in either order (the network teardown runs while the shim handles the
    # exit) or only in some cycles (the engine waits for the exit only when the shim is not
    # done yet): rows follow the medians of when each mark came, a phase is the gap to the row
    # before, and a mark seen in only some cycles says in how many.
    at: dict[str, float] = {}
    seen: dict[str, int] = {}
    for mark in PHASES:
        offsets = [(c[mark] - c["bench.begin"]) / 1e6 for c in cycles if mark in c]
        if offsets:
            at[mark], seen[mark] = median(offsets), len(offsets)
    rows = []
    previous = 0.0
    for mark in sorted(at, key=at.__getitem__):
        some = f", in {seen[mark]} of {len(cycles)} cycles" if seen[mark] < len(cycles) else ""
        rows.append((f"{PHASES[mark]} [{mark}{some}]", at[mark] - previous, at[mark]))
        previous = at[mark]
    return rows, polls


def print_phases(runs: int) -> None:
    with tempfile.TemporaryDirectory(prefix="ck-bench-fixture-") as tmp:
        rows, polls = phases(Path(tmp), runs)
        with ck.Engine(root=Path(tmp) / "root"):  # takes the default bridge down again
            pass
    print(f"\n## where the milliseconds of one fixture cycle go (median times of each mark, {runs} cycles)")
    print(f"{'phase (ends at the mark)':<110} {'ms':>7} {'at ms':>8}")
    for what, delta, offset in rows:
        print(f"{what:<110} {delta:7.2f} {offset:8.2f}")
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


_SERVE = """
import sys, time
sys.path.insert(0, sys.argv[1])
from bench_fixture import _testcontainers_cycle
for _line in sys.stdin:
    started = time.perf_counter()
    _testcontainers_cycle(sys.argv[2], "busybox:latest")
    print((time.perf_counter() - started) * 1000, flush=True)
"""


class _TheirCycles:
    """testcontainers' cycle on the throwaway dockerd at ``sock``, in a process inside its network
    namespace ``ns`` (where its published ports are): one cycle per call, timed in that process."""

    def __init__(self, ns: str, sock: str) -> None:
        self.process = subprocess.Popen(
            [
                *("nsenter", f"--net=/run/netns/{ns}", sys.executable, "-c", _SERVE),
                *(str(Path(__file__).parent), f"unix://{sock}"),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def cycle(self) -> float:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write("\n")
        self.process.stdin.flush()
        answer = self.process.stdout.readline()
        if not answer:
            raise RuntimeError(self.close() or "the testcontainers process ended")
        return float(answer)

    def close(self) -> str:
        """Ends the process; the last line of its errors, if any."""
        assert self.process.stdin is not None and self.process.stderr is not None
        with contextlib.suppress(BrokenPipeError):
            self.process.stdin.close()
        errors = self.process.stderr.read()
        self.process.wait()
        return (errors.strip().splitlines() or [""])[-1][:80]


_BLOCK = 5
"""Cycles of one side in a row: each side's turn begins after a pause, so what the other left
running in the background (dockerd's and containerd's cleanup after a removal returns, our veth
deletion) is done and slows neither side's first cycle."""
_PAUSE = 0.5


def interleaved_with_dockerd(
    engine: ck.Engine, ns: str, sock: str, runs: int
) -> tuple[list[float], list[float] | str]:
    """containerkit's cycles and testcontainers' on dockerd in turns of :data:`_BLOCK` (the
    order alternating each round), so load that comes and goes on a shared machine moves both
    alike and the ratio holds; ms of each (a string for dockerd's says why it failed)."""
    theirs = _TheirCycles(ns, sock)
    ours: list[float] = []
    their_ms: list[float] = []

    def our_cycle() -> float:
        started = time.perf_counter()
        _engine_cycle(engine)
        return (time.perf_counter() - started) * 1000

    try:
        for _ in range(2):  # warm: images, the fork server, a spare netns, docker's first run
            our_cycle()
            theirs.cycle()
        round_ = 0
        while len(ours) < runs:
            turns = [(our_cycle, ours), (theirs.cycle, their_ms)]
            for cycle, samples in turns if round_ % 2 == 0 else turns[::-1]:
                time.sleep(_PAUSE)
                samples.extend(cycle() for _ in range(min(_BLOCK, runs - len(samples))))
            round_ += 1
    except RuntimeError as exc:
        return ours or timed(lambda: _engine_cycle(engine), runs), f"testcontainers on dockerd failed: {exc}"
    finally:
        theirs.close()
    return ours, their_ms


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
            ours: list[float]
            theirs: list[float] | str
            if isinstance(dockerd, str):
                ours, theirs = timed(lambda: _engine_cycle(engine), args.runs), dockerd
            else:
                ours, theirs = interleaved_with_dockerd(engine, dockerd[2], dockerd[0], args.runs)
            rows.append(("containerkit in-process", median(ours), "interleaved with dockerd's"))
            with containerkitd(root, work) as ckd:
                samples = timed(lambda: _testcontainers_cycle(f"unix://{ckd}", "busybox:latest"), args.runs)
            rows.append(("testcontainers on containerkitd", median(samples), ""))
            if isinstance(theirs, str):
                rows.append(("testcontainers on dockerd", None, theirs))
            else:
                rows.append(("testcontainers on dockerd", median(theirs), "a throwaway dockerd, interleaved"))
        with ck.Engine(root=root):  # takes the default bridge down again
            pass
    report("fixture cycle: httpd, wait, GET, remove (median)", rows, reference="testcontainers on dockerd")
    in_process, on_dockerd = rows[0][1], rows[-1][1]
    if in_process and on_dockerd:
        ratio = on_dockerd / in_process
        print(f"testcontainers on dockerd / containerkit in-process: {ratio:.1f}x (target: at least 10x)")


if __name__ == "__main__":
    main()
