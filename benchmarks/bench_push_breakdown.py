"""Where the time of one push of bench_pull's 4-layer image goes (the store keeps no layer blob).

Per layer, each stage alone on the main thread (wall and CPU seconds): the tar rebuilt from the
layer dir and its tar-split (``assemble``, which hashes the tar for its diff id check) into a
sink that drops it, the sha256 of that tar alone, the ISA-L gzip, the sha256 of the gzip, and
the upload of the ready gzip bytes (``push_stream``: one streamed PATCH and the PUT; the
registry's own CPU is counted apart, it is another process). Then whole pushes (``--repeat``)
with the CPU of this process and of the registry sampled every 0.1 s: a timeline of how many
of the machine's cores each keeps busy, so an idle core shows.

Usage (as root, from the repository root):
``python3 benchmarks/bench_push_breakdown.py [--size-mb 400] [--layers 4] [--repeat 3]``
"""

from __future__ import annotations

import argparse
import functools
import os
import resource
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import hashlib

import containerkit as ck
from benchmarks.bench_pull import _big_layout, _skopeo_fresh_cache
from containerkit.engine import _layerblobs
from containerkit.engine._distribution import default_transport
from containerkit.images.deflate import gzip_chunks
from containerkit.images.reference import parse_reference
from containerkit.images.registry.auth import RegistryOptions
from containerkit.images.registry.pull import Progress
from containerkit.images.registry.push import Pusher
from containerkit.storage.records import ImageLayer
from containerkit.storage.tarsplit import Writable
from tests.images.registry.servers import start_registry

_TICK = os.sysconf("SC_CLK_TCK")


def _proc_cpu(pid: int) -> float:
    """CPU seconds (user + system) of process ``pid`` so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def _timed(fn: Callable[[], object]) -> tuple[float, float]:
    """(wall, CPU of this thread) seconds of ``fn()``."""
    wall, cpu = time.perf_counter(), time.thread_time()
    fn()
    return time.perf_counter() - wall, time.thread_time() - cpu


class _Null:
    def write(self, data: bytes) -> int:
        return len(data)


class _Keep:
    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    def write(self, data: bytes) -> int:
        self.chunks.append(bytes(data))
        return len(data)


class _Sampler:
    """CPU of this process and of the registry every ``step`` seconds, as cores kept busy."""

    def __init__(self, registry_pid: int, step: float = 0.1) -> None:
        self.pids = {"containerkit": os.getpid(), "registry": registry_pid}
        self.step = step
        self.rows: list[tuple[float, dict[str, float]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        start = time.perf_counter()
        last = {name: _proc_cpu(pid) for name, pid in self.pids.items()}
        then = start
        while not self._stop.wait(self.step):
            now = time.perf_counter()
            cpu = {name: _proc_cpu(pid) for name, pid in self.pids.items()}
            self.rows.append((now - start, {name: (cpu[name] - last[name]) / (now - then) for name in cpu}))
            last, then = cpu, now

    def __enter__(self) -> _Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _sha(chunks: list[bytes]) -> str:
    sha = hashlib.sha256()
    for chunk in chunks:
        sha.update(chunk)
    return sha.hexdigest()


def _gzip(chunks: list[bytes]) -> list[bytes]:
    def write(out: Writable) -> None:
        for chunk in chunks:
            out.write(chunk)

    return list(gzip_chunks(write))


def _stages(engine: ck.Engine, pusher: Pusher, repeat: int) -> None:
    images = engine.images
    record = images._record(images.metadata.images.resolve_tag(pusher.src) or "")  # type: ignore[attr-defined]
    print(f"\n## per layer, one stage at a time (median of {repeat}; wall / CPU seconds)")
    print(
        f"  {'layer':8s} {'MB tar':>7s} {'MB gz':>6s}   rebuild+sha   sha(tar)     gzip"
        "      sha(gz)   upload   (registry CPU)"
    )
    totals: dict[str, list[float]] = {}
    for layer in record.layers:
        keep = _Keep()
        _layerblobs.write_plain(images, layer, keep)
        tar = keep.chunks
        gz = _gzip(tar)
        rows: dict[str, list[tuple[float, float]]] = {}
        reg_cpu: list[float] = []

        def upload(gz: list[bytes] = gz) -> None:
            pusher.push_stream(iter(gz), _layerblobs.MEDIA_OCI_LAYER_GZIP)

        def rebuild(layer: ImageLayer = layer) -> None:
            _layerblobs.write_plain(images, layer, _Null())

        for _ in range(repeat):
            stages: tuple[tuple[str, Callable[[], object]], ...] = (
                ("rebuild", rebuild),
                ("sha-tar", functools.partial(_sha, tar)),
                ("gzip", functools.partial(_gzip, tar)),
                ("sha-gz", functools.partial(_sha, gz)),
                ("upload", upload),
            )
            for name, fn in stages:
                before = _proc_cpu(pusher.registry_pid)  # type: ignore[attr-defined]
                rows.setdefault(name, []).append(_timed(fn))
                if name == "upload":
                    reg_cpu.append(_proc_cpu(pusher.registry_pid) - before)  # type: ignore[attr-defined]
        cells = []
        for name, values in rows.items():
            wall = statistics.median(v[0] for v in values)
            cpu = statistics.median(v[1] for v in values)
            totals.setdefault(name, []).append(wall)
            cells.append(f"{wall:5.2f}/{cpu:4.2f}")
        print(
            f"  {layer.diff_id[7:15]:8s} {sum(map(len, tar)) / 1e6:7.1f} {sum(map(len, gz)) / 1e6:6.1f}   "
            + "  ".join(cells)
            + f"   ({statistics.median(reg_cpu):.2f})"
        )
    print("  sum      " + " " * 16 + "  ".join(f"{sum(v):5.2f}     " for v in totals.values()))
    print("  (gzip's CPU is its writer thread's, not counted above: its wall is the stage's cost)")


def _whole(engine: ck.Engine, host: str, registry_pid: int, repeat: int) -> None:
    print(f"\n## whole pushes (engine.images.push, a fresh upload each: median of {repeat})")
    walls, cpus, reg = [], [], []
    last: _Sampler | None = None
    for n in range(repeat):
        # a new repository and no remembered origins: every layer is rebuilt and uploaded
        shutil.rmtree(engine.images.content.root / "origins", ignore_errors=True)
        engine.images.tag(f"{host}/bench/src:bench", f"{host}/whole/r{os.getpid()}x{n}:1")
        usage = resource.getrusage(resource.RUSAGE_SELF)
        reg_before = _proc_cpu(registry_pid)
        start = time.perf_counter()
        with _Sampler(registry_pid) as sampler:
            engine.images.push(f"{host}/whole/r{os.getpid()}x{n}:1")
        walls.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_SELF)
        cpus.append(after.ru_utime + after.ru_stime - usage.ru_utime - usage.ru_stime)
        reg.append(_proc_cpu(registry_pid) - reg_before)
        last = sampler
    wall = statistics.median(walls)
    print(
        f"  wall {wall:.2f} s; CPU containerkit {statistics.median(cpus):.2f} s, "
        f"registry {statistics.median(reg):.2f} s; cores busy on average "
        f"{(statistics.median(cpus) + statistics.median(reg)) / wall:.2f} of {os.cpu_count()}"
    )
    if last is not None:
        print("  timeline of the last push (cores kept busy per 0.1 s step; '#' containerkit, '+' registry):")
        for when, use in _every(last.rows, 0.2):
            ckb, regb = use["containerkit"], use["registry"]
            bar = "#" * round(ckb * 10) + "+" * round(regb * 10)
            print(f"  {when:5.1f} s  ck {ckb:4.2f}  reg {regb:4.2f}  {bar}")


def _every(
    rows: list[tuple[float, dict[str, float]]], step: float
) -> Iterator[tuple[float, dict[str, float]]]:
    """The samples averaged over ``step`` seconds."""
    group: list[dict[str, float]] = []
    mark = step
    for when, use in rows:
        group.append(use)
        if when >= mark:
            yield when, {k: statistics.mean(g[k] for g in group) for k in use}
            group, mark = [], mark + step
    if group:
        yield rows[-1][0], {k: statistics.mean(g[k] for g in group) for k in group[0]}


def _skopeo(layout: Path, host: str, registry_pid: int, repeat: int) -> None:
    """The same push by skopeo (the layout's blobs as they are), for the CPU it and the registry use."""
    walls, cpus, reg = [], [], []
    for n in range(repeat):
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        reg_before = _proc_cpu(registry_pid)
        start = time.perf_counter()
        _skopeo_fresh_cache(
            "copy",
            "--quiet",
            "--dest-tls-verify=false",
            f"oci:{layout}:bench",
            f"docker://{host}/skopeo/r{os.getpid()}x{n}:1",
        )
        walls.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime + after.ru_stime - usage.ru_utime - usage.ru_stime)
        reg.append(_proc_cpu(registry_pid) - reg_before)
    wall = statistics.median(walls)
    print(f"\n## skopeo copy oci: -> docker:// (median of {repeat})")
    print(
        f"  wall {wall:.2f} s; CPU skopeo {statistics.median(cpus):.2f} s, "
        f"registry {statistics.median(reg):.2f} s"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--size-mb", type=int, default=400)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--whole-only", action="store_true", help="skip the per-stage table")
    parser.add_argument("--no-skopeo", action="store_true", help="skip skopeo's push")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("run as root", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="bench-push-", dir=args.workdir))
    try:
        layout = _big_layout(work, args.size_mb, args.layers)
        with (
            start_registry(work / "registry") as registry,
            ck.Engine(root=work / "engine", forkserver=False) as engine,
        ):
            assert registry.proc is not None
            engine.images.load(layout, name=f"{registry.host}/bench/src")
            if not args.whole_only:
                ref = parse_reference(f"{registry.host}/stages/x:1")
                transport = default_transport(ref.domain, None, RegistryOptions())
                pusher = Pusher(transport, ref, engine.images.content, progress=Progress(None))
                pusher.registry_pid = registry.proc.pid  # type: ignore[attr-defined]
                pusher.src = parse_reference(f"{registry.host}/bench/src:bench").canonical  # type: ignore[attr-defined]
                _stages(engine, pusher, args.repeat)
            _whole(engine, registry.host, registry.proc.pid, args.repeat)
            if not args.no_skopeo:
                _skopeo(layout, registry.host, registry.proc.pid, args.repeat)
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
