"""Start-to-exit of ``true`` through ``Engine`` on the default bridge network against
``network="none"`` (create + start + wait + remove, so the veth, netns and addresses are made
and undone each time), and with one published port. Medians in milliseconds. Then where the
bridge's milliseconds go: a traced cycle's phases (``CONTAINERKIT_TRACE``, see
:mod:`containerkit.runtime.trace`), the network's own marks among the start's.

    python3 benchmarks/bench_bridge.py [--runs 30]

Docker and podman on their default bridge took 303 ms and 353 ms on this machine (DESIGN.md).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from _common import IMAGE, ensure_image, median, report, timed, traced_lines
from bench_start import traced_cycle

import containerkit as ck

# One bridge cycle's phases in the order they happen, each named by the mark that ends it; a
# mark missing from a cycle (no published port) is skipped.
PHASES: list[tuple[str, str]] = [
    ("bench.begin", ""),
    ("bench.created", "create: record, snapshot, bundle"),
    ("net.begin", "start: container lock, state checks"),
    ("net.addressed", "network: root lock, bridge up?, address (one transaction)"),
    ("net.published", "network: published port (one nft transaction)"),
    ("net.netns", "network: netns (the spare made ahead, pinned)"),
    ("net.plugged", "network: veth pair on the bridge, hairpin, peer up + address + route"),
    ("net.ready", "network: hosts file"),
    ("engine.shim_request", "start: marker, shim request"),
    ("bench.started", "start: spawn, shim, init, exec (bench_start.py breaks it down)"),
    ("shim.exit_recorded", "`true` runs and exits; exit.json (shim)"),
    ("net.teardown", "wait: shim gone, exit seen (engine)"),
    ("net.torn_down", "wait: network down: veth deletion and the next spare netns started, ..."),
    ("bench.exited", "wait returns"),
    ("net.settled", "remove: snapshot, state dir, record; the veth seen gone"),
    ("bench.removed", "remove returns"),
]


def _cycle(engine: ck.Engine, **fields: object) -> None:
    container = engine.containers.run(IMAGE, ["true"], **fields)
    code = container.wait(timeout=30)
    container.remove()
    if code != 0:
        raise RuntimeError(f"container exited {code}: {container.logs()!r}")


def breakdown(work: Path, runs: int, **fields: object) -> list[tuple[str, float, float]]:
    """``(what, phase ms, at ms)`` medians over ``runs`` traced cycles, with a fresh Engine (and
    fork server) that traces."""
    cycles: list[dict[str, int]] = []
    for line in traced_lines(work, runs, lambda engine: traced_cycle(engine, **fields)):
        stamp, _pid, phase = line.split()
        if phase == "bench.begin":
            cycles.append({})
        if cycles:
            cycles[-1].setdefault(phase, int(stamp))
    cycles = [c for c in cycles if "bench.removed" in c]
    rows = []
    previous = "bench.begin"
    for mark, what in PHASES[1:]:
        deltas = [(c[mark] - c[previous]) / 1e6 for c in cycles if mark in c and previous in c]
        if deltas:
            offsets = [(c[mark] - c["bench.begin"]) / 1e6 for c in cycles]
            rows.append((what, median(deltas), median(offsets)))
            previous = mark
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, ck.Engine(root=Path(tmp) / "root") as engine:
        ensure_image(engine, Path(tmp))
        rows: list[tuple[str, float | None, str]] = []
        for name, fields in (
            ("none", {"network": "none"}),
            ("bridge", {"network": "bridge"}),
            ("bridge + 1 published port", {"network": "bridge", "ports": {"80/tcp": None}}),
        ):
            samples = timed(lambda f=fields: _cycle(engine, **f), args.runs)  # type: ignore[misc]
            rows.append((f"containerkit run true ({name})", median(samples), f"n={args.runs}"))
        rows.append(("docker run --rm true (default bridge, DESIGN.md)", 303.0, "reference"))
        rows.append(("podman run --rm true (default bridge, DESIGN.md)", 353.0, "reference"))
        report(
            "start-to-exit of true, medians (ms)",
            rows,
            reference="docker run --rm true (default bridge, DESIGN.md)",
        )
    for name, fields in (("bridge", {}), ("bridge + 1 published port", {"ports": {"80/tcp": None}})):
        with tempfile.TemporaryDirectory() as tmp:
            phases = breakdown(Path(tmp), args.runs, **fields)
        print(f"\n## where the milliseconds go: `true` on the {name} (medians of {args.runs})")
        print(f"{'phase':<82} {'ms':>7} {'at ms':>8}")
        for what, delta, offset in phases:
            print(f"{what:<82} {delta:7.2f} {offset:8.2f}")


if __name__ == "__main__":
    main()
