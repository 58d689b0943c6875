"""Pull and push against a local registry: containerkit beside skopeo (+ umoci) and dockerd, same run.

Images: busybox (one small layer) and a generated 4-layer image (~400 MB uncompressed, gzip
layers, as bench_unpack makes them). Both are put into Debian's ``docker-registry`` (distribution
2.8) on 127.0.0.1 with skopeo first (not timed). Then, median of ``--repeat`` rounds after a
warm-up round, each run from an empty store, the contenders of a row taking turns within each
round (the order rotating), so that load from other work falls on all of them alike:

* pull, unpacked and ready to run: ``Engine(root)`` opened on a fresh root (timed: a new store is
  made) and its ``images.pull``, against
  ``skopeo copy docker://... oci:<dir>`` + ``umoci unpack`` and against dockerd's ``docker pull``
  (a private dockerd in a throwaway network namespace with its own registry process on the same
  storage, so nothing of the host's network changes; skipped when dockerd is missing or fails);
* push of the 4-layer image to a new repository: ``Engine.images.push`` of the image loaded from
  an OCI layout into a fresh store before each run (not timed; the store keeps no layer blob, so
  each layer's tar is written again from its directory and gzipped with ISA-L in a child process,
  and streamed to the registry as it is made; a store that pushed before would mount instead of
  uploading), and the same from a store opened with ``keep_layer_blobs=True`` (the layout's
  gzip blobs kept beside the unpacked layers, as containerd keeps them: sent as they are),
  against ``skopeo copy oci:<dir> docker://...`` (which sends the layout's blobs as they are)
  with an empty blob-info cache.

``--push-ab`` adds a fourth push contender, the layers rebuilt on threads of the pushing process
(as before the child processes), for an interleaved A/B.

Usage (as root, from the repository root): ``python3 benchmarks/bench_pull.py [--size-mb 400] [--repeat 3]``
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import gzip
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import containerkit as ck
from benchmarks.bench_unpack import _layer, _oci_layout
from containerkit.engine import _layerblobs
from containerkit.images.busybox import write_busybox_rootfs
from tests.images.registry.servers import free_port, start_registry


def _median(fn: Callable[[int], None], repeat: int, before: Callable[[], None] | None = None) -> float:
    """Median seconds of ``repeat`` runs after one untimed warm-up (imports, page cache)."""
    times = []
    for n in range(-1, repeat):
        if before is not None:
            before()
        subprocess.run(["sync"], check=True)
        start = time.perf_counter()
        fn(n)
        if n >= 0:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


Contender = tuple[Callable[[], None] | None, Callable[[int], None]]
"""(untimed preparation before each run, the timed run given its round number)."""


def _interleaved(contenders: dict[str, Contender], repeat: int) -> dict[str, float]:
    """Median seconds of each contender over ``repeat`` rounds after one untimed warm-up round;
    every round runs each once, the order rotating, so load from other work on the machine (and
    the file system's state after the previous run's deletions) falls on all of them alike."""
    names = list(contenders)
    times: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(-1, repeat):
        shift = max(round_, 0) % len(names)
        for name in names[shift:] + names[:shift]:
            before, run = contenders[name]
            if before is not None:
                before()
            subprocess.run(["sync"], check=True)
            start = time.perf_counter()
            run(round_)
            if round_ >= 0:
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def _busybox_layout(work: Path) -> Path:
    raw = write_busybox_rootfs(work / "busybox.tar")
    import hashlib

    diff_id = "sha256:" + hashlib.sha256(raw.read_bytes()).hexdigest()
    blob = work / "busybox.tar.gz"
    with open(raw, "rb") as src, gzip.open(blob, "wb", compresslevel=6) as out:
        shutil.copyfileobj(src, out)
    layout = work / "oci-busybox"
    _oci_layout(layout, [blob], [diff_id])
    return layout


def _big_layout(work: Path, size_mb: int, layers: int) -> Path:
    import random

    rng = random.Random(42)
    budget = (size_mb << 20) // layers
    blobs, diff_ids = [], []
    for i in range(layers):
        path = work / f"layer{i}.tar.gz"
        _, diff_id = _layer(i, budget, rng, path)
        blobs.append(path)
        diff_ids.append(diff_id)
    layout = work / "oci-big"
    _oci_layout(layout, blobs, diff_ids)
    return layout


def _skopeo(*args: str) -> None:
    subprocess.run(["skopeo", *args], check=True, stdout=subprocess.DEVNULL)


def _skopeo_fresh_cache(*args: str) -> None:
    """skopeo with an empty blob-info cache (a tmpfs over it in a private mount namespace)."""
    script = 'mount -t tmpfs bench "$1" && shift && exec skopeo "$@"'
    cache = "/var/lib/containers/cache"
    os.makedirs(cache, exist_ok=True)
    subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", cache, *args],
        check=True,
        stdout=subprocess.DEVNULL,
    )


@contextlib.contextmanager
def _dockerd(work: Path, storage: Path) -> Iterator[tuple[list[str], str] | None]:
    """A dockerd and a registry on the same storage, both in a new network namespace; yields the
    ``docker`` command prefix and the registry host, or None when dockerd cannot run here."""
    if not shutil.which("dockerd") or not shutil.which("docker"):
        yield None
        return
    ns = f"ckbench{os.getpid()}"
    procs: list[subprocess.Popen[bytes]] = []
    root = work / "dockerd"
    root.mkdir()
    sock = root / "docker.sock"
    try:
        subprocess.run(["ip", "netns", "add", ns], check=True)
        subprocess.run(["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"], check=True)
        port = free_port()
        config = root / "registry.yml"
        config.write_text(
            f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {storage}\n"
            f"http:\n  addr: 127.0.0.1:{port}\n  secret: bench\nlog:\n  level: error\n"
        )
        procs.append(
            subprocess.Popen(
                ["nsenter", f"--net=/run/netns/{ns}", "docker-registry", "serve", str(config)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        procs.append(
            subprocess.Popen(
                [
                    # not ip netns exec: it remounts /sys, hiding the cgroup hierarchies dockerd needs
                    *("nsenter", f"--net=/run/netns/{ns}", "unshare", "--mount", "--propagation", "slave"),
                    "dockerd",
                    f"--data-root={root / 'data'}",
                    f"--exec-root={root / 'exec'}",
                    f"--pidfile={root / 'dockerd.pid'}",
                    f"--host=unix://{sock}",
                    "--bridge=none",
                    "--iptables=false",
                    "--ip6tables=false",
                    "--ip-forward=false",
                    "--ip-masq=false",
                ],
                stdout=(root / "dockerd.log").open("wb"),
                stderr=subprocess.STDOUT,
            )
        )
        docker = ["docker", "-H", f"unix://{sock}"]
        deadline = time.monotonic() + 60
        while subprocess.run([*docker, "info"], capture_output=True).returncode != 0:
            if time.monotonic() > deadline or procs[-1].poll() is not None:
                print(f"dockerd did not start (see {root / 'dockerd.log'}): no docker figures")
                yield None
                return
            time.sleep(0.5)
        yield docker, f"127.0.0.1:{port}"
    finally:
        for proc in reversed(procs):
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        with open("/proc/mounts") as mounts:
            leftover = [line.split()[1] for line in mounts if str(root) in line]
        for point in sorted(leftover, reverse=True):
            subprocess.run(["umount", "-l", point], capture_output=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--size-mb", type=int, default=400, help="uncompressed size of the big image (400)")
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--skip-pull", action="store_true", help="time the push only")
    parser.add_argument(
        "--push-ab",
        action="store_true",
        help="also push with each layer rebuilt on a thread of this process instead of a child process",
    )
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("run as root", file=sys.stderr)
        return 2
    if not shutil.which("skopeo") or not shutil.which("umoci"):
        print("needs skopeo and umoci", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="bench-pull-", dir=args.workdir))
    results: dict[str, dict[str, float]] = {}
    try:
        layouts = {"busybox": _busybox_layout(work), "4-layer": _big_layout(work, args.size_mb, args.layers)}
        sizes = {
            name: sum(p.stat().st_size for p in (layout / "blobs" / "sha256").iterdir())
            for name, layout in layouts.items()
        }
        print(
            f"images: busybox {sizes['busybox'] / 1e6:.1f} MB, "
            f"{args.layers}-layer {sizes['4-layer'] / 1e6:.0f} MB "
            f"compressed ({args.size_mb} MB uncompressed); median of {args.repeat}"
        )
        scratch = work / "scratch"

        def fresh() -> None:
            shutil.rmtree(scratch, ignore_errors=True)
            scratch.mkdir()

        with start_registry(work / "registry") as registry:
            repos = {"busybox": "bench/busybox:1", "4-layer": "bench/big:1"}
            for name, layout in layouts.items():
                _skopeo(
                    "copy",
                    "--quiet",
                    "--dest-tls-verify=false",
                    f"oci:{layout}:bench",
                    f"docker://{registry.host}/{repos[name]}",
                )
            with (
                contextlib.nullcontext(None) if args.skip_pull else _dockerd(work, registry.storage) as docker
            ):
                for name in [] if args.skip_pull else layouts:
                    ref = f"{registry.host}/{repos[name]}"
                    contenders: dict[str, Contender] = {}

                    def fresh_dir(name: str) -> Callable[[], None]:
                        def clean() -> None:
                            shutil.rmtree(scratch / name, ignore_errors=True)
                            (scratch / name).mkdir(parents=True)

                        return clean

                    def ck_pull(_n: int, ref: str = ref) -> None:
                        with ck.Engine(root=scratch / "ck" / "engine", forkserver=False) as engine:
                            engine.images.pull(ref)

                    def skopeo_umoci(_n: int, ref: str = ref) -> None:
                        oci = scratch / "skopeo" / "oci"
                        _skopeo(
                            "copy", "--quiet", "--src-tls-verify=false", f"docker://{ref}", f"oci:{oci}:x"
                        )
                        subprocess.run(
                            ["umoci", "unpack", "--image", f"{oci}:x", str(scratch / "skopeo" / "bundle")],
                            check=True,
                            stdout=subprocess.DEVNULL,
                        )

                    contenders["containerkit pull"] = (fresh_dir("ck"), ck_pull)
                    contenders["skopeo copy + umoci unpack"] = (fresh_dir("skopeo"), skopeo_umoci)
                    if docker is not None:
                        command, host = docker
                        dref = f"{host}/{repos[name]}"

                        def docker_rmi(command: list[str] = command, dref: str = dref) -> None:
                            subprocess.run([*command, "rmi", "-f", dref], capture_output=True)

                        def docker_pull(_n: int, command: list[str] = command, dref: str = dref) -> None:
                            subprocess.run(
                                [*command, "pull", "-q", dref], check=True, stdout=subprocess.DEVNULL
                            )

                        contenders["docker pull (dockerd)"] = (docker_rmi, docker_pull)
                    results[f"pull {name}"] = _interleaved(contenders, args.repeat)
                    for before, _run in contenders.values():
                        if before is not None:
                            before()  # leave nothing of this image for the next one's runs
                engines: dict[bool, ck.Engine] = {}

                def ck_fresh(keep: bool = False) -> None:
                    # a fresh store each run: one that pushed before would mount its blobs instead
                    if keep in engines:
                        engines.pop(keep).close()
                    push_root = work / f"push-engine{'-keep' if keep else ''}"
                    shutil.rmtree(push_root, ignore_errors=True)
                    engine = ck.Engine(root=push_root, forkserver=False, keep_layer_blobs=keep)
                    engines[keep] = engine
                    engine.images.load(layouts["4-layer"], name=f"{registry.host}/bench/src")

                def ck_push(n: int, *, child: bool = True, keep: bool = False) -> None:
                    engine = engines[keep]
                    kind = "k" if keep else ("" if child else "t")  # a repository per contender
                    repo = f"{registry.host}/push/ck{kind}{n + 1}:1"
                    engine.images.tag(f"{registry.host}/bench/src:bench", repo)
                    _layerblobs.REBUILD_IN_CHILD = child
                    try:
                        engine.images.push(repo)
                    finally:
                        _layerblobs.REBUILD_IN_CHILD = True

                def skopeo_push(n: int) -> None:
                    # skopeo remembers where blobs live (its blob-info cache) and would mount
                    # them from the seeded repository instead of uploading: give it an empty one
                    _skopeo_fresh_cache(
                        "copy",
                        "--quiet",
                        "--dest-tls-verify=false",
                        f"oci:{layouts['4-layer']}:bench",
                        f"docker://{registry.host}/push/skopeo{n + 1}:1",
                    )

                pushes: dict[str, Contender] = {
                    "containerkit push": (ck_fresh, ck_push),
                    "containerkit push, blobs kept": (
                        functools.partial(ck_fresh, keep=True),
                        functools.partial(ck_push, keep=True),
                    ),
                    "skopeo copy oci: -> docker://": (None, skopeo_push),
                }
                if args.push_ab:
                    pushes["containerkit push (rebuild on threads)"] = (
                        ck_fresh,
                        functools.partial(ck_push, child=False),
                    )
                try:
                    results["push 4-layer"] = _interleaved(pushes, args.repeat)
                finally:
                    for engine in engines.values():
                        engine.close()
        for title, row in results.items():
            print(f"\n## {title}", flush=True)
            base = next(iter(row.values()))
            for name, seconds in row.items():
                print(f"  {name:34s} {seconds:7.2f} s  {seconds / base:5.2f}x containerkit's time")
        return 0
    finally:
        with open("/proc/mounts") as mounts:
            leftover = [line.split()[1] for line in mounts if str(work) in line]
        for point in sorted(leftover, reverse=True):
            subprocess.run(["umount", "-l", point], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
