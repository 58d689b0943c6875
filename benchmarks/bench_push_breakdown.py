"""Where the time of one push of bench_pull's 4-layer image goes (the store keeps no layer blob).

Per layer, each stage alone on the main thread (wall and CPU seconds): the tar rebuilt from the
layer dir and its tar-split (``assemble``, which hashes the tar for its diff id check) into a
sink that drops it, the sha256 of that tar alone, the ISA-L gzip, the sha256 of the gzip, the
rebuild and gzip in a child process as a push does it (its wall; the CPU column is the
parent's reading of the pipe), and the upload of the ready gzip bytes (``push_stream``: one
streamed PATCH and the PUT; the registry's own CPU is counted apart, it is another process).
Then whole pushes (``--repeat``), interleaved with skopeo's push of the same layout (and with
``--ab`` with the rebuild on threads of this process, as before the child processes), with the
CPU of this process and its children and of the registry sampled every 0.1 s: a timeline of how
many of the machine's cores each keeps busy, so an idle core shows.

Usage (as root, from the repository root):
``python3 benchmarks/bench_push_breakdown.py [--size-mb 400] [--layers 4] [--repeat 3] [--ab]``
"""

from __future__ import annotations

import argparse
import contextlib
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


def _proc_cpu(pid: int, *, children: bool = False) -> float:
    """CPU seconds (user + system) of process ``pid`` so far; with ``children``, also of its
    children: those reaped and those still running (the layer rebuild processes of a push)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    total = int(fields[11]) + int(fields[12])
    if children:
        total += int(fields[13]) + int(fields[14])
    seconds = total / _TICK
    if children:
        for kid in _live_children(pid):
            with contextlib.suppress(FileNotFoundError, ProcessLookupError):  # counted once reaped
                seconds += _proc_cpu(kid)
    return seconds


def _live_children(pid: int) -> list[int]:
    kids: list[int] = []
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/children") as f:
                kids.extend(int(k) for k in f.read().split())
        except FileNotFoundError:
            continue
    return kids


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
        self.children = {"containerkit": True, "registry": False}
        self.step = step
        self.rows: list[tuple[float, dict[str, float]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        start = time.perf_counter()
        last = {name: _proc_cpu(pid, children=self.children[name]) for name, pid in self.pids.items()}
        then = start
        while not self._stop.wait(self.step):
            now = time.perf_counter()
            cpu = {name: _proc_cpu(pid, children=self.children[name]) for name, pid in self.pids.items()}
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
        "      sha(gz)    child     upload   (registry CPU)"
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

        def child(layer: ImageLayer = layer) -> None:
            for _ in _layerblobs.gzip_stream(images, layer):
                pass

        for _ in range(repeat):
            stages: tuple[tuple[str, Callable[[], object]], ...] = (
                ("rebuild", rebuild),
                ("sha-tar", functools.partial(_sha, tar)),
                ("gzip", functools.partial(_gzip, tar)),
                ("sha-gz", functools.partial(_sha, gz)),
                ("child", child),
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


def _whole(
    engine: ck.Engine, host: str, registry_pid: int, repeat: int, layout: Path | None, ab: bool
) -> None:
    """Whole pushes, the contenders taking turns in each round (the order rotating) after one
    untimed round: containerkit (layers rebuilt in child processes), with ``ab`` also the
    rebuild on threads of this process (as before the child processes), and with ``layout``
    skopeo pushing the layout's blobs as they are (an empty blob-info cache each time)."""
    modes: dict[str, bool | None] = {"containerkit (rebuild in child processes)": True}
    if ab:
        modes["containerkit (rebuild on threads)"] = False
    if layout is not None:
        modes["skopeo copy oci: -> docker://"] = None
    print(f"\n## whole pushes, a fresh upload each (median of {repeat}, interleaved)")
    walls: dict[str, list[float]] = {m: [] for m in modes}
    cpus: dict[str, list[tuple[float, float]]] = {m: [] for m in modes}
    reg: dict[str, list[float]] = {m: [] for m in modes}
    samplers: dict[str, _Sampler] = {}
    names = list(modes)
    for n in range(-1, repeat):
        shift = max(n, 0) % len(names)
        for name in names[shift:] + names[:shift]:
            child = modes[name]
            repo = f"{host}/whole/r{os.getpid()}x{names.index(name)}n{n + 1}:1"
            if child is not None:
                # a new repository and no remembered origins: every layer is rebuilt and uploaded
                shutil.rmtree(engine.images.content.root / "origins", ignore_errors=True)
                engine.images.tag(f"{host}/bench/src:bench", repo)
                _layerblobs.REBUILD_IN_CHILD = child
            os.sync()
            self_before = resource.getrusage(resource.RUSAGE_SELF)
            kids_before = resource.getrusage(resource.RUSAGE_CHILDREN)
            reg_before = _proc_cpu(registry_pid)
            start = time.perf_counter()
            with _Sampler(registry_pid) as sampler:
                if child is None:
                    assert layout is not None
                    _skopeo_fresh_cache(
                        "copy",
                        "--quiet",
                        "--dest-tls-verify=false",
                        f"oci:{layout}:bench",
                        f"docker://{repo}",
                    )
                else:
                    engine.images.push(repo)
            wall = time.perf_counter() - start
            self_after = resource.getrusage(resource.RUSAGE_SELF)
            kids_after = resource.getrusage(resource.RUSAGE_CHILDREN)
            if n < 0:
                continue
            walls[name].append(wall)
            cpus[name].append(
                (
                    self_after.ru_utime + self_after.ru_stime - self_before.ru_utime - self_before.ru_stime,
                    kids_after.ru_utime + kids_after.ru_stime - kids_before.ru_utime - kids_before.ru_stime,
                )
            )
            reg[name].append(_proc_cpu(registry_pid) - reg_before)
            samplers[name] = sampler
    _layerblobs.REBUILD_IN_CHILD = True
    base = statistics.median(walls[names[-1]]) if layout is not None else None
    for name in names:
        wall = statistics.median(walls[name])
        own = statistics.median(c[0] for c in cpus[name])
        kids = statistics.median(c[1] for c in cpus[name])
        regc = statistics.median(reg[name])
        ratio = f" ({wall / base:.2f}x skopeo's)" if base else ""
        print(
            f"  {name}: wall {wall:.2f} s{ratio}, runs {', '.join(f'{w:.2f}' for w in walls[name])}; "
            f"CPU process {own:.2f} s + children {kids:.2f} s, registry {regc:.2f} s; cores busy on "
            f"average {(own + kids + regc) / wall:.2f} of {os.cpu_count()}"
        )
    for name, sampler in samplers.items():
        if modes[name] is None:
            continue
        print(f"  timeline of the last push, {name} ('#' containerkit and its children, '+' registry):")
        for when, use in _every(sampler.rows, 0.2):
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--size-mb", type=int, default=400)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--whole-only", action="store_true", help="skip the per-stage table")
    parser.add_argument("--no-skopeo", action="store_true", help="skip skopeo's push")
    parser.add_argument(
        "--ab", action="store_true", help="also push with the layers rebuilt on threads of this process"
    )
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
            _whole(
                engine,
                registry.host,
                registry.proc.pid,
                args.repeat,
                None if args.no_skopeo else layout,
                args.ab,
            )
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
