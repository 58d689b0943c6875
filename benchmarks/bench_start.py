"""Start-to-exit of ``true`` (create + start + wait + remove, network none), side by side.

containerkit through ``Engine`` (built-in runtime and runc; with the fork server, and without
one, where this single-threaded process forks each shim itself), ``runc run`` / ``crun run`` on
a bundle of the same image, and ``docker``/``podman run --rm`` where a daemon answers. Then
20 containers 4 at a time, the resident memory an idle Engine adds, and where the milliseconds
of one start-to-exit go (``CONTAINERKIT_TRACE``: every process on the path appends timestamped
phases; see :mod:`containerkit.runtime.trace`). Medians in milliseconds, ratios to runc.

    python3 benchmarks/bench_start.py [--runs 30] [--json out.json] [--breakdown-only]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from _common import IMAGE, dump_json, ensure_image, median, peer_available, plain_bundle, report, timed
from _peers import crun_times

import containerkit as ck
from containerkit.runtime import trace

# The phases of one start-to-exit, in the order they happen, each named by the mark that ends
# it (who marks it: the benchmark, the engine, the fork server, the shim, the container's init).
PHASES: list[tuple[str, str]] = [
    ("bench.begin", ""),
    ("bench.created", "create: record, snapshot, bundle (engine)"),
    ("engine.shim_request", "start: lock, network none, marker, request (engine)"),
    ("spawner.request", "spawn: request reaches the fork server"),
    ("shim.begin", "spawn: the spare shim takes it (fork server -> shim)"),
    ("shim.init_forked", "spawn: config, FIFOs, init handed over (shim)"),
    ("init.begin", "init wakes with its work (prepared init)"),
    ("init.caps_seccomp_program", "init: capability masks, seccomp program decoded"),
    ("init.namespaces", "namespaces: unshare mnt/uts/ipc (+net prepared)"),
    ("init.root_mount", "mounts: propagation + overlay root"),
    ("init.cgroup_wait", "mounts: /proc, /dev, /dev/pts, /sys, ... (before cgroup)"),
    ("init.in_cgroup", "cgroup: init waits for the shim's cgroup setup + move"),
    ("init.mounts", "mounts: cgroup fs, device nodes, /dev links"),
    ("init.pivot_root", "mounts: pivot_root, masked + read-only paths"),
    ("init.keyring", "keyring: limits, session, fresh session keyring"),
    ("init.user_seccomp", "seccomp: filter load, capabilities, user"),
    ("init.execve", "exec: command lookup, signals"),
    ("shim.exec_seen", "exec: execve done, error pipe EOF seen by the shim"),
    ("shim.reported", "report: state.json, ready pipe (shim)"),
    ("bench.started", "start returns (engine: run record, events)"),
    ("shim.exit_seen", "`true` runs and exits; the shim's IO pump sees it"),
    ("shim.cleaned_up", "teardown: log close, OOM check, cgroup destroy (shim)"),
    ("shim.exit_recorded", "exit notification: exit.json (shim)"),
    ("engine.exit_seen", "exit notification: exit pipe EOF (or shim gone) wakes wait() (engine)"),
    ("bench.exited", "wait() returns: exit record read, die event, network (engine)"),
    ("bench.removed", "teardown: remove (network, snapshot, state dir, record)"),
]

_CGROUP_SIDE = [
    ("shim.cgroup_begin", "shim, beside the init: from the hand-over to the cgroup's setup"),
    ("shim.cgroup_claimed", "shim, beside the init: spare cgroup renamed (waits for cgroup_mutex)"),
    ("shim.cgroup_limits", "shim, beside the init: v2 mkdir, limits, device rules"),
    ("shim.cgroup_ready", "shim, beside the init: move into the v2 tree, init told"),
    ("shim.cgroup_state_log", "shim, beside the init: first state.json, log"),
]


def _engine_cycle(engine: ck.Engine, runtime: str = "builtin") -> None:
    container = engine.containers.run(IMAGE, ["true"], network="none", runtime=runtime)
    code = container.wait(timeout=30)
    container.remove()
    if code != 0:
        raise RuntimeError(f"container exited {code}: {container.logs()!r}")


def traced_cycle(engine: ck.Engine, **fields: object) -> None:
    """One create, start, wait, remove of ``true`` with ``fields``, marked for the trace's breakdown."""
    trace.mark("bench.begin")
    container = engine.containers.create(image=IMAGE, command=["true"], **fields)
    trace.mark("bench.created")
    container.start()
    trace.mark("bench.started")
    code = container.wait(timeout=30)
    trace.mark("bench.exited")
    container.remove()
    trace.mark("bench.removed")
    if code != 0:
        raise RuntimeError(f"container exited {code}: {container.logs()!r}")


def _read_trace(path: Path) -> list[dict[str, int]]:
    """One dict per cycle: phase -> monotonic ns (cycles split at ``bench.begin``)."""
    cycles: list[dict[str, int]] = []
    for line in path.read_text().splitlines():
        stamp, _pid, phase = line.split()
        if phase == "bench.begin":
            cycles.append({})
        if cycles:
            cycles[-1].setdefault(phase, int(stamp))
    return [c for c in cycles if "bench.removed" in c]


def breakdown(engine_root: Path, work: Path, runs: int) -> list[tuple[str, str, float, float]]:
    """Median of each phase (ms) and of the time since the cycle began, with a fresh Engine
    (and fork server) that traces; rows of ``(mark, what, phase ms, at ms)``."""
    path = work / "trace.log"
    trace.enable(str(path))
    try:
        with ck.Engine(root=engine_root) as engine:
            for _ in range(3):
                traced_cycle(engine, network="none")  # warm
            path.write_text("")
            for _ in range(runs):
                traced_cycle(engine, network="none")
    finally:
        trace.disable()
    cycles = _read_trace(path)
    rows = []
    for chain, first in ((PHASES, "bench.begin"), (_CGROUP_SIDE, "shim.init_forked")):
        previous = first
        for mark, what in chain:
            if mark == previous:
                continue
            deltas = [(c[mark] - c[previous]) / 1e6 for c in cycles if mark in c and previous in c]
            offsets = [(c[mark] - c["bench.begin"]) / 1e6 for c in cycles if mark in c]
            if deltas:
                rows.append((mark, what, median(deltas), median(offsets)))
                previous = mark
    return rows


def print_breakdown(rows: list[tuple[str, str, float, float]], runs: int) -> None:
    print(f"\n## where the milliseconds go: one start-to-exit of `true`, network none (medians of {runs})")
    print(f"{'phase':<70} {'ms':>7} {'at ms':>8}")
    for _mark, what, delta, offset in rows:
        print(f"{what:<70} {delta:7.2f} {offset:8.2f}")


def _runc_cycle(binary: str, bundle: Path, state_root: Path) -> None:
    name = f"bench-{uuid.uuid4().hex[:12]}"
    result = subprocess.run(
        [binary, "--root", str(state_root), "run", "--bundle", str(bundle), name],
        capture_output=True,
        timeout=30,
    )
    if result.returncode != 0:
        raise RuntimeError(f"{binary} run failed: {result.stderr.decode().strip()}")


def _wall(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return (time.perf_counter() - started) * 1000


def _crun_once(bundle: Path, state_root: Path) -> float:
    """One ``crun run``, timed inside the namespace :func:`_peers.crun_times` runs it in."""
    times = crun_times(bundle, state_root, 1)
    if isinstance(times, str):
        raise RuntimeError(times)
    return times[0]


def _interleaved_rows(
    engine: ck.Engine, bundle: Path, runc_root: Path, crun_root: Path, runs: int
) -> list[tuple[str, float | None, str]]:
    """containerkit, ``runc run`` and ``crun run`` in turn, the order rotating every round: load
    that comes and goes on a shared machine then moves every row alike, and the ratios hold."""
    contenders: dict[str, Callable[[], float]] = {
        "containerkit Engine (fork server)": lambda: _wall(lambda: _engine_cycle(engine)),
        "runc run": lambda: _wall(lambda: _runc_cycle("runc", bundle, runc_root)),
        "crun run": lambda: _crun_once(bundle, crun_root),
    }
    notes: dict[str, str] = {}
    if not peer_available("runc", ["runc", "--version"]):
        notes["runc run"] = "not installed"
    for name in list(contenders):
        try:
            if name not in notes:
                contenders[name]()  # warm, and whether it runs here at all
        except RuntimeError as exc:
            notes[name] = str(exc).splitlines()[-1][:80]
    names = [name for name in contenders if name not in notes]
    samples: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(runs):
        for name in names[round_ % len(names) :] + names[: round_ % len(names)]:
            samples[name].append(contenders[name]())
    return [
        (name, median(samples[name]), "interleaved") if name in samples else (name, None, notes[name])
        for name in contenders
    ]


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _private_kib(pid: int) -> int:
    """What of ``pid``'s resident memory is its own: a fork server forked from this process
    shares its pages with it (counted again in its VmRSS)."""
    total = 0
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith(("Private_Clean:", "Private_Dirty:")):
                total += int(line.split()[1])
    return total


def _batch(fn: object, total: int, parallel: int) -> float:
    started = time.perf_counter()
    with ThreadPoolExecutor(parallel) as pool:
        list(pool.map(lambda _: fn(), range(total)))  # type: ignore[operator]
    return (time.perf_counter() - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--breakdown-only", action="store_true", help="only the per-phase breakdown")
    args = parser.parse_args()
    results: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="ck-bench-") as tmp:
        work = Path(tmp)
        if args.breakdown_only:
            with ck.Engine(root=work / "root") as engine:
                ensure_image(engine, work)
            rows = breakdown(work / "root", work, args.runs)
            print_breakdown(rows, args.runs)
            dump_json(args.json, {"breakdown_ms": {m: d for m, _w, d, _o in rows}})
            return
        rss_before = _rss_kib(os.getpid())
        with ck.Engine(root=work / "root") as engine:
            ensure_image(engine, work)
            rows: list[tuple[str, float | None, str]] = []
            warm = engine.spawner
            assert warm is not None
            warm.start()
            idle_engine = _rss_kib(os.getpid()) - rss_before
            idle_spawner = _rss_kib(warm.pid) if warm.pid else 0
            own_spawner = _private_kib(warm.pid) if warm.pid else 0
            bundle = plain_bundle(work, ["true"])
            runc_root = work / "runc-state"
            rows += _interleaved_rows(engine, bundle, runc_root, work / "crun-state", args.runs)
            try:
                rows.append(
                    (
                        "containerkit Engine, runtime=runc",
                        median(timed(lambda: _engine_cycle(engine, "runc"), args.runs)),
                        "",
                    )
                )
            except ck.ContainerkitError as exc:
                rows.append(("containerkit Engine, runtime=runc", None, str(exc)[:80]))
            for peer in ("docker", "podman"):
                if peer_available(peer, [peer, "info"]):
                    cmd = [peer, "run", "--rm", "--network", "none", "busybox", "true"]
                    try:
                        samples = timed(
                            lambda c=cmd: subprocess.run(c, check=True, capture_output=True),
                            min(args.runs, 10),
                        )
                    except subprocess.CalledProcessError as exc:  # e.g. no busybox image there
                        why = (exc.stderr or b"").decode(errors="replace").strip().splitlines()[-1:]
                        rows.append((f"{peer} run --rm --network none", None, (why or ["failed"])[0][:80]))
                        continue
                    rows.append((f"{peer} run --rm --network none", median(samples), ""))
                else:
                    rows.append((f"{peer} run --rm --network none", None, "no daemon answers here"))
            report("start-to-exit of `true` (median)", rows, reference="runc run")
            results["start_to_exit_ms"] = {name: value for name, value, _ in rows}

            batch_rows: list[tuple[str, float | None, str]] = [
                ("containerkit Engine 20 at 4", _batch(lambda: _engine_cycle(engine), 20, 4), "total"),
            ]
            if peer_available("runc", ["runc", "--version"]):
                batch_rows.append(
                    (
                        "runc run 20 at 4",
                        _batch(lambda: _runc_cycle("runc", bundle, runc_root), 20, 4),
                        "total",
                    )
                )
            report("20 containers, 4 at a time (total)", batch_rows, reference="runc run 20 at 4")
            results["twenty_at_four_ms"] = {name: value for name, value, _ in batch_rows}

        with ck.Engine(root=work / "root", forkserver=False) as fresh:
            samples = timed(lambda: _engine_cycle(fresh), max(5, args.runs // 3))
            report(
                "without the fork server (this single-threaded process forks each shim)",
                [("containerkit Engine (forkserver=False)", median(samples), "")],
            )
            results["no_forkserver_ms"] = median(samples)
        print(
            f"\nidle Engine: +{idle_engine / 1024:.1f} MiB in this process, "
            f"fork server {idle_spawner / 1024:.1f} MiB resident, {own_spawner / 1024:.1f} MiB of it its own"
        )
        results["idle_engine_kib"] = idle_engine
        results["idle_spawner_kib"] = idle_spawner
        results["idle_spawner_private_kib"] = own_spawner
        rows = breakdown(work / "root", work, args.runs)
        print_breakdown(rows, args.runs)
        results["breakdown_ms"] = {mark: delta for mark, _what, delta, _at in rows}
    dump_json(args.json, results)


if __name__ == "__main__":
    main()
