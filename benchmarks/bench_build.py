"""A 6-step Dockerfile built by containerkit beside ``buildah bud`` and dockerd's classic builder.

The Dockerfile (two RUNs, a COPY of a 50 MB context, ENV, WORKDIR, CMD on busybox) is built
three ways, median of ``--repeat`` runs each:

* cold: no cache (containerkit ``nocache=True``, buildah ``--no-cache``, docker ``--no-cache``);
* cached: every step from the cache;
* one file changed: a small source file rewritten, so the cache hits up to the COPY and the
  COPY and the RUN after it run again.

RUN steps use ``--network none`` everywhere (buildah has no bridge configured here; docker and
containerkit would add their bridge setup alike). containerkit is timed in-process
(``Engine.images.build``) and through containerkitd with the docker CLI (``DOCKER_BUILDKIT=0``),
which pays the same context upload as dockerd. dockerd runs in a throwaway network namespace
(``_peers.throwaway_dockerd``); buildah on its own storage root, busybox copied in with skopeo.

Usage (as root, from the repository root): ``python3 benchmarks/bench_build.py [--repeat 5] [--mb 50]``
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import containerkit as ck
from benchmarks._peers import containerkitd, throwaway_dockerd
from containerkit.images.busybox import write_busybox_rootfs

DOCKERFILE = """FROM busybox:latest
RUN echo setup > /setup.txt
ENV APP_HOME=/app
WORKDIR /app
COPY . /app/
RUN ls -R /app | wc -l > /count
CMD ["sh", "-c", "cat /count"]
"""


def _context(root: Path, megabytes: int) -> Path:
    context = root / "context"
    (context / "data").mkdir(parents=True)
    (context / "Dockerfile").write_text(DOCKERFILE)
    for n in range(megabytes):
        (context / "data" / f"blob{n:03}.bin").write_bytes(os.urandom(1 << 20))
    (context / "main.txt").write_text("version 0\n")
    return context


def _median(fn: Callable[[], object], repeat: int, before: Callable[[int], None] | None = None) -> float:
    """Median ms of ``repeat`` runs after one untimed warm-up."""
    times = []
    for n in range(-1, repeat):
        if before is not None:
            before(n)
        start = time.perf_counter()
        fn()
        if n >= 0:
            times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def _changer(context: Path) -> Callable[[int], None]:
    def change(n: int) -> None:
        (context / "main.txt").write_text(f"version {n + 2} {time.time()}\n")

    return change


def _run(argv: list[str], env: dict[str, str] | None = None) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:4])}...: {done.stderr.strip()[-300:]}")


def bench_containerkit(work: Path, context: Path, busybox: Path, repeat: int) -> dict[str, float]:
    with ck.Engine(root=work / "ck-root") as engine:
        engine.images.import_rootfs(busybox, "busybox:latest", config={"Cmd": ["sh"]})

        def build(nocache: bool = False) -> None:
            engine.images.build(context, tag="bench/app:1", network="none", nocache=nocache)

        cold = _median(lambda: build(True), repeat)
        cached = _median(build, repeat)
        changed = _median(build, repeat, _changer(context))
        return {"cold": cold, "cached": cached, "changed": changed}


def bench_docker_cli(docker: list[str], context: Path, repeat: int) -> dict[str, float]:
    env = {**os.environ, "DOCKER_BUILDKIT": "0", "DOCKER_CONFIG": str(context.parent / "docker-config")}
    options = ["-q", "--network", "none", "-t", "bench/app:1", str(context)]
    argv = [*docker, "build", *options]
    cold = _median(lambda: _run([*docker, "build", "--no-cache", *options], env), repeat)
    cached = _median(lambda: _run(argv, env), repeat)
    changed = _median(lambda: _run(argv, env), repeat, _changer(context))
    return {"cold": cold, "cached": cached, "changed": changed}


def bench_buildah(work: Path, context: Path, busybox_archive: Path, repeat: int) -> dict[str, float] | str:
    if not shutil.which("buildah") or not shutil.which("skopeo"):
        return "buildah or skopeo is not installed"
    root, runroot = work / "buildah-root", work / "buildah-run"
    store = ["--root", str(root), "--runroot", str(runroot), "--storage-driver", "overlay"]
    _run(
        [
            "skopeo",
            "copy",
            f"docker-archive:{busybox_archive}",
            f"containers-storage:[overlay@{root}+{runroot}]docker.io/library/busybox:latest",
        ]
    )
    # runc: Debian's crun refuses this host's hybrid cgroup layout (see _peers.crun_times)
    argv = [
        "buildah",
        *store,
        "bud",
        *("--runtime", shutil.which("runc") or "runc"),
        "--layers",
        "--network",
        "none",
        "-q",
        "-t",
        "bench/app:1",
        str(context),
    ]
    try:
        cold = _median(lambda: _run([*argv[:-1], "--no-cache", argv[-1]]), repeat)
        cached = _median(lambda: _run(argv), repeat)
        changed = _median(lambda: _run(argv), repeat, _changer(context))
    except RuntimeError as exc:
        return str(exc)[-160:]
    finally:
        subprocess.run(["buildah", *store, "rm", "--all"], capture_output=True)
        subprocess.run(["umount", "-R", str(root / "overlay")], capture_output=True)
    return {"cold": cold, "cached": cached, "changed": changed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--mb", type=int, default=50)
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root: builds run containers")
    work = Path(tempfile.mkdtemp(prefix="ck-bench-build-"))
    results: dict[str, dict[str, float] | str] = {}
    try:
        busybox = write_busybox_rootfs(work / "busybox.tar")
        context = _context(work, args.mb)
        results["containerkit (in-process)"] = bench_containerkit(work, context, busybox, args.repeat)
        print(results, flush=True)
        with ck.Engine(root=work / "ck-root") as engine:
            archive = work / "busybox-archive.tar"
            engine.images.save("busybox:latest", archive)
        with contextlib.ExitStack() as stack:
            sock = stack.enter_context(containerkitd(work / "ck-root", work))
            results["containerkitd + docker CLI"] = bench_docker_cli(
                ["docker", "-H", f"unix://{sock}"], context, args.repeat
            )
        print(results, flush=True)
        results["buildah bud --layers"] = bench_buildah(work, context, archive, args.repeat)
        print(results, flush=True)
        with throwaway_dockerd(busybox) as found:
            if isinstance(found, str):
                results["dockerd classic builder"] = found
            else:
                results["dockerd classic builder"] = bench_docker_cli(found[1], context, args.repeat)
    finally:
        with contextlib.suppress(OSError):
            subprocess.run(["umount", "-R", str(work / "buildah-root" / "overlay")], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)
    base = results["containerkit (in-process)"]
    assert isinstance(base, dict)
    print(
        f"\n## 6-step build, {args.mb} MB context, median of {args.repeat} (ms; ratio = peer / containerkit)"
    )
    print(f"{'':<30} {'cold':>18} {'cached':>18} {'one file changed':>20}")
    for name, values in results.items():
        if isinstance(values, str):
            print(f"{name:<30} n/a: {values}")
            continue
        cells = [f"{values[k]:9.1f} ({values[k] / base[k]:5.2f}x)" for k in ("cold", "cached", "changed")]
        print(f"{name:<30} {cells[0]:>18} {cells[1]:>18} {cells[2]:>20}")


if __name__ == "__main__":
    main()
