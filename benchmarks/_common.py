"""Shared helpers for the benchmarks: timing, medians, a busybox image and a plain OCI bundle."""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable
from pathlib import Path

import containerkit as ck
from containerkit.images.busybox import write_busybox_rootfs
from containerkit.runtime import trace
from containerkit.runtime.bundle import build_oci_config, write_config

IMAGE = "example/busybox:latest"


def timed(fn: Callable[[], object], runs: int, warmup: int = 2) -> list[float]:
    """Wall-clock milliseconds of ``runs`` calls after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def median(samples: list[float]) -> float:
    return statistics.median(samples)


def interleaved_samples(
    contenders: dict[str, Callable[[], object]], runs: int, warmup: int = 2
) -> dict[str, list[float]]:
    """Milliseconds of each contender, sampled in turn (the order rotating every round), so a
    machine that gets busier or quieter during the run moves every contender alike."""
    names = list(contenders)
    for _ in range(warmup):
        for name in names:
            contenders[name]()
    samples: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(runs):
        for name in names[round_ % len(names) :] + names[: round_ % len(names)]:
            started = time.perf_counter()
            contenders[name]()
            samples[name].append((time.perf_counter() - started) * 1000)
    return samples


def ensure_image(engine: ck.Engine, workdir: Path) -> ck.Image:
    try:
        return engine.images.get(IMAGE)
    except ck.NotFound:
        tar = write_busybox_rootfs(workdir / "rootfs.tar")
        return engine.images.import_rootfs(tar, IMAGE, config={"Cmd": ["sh"]})


def traced_lines(work: Path, runs: int, cycle: Callable[[ck.Engine], object]) -> list[str]:
    """The trace lines of ``runs`` calls of ``cycle`` on a fresh Engine (and fork server) that
    traces, after three untraced-for-the-result ones that warm the bridge, the fork server and
    a spare netns."""
    path = work / "trace.log"
    trace.enable(str(path))
    try:
        with ck.Engine(root=work / "root") as engine:
            ensure_image(engine, work)
            for _ in range(3):
                cycle(engine)
            path.write_text("")
            for _ in range(runs):
                cycle(engine)
    finally:
        trace.disable()
    return path.read_text().splitlines()


def plain_bundle(workdir: Path, command: list[str]) -> Path:
    """An OCI bundle with an extracted busybox rootfs, as ``runc run`` wants it."""
    bundle = workdir / "bundle"
    rootfs = bundle / "rootfs"
    rootfs.mkdir(parents=True, exist_ok=True)
    tar_path = write_busybox_rootfs(workdir / "plain-rootfs.tar")
    with tarfile.open(tar_path) as tar:
        # our own archive; extraction filters exist only from 3.11.4 (Debian 12 has 3.11.2)
        tar.extractall(rootfs, **({"filter": "fully_trusted"} if hasattr(tarfile, "data_filter") else {}))
    spec = ck.ContainerSpec(image=IMAGE, command=command, network="none")
    config = build_oci_config(
        spec,
        ck.ImageConfig(),
        user=(0, 0, []),
        hostname="bench",
        etc_files={},
        mounts=[],
        cgroups_path=None,
    )
    write_config(bundle, config)
    return bundle


def containerkit_command() -> str | None:
    """The installed ``containerkit`` console script of this interpreter, as pip wrote it.

    ``shutil.which`` may find a version manager's shim first (pyenv's is a bash script that
    costs 80-100 ms before Python starts), which is not what a user of this install runs.
    """
    script = Path(sys.executable).parent / "containerkit"
    if script.is_file() and os.access(script, os.X_OK):
        return str(script)
    return shutil.which("containerkit")


def peer_available(binary: str, probe: list[str]) -> bool:
    """True when ``binary`` exists and ``probe`` (e.g. ``docker info``) succeeds quickly."""
    if not shutil.which(binary):
        return False
    try:
        return subprocess.run(probe, capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def report(title: str, rows: list[tuple[str, float | None, str]], reference: str | None = None) -> None:
    """Print ``name  median  ratio-to-reference  note`` rows."""
    ref = dict((name, value) for name, value, _ in rows).get(reference) if reference else None
    print(f"\n## {title}")
    for name, value, note in rows:
        if value is None:
            print(f"{name:<44} {'n/a':>10}   {note}")
            continue
        ratio = f"{value / ref:6.2f}x {reference}" if ref else ""
        print(f"{name:<44} {value:10.1f} ms {ratio}  {note}")


def dump_json(path: Path | None, data: dict[str, object]) -> None:
    if path is not None:
        path.write_text(json.dumps(data, indent=2))
