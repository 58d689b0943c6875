"""Start-to-exit of ``true`` (create + start + wait + remove, network none), side by side.

containerkit through ``Engine`` (built-in runtime and runc; with the fork server, and without
one, where this single-threaded process forks each shim itself), ``runc run`` / ``crun run`` on
a bundle of the same image, and ``docker``/``podman run --rm`` where a daemon answers. Then
20 containers 4 at a time, and the resident memory an idle Engine adds. Medians in
milliseconds, ratios to runc.

    python3 benchmarks/bench_start.py [--runs 30] [--json out.json]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from _common import IMAGE, dump_json, ensure_image, median, peer_available, plain_bundle, report, timed

import containerkit as ck


def _engine_cycle(engine: ck.Engine, runtime: str = "builtin") -> None:
    container = engine.containers.run(IMAGE, ["true"], network="none", runtime=runtime)
    code = container.wait(timeout=30)
    container.remove()
    if code != 0:
        raise RuntimeError(f"container exited {code}: {container.logs()!r}")


def _runc_cycle(binary: str, bundle: Path, state_root: Path) -> None:
    name = f"bench-{uuid.uuid4().hex[:12]}"
    result = subprocess.run(
        [binary, "--root", str(state_root), "run", "--bundle", str(bundle), name],
        capture_output=True,
        timeout=30,
    )
    if result.returncode != 0:
        raise RuntimeError(f"{binary} run failed: {result.stderr.decode().strip()}")


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _batch(fn: object, total: int, parallel: int) -> float:
    started = time.perf_counter()
    with ThreadPoolExecutor(parallel) as pool:
        list(pool.map(lambda _: fn(), range(total)))  # type: ignore[operator]
    return (time.perf_counter() - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="ck-bench-") as tmp:
        work = Path(tmp)
        rss_before = _rss_kib(os.getpid())
        with ck.Engine(root=work / "root") as engine:
            ensure_image(engine, work)
            rows: list[tuple[str, float | None, str]] = []
            warm = engine.spawner
            assert warm is not None
            warm.start()
            idle_engine = _rss_kib(os.getpid()) - rss_before
            idle_spawner = _rss_kib(warm.pid) if warm.pid else 0
            rows.append(
                (
                    "containerkit Engine (fork server)",
                    median(timed(lambda: _engine_cycle(engine), args.runs)),
                    "",
                )
            )
            bundle = plain_bundle(work, ["true"])
            runc_root = work / "runc-state"
            for binary in ("runc", "crun"):
                if not peer_available(binary, [binary, "--version"]):
                    rows.append((f"{binary} run", None, "not installed"))
                    continue
                try:
                    samples = timed(lambda b=binary: _runc_cycle(b, bundle, runc_root), args.runs)
                    rows.append((f"{binary} run", median(samples), ""))
                except RuntimeError as exc:
                    rows.append((f"{binary} run", None, str(exc).splitlines()[-1][:80]))
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
                    rows.append(
                        (
                            f"{peer} run --rm --network none",
                            median(
                                timed(
                                    lambda c=cmd: subprocess.run(c, check=True, capture_output=True),
                                    min(args.runs, 10),
                                )
                            ),
                            "",
                        )
                    )
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
            f"fork server {idle_spawner / 1024:.1f} MiB resident"
        )
        results["idle_engine_kib"] = idle_engine
        results["idle_spawner_kib"] = idle_spawner
    dump_json(args.json, results)


if __name__ == "__main__":
    main()
